// Runs the HTTP request-head fuzz entry over its seed corpus plus mutations (see
// tests/support/fuzz_replay.h).
#include <gtest/gtest.h>

#include "tests/support/fuzz_replay.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

TEST(HttpHeadFuzzCorpus, SeedsAndMutations) {
  EXPECT_GT(lazysnap::testing::ReplayCorpus(HTTP_HEAD_CORPUS_DIR, LLVMFuzzerTestOneInput, 1000),
            5000);
}

}  // namespace

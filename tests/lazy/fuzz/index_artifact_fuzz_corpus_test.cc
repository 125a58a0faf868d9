// Runs the index artifact fuzz entry over its seed corpus plus mutations (see
// tests/support/fuzz_replay.h).
#include <gtest/gtest.h>

#include "tests/support/fuzz_replay.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

TEST(LazyArtifactFuzzCorpus, SeedsAndMutations) {
  EXPECT_GT(lazysnap::testing::ReplayCorpus(LAZY_ARTIFACT_CORPUS_DIR, LLVMFuzzerTestOneInput, 1000),
            3000);
}

}  // namespace

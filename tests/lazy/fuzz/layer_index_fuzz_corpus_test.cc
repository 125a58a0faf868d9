// Runs the layer index fuzz entry over its seed corpus plus mutations (see
// tests/support/fuzz_replay.h); byte 0 of every seed selects the input form.
#include <gtest/gtest.h>

#include "tests/support/fuzz_replay.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

TEST(LazyIndexFuzzCorpus, SeedsAndMutations) {
  EXPECT_GT(lazysnap::testing::ReplayCorpus(LAZY_INDEX_CORPUS_DIR, LLVMFuzzerTestOneInput, 1000,
                                            /*keep_first_byte=*/true),
            3000);
}

}  // namespace

// Runs the root-name rewrite fuzz entry over its seeds (layers with "/", "//", "/./", prefix and
// PAX root spellings) plus mutations; byte 0 of each input chooses how it is cut into feeds.
#include <gtest/gtest.h>

#include "tests/support/fuzz_replay.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

TEST(ErofsTarRootFixFuzzCorpus, SeedsAndMutations) {
  EXPECT_GT(lazysnap::testing::ReplayCorpus(EROFS_ROOT_FIX_CORPUS_DIR, LLVMFuzzerTestOneInput, 1000,
                                            true),
            4000);
}

}  // namespace

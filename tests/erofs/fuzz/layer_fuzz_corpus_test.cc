// Runs the layer-input fuzz entry (decoder + tar scanner) over its seeds plus mutations.
#include <gtest/gtest.h>

#include "tests/support/fuzz_replay.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

TEST(ErofsLayerFuzzCorpus, SeedsAndMutations) {
  EXPECT_GT(lazysnap::testing::ReplayCorpus(EROFS_LAYER_CORPUS_DIR, LLVMFuzzerTestOneInput, 800),
            3000);
}

}  // namespace

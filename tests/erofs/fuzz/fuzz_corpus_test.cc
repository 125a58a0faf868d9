// Runs the EROFS reader fuzz entry over its seed corpus (small real images: full, index-only with
// the tar appended as blob, xattrs, long dirs) plus mutations (see tests/support/fuzz_replay.h).
#include <gtest/gtest.h>

#include "tests/support/fuzz_replay.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

TEST(ErofsReaderFuzzCorpus, SeedsAndMutations) {
  EXPECT_GT(lazysnap::testing::ReplayCorpus(EROFS_CORPUS_DIR, LLVMFuzzerTestOneInput, 2000, true),
            9000);
}

}  // namespace

// Runs the labels fuzz entry over its seed corpora plus mutations (see
// tests/support/fuzz_replay.h).
#include <gtest/gtest.h>

#include "tests/support/fuzz_replay.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

TEST(LabelsFuzzCorpus, SeedsAndMutations) {
  int runs = 0;
  for (const char* dir : {"corpus_reference", "corpus_labels", "corpus_descriptor"}) {
    runs += lazysnap::testing::ReplayCorpus(std::string(LABELS_CORPUS_DIR) + "/" + dir,
                                            LLVMFuzzerTestOneInput, 1000, /*keep_first_byte=*/true);
  }
  EXPECT_GT(runs, 3000);
}

}  // namespace

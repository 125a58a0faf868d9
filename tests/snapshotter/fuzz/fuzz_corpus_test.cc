// Runs the fuzz entry points over their seed corpora plus deterministic mutations, so the normal
// test suite exercises them without libFuzzer.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "common/file_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

TEST(FilterFuzzCorpus, SeedsAndMutations) {
  std::mt19937 rng(1234);
  int runs = 0;
  for (const auto& e : std::filesystem::directory_iterator(FILTER_CORPUS_DIR)) {
    std::string seed = lazysnap::ReadFile(e.path().string());
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(seed.data()), seed.size());
    for (int i = 0; i < 300; ++i) {
      std::string m = seed;
      int edits = 1 + static_cast<int>(rng() % 4);
      for (int j = 0; j < edits; ++j) {
        size_t pos = m.empty() ? 0 : rng() % (m.size() + 1);
        switch (rng() % 3) {
          case 0:
            m.insert(m.begin() + static_cast<long>(pos), static_cast<char>(rng()));
            break;
          case 1:
            if (pos < m.size()) m.erase(pos, 1);
            break;
          default:
            if (pos < m.size()) m[pos] = "\",./|=!~\\ ax0"[rng() % 13];
        }
      }
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(m.data()), m.size());
      ++runs;
    }
  }
  EXPECT_GT(runs, 1000);
}

}  // namespace

#include "tests/support/fuzz_replay.h"

#include <filesystem>
#include <random>

#include "common/file_util.h"

namespace lazysnap::testing {

int ReplayCorpus(const std::string& dir, FuzzEntry entry, int mutations_per_seed,
                 bool keep_first_byte) {
  std::mt19937 rng(1234);
  int runs = 0;
  static constexpr char kInteresting[] = "\",./|=!~\\ :@[]{}0aZ\x00\xff";
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::string seed = ReadFile(e.path().string());
    entry(reinterpret_cast<const uint8_t*>(seed.data()), seed.size());
    ++runs;
    size_t lo = keep_first_byte ? 1 : 0;
    for (int i = 0; i < mutations_per_seed; ++i) {
      std::string m = seed;
      int edits = 1 + static_cast<int>(rng() % 4);
      for (int j = 0; j < edits; ++j) {
        if (m.size() <= lo) {
          m.push_back(static_cast<char>(rng()));
          continue;
        }
        size_t pos = lo + rng() % (m.size() - lo);
        switch (rng() % 4) {
          case 0:
            m.insert(m.begin() + static_cast<long>(pos), static_cast<char>(rng()));
            break;
          case 1:
            m.erase(pos, 1 + rng() % 8);
            break;
          case 2:
            m[pos] = kInteresting[rng() % (sizeof kInteresting - 1)];
            break;
          default:
            m.resize(pos);
            break;
        }
      }
      entry(reinterpret_cast<const uint8_t*>(m.data()), m.size());
      ++runs;
    }
  }
  return runs;
}

}  // namespace lazysnap::testing

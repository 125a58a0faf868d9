// SpanStore on real filesystems: spans read back byte for byte, the bound evicts least recently
// used spans (their holes punched), and a full disk (a tiny tmpfs) disables the
// store without losing what it holds.
#include "lazy/span_store.h"

#include <gtest/gtest.h>
#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/error.h"
#include "common/file_util.h"
#include "common/temp_dir.h"
#include "tests/support/pseudo_random.h"
#include "tests/support/small_disk.h"

namespace lazysnap::lazy {
namespace {

using testing::PseudoRandomBytes;

constexpr uint64_t kSpan = 256 * 1024;

std::string ReadBack(SpanStore& s, size_t span, uint64_t off, size_t len) {
  std::string out(len, '\0');
  if (!s.Read(span, off, len, out.data())) return "<absent>";
  return out;
}

TEST(SpanStore, SpansReadBackAtTheirTarOffsets) {
  TempDir dir("spans");
  SpanStore s(dir.path(), 64 * kSpan);
  std::string a = PseudoRandomBytes(kSpan, 1), b = PseudoRandomBytes(kSpan / 2, 2);
  EXPECT_FALSE(s.Has(3));
  EXPECT_EQ(ReadBack(s, 3, 3 * kSpan, 10), "<absent>");
  ASSERT_TRUE(s.Put(3, 3 * kSpan, a));
  ASSERT_TRUE(s.Put(9, 9 * kSpan, b));
  EXPECT_FALSE(s.Put(3, 3 * kSpan, a)) << "a span is stored once";
  EXPECT_TRUE(s.Has(3));
  EXPECT_EQ(ReadBack(s, 3, 3 * kSpan, kSpan), a);
  EXPECT_EQ(ReadBack(s, 3, 3 * kSpan + 1000, 77), a.substr(1000, 77));
  EXPECT_EQ(ReadBack(s, 9, 9 * kSpan + 5, b.size() - 5), b.substr(5));
  // Outside the span it names: absent, never bytes of a neighbour or a hole.
  EXPECT_EQ(ReadBack(s, 9, 9 * kSpan + b.size() - 1, 2), "<absent>");
  EXPECT_EQ(ReadBack(s, 3, 3 * kSpan - 1, 2), "<absent>");
  auto st = s.Stats();
  EXPECT_EQ(st.bytes, a.size() + b.size());
  EXPECT_EQ(st.hits, 3u);
  EXPECT_FALSE(st.disabled);
  // The file is unlinked: nothing named is left in the directory.
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(SpanStore, TheBoundEvictsTheLeastRecentlyUsedSpans) {
  TempDir dir("spans");
  SpanStore s(dir.path(), 4 * kSpan);
  for (size_t i = 0; i < 4; ++i) ASSERT_TRUE(s.Put(i, i * kSpan, PseudoRandomBytes(kSpan, i)));
  ASSERT_NE(ReadBack(s, 0, 0, 1), "<absent>");  // 0 is now the most recently used
  ASSERT_TRUE(s.Put(4, 4 * kSpan, PseudoRandomBytes(kSpan, 4)));
  EXPECT_FALSE(s.Has(1)) << "span 1 was the least recently used";
  for (size_t i : {0, 2, 3, 4}) {
    EXPECT_EQ(ReadBack(s, i, i * kSpan, kSpan), PseudoRandomBytes(kSpan, i)) << i;
  }
  auto st = s.Stats();
  EXPECT_EQ(st.bytes, 4 * kSpan);
  EXPECT_EQ(st.evictions, 1u);
}

TEST(SpanStore, AFullDiskDisablesTheStoreAndKeepsWhatItHolds) {
  TempDir dir("spans");
  testing::SmallDisk disk(dir / "small", "1m");
  const std::string& mnt = disk.path();
  SpanStore s(mnt, 1ull << 30);
  std::string first = PseudoRandomBytes(kSpan, 1);
  ASSERT_TRUE(s.Put(0, 0, first));
  bool refused = false;
  for (size_t i = 1; i < 16 && !refused; ++i) refused = !s.Put(i, i * kSpan, first);
  EXPECT_TRUE(refused) << "1 MiB of tmpfs took 4 MiB of spans";
  EXPECT_TRUE(s.Stats().disabled);
  EXPECT_FALSE(s.Put(100, 100 * kSpan, "x")) << "a disabled store takes nothing new";
  EXPECT_EQ(ReadBack(s, 0, 0, kSpan), first);
}

TEST(SpanStore, ADirectoryThatCannotHoldFilesIsAClearError) {
  EXPECT_THROW(SpanStore("/nonexistent/lazysnap-spans", 1 << 20), Error);
}

}  // namespace
}  // namespace lazysnap::lazy

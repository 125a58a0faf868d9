#include "common/temp_dir.h"

#include <gtest/gtest.h>
#include <sys/mount.h>

#include "common/file_util.h"

namespace lazysnap {
namespace {

TEST(TempDir, RemovedWithContents) {
  std::string path;
  {
    TempDir d("t");
    path = d.path();
    MakeDirs(d / "a/b");
    WriteFileAtomic(d / "a/b/f", "x");
    EXPECT_EQ(ReadFile(d / "a/b/f"), "x");
  }
  EXPECT_FALSE(PathExists(path));
}

TEST(TempDir, UnmountsBeforeRemoving) {
  std::string path;
  {
    TempDir d("t");
    path = d.path();
    MakeDirs(d / "mnt");
    ASSERT_EQ(::mount("tmpfs", (d / "mnt").c_str(), "tmpfs", 0, nullptr), 0);
    WriteFileAtomic(d / "mnt/f", "x");
  }
  EXPECT_FALSE(PathExists(path));
}

TEST(WriteFileAtomic, ReplacesWhole) {
  TempDir d("t");
  WriteFileAtomic(d / "f", "first");
  WriteFileAtomic(d / "f", "2nd");
  EXPECT_EQ(ReadFile(d / "f"), "2nd");
}

}  // namespace
}  // namespace lazysnap

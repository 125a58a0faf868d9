#include "snapshotter/overlay_mounts.h"

#include <gtest/gtest.h>

namespace lazysnap::snapshotter {
namespace {

using V = std::vector<std::string>;

TEST(NativeMounts, ActiveWithoutParentIsRwBind) {
  auto m = NativeMounts(Kind::kActive, "/r/1/fs", "/r/1/work", {});
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].type, "bind");
  EXPECT_EQ(m[0].source, "/r/1/fs");
  EXPECT_EQ(m[0].options, (V{"rw", "rbind"}));
}

TEST(NativeMounts, ViewWithoutParentIsRoBind) {
  auto m = NativeMounts(Kind::kView, "/r/1/fs", "/r/1/work", {});
  EXPECT_EQ(m[0].options, (V{"ro", "rbind"}));
}

TEST(NativeMounts, ViewOfSingleParentBindsParentRo) {
  auto m = NativeMounts(Kind::kView, "/r/2/fs", "/r/2/work", {"/r/1/fs"});
  EXPECT_EQ(m[0].type, "bind");
  EXPECT_EQ(m[0].source, "/r/1/fs");
  EXPECT_EQ(m[0].options, (V{"ro", "rbind"}));
}

TEST(NativeMounts, ActiveOnParentsIsOverlayNearestFirst) {
  auto m = NativeMounts(Kind::kActive, "/r/3/fs", "/r/3/work", {"/r/2/fs", "/r/1/fs"});
  EXPECT_EQ(m[0].type, "overlay");
  EXPECT_EQ(m[0].source, "overlay");
  EXPECT_EQ(m[0].options,
            (V{"index=off", "workdir=/r/3/work", "upperdir=/r/3/fs", "lowerdir=/r/2/fs:/r/1/fs"}));
}

TEST(NativeMounts, ViewOfChainIsReadOnlyOverlay) {
  auto m = NativeMounts(Kind::kView, "/r/3/fs", "/r/3/work", {"/r/2/fs", "/r/1/fs"},
                        {.index_off = false});
  EXPECT_EQ(m[0].options, (V{"lowerdir=/r/2/fs:/r/1/fs"}));
}

}  // namespace
}  // namespace lazysnap::snapshotter

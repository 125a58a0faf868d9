// End to end with the real containerd (ctr) and a real docker-registry on 127.0.0.1: an image
// built here is pulled through lazysnap, run with runc, and the snapshots API round-trips.
#include <gtest/gtest.h>

#include "common/error.h"
#include "common/sha256.h"

#include <thread>
#include "tests/support/containerd.h"
#include "tests/support/lazysnapd.h"
#include "tests/support/oci_image.h"
#include "tests/support/registry.h"

namespace lazysnap::testing {
namespace {

class ContainerdTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    registry_ = new Registry();
    OciImageBuilder b;
    b.AddBusyboxLayer();
    b.AddFileLayer({{"etc/msg", "hello from layer 2\n"}});
    b.AddFileLayer({{"etc/msg", "hello from layer 3\n"}, {"data/blob", std::string(300000, 'z')}});
    b.SetCmd({"/bin/sh"});
    image_ = new PushedImage(b.Push(registry_->host(), "test/busybox:v1"));
  }
  static void TearDownTestSuite() {
    delete image_;
    delete registry_;
  }

  static Registry* registry_;
  static PushedImage* image_;
  LazysnapdProcess daemon_;
  Containerd containerd_{ContainerdOptions{.snapshotter_socket = daemon_.socket()}};

  std::string Run(const std::string& id, const std::string& script) {
    return containerd_.CtrOrThrow(
        {"run", "--rm", "--snapshotter", "lazysnap", image_->ref, id, "sh", "-c", script});
  }
  void Pull() {
    containerd_.CtrOrThrow(
        {"image", "pull", "--snapshotter", "lazysnap", "--plain-http", image_->ref});
  }
};

Registry* ContainerdTest::registry_ = nullptr;
PushedImage* ContainerdTest::image_ = nullptr;

TEST_F(ContainerdTest, PullAndRunThroughLazysnap) {
  ASSERT_EQ(image_->layer_digests.size(), 3u);
  Pull();
  std::string out = Run("t-run-" + std::to_string(::getpid()),
                        "cat /etc/msg; sha256sum /data/blob | head -c 16; echo");
  EXPECT_NE(out.find("hello from layer 3"), std::string::npos) << out;
  // sha256 of 300000 'z' bytes, first 16 hex digits.
  EXPECT_NE(out.find(Sha256Hex(std::string(300000, 'z')).substr(0, 16)), std::string::npos) << out;
  // Three committed layer snapshots, chained.
  std::string ls = containerd_.CtrOrThrow({"snapshots", "--snapshotter", "lazysnap", "ls"});
  EXPECT_EQ(std::count(ls.begin(), ls.end(), '\n'), 4) << ls;  // header + 3 layers
}

TEST_F(ContainerdTest, RestartBetweenPullAndRun) {
  Pull();
  daemon_.Kill9();
  daemon_.Start();
  // containerd redials the proxy socket with backoff (~3 s cap); ctr retries are not needed after
  // that.
  std::string out;
  for (int attempt = 0; attempt < 10; ++attempt) {
    auto r =
        containerd_.Ctr({"run", "--rm", "--snapshotter", "lazysnap", image_->ref,
                         "t-restart-" + std::to_string(::getpid()) + "-" + std::to_string(attempt),
                         "cat", "/etc/msg"});
    out = r.output;
    if (r.exit_code == 0) break;
    ASSERT_NE(r.output.find("unavailable"), std::string::npos) << r.output;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  EXPECT_NE(out.find("hello from layer 3"), std::string::npos) << out;
}

TEST_F(ContainerdTest, SnapshotsCommandsRoundTrip) {
  auto S = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"snapshots", "--snapshotter", "lazysnap"});
    return containerd_.CtrOrThrow(args);
  };
  S({"prepare", "base", ""});
  std::string mounts = S({"mounts", "/mnt/x", "base"});
  EXPECT_NE(mounts.find("bind"), std::string::npos) << mounts;
  S({"commit", "base-c", "base"});
  S({"prepare", "top", "base-c"});
  S({"view", "v", "base-c"});
  mounts = S({"mounts", "/mnt/x", "top"});
  EXPECT_NE(mounts.find("overlay"), std::string::npos) << mounts;
  EXPECT_NE(mounts.find("lowerdir="), std::string::npos) << mounts;
  std::string usage = S({"usage"});
  EXPECT_NE(usage.find("base-c"), std::string::npos) << usage;
  S({"label", "base-c", "team=storage"});
  EXPECT_NE(S({"info", "base-c"}).find("\"team\": \"storage\""), std::string::npos);
  auto rm = containerd_.Ctr({"snapshots", "--snapshotter", "lazysnap", "rm", "base-c"});
  EXPECT_NE(rm.exit_code, 0);
  EXPECT_NE(rm.output.find("child"), std::string::npos) << rm.output;
  // ctr gives views no gc.root label, so containerd's GC (triggered by any removal) may collect
  // "v" on its own: remove it first.
  S({"rm", "v"});
  S({"rm", "top"});
  S({"rm", "base-c"});
  std::string ls = S({"ls"});
  EXPECT_EQ(ls.find("base"), std::string::npos) << ls;
}

}  // namespace
}  // namespace lazysnap::testing

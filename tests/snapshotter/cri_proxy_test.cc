// Proxy mode end to end: the real containerd CRI plugin pulls a multi-layer image from a real
// docker-registry through lazysnap with proxy mode on. No layer blob may be downloaded; every
// layer becomes a remote snapshot; a container snapshot on top gets the Kata mount whose
// descriptor names the exact image, manifest and layers.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "common/error.h"
#include "labels/descriptor.h"
#include "snapshotter/proto/snapshots.grpc.pb.h"
#include "tests/support/containerd.h"
#include "tests/support/cri_client.h"
#include "tests/support/http_client.h"
#include "tests/support/lazysnapd.h"
#include "tests/support/oci_image.h"
#include "tests/support/registry.h"

namespace lazysnap::testing {
namespace {

namespace pb = ::containerd::services::snapshots::v1;

class CriProxyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    registry_ = new Registry();
    OciImageBuilder b;
    b.AddBusyboxLayer();
    b.AddFileLayer({{"etc/msg", "layer 2\n"}});
    b.AddFileLayer({{"etc/msg", "layer 3\n"}, {"data/blob", std::string(200000, 'q')}});
    b.SetCmd({"/bin/sh"});
    image_ = new PushedImage(b.Push(registry_->host(), "proxy/busybox:v1"));
  }
  static void TearDownTestSuite() {
    delete image_;
    delete registry_;
  }

  static std::string Config(const std::string& fallback) {
    return "[proxy]\nenable = true\nfallback = \"" + fallback + "\"\n";
  }

  std::vector<std::string> BlobGets() const {
    std::vector<std::string> out;
    for (const auto& r : registry_->Requests()) {
      for (const auto& d : image_->layer_digests) {
        if (r.starts_with("GET ") && r.find("/blobs/" + d) != std::string::npos) out.push_back(r);
      }
    }
    return out;
  }

  static std::vector<pb::Info> ListSnapshots(const std::string& socket) {
    auto stub = pb::Snapshots::NewStub(
        grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    pb::ListSnapshotsRequest req;
    auto reader = stub->List(&ctx, req);
    std::vector<pb::Info> out;
    pb::ListSnapshotsResponse resp;
    while (reader->Read(&resp)) out.insert(out.end(), resp.info().begin(), resp.info().end());
    EXPECT_TRUE(reader->Finish().ok());
    return out;
  }

  static Registry* registry_;
  static PushedImage* image_;
};

Registry* CriProxyTest::registry_ = nullptr;
PushedImage* CriProxyTest::image_ = nullptr;

TEST_F(CriProxyTest, PullDownloadsNoLayerAndContainerGetsKataMount) {
  LazysnapdProcess daemon("metrics_address = \"127.0.0.1:0\"\n" + Config("native"));
  Containerd containerd({.snapshotter_socket = daemon.socket(),
                         .cri = true,
                         .mirror_host = registry_->host(),
                         .sandbox_image = registry_->host() + "/pause:none"});
  size_t gets_before = BlobGets().size();
  CriImageClient cri(containerd.address());
  cri.Pull(image_->ref);
  EXPECT_EQ(BlobGets().size(), gets_before) << "a layer blob was downloaded";
  // lazysnapd's metrics say how the layers were answered.
  std::string metrics = HttpGet(daemon.MetricsAddress(), "/metrics");
  for (const char* sample : {"lazysnapd_layer_prepares_total{mode=\"proxy\"} 3\n",
                             "lazysnapd_layer_prepares_total{mode=\"native\"} 0\n",
                             "lazysnapd_snapshots{kind=\"committed\",mode=\"proxy\"} 3\n"}) {
    EXPECT_NE(metrics.find(sample), std::string::npos) << sample << metrics;
  }

  auto snaps = ListSnapshots(daemon.socket());
  ASSERT_EQ(snaps.size(), 3u);
  std::string top;
  for (const auto& s : snaps) {
    EXPECT_EQ(s.kind(), pb::COMMITTED);
    EXPECT_EQ(s.labels().at("containerd.io/snapshot/cri.image-ref"), image_->ref);
    EXPECT_EQ(s.labels().at("containerd.io/snapshot/cri.manifest-digest"), image_->manifest_digest);
    EXPECT_EQ(s.name(), s.labels().at("containerd.io/snapshot.ref"));  // named by chainID
    if (s.labels().at("containerd.io/snapshot/cri.layer-digest") == image_->layer_digests.back())
      top = s.name();
  }
  ASSERT_FALSE(top.empty());

  // The container's rootfs snapshot, prepared the way containerd's CRI does (through containerd).
  auto out = containerd.CtrOrThrow(
      {"snapshots", "--snapshotter", "lazysnap", "prepare", "ctr-on-proxy", top}, 120, "k8s.io");
  (void)out;
  auto mounts = containerd.CtrOrThrow(
      {"snapshots", "--snapshotter", "lazysnap", "mounts", "/rootfs", "ctr-on-proxy"}, 120,
      "k8s.io");
  EXPECT_NE(mounts.find("fuse.nydus-overlayfs"), std::string::npos) << mounts;
  auto pos = mounts.find("io.katacontainers.volume=");
  ASSERT_NE(pos, std::string::npos) << mounts;
  std::string b64 = mounts.substr(pos + 25);
  b64 = b64.substr(0, b64.find_first_of(", \n"));
  auto desc = labels::DecodeKataVolume(b64);
  EXPECT_EQ(desc.image_ref, image_->ref);
  EXPECT_EQ(desc.manifest_digest, image_->manifest_digest);
  ASSERT_EQ(desc.layers.size(), image_->layer_digests.size());
  for (size_t i = 0; i < desc.layers.size(); ++i)
    EXPECT_EQ(desc.layers[i].digest, image_->layer_digests[i]);
  EXPECT_NE(mounts.find("upperdir="), std::string::npos);
  EXPECT_NE(mounts.find("lowerdir="), std::string::npos);

  // Restart safety: the proxy snapshots and their labels survive a kill -9.
  daemon.Kill9();
  daemon.Start();
  auto again = ListSnapshots(daemon.socket());
  EXPECT_EQ(again.size(), 4u);  // 3 layers + the container snapshot
}

TEST_F(CriProxyTest, AnnotationsDisabledFallsBackToNative) {
  LazysnapdProcess daemon(Config("native"));
  Containerd containerd({.snapshotter_socket = daemon.socket(),
                         .cri = true,
                         .cri_snapshot_annotations = false,
                         .mirror_host = registry_->host(),
                         .sandbox_image = registry_->host() + "/pause:none"});
  size_t gets_before = BlobGets().size();
  CriImageClient(containerd.address()).Pull(image_->ref);
  EXPECT_EQ(BlobGets().size(), gets_before + image_->layer_digests.size());  // native: every layer
  EXPECT_NE(daemon.ReadLog().find("disable_snapshot_annotations"), std::string::npos);
}

TEST_F(CriProxyTest, AnnotationsDisabledWithFallbackErrorFailsClearly) {
  LazysnapdProcess daemon(Config("error"));
  Containerd containerd({.snapshotter_socket = daemon.socket(),
                         .cri = true,
                         .cri_snapshot_annotations = false,
                         .mirror_host = registry_->host(),
                         .sandbox_image = registry_->host() + "/pause:none"});
  try {
    CriImageClient(containerd.address()).Pull(image_->ref);
    FAIL() << "pull succeeded without CRI labels and fallback=error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("disable_snapshot_annotations"), std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(ListSnapshots(daemon.socket()).empty());  // nothing half-made
}

TEST_F(CriProxyTest, CtrPullWithoutLabelsStillWorksNatively) {
  LazysnapdProcess daemon(Config("native"));
  Containerd containerd({.snapshotter_socket = daemon.socket()});
  containerd.CtrOrThrow(
      {"image", "pull", "--snapshotter", "lazysnap", "--plain-http", image_->ref});
  auto out =
      containerd.CtrOrThrow({"run", "--rm", "--snapshotter", "lazysnap", image_->ref,
                             "proxy-native-" + std::to_string(::getpid()), "cat", "/etc/msg"});
  EXPECT_NE(out.find("layer 3"), std::string::npos) << out;
}

}  // namespace
}  // namespace lazysnap::testing

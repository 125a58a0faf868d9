// The lazysnapd binary over its real unix socket with a gRPC client: every RPC, the status codes
// containerd relies on, and durability across SIGTERM and kill -9.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <thread>

#include "common/file_util.h"
#include "common/process.h"
#include "common/temp_dir.h"
#include "snapshotter/proto/snapshots.grpc.pb.h"
#include "tests/support/http_client.h"
#include "tests/support/lazysnapd.h"
#include "tests/support/registry.h"

namespace lazysnap::snapshotter {
namespace {

namespace pb = ::containerd::services::snapshots::v1;

class GrpcServiceTest : public ::testing::Test {
 protected:
  testing::LazysnapdProcess daemon_{"metrics_address = \"127.0.0.1:0\"\n"};
  std::unique_ptr<pb::Snapshots::Stub> stub_ = Connect();

  std::unique_ptr<pb::Snapshots::Stub> Connect() {
    return pb::Snapshots::NewStub(
        grpc::CreateChannel("unix:" + daemon_.socket(), grpc::InsecureChannelCredentials()));
  }

  grpc::Status Prepare(const std::string& key, const std::string& parent,
                       const std::map<std::string, std::string>& labels = {},
                       pb::PrepareSnapshotResponse* out = nullptr) {
    grpc::ClientContext ctx;
    pb::PrepareSnapshotRequest req;
    req.set_snapshotter("lazysnap");
    req.set_key(key);
    req.set_parent(parent);
    for (const auto& [k, v] : labels) (*req.mutable_labels())[k] = v;
    pb::PrepareSnapshotResponse resp;
    return stub_->Prepare(&ctx, req, out ? out : &resp);
  }
  grpc::Status Commit(const std::string& name, const std::string& key) {
    grpc::ClientContext ctx;
    pb::CommitSnapshotRequest req;
    req.set_name(name);
    req.set_key(key);
    (*req.mutable_labels())["containerd.io/snapshot.ref"] = name;
    google::protobuf::Empty e;
    return stub_->Commit(&ctx, req, &e);
  }
  grpc::Status Stat(const std::string& key, pb::Info* info = nullptr) {
    grpc::ClientContext ctx;
    pb::StatSnapshotRequest req;
    req.set_key(key);
    pb::StatSnapshotResponse resp;
    auto st = stub_->Stat(&ctx, req, &resp);
    if (info) *info = resp.info();
    return st;
  }
  grpc::Status Remove(const std::string& key) {
    grpc::ClientContext ctx;
    pb::RemoveSnapshotRequest req;
    req.set_key(key);
    google::protobuf::Empty e;
    return stub_->Remove(&ctx, req, &e);
  }
  std::vector<pb::Info> List(const std::vector<std::string>& filters) {
    grpc::ClientContext ctx;
    pb::ListSnapshotsRequest req;
    for (const auto& f : filters) req.add_filters(f);
    auto reader = stub_->List(&ctx, req);
    std::vector<pb::Info> out;
    pb::ListSnapshotsResponse resp;
    while (reader->Read(&resp)) out.insert(out.end(), resp.info().begin(), resp.info().end());
    auto st = reader->Finish();
    EXPECT_TRUE(st.ok()) << st.error_message();
    return out;
  }
  void Restart(bool kill9) {
    kill9 ? daemon_.Kill9() : daemon_.Stop();
    daemon_.Start();
    stub_ = Connect();
  }
};

TEST_F(GrpcServiceTest, AllTenRpcs) {
  pb::PrepareSnapshotResponse prep;
  ASSERT_TRUE(Prepare("ns/1/extract", "", {{"a", "1"}}, &prep).ok());
  ASSERT_EQ(prep.mounts_size(), 1);
  EXPECT_EQ(prep.mounts(0).type(), "bind");
  ASSERT_TRUE(Commit("ns/2/sha256:c1", "ns/1/extract").ok());
  {
    grpc::ClientContext ctx;
    pb::ViewSnapshotRequest req;
    req.set_key("ns/3/view");
    req.set_parent("ns/2/sha256:c1");
    pb::ViewSnapshotResponse resp;
    ASSERT_TRUE(stub_->View(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.mounts(0).options(0), "ro");
  }
  ASSERT_TRUE(Prepare("ns/4/work", "ns/2/sha256:c1").ok());
  {
    grpc::ClientContext ctx;
    pb::MountsRequest req;
    req.set_key("ns/4/work");
    pb::MountsResponse resp;
    ASSERT_TRUE(stub_->Mounts(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.mounts(0).type(), "overlay");
  }
  pb::Info info;
  ASSERT_TRUE(Stat("ns/2/sha256:c1", &info).ok());
  EXPECT_EQ(info.kind(), pb::COMMITTED);
  EXPECT_GT(info.created_at().seconds(), 1700000000);
  {
    grpc::ClientContext ctx;
    pb::UpdateSnapshotRequest req;
    req.mutable_info()->set_name("ns/2/sha256:c1");
    (*req.mutable_info()->mutable_labels())["x"] = "y";
    req.mutable_update_mask()->add_paths("labels.x");
    pb::UpdateSnapshotResponse resp;
    ASSERT_TRUE(stub_->Update(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.info().labels().at("x"), "y");
    EXPECT_EQ(resp.info().labels().at("containerd.io/snapshot.ref"), "ns/2/sha256:c1");
  }
  EXPECT_EQ(List({}).size(), 3u);
  EXPECT_EQ(List({R"(labels."containerd.io/snapshot.ref"==ns/2/sha256:c1,parent==)"
                  "\"\""})
                .size(),
            1u);
  {
    grpc::ClientContext ctx;
    pb::UsageRequest req;
    req.set_key("ns/2/sha256:c1");
    pb::UsageResponse resp;
    ASSERT_TRUE(stub_->Usage(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.inodes(), 1);
  }
  ASSERT_TRUE(Remove("ns/3/view").ok());
  {
    grpc::ClientContext ctx;
    pb::CleanupRequest req;
    google::protobuf::Empty e;
    ASSERT_TRUE(stub_->Cleanup(&ctx, req, &e).ok());
  }
}

TEST_F(GrpcServiceTest, ErrorCodesContainerdUnderstands) {
  ASSERT_TRUE(Prepare("a", "").ok());
  EXPECT_EQ(Prepare("a", "").error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(Prepare("b", "unknown-parent").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Prepare("b", "a").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Prepare("", "").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Prepare("c", "", {{"k", std::string(5000, 'v')}}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Stat("zz").error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(Commit("c1", "a").ok());
  ASSERT_TRUE(Prepare("child", "c1").ok());
  auto st = Remove("c1");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("child"), std::string::npos);
  {
    grpc::ClientContext ctx;
    pb::ListSnapshotsRequest req;
    req.add_filters("kind===x");
    auto reader = stub_->List(&ctx, req);
    pb::ListSnapshotsResponse resp;
    while (reader->Read(&resp)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  // A malformed message on the wire is rejected by gRPC itself; the daemon keeps serving.
  auto channel =
      grpc::CreateChannel("unix:" + daemon_.socket(), grpc::InsecureChannelCredentials());
  grpc::GenericStub generic(channel);
  grpc::ClientContext ctx;
  grpc::Slice junk("\xff\xff\xff\xff\x0f garbage", 14);
  grpc::ByteBuffer req(&junk, 1), resp;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status gst;
  generic.UnaryCall(&ctx, "/containerd.services.snapshots.v1.Snapshots/Prepare",
                    grpc::StubOptions(), &req, &resp, [&](grpc::Status s) {
                      std::lock_guard l(mu);
                      gst = s;
                      done = true;
                      cv.notify_one();
                    });
  std::unique_lock l(mu);
  cv.wait(l, [&] { return done; });
  EXPECT_FALSE(gst.ok());
  EXPECT_TRUE(Stat("c1").ok());
}

TEST_F(GrpcServiceTest, MetricsCountRequestsByCodeAndSnapshotsByKindAndMode) {
  const std::map<std::string, std::string> layer_labels = {
      {"containerd.io/snapshot.ref", "sha256:" + std::string(64, 'c')}};
  auto layer = Prepare("a", "", layer_labels);  // containerd unpacking a layer
  ASSERT_TRUE(layer.ok()) << layer.error_message();
  EXPECT_EQ(Prepare("a", "", layer_labels).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(Stat("zz").error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(Commit("c1", "a").ok());
  ASSERT_TRUE(Prepare("container", "c1").ok());
  {
    grpc::ClientContext ctx;
    pb::ViewSnapshotRequest req;
    req.set_key("v");
    req.set_parent("c1");
    pb::ViewSnapshotResponse resp;
    ASSERT_TRUE(stub_->View(&ctx, req, &resp).ok());
  }
  auto has = [](const std::string& text, const std::string& sample) {
    return text.find("\n" + sample + "\n") != std::string::npos;
  };
  std::string m = testing::HttpGet(daemon_.MetricsAddress(), "/metrics");
  for (const char* sample : {
           R"(lazysnapd_requests_total{method="Prepare",code="OK"} 2)",
           R"(lazysnapd_requests_total{method="Prepare",code="ALREADY_EXISTS"} 1)",
           R"(lazysnapd_requests_total{method="Stat",code="OK"} 0)",
           R"(lazysnapd_requests_total{method="Stat",code="NOT_FOUND"} 1)",
           R"(lazysnapd_requests_total{method="Commit",code="OK"} 1)",
           R"(lazysnapd_requests_total{method="View",code="OK"} 1)",
           R"(lazysnapd_request_duration_seconds_count{method="Prepare"} 3)",
           R"(lazysnapd_snapshots{kind="committed",mode="native"} 1)",
           R"(lazysnapd_snapshots{kind="active",mode="native"} 1)",
           R"(lazysnapd_snapshots{kind="view",mode="native"} 1)",
           R"(lazysnapd_snapshots{kind="committed",mode="lazy"} 0)",
           R"(lazysnapd_layer_prepares_total{mode="native"} 1)",
           R"(lazysnapd_layer_prepares_total{mode="proxy"} 0)",
           "lazysnapd_lazy_fallbacks_total 0",
       }) {
    EXPECT_TRUE(has(m, sample)) << sample << " in\n" << m;
  }
  EXPECT_FALSE(has(m, R"(lazysnapd_requests_total{method="Remove",code="NOT_FOUND"} 0)"))
      << "codes that never occurred are left out";
  EXPECT_TRUE(testing::HttpExchange(daemon_.MetricsAddress(), "GET / HTTP/1.1\r\n\r\n")
                  .starts_with("HTTP/1.1 404 "));
  // At debug level each request is logged with its code and time.
  const std::string log = daemon_.ReadLog();
  for (const char* line : {"msg=request method=Prepare key=container code=OK us=",
                           "msg=request method=Stat key=zz code=NOT_FOUND us="}) {
    EXPECT_NE(log.find(line), std::string::npos) << line << " in\n" << log;
  }

  // Counters start again with the process; the snapshots are what the metadata holds.
  Restart(/*kill9=*/true);
  m = testing::HttpGet(daemon_.MetricsAddress(), "/metrics");
  EXPECT_TRUE(has(m, R"(lazysnapd_requests_total{method="Prepare",code="OK"} 0)")) << m;
  EXPECT_TRUE(has(m, R"(lazysnapd_snapshots{kind="committed",mode="native"} 1)")) << m;
  EXPECT_TRUE(has(m, R"(lazysnapd_snapshots{kind="active",mode="native"} 1)")) << m;
}

TEST_F(GrpcServiceTest, SurvivesSigtermAndKill9) {
  ASSERT_TRUE(Prepare("a", "").ok());
  ASSERT_TRUE(Commit("c1", "a").ok());
  ASSERT_TRUE(Prepare("b", "c1").ok());
  Restart(/*kill9=*/true);
  pb::Info info;
  ASSERT_TRUE(Stat("c1", &info).ok());
  EXPECT_EQ(info.kind(), pb::COMMITTED);
  ASSERT_TRUE(Stat("b", &info).ok());
  EXPECT_EQ(info.parent(), "c1");
  ASSERT_TRUE(Commit("c2", "b").ok());
  Restart(/*kill9=*/false);
  EXPECT_EQ(List({}).size(), 2u);
  EXPECT_NE(daemon_.ReadLog().find("shutting down"), std::string::npos);
}

TEST_F(GrpcServiceTest, Kill9DuringABurstLosesNoCommittedSnapshot) {
  // A client commits in a loop while the daemon is killed; every Commit that returned OK must
  // survive, and no snapshot may be half-made (a row without its directory or vice versa).
  std::vector<std::string> acknowledged;
  std::atomic<bool> stop{false};
  std::thread client([&] {
    for (int i = 0; i < 2000 && !stop; ++i) {
      std::string key = "burst-" + std::to_string(i);
      if (!Prepare(key, "").ok()) break;
      if (!Commit("c-" + key, key).ok()) break;
      acknowledged.push_back("c-" + key);
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  daemon_.Kill9();
  stop = true;
  client.join();
  daemon_.Start();
  stub_ = Connect();
  ASSERT_FALSE(acknowledged.empty());
  for (const auto& name : acknowledged) {
    pb::Info info;
    ASSERT_TRUE(Stat(name, &info).ok()) << name;
    EXPECT_EQ(info.kind(), pb::COMMITTED);
  }
  // Every surviving snapshot has its directory, and Cleanup removes the orphans a kill left.
  grpc::ClientContext ctx;
  pb::CleanupRequest req;
  google::protobuf::Empty e;
  ASSERT_TRUE(stub_->Cleanup(&ctx, req, &e).ok());
  size_t dirs = 0;
  for (const auto& d : std::filesystem::directory_iterator(daemon_.root() + "/snapshots")) {
    (void)d;
    ++dirs;
  }
  EXPECT_EQ(dirs, List({}).size());
}

}  // namespace
}  // namespace lazysnap::snapshotter

namespace lazysnap::snapshotter {
namespace {

TEST(LazysnapdStartup, SecondDaemonOnSameRootFailsClearly) {
  testing::LazysnapdProcess daemon;
  auto r = RunCommand({testing::LazysnapdBinary(), "--root", daemon.root(), "--address",
                       daemon.root() + "/other.sock"},
                      std::chrono::seconds(20));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("in use by another lazysnapd"), std::string::npos) << r.output;
}

TEST(LazysnapdStartup, CorruptedDatabaseFailsClearlyAndIsKept) {
  TempDir dir("corrupt");
  MakeDirs(dir / "root");
  WriteFileAtomic(dir / "root/metadata.db",
                  "this is not an SQLite database, it is garbage" + std::string(4096, 'x'));
  auto r =
      RunCommand({testing::LazysnapdBinary(), "--root", dir / "root", "--address", dir / "s.sock"},
                 std::chrono::seconds(20));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("metadata.db"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("damaged"), std::string::npos) << r.output;
  EXPECT_EQ(ReadFile(dir / "root/metadata.db").substr(0, 12), "this is not ");
}

TEST(LazysnapdStartup, BadConfigFailsWithUsageExitCode) {
  TempDir dir("badcfg");
  WriteFileAtomic(dir / "c.toml", "roots = \"/x\"\n");
  auto r = RunCommand({testing::LazysnapdBinary(), "--config", dir / "c.toml"},
                      std::chrono::seconds(20));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("unknown key \"roots\""), std::string::npos) << r.output;
}

}  // namespace
}  // namespace lazysnap::snapshotter

// Snapshotter micro-benchmark: Prepare+Commit and Stat latency (p50/p99) with 1,000 existing
// snapshots, measured in one run for
//   (a) lazysnapd called directly on its socket,
//   (b) containerd's snapshots API backed by lazysnap (what ctr/CRI see), and
//   (c) containerd's snapshots API backed by its built-in overlayfs snapshotter (the baseline).
// Usage: snapshotter_bench [--existing N] [--ops N]
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "snapshotter/proto/snapshots.grpc.pb.h"
#include "tests/support/containerd.h"
#include "tests/support/lazysnapd.h"

namespace pb = ::containerd::services::snapshots::v1;
using Clock = std::chrono::steady_clock;

namespace {

struct Target {
  const char* name;
  std::string socket;
  std::string snapshotter;  // the request's snapshotter field (containerd routes on it)
  bool via_containerd;
};

class Client {
 public:
  explicit Client(const Target& t)
      : t_(t),
        stub_(pb::Snapshots::NewStub(
            grpc::CreateChannel("unix:" + t.socket, grpc::InsecureChannelCredentials()))) {}

  void Ctx(grpc::ClientContext& ctx) {
    if (t_.via_containerd) ctx.AddMetadata("containerd-namespace", "bench");
  }
  void PrepareCommit(const std::string& key) {
    {
      grpc::ClientContext ctx;
      Ctx(ctx);
      pb::PrepareSnapshotRequest req;
      req.set_snapshotter(t_.snapshotter);
      req.set_key(key + "-active");
      // Without a gc.root label containerd's GC may collect the active snapshot before Commit.
      (*req.mutable_labels())["containerd.io/gc.root"] = "bench";
      pb::PrepareSnapshotResponse resp;
      Check(stub_->Prepare(&ctx, req, &resp), "Prepare");
    }
    grpc::ClientContext ctx;
    Ctx(ctx);
    pb::CommitSnapshotRequest req;
    req.set_snapshotter(t_.snapshotter);
    req.set_key(key + "-active");
    req.set_name(key);
    (*req.mutable_labels())["containerd.io/gc.root"] = "bench";
    google::protobuf::Empty e;
    Check(stub_->Commit(&ctx, req, &e), "Commit");
  }
  void Stat(const std::string& key) {
    grpc::ClientContext ctx;
    Ctx(ctx);
    pb::StatSnapshotRequest req;
    req.set_snapshotter(t_.snapshotter);
    req.set_key(key);
    pb::StatSnapshotResponse resp;
    Check(stub_->Stat(&ctx, req, &resp), "Stat");
  }

 private:
  void Check(const grpc::Status& st, const char* what) {
    if (!st.ok()) {
      // Thrown, not exit(): the daemons' RAII owners must stop them on the way out.
      throw std::runtime_error(std::string(what) + " on " + t_.name +
                               " failed: " + st.error_message());
    }
  }
  Target t_;
  std::unique_ptr<pb::Snapshots::Stub> stub_;
};

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

struct Result {
  double pc50, pc99, st50, st99;
};

Result Measure(const Target& t, int existing, int ops) {
  Client c(t);
  for (int i = 0; i < existing; ++i) c.PrepareCommit("existing-" + std::to_string(i));
  std::vector<double> pc, st;
  for (int i = 0; i < ops; ++i) {
    auto t0 = Clock::now();
    c.PrepareCommit("measured-" + std::to_string(i));
    pc.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  for (int i = 0; i < ops; ++i) {
    auto t0 = Clock::now();
    c.Stat("existing-" + std::to_string((i * 7919) % existing));
    st.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  return {Percentile(pc, 0.5), Percentile(pc, 0.99), Percentile(st, 0.5), Percentile(st, 0.99)};
}

}  // namespace

int Run(int argc, char** argv) {
  int existing = 1000, ops = 500;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--existing")) existing = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--ops")) ops = std::atoi(argv[i + 1]);
  }
  lazysnap::testing::LazysnapdProcess daemon("log_level = \"warn\"\n", "");
  lazysnap::testing::Containerd containerd({.snapshotter_socket = daemon.socket()});
  std::vector<Target> targets = {
      {"lazysnapd direct", daemon.socket(), "lazysnap", false},
      {"containerd -> lazysnap", containerd.address(), "lazysnap", true},
      {"containerd -> overlayfs (baseline)", containerd.address(), "overlayfs", true},
  };
  std::printf("snapshotter micro-benchmark: %d existing snapshots, %d measured ops each\n\n",
              existing, ops);
  std::printf(
      "| target | Prepare+Commit p50 (us) | p99 (us) | Stat p50 (us) | p99 (us) "
      "|\n|---|---|---|---|---|\n");
  std::vector<Result> results;
  for (const auto& t : targets) {
    results.push_back(Measure(t, existing, ops));
    const auto& r = results.back();
    std::printf("| %s | %.0f | %.0f | %.0f | %.0f |\n", t.name, r.pc50, r.pc99, r.st50, r.st99);
  }
  const auto& ls = results[1];
  const auto& ov = results[2];
  std::printf(
      "\nratio containerd->lazysnap / containerd->overlayfs: Prepare+Commit p50 %.2fx, p99 %.2fx; "
      "Stat p50 %.2fx, p99 %.2fx\n",
      ls.pc50 / ov.pc50, ls.pc99 / ov.pc99, ls.st50 / ov.st50, ls.st99 / ov.st99);
  return 0;
}

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "snapshotter_bench: %s\n", e.what());
    return 1;
  }
}

// lazysnapd: containerd proxy snapshotter daemon. Serves snapshots.v1 on a unix socket.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/arg_parser.h"
#include "common/error.h"
#include "common/file_util.h"
#include "common/http_server.h"
#include "common/log.h"
#include "common/prometheus.h"
#include "snapshotter/config.h"
#include "snapshotter/daemon_metrics.h"
#include "snapshotter/grpc_service.h"
#include "snapshotter/lazy_layers.h"
#include "snapshotter/remote_layers.h"
#include "snapshotter/snapshotter.h"

namespace {

constexpr const char* kDefaultConfig = "/etc/lazysnap/config.toml";

constexpr const char* kUsage =
    "usage: lazysnapd [--config FILE] [--root DIR] [--address SOCKET] [--log-level LEVEL]\n"
    "  --config FILE     TOML config (default /etc/lazysnap/config.toml; optional unless given)\n"
    "  --root DIR        state directory (overrides config \"root\")\n"
    "  --address SOCKET  gRPC unix socket (overrides config \"address\")\n"
    "  --log-level L     debug|info|warn|error (overrides config \"log_level\")\n";

int Run(int argc, char** argv) {
  std::string root, address, level;
  std::vector<std::string> configs;  // the last --config given counts
  lazysnap::ArgParser args("lazysnapd", kUsage);
  args.Values("--config", &configs)
      .Value("--root", &root)
      .Value("--address", &address)
      .Value("--log-level", &level);
  if (auto rc = args.Parse(argc, argv)) return *rc;
  // Given (even empty), the file must load; the default may be missing.
  bool config_given = !configs.empty();
  std::string config_path = config_given ? configs.back() : kDefaultConfig;
  auto cfg = lazysnap::snapshotter::LoadDaemonConfig(config_path, config_given);
  if (!root.empty()) cfg.root = root;
  if (!address.empty()) cfg.address = address;
  if (!level.empty()) cfg.log_level = lazysnap::ParseLogLevel(level);
  lazysnap::Logger log(cfg.log_level);

  // SIGTERM/SIGINT are taken synchronously by a waiter thread; block them before gRPC's threads
  // exist.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  lazysnap::snapshotter::ProxyLayerPlanner proxy_planner(cfg.proxy, log);
  lazysnap::snapshotter::LazyLayerPlanner planner(proxy_planner, cfg.lazy, log);
  lazysnap::snapshotter::KataMountBuilder kata_mounts(cfg.proxy.mount_type);
  lazysnap::snapshotter::Snapshotter sn(
      {.root = cfg.root, .overlay = {}, .planner = &planner, .remote_mounts = &kata_mounts}, log);
  lazysnap::snapshotter::SnapshotsService service(sn, log);

  const double started = static_cast<double>(lazysnap::snapshotter::NowNanos()) / 1e9;
  std::unique_ptr<lazysnap::HttpServer> metrics = lazysnap::ServePrometheusMetrics(
      cfg.metrics_address,
      [&sn, &service, started] {
        return lazysnap::snapshotter::DaemonMetrics({.requests = service.requests(),
                                                     .counters = sn.counters(),
                                                     .snapshots = sn.Tally(),
                                                     .start_time_s = started});
      },
      log);

  lazysnap::MakeDirs(std::filesystem::path(cfg.address).parent_path().string(), 0711);
  ::unlink(
      cfg.address.c_str());  // a stale socket from a killed daemon; the root lock proves we own it
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + cfg.address, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(16 << 20);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    throw lazysnap::Error(lazysnap::ErrorCode::kUnavailable,
                          "cannot listen on unix:" + cfg.address);
  }
  ::chmod(cfg.address.c_str(), 0600);
  log.Info("lazysnapd serving", {{"address", cfg.address},
                                 {"root", cfg.root},
                                 {"proxy", cfg.proxy.enable ? "enabled" : "disabled"},
                                 {"lazy", cfg.lazy.enable ? cfg.lazy.socket : "disabled"},
                                 {"fallback", cfg.proxy.fallback}});

  std::thread waiter([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    log.Info("shutting down", {{"signal", strsignal(sig)}});
    // gRPC waits out the whole deadline while any client (containerd always) keeps an idle
    // connection open, so keep it short. Handlers already running still finish: every metadata
    // change is one SQLite transaction, so a cut-off call leaves nothing half-done.
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
  });
  server->Wait();
  waiter.join();
  ::unlink(cfg.address.c_str());
  log.Info("lazysnapd stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const lazysnap::Error& e) {
    std::fprintf(stderr, "lazysnapd: %s\n", e.what());
    return e.code() == lazysnap::ErrorCode::kInvalidArgument ? 2 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lazysnapd: %s\n", e.what());
    return 1;
  }
}

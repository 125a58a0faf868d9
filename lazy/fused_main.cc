// lazysnap-fused: serves lazy layers over FUSE for lazysnapd. A process of its own so that
// lazysnapd can restart (upgrade, crash, kill -9) without breaking reads of running containers:
// their overlays' lower layers are this daemon's FUSE mounts. It reads the [lazy] section of
// lazysnapd's config and answers the control protocol of lazy/control.h (and `--fd-keeper SOCKET`
// runs the fd keeper it starts for itself, lazy/fd_keeper.h, so that its own death does not
// break reads either):
//   {"op":"prepare", image_ref, manifest_digest, layer_digest} -> {"indexed": bool}
//   {"op":"mount", ..., "mountpoint"}    {"op":"unmount", "mountpoint"}
//   {"op":"status"} -> per-layer bytes fetched / served / cache hits      {"op":"ping"}
//   {"op":"start-reads"} -> per mounted layer, the tar ranges read at start
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/arg_parser.h"
#include "common/error.h"
#include "common/file_util.h"
#include "common/http_server.h"
#include "common/log.h"
#include "common/prometheus.h"
#include "lazy/control.h"
#include "lazy/fd_keeper.h"
#include "lazy/layer_service.h"
#include "lazy/metrics.h"
#include "snapshotter/config.h"

namespace {

constexpr const char* kDefaultConfig = "/etc/lazysnap/config.toml";

constexpr const char* kUsage =
    "usage: lazysnap-fused [--config FILE] [--socket SOCKET] [--log-level LEVEL]\n"
    "  --config FILE     lazysnapd's TOML config; its [lazy] section (default "
    "/etc/lazysnap/config.toml)\n"
    "  --socket SOCKET   control socket (overrides lazy.socket)\n"
    "  --log-level L     debug|info|warn|error\n";

std::string Str(const nlohmann::json& req, const char* key) {
  auto it = req.find(key);
  if (it == req.end() || !it->is_string() || it->get<std::string>().empty())
    throw lazysnap::Error(lazysnap::ErrorCode::kInvalidArgument,
                          std::string("request needs a string \"") + key + "\"");
  return it->get<std::string>();
}

lazysnap::lazy::LayerRef Ref(const nlohmann::json& req) {
  return {Str(req, "image_ref"), Str(req, "manifest_digest"), Str(req, "layer_digest")};
}

int Run(int argc, char** argv) {
  // The fd keeper this daemon starts for itself (lazy/fd_keeper.h), not for people to run.
  if (argc == 3 && std::string(argv[1]) == "--fd-keeper")
    return lazysnap::lazy::RunFdKeeper(argv[2]);
  std::string socket, level;
  std::vector<std::string> configs;  // the last --config given counts
  lazysnap::ArgParser args("lazysnap-fused", kUsage);
  args.Values("--config", &configs).Value("--socket", &socket).Value("--log-level", &level);
  if (auto rc = args.Parse(argc, argv)) return *rc;
  // Given (even empty), the file must load; the default may be missing.
  bool config_given = !configs.empty();
  std::string config_path = config_given ? configs.back() : kDefaultConfig;
  auto cfg = lazysnap::snapshotter::LoadDaemonConfig(config_path, config_given);
  const auto& lz = cfg.lazy;
  if (!socket.empty()) cfg.lazy.socket = socket;
  lazysnap::Logger log(level.empty() ? cfg.log_level : lazysnap::ParseLogLevel(level));

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  lazysnap::lazy::LayerServiceOptions so;
  so.root = lz.root;
  so.cache_dir = lz.cache_dir;
  so.cache_max_bytes = static_cast<uint64_t>(lz.cache_max_mb) << 20;
  so.registry.hosts_dir = lz.hosts_dir;
  so.registry.docker_config = lz.docker_config;
  so.plain_http = lz.plain_http;
  so.read_timeout = std::chrono::seconds(lz.read_timeout_s);
  so.fuse_threads = static_cast<unsigned>(lz.fuse_threads);
  so.span_cache_bytes = static_cast<uint64_t>(lz.span_cache_mb) << 20;
  so.span_store_bytes = static_cast<uint64_t>(lz.span_store_mb) << 20;
  so.readahead_spans = static_cast<unsigned>(lz.readahead_spans);
  so.readahead_threads = static_cast<unsigned>(lz.readahead_threads);
  so.read_ahead_kb = static_cast<unsigned>(lz.read_ahead_kb);
  so.splice_reads = lz.splice_reads;
  so.kernel_erofs = lz.kernel_erofs;
  so.erofs_directio = lz.erofs_directio;
  so.erofs_read_ahead_kb = static_cast<unsigned>(lz.erofs_read_ahead_kb);
  so.background_fetch = lz.background_fetch;
  so.background.delay = std::chrono::seconds(lz.background_fetch_delay_s);
  so.background.bytes_per_second = static_cast<uint64_t>(lz.background_fetch_mb_per_s) << 20;
  so.prefetch = lz.prefetch;
  so.record_window = std::chrono::seconds(lz.prefetch_record_s);
  so.keep_connections = std::chrono::seconds(lz.keep_connections_s);
  if (lz.keep_connections) so.fd_keeper_exe = std::filesystem::read_symlink("/proc/self/exe");
  lazysnap::MakeDirs(lz.root, 0700);
  auto slash = lz.socket.rfind('/');
  if (slash != std::string::npos && slash > 0) lazysnap::MakeDirs(lz.socket.substr(0, slash));
  lazysnap::lazy::LayerService service(so, log);

  // The scrape endpoint answers from the same status `lazysnap status` shows.
  std::unique_ptr<lazysnap::HttpServer> metrics = lazysnap::ServePrometheusMetrics(
      lz.metrics_address,
      [&service] { return lazysnap::lazy::PrometheusMetrics(service.Status()); }, log);

  lazysnap::lazy::ControlServer server(
      lz.socket,
      [&](const nlohmann::json& req) -> nlohmann::json {
        std::string op = Str(req, "op");
        if (op == "ping") return nlohmann::json::object();
        if (op == "status") {
          nlohmann::json s = service.Status();
          if (metrics) s["metrics_address"] = metrics->address();
          return s;
        }
        if (op == "start-reads") return service.StartReads();
        if (op == "prepare") return {{"indexed", service.Prepare(Ref(req))}};
        if (op == "mount") {
          service.Mount(Ref(req), Str(req, "mountpoint"));
          return nlohmann::json::object();
        }
        if (op == "unmount") {
          service.Unmount(Str(req, "mountpoint"));
          return nlohmann::json::object();
        }
        throw lazysnap::Error(lazysnap::ErrorCode::kInvalidArgument, "unknown op \"" + op + "\"");
      },
      log);
  log.Info("lazysnap-fused serving",
           {{"socket", lz.socket}, {"root", lz.root}, {"cache", lz.cache_dir}});
  int sig = 0;
  sigwait(&stop_signals, &sig);
  log.Info("lazysnap-fused stopping", {{"signal", std::to_string(sig)}});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lazysnap-fused: %s\n", e.what());
    return 1;
  }
}

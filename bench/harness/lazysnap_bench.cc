// lazysnap-bench: time to ready per image and mode, against containerd's overlayfs baseline in
// the same run. Sets everything up on loopback: a real docker-registry, and for every scenario run
// a fresh lazysnapd + containerd (CRI plugin on) in temp dirs, so caches start cold.
//
// Scenarios: native-overlayfs (baseline: containerd's own snapshotter), native-lazysnap,
// proxy-lazysnap (host side of a Kata pull: no run on the host), lazy-lazysnap (layers indexed
// once with `lazysnap index`, untimed, then mounted lazily over FUSE by a fresh lazysnap-fused per
// run: no layer download, the container's reads fetch byte ranges; image prefetch lists unused),
// lazy-prefetch-lazysnap (the same, after one untimed run recorded the container's start reads
// and `lazysnap index --prefetch` pushed them with the index: each run's lazysnap-fused fetches
// them at mount), guest-erofs-lazysnap and guest-lazy-lazysnap (the proxy-mode pull, then the
// guest's side of a Kata start on the host, without the VM: lazysnap-guest mounts the rootfs from
// the container snapshot's descriptor, whole layers built into EROFS or, once indexed, lazily over
// FUSE, and the ready command runs chroot'ed into it), guest-lazy-prefetch-lazysnap (the same with
// the prefetch list that an untimed host lazy run recorded).
//
// Every host and guest run also records the time from the start of the pull to the container's
// first byte of output, and the registry's layer-blob bytes and requests up to that moment.
//
// usage: lazysnap-bench [--quick] [--runs N] [--images a,b,...] [--modes m1,m2,...] [--layout DIR]
//                       [--out DIR] [--logs DIR] [--fused-config 'KEY = VALUE']...
//                       [--index-span SIZE] [--guest-flags 'FLAGS']
//   --fused-config adds a [lazy] line to every lazy run's lazysnap-fused config (A/B runs of one
//   setting, e.g. 'erofs_directio = false'); --index-span indexes with `lazysnap index --span`;
//   --guest-flags adds flags to every guest run's `lazysnap-guest mount` (e.g. '--parallel-layers
//   1').
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "common/file_util.h"
#include "common/process.h"
#include "common/sha256.h"
#include "common/temp_dir.h"
#include "tests/support/containerd.h"
#include "tests/support/cri_client.h"
#include "tests/support/fused.h"
#include "tests/support/lazysnapd.h"
#include "tests/support/registry.h"

using namespace lazysnap;
using namespace lazysnap::testing;
using Clock = std::chrono::steady_clock;

namespace {

struct BenchImage {
  std::string tag;
  std::vector<std::string> ready;  // the command that does what the app does at start
};

const std::vector<BenchImage> kAllImages = {
    {"busybox", {"sh", "-c", "echo ready"}},
    {"tiny-files", {"sh", "-c", "find /data -type f | wc -l"}},
    {"huge-files", {"sh", "-c", "sha256sum /data/big1"}},
    // 4 layers, ~310 MB: prints a small file (first output), then checksums a 128 MiB one.
    {"lazy-app", {"sh", "-c", "cat /etc/app.conf && sha256sum /data/model1.bin"}},
    // The same shape with real files: debian + JRE + nodejs + postgresql layers, ~290 MB.
    {"real-app",
     {"sh", "-c",
      "cat /etc/debian_version && sha256sum /usr/lib/jvm/java-17-openjdk-amd64/lib/modules"}},
    {"debian", {"sh", "-c", "cat /etc/debian_version"}},
    {"python", {"python3", "-c", "import json, sqlite3; print('ready')"}},
    {"gcc",
     {"sh", "-c",
      "gcc --version >/dev/null && echo 'int main(){return 0;}' > /tmp/h.c && gcc /tmp/h.c -o "
      "/tmp/h && /tmp/h && echo ready"}},
    {"jre", {"java", "-version"}},
    {"node", {"node", "-e", "console.log('ready')"}},
    {"postgres",
     {"sh", "-c",
      "/usr/lib/postgresql/15/bin/postgres --version && su postgres -s /bin/sh -c "
      "'/usr/lib/postgresql/15/bin/initdb -D /tmp/pg >/dev/null' && echo ready"}},
};

constexpr const char* kProxyConfig = "[proxy]\nenable = true\n";

struct Scenario {
  std::string name;
  std::string snapshotter;
  std::string lazysnap_config;
  bool run_on_host = false;  // `ctr containers create` + `ctr tasks start` after the pull
  bool lazy = false;         // lazysnapd + a fresh lazysnap-fused, [lazy] enabled
  bool prefetch = false;     // lazy, with the image's recorded prefetch list
  // After the proxy-mode pull: the container snapshot's Kata descriptor handed to a fresh
  // lazysnap-guest in a mount namespace of its own, then the ready command chroot'ed into the
  // rootfs it mounts (the guest side of a Kata start, minus the VM).
  bool guest = false;
  bool indexed = false;         // `lazysnap index` first (guest: its layers are mounted lazily)
  const char* guest_mode = "";  // guest: the mode every layer must get ("lazy" or "erofs")

  bool NeedsIndex() const { return lazy || indexed; }
  bool TimesFirstOutput() const { return run_on_host || guest; }
};

// What `lazysnap index` reported for an image (lazy-lazysnap only).
struct IndexInfo {
  bool ok = false;
  double seconds = 0;
  uint64_t index_bytes = 0;
  double pct_of_layers = 0;
  std::string output;
};

struct Sample {
  double pull = 0, create = 0, run = 0;
  double first_output = 0;  // pull start -> first byte of the container's output
  uint64_t blob_bytes = 0, requests = 0;
  // Registry GETs of the image's layer blobs between pull start and the first output.
  uint64_t layer_bytes_first = 0, layer_requests_first = 0;
  uint64_t fused_fetched = 0;   // lazy: sum of lazysnap-fused's per-layer bytes_fetched
  nlohmann::json fused_layers;  // lazy: per-layer {layer, bytes_fetched, requests, ...}
  uint64_t fused_rss_kb = 0;
  double fused_cpu_s = 0;
  uint64_t daemon_rss_kb = 0;
  double daemon_cpu_s = 0;
  uint64_t disk_bytes = 0;
  double guest_mount_s = 0;     // guest: lazysnap-guest's own time to a mounted rootfs
  nlohmann::json guest_layers;  // guest: its readiness report's layers (mode, fetch/build s, ...)
  bool ok = true;
  std::string error;
};

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

uint64_t DuBytes(const std::string& path) {
  if (!PathExists(path)) return 0;
  auto r = RunCommand({"du", "-sb", "-x", path}, std::chrono::minutes(2));
  return std::strtoull(r.output.c_str(), nullptr, 10);
}

// Peak RSS (VmHWM) and user+system CPU seconds of a live process.
void ProcStats(pid_t pid, uint64_t* rss_kb, double* cpu_s) {
  std::ifstream st("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(st, line)) {
    if (line.starts_with("VmHWM:")) *rss_kb = std::strtoull(line.c_str() + 6, nullptr, 10);
  }
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  std::istringstream in(stat.substr(close + 2));
  std::string f;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> f; ++i) {
    if (i == 14) utime = std::stoull(f);
    if (i == 15) stime = std::stoull(f);
  }
  *cpu_s = static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// One registry access-log line: request ("GET /v2/...") and response body bytes. Same lines as
// Registry::Requests(), which does not expose the byte counts.
struct Access {
  std::string request;
  uint64_t bytes = 0;
};

std::vector<Access> AccessLog(const Registry& reg) {
  std::vector<Access> out;
  std::istringstream in(reg.ReadLog());
  std::string line;
  while (std::getline(in, line)) {
    auto q = line.find('"');
    if (q == std::string::npos) continue;
    auto e = line.find(" HTTP/", q);
    if (e == std::string::npos) continue;
    Access a{line.substr(q + 1, e - q - 1), 0};
    bool request = false;  // the methods Registry::Requests() counts
    for (const char* m : {"GET ", "HEAD ", "PUT ", "POST ", "PATCH ", "DELETE "})
      request = request || a.request.starts_with(m);
    if (!request) continue;
    auto close = line.find('"', e);
    if (close != std::string::npos) {
      std::istringstream rest(line.substr(close + 1));
      int status = 0;
      rest >> status >> a.bytes;
    }
    out.push_back(std::move(a));
  }
  return out;
}

// Layer-blob GETs (whole or ranged) among log lines [from, to).
void LayerGets(const std::vector<Access>& log, size_t from, size_t to,
               const std::map<std::string, uint64_t>& layers, uint64_t* bytes, uint64_t* requests) {
  *bytes = *requests = 0;
  for (size_t i = from; i < std::min(to, log.size()); ++i) {
    const auto& r = log[i].request;
    auto b = r.find("/blobs/");
    if (!r.starts_with("GET ") || b == std::string::npos) continue;
    std::string digest = r.substr(b + 7, r.find_first_of(" ?", b + 7) - b - 7);
    if (!layers.count(digest)) continue;
    *bytes += log[i].bytes;
    ++*requests;
  }
}

// A blob of the OCI layout, parsed.
nlohmann::json LayoutBlob(const std::string& layout, const std::string& digest) {
  return nlohmann::json::parse(ReadFile(layout + "/blobs/sha256/" + digest.substr(7)));
}

// The manifest of image `tag` in the OCI layout (skopeo copies its blobs unchanged).
nlohmann::json LayoutManifest(const std::string& layout, const std::string& tag) {
  auto index = nlohmann::json::parse(ReadFile(layout + "/index.json"));
  for (const auto& m : index["manifests"]) {
    if (m.value("annotations", nlohmann::json::object())
            .value("org.opencontainers.image.ref.name", "") == tag)
      return LayoutBlob(layout, m["digest"]);
  }
  throw Error(ErrorCode::kNotFound, "no image " + tag + " in " + layout);
}

// Layer digest -> size.
std::map<std::string, uint64_t> LayoutLayers(const nlohmann::json& manifest) {
  std::map<std::string, uint64_t> out;
  for (const auto& l : manifest["layers"]) out[l["digest"]] = l["size"].get<uint64_t>();
  return out;
}

// What a guest run needs of the image config: Env (what containerd gives the container, with
// containerd's default PATH when the image sets none) and the chain ID of its top layer (the
// committed snapshot a container's rootfs is prepared on).
struct ImageConfig {
  std::vector<std::string> env;
  std::string top_chain_id;
};

ImageConfig LayoutImageConfig(const std::string& layout, const nlohmann::json& manifest) {
  auto cfg = LayoutBlob(layout, manifest["config"]["digest"]);
  ImageConfig out;
  for (const auto& e :
       cfg.value("config", nlohmann::json::object()).value("Env", nlohmann::json::array()))
    out.env.push_back(e.get<std::string>());
  // OCI image spec: ChainID(L0) = DiffID(L0), ChainID(Ln) = SHA256(ChainID(Ln-1) + " " +
  // DiffID(Ln)).
  for (const auto& d : cfg["rootfs"]["diff_ids"]) {
    std::string diff = d.get<std::string>();
    out.top_chain_id =
        out.top_chain_id.empty() ? diff : Sha256Digest(out.top_chain_id + " " + diff);
  }
  if (std::none_of(out.env.begin(), out.env.end(),
                   [](const auto& e) { return e.starts_with("PATH="); }))
    out.env.push_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  return out;
}

uint64_t FileSize(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

// The process whose command line has `arg` (lazysnap-fused's config path: the fixture keeps its
// pid to itself), or -1.
pid_t PidByArg(const std::string& arg) {
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (cmdline.find(std::string(1, '\0') + arg + std::string(1, '\0')) != std::string::npos)
      return static_cast<pid_t>(std::stol(name));
  }
  return -1;
}

void DropCaches() {
  ::sync();
  int fd = ::open("/proc/sys/vm/drop_caches", O_WRONLY);
  if (fd >= 0) {
    (void)!::write(fd, "3", 1);
    ::close(fd);
  }
}

struct Watched {
  int exit_code = 0;
  std::string output;  // stdout + stderr
};

// Runs `argv` to its end (10 minutes at most) with stdout + stderr in a file that is polled for
// the first byte: *first_output = seconds from `t0` to it, *at_first = the registry's access-log
// lines by then (both set at exit when the output came too late for a poll to see).
Watched RunWatchingFirstOutput(const std::vector<std::string>& argv, SpawnOptions so,
                               const Registry& reg, Clock::time_point t0, double* first_output,
                               size_t* at_first) {
  TempDir tmp("bench-task");
  std::string out_path = tmp / "out";
  so.stdout_path = out_path;
  so.stderr_path = "=stdout";
  so.die_with_parent = true;
  auto task = Subprocess::Spawn(argv, so);
  std::optional<int> rc;
  auto deadline = Clock::now() + std::chrono::minutes(10);
  while (!(rc = task.Wait(std::chrono::milliseconds(0))) && Clock::now() < deadline) {
    if (*at_first == SIZE_MAX && FileSize(out_path) > 0) {
      *first_output = Seconds(t0, Clock::now());
      *at_first = AccessLog(reg).size();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  if (!rc) {
    task.Stop(std::chrono::seconds(5));
    throw Error(ErrorCode::kUnavailable, argv[0] + " timed out: " + ReadFile(out_path));
  }
  if (*at_first == SIZE_MAX) {
    *first_output = Seconds(t0, Clock::now());
    *at_first = AccessLog(reg).size();
  }
  return {*rc, ReadFile(out_path)};
}

// The guest side of a Kata start without the VM, run by /bin/sh in a mount namespace of its own
// (so everything mounted goes away with it): $AGENT (lazysnap-guest mount ...) in the background,
// its readiness line awaited through a FIFO (no polling), /proc and /dev given to the rootfs as
// runc would, then "$@" (env -i IMAGE_ENV chroot ROOTFS READY...), then the agent stopped.
constexpr const char* kGuestScript = R"SH(
set -u
mkfifo "$T/agent.fifo"
$AGENT >"$T/agent.fifo" 2>"$T/agent.err" &
agent=$!
exec 3<"$T/agent.fifo"
IFS= read -r line <&3 || line=""
case $line in
  *'"ready":true'*) ;;
  *) echo "lazysnap-guest not ready: $line $(cat "$T/agent.err")"; wait $agent; exit 91 ;;
esac
printf '%s\n' "$line" >"$T/ready.json"
[ -d "$TARGET/proc" ] && mount -t proc proc "$TARGET/proc"
[ -d "$TARGET/dev" ] && mount --rbind /dev "$TARGET/dev"
"$@"
rc=$?
umount -R "$TARGET/dev" 2>/dev/null
umount "$TARGET/proc" 2>/dev/null
kill -TERM $agent
if ! wait $agent; then echo "lazysnap-guest failed to stop: $(cat "$T/agent.err")"; exit 92; fi
exit $rc
)SH";

// What every run of an invocation shares, from the command line.
struct RunSettings {
  // --logs: where each run's lazysnapd and lazysnap-fused logs (at info level, with millisecond
  // timestamps) go, for a timeline of a run; empty: warnings only, not kept.
  std::string logs_dir;
  std::string fused_config;  // --fused-config: [lazy] lines added to lazysnap-fused's config
  std::string index_span;    // --index-span: `lazysnap index --span` (empty: its default)
  std::string guest_flags;   // --guest-flags: added to every `lazysnap-guest mount`
};

// `record_prefetch` (lazy only): where to write the start reads of this run as a prefetch list.
Sample RunScenario(const Scenario& sc, const BenchImage& img, const std::string& ref,
                   const Registry& reg, const std::map<std::string, uint64_t>& layers,
                   const ImageConfig& image_config, int run, const RunSettings& settings,
                   const std::string& record_prefetch = "") {
  const std::string& logs_dir = settings.logs_dir;
  Sample s;
  std::optional<FusedProcess> fused;  // fresh cache dir per run
  if (sc.lazy) {
    fused.emplace(
        std::vector<std::string>{reg.host()}, 60,
        (sc.prefetch ? std::string() : std::string("prefetch = false\n")) + settings.fused_config);
  }
  std::string level = logs_dir.empty() ? "warn" : "info";
  LazysnapdProcess daemon("log_level = \"" + level + "\"\n" + sc.lazysnap_config +
                              (fused ? fused->config() : std::string()),
                          "");
  ContainerdOptions o;
  o.snapshotter_socket = daemon.socket();
  o.cri = true;
  o.mirror_host = reg.host();
  o.sandbox_image = reg.host() + "/pause:none";
  o.cri_snapshotter = sc.snapshotter;
  Containerd containerd(o);
  DropCaches();
  size_t before = AccessLog(reg).size();
  size_t at_first = SIZE_MAX;  // access-log lines when the first output appeared
  try {
    auto t0 = Clock::now();
    CriImageClient(containerd.address()).Pull(ref);
    auto t1 = Clock::now();
    s.pull = Seconds(t0, t1);
    std::string id = "bench-" + img.tag + "-" +
                     (run < 0 ? std::string("rec") : std::to_string(run)) + "-" +
                     std::to_string(::getpid());
    if (sc.run_on_host) {
      std::vector<std::string> create = {
          "containers", "create", "--snapshotter", sc.snapshotter, ref, id, "--"};
      create.insert(create.end(), img.ready.begin(), img.ready.end());
      containerd.CtrOrThrow(create, 600, "k8s.io");
      auto t2 = Clock::now();
      // `ctr tasks start` (attached), its output watched for the first byte.
      Watched task = RunWatchingFirstOutput(
          {"ctr", "-a", containerd.address(), "-n", "k8s.io", "tasks", "start", id}, {}, reg, t0,
          &s.first_output, &at_first);
      auto t3 = Clock::now();
      containerd.Ctr({"containers", "rm", id}, 60, "k8s.io");
      if (task.exit_code != 0)
        throw Error(ErrorCode::kInternal, "ctr tasks start " + id + " failed (exit " +
                                              std::to_string(task.exit_code) + "): " + task.output);
      s.create = Seconds(t1, t2);
      s.run = Seconds(t2, t3);
      if (fused && !record_prefetch.empty()) {
        RunCommandOrThrow({LazysnapCliBinary(), "prefetch", ref, "--socket", fused->socket(),
                           "--output", record_prefetch},
                          std::chrono::minutes(1));
      }
    } else if (sc.guest) {
      // The container's snapshot, as the CRI plugin prepares it for a Kata sandbox: its mounts
      // are the descriptor the runtime hands the guest. (Not `ctr containers create`: it mounts
      // the rootfs on the host to read /etc/group.)
      containerd.CtrOrThrow(
          {"snapshots", "--snapshotter", sc.snapshotter, "prepare", id, image_config.top_chain_id},
          120, "k8s.io");
      std::string descriptor = containerd.CtrOrThrow(
          {"snapshots", "--snapshotter", sc.snapshotter, "mounts", "/rootfs", id}, 120, "k8s.io");
      auto t2 = Clock::now();
      TempDir tmp("bench-guest");
      std::string rootfs = tmp / "rootfs";
      WriteFileAtomic(tmp / "descriptor", descriptor);
      std::string agent = std::string(LAZYSNAP_GUEST_PATH) + " mount --descriptor " +
                          (tmp / "descriptor") + " --target " + rootfs + " --state " +
                          (tmp / "state") + " --plain-http " + reg.host() +
                          " --read-timeout 60 --log-level info" + settings.guest_flags;
      std::vector<std::string> argv = {"unshare", "-m", "--propagation", "private",
                                       "/bin/sh", "-c", kGuestScript,    "sh",
                                       "env",     "-i"};
      argv.insert(argv.end(), image_config.env.begin(), image_config.env.end());
      argv.insert(argv.end(), {"/usr/sbin/chroot", rootfs});
      argv.insert(argv.end(), img.ready.begin(), img.ready.end());
      SpawnOptions so;
      so.env = {"T=" + tmp.path(), "TARGET=" + rootfs, "AGENT=" + agent};
      Watched task = RunWatchingFirstOutput(argv, so, reg, t0, &s.first_output, &at_first);
      auto t3 = Clock::now();
      std::string ready = PathExists(tmp / "ready.json") ? ReadFile(tmp / "ready.json") : "";
      containerd.Ctr({"snapshots", "--snapshotter", sc.snapshotter, "rm", id}, 60, "k8s.io");
      if (task.exit_code != 0)
        throw Error(ErrorCode::kInternal, "lazysnap-guest + chroot " + id + " failed (exit " +
                                              std::to_string(task.exit_code) + "): " + task.output);
      auto report = nlohmann::json::parse(ready);
      for (const auto& l : report["layers"]) {
        if (l.value("mode", "") != sc.guest_mode)
          throw Error(ErrorCode::kInternal, std::string("lazysnap-guest mounted a layer as ") +
                                                l.value("mode", "?") + ", not " + sc.guest_mode +
                                                ": " + l.dump());
      }
      if (report["layers"].size() != layers.size())
        throw Error(ErrorCode::kInternal, "lazysnap-guest mounted " +
                                              std::to_string(report["layers"].size()) + " of " +
                                              std::to_string(layers.size()) + " layers");
      s.guest_mount_s = report.value("seconds", 0.0);
      s.guest_layers = report["layers"];
      s.create = Seconds(t1, t2);
      s.run = Seconds(t2, t3);
    }
  } catch (const std::exception& e) {
    s.ok = false;
    s.error = e.what();
  }
  auto log = AccessLog(reg);
  s.requests = log.size() - std::min(before, log.size());
  s.blob_bytes = 0;
  for (size_t i = before; i < log.size(); ++i) {
    if (log[i].request.starts_with("GET ") && log[i].request.find("/blobs/") != std::string::npos)
      s.blob_bytes += log[i].bytes;
  }
  LayerGets(log, before, at_first, layers, &s.layer_bytes_first, &s.layer_requests_first);
  if (!logs_dir.empty()) {
    std::string base = logs_dir + "/" + img.tag + "-" + sc.name + "-" + std::to_string(run);
    WriteFileAtomic(base + ".lazysnapd.log", daemon.ReadLog(), 0644);
    if (fused) WriteFileAtomic(base + ".fused.log", fused->ReadLog(), 0644);
  }
  ProcStats(daemon.pid(), &s.daemon_rss_kb, &s.daemon_cpu_s);
  // Downloaded blobs plus unpacked snapshots, wherever the scenario's snapshotter keeps them.
  s.disk_bytes = DuBytes(daemon.root()) +
                 DuBytes(containerd.root_dir() + "/io.containerd.content.v1.content") +
                 DuBytes(containerd.root_dir() + "/io.containerd.snapshotter.v1.overlayfs");
  if (fused) {
    try {
      auto st = fused->Status();
      s.fused_layers = nlohmann::json::array();
      for (const auto& l : st["layers"]) {
        uint64_t f = l.value("bytes_fetched", uint64_t{0});
        s.fused_fetched += f;
        s.fused_layers.push_back({{"layer", l.value("layer", "")},
                                  {"bytes_fetched", f},
                                  {"requests", l.value("requests", uint64_t{0})},
                                  {"bytes_served", l.value("bytes_served", uint64_t{0})},
                                  {"chunk_hits", l.value("chunk_hits", uint64_t{0})}});
      }
      if (s.ok && s.fused_layers.size() != layers.size()) {
        s.ok = false;
        s.error = "lazysnap-fused serves " + std::to_string(s.fused_layers.size()) + " of " +
                  std::to_string(layers.size()) + " layers (the rest were unpacked natively)";
      }
    } catch (const std::exception& e) {
      s.ok = false;
      s.error = std::string("lazysnap-fused status: ") + e.what();
    }
    pid_t pid = PidByArg(fused->socket().substr(0, fused->socket().rfind('/')) + "/config.toml");
    if (pid > 0) ProcStats(pid, &s.fused_rss_kb, &s.fused_cpu_s);
    s.disk_bytes += DuBytes(fused->cache_dir()) + DuBytes(fused->root());
  }
  return s;
}

// `lazysnap index REF --plain-http [--span SPAN] [--prefetch LIST]` once, untimed for the runs;
// its own time and size reported. `span` empty: lazysnap's default.
IndexInfo IndexImage(const std::string& ref, const std::string& span,
                     const std::string& prefetch_list = "") {
  IndexInfo info;
  auto t0 = Clock::now();
  std::vector<std::string> cmd = {LazysnapCliBinary(), "index", ref, "--plain-http"};
  if (!span.empty()) {
    cmd.push_back("--span");
    cmd.push_back(span);
  }
  if (!prefetch_list.empty()) {
    cmd.push_back("--prefetch");
    cmd.push_back(prefetch_list);
  }
  auto r = RunCommand(cmd, std::chrono::minutes(30));
  info.seconds = Seconds(t0, Clock::now());
  info.output = r.output;
  info.ok = r.exit_code == 0;
  // "... pushed index artifact D for R (manifest M): N of N layers, B bytes (P% of the layers)"
  auto at = r.output.find("pushed index artifact");
  if (at != std::string::npos) {
    auto colon = r.output.find("): ", at);
    auto layers = colon == std::string::npos ? std::string::npos : r.output.find("layers, ", colon);
    if (layers != std::string::npos) {
      unsigned long long bytes = 0;
      double pct = 0;
      if (std::sscanf(r.output.c_str() + layers, "layers, %llu bytes (%lf%%", &bytes, &pct) == 2) {
        info.index_bytes = bytes;
        info.pct_of_layers = pct;
      }
    }
  }
  return info;
}

// "2.31x" = the baseline's p50 divided by this mode's p50 (above 1: faster than the baseline).
std::string Speedup(double baseline, double p50) {
  if (baseline <= 0 || p50 <= 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fx", baseline / p50);
  return buf;
}

double Pct(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1,
                    static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5))];
}

std::string Mb(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(bytes) / 1e6);
  return buf;
}

int Run(int argc, char** argv) {
  bool quick = false;
  int runs = 3;
  std::string only, modes, layout, logs_dir, fused_config, index_span, guest_flags,
      out_dir = "bench-out";
  const char* usage =
      " (usage: lazysnap-bench [--quick] [--runs N] [--images a,b] [--modes m1,m2] [--layout DIR] "
      "[--out DIR] [--logs DIR] [--fused-config 'KEY = VALUE']... [--index-span SIZE] "
      "[--guest-flags 'FLAGS'])";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw Error(ErrorCode::kInvalidArgument, a + " needs a value");
      return argv[++i];
    };
    if (a == "--quick")
      quick = true;
    else if (a == "--runs")
      runs = std::stoi(next());
    else if (a == "--images")
      only = next();
    else if (a == "--modes")
      modes = next();
    else if (a == "--layout")
      layout = next();
    else if (a == "--out")
      out_dir = next();
    else if (a == "--logs")
      logs_dir = next();
    else if (a == "--fused-config")
      fused_config += next() + "\n";
    else if (a == "--guest-flags")
      guest_flags += " " + next();
    else if (a == "--index-span")
      index_span = next();
    else
      throw Error(ErrorCode::kInvalidArgument, "unknown argument " + a + usage);
  }
  std::string root = LAZYSNAP_SOURCE_DIR;
  if (layout.empty()) {
    std::string cache = quick ? root + "/.cache/bench-images-quick" : root + "/.cache/bench-images";
    std::vector<std::string> build = {root + "/scripts/build-bench-images.sh", "--out", cache};
    if (quick) build.push_back("--quick");
    std::fprintf(stderr, "building/reusing bench images in %s\n", cache.c_str());
    RunCommandOrThrow(build, std::chrono::minutes(60));
    layout = cache + "/oci";
  }
  if (quick) runs = 1;
  std::vector<BenchImage> images;
  for (const auto& img : kAllImages) {
    bool in_quick = img.tag == "busybox" || img.tag == "tiny-files" || img.tag == "huge-files";
    bool selected = only.empty()
                        ? (!quick || in_quick)
                        : ("," + only + ",").find("," + img.tag + ",") != std::string::npos;
    if (selected) images.push_back(img);
  }
  std::vector<Scenario> scenarios;
  for (const Scenario& sc : std::vector<Scenario>{
           {.name = "native-overlayfs", .snapshotter = "overlayfs", .run_on_host = true},
           {.name = "native-lazysnap", .snapshotter = "lazysnap", .run_on_host = true},
           {.name = "proxy-lazysnap", .snapshotter = "lazysnap", .lazysnap_config = kProxyConfig},
           // Before any mode that indexes the image: with no index in the registry yet, the
           // agent fetches every layer whole and builds EROFS images.
           {.name = "guest-erofs-lazysnap",
           .snapshotter = "lazysnap",
           .lazysnap_config = kProxyConfig,
           .guest = true,
           .guest_mode = "erofs"},
           {.name = "guest-lazy-lazysnap",
           .snapshotter = "lazysnap",
           .lazysnap_config = kProxyConfig,
           .guest = true,
           .indexed = true,
           .guest_mode = "lazy"},
           {.name = "lazy-lazysnap", .snapshotter = "lazysnap", .run_on_host = true, .lazy = true},
           {.name = "lazy-prefetch-lazysnap",
           .snapshotter = "lazysnap",
           .run_on_host = true,
           .lazy = true,
           .prefetch = true},
           // The prefetch list recorded on the host (by a lazy run) serves the guest as well: it
           // names tar ranges of the layers, whoever mounts them.
           {.name = "guest-lazy-prefetch-lazysnap",
           .snapshotter = "lazysnap",
           .lazysnap_config = kProxyConfig,
           .prefetch = true,
           .guest = true,
           .indexed = true,
           .guest_mode = "lazy"},
       }) {
    if (modes.empty() || ("," + modes + ",").find("," + sc.name + ",") != std::string::npos)
      scenarios.push_back(sc);
  }
  if (scenarios.empty())
    throw Error(ErrorCode::kInvalidArgument, std::string("no mode selected") + usage);

  Registry reg;
  MakeDirs(out_dir);
  if (!logs_dir.empty()) MakeDirs(logs_dir);
  const RunSettings settings{logs_dir, fused_config, index_span, guest_flags};
  nlohmann::json results = nlohmann::json::array();
  nlohmann::json indexes = nlohmann::json::array();
  std::ostringstream md, lazy_md, guest_md;
  md << "| image | mode | ready p50 (s) | p90 | pull | create | run | first output p50 (s) | "
        "speedup vs overlayfs | blob MB | requests | lazysnapd RSS MB | CPU s | disk MB "
        "|\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  lazy_md << "| image | layers MB | index s | index % of layers | first output p50 (s): "
             "overlayfs | lazy | speedup | layer MB / requests until first output: overlayfs | "
             "lazy | fetched by lazysnap-fused MB | fused RSS MB |\n"
             "|---|---|---|---|---|---|---|---|---|---|---|\n";
  guest_md << "| image | mode | first output p50 (s): overlayfs full pull | guest | speedup | "
              "lazysnap-guest mount p50 (s) | layer MB / requests until first output: overlayfs "
              "| guest |\n|---|---|---|---|---|---|---|---|\n";
  std::vector<std::string> headlines;
  std::ofstream csv(out_dir + "/results.csv");
  csv << "image,mode,run,ok,pull_s,create_s,run_s,ready_s,first_output_s,blob_bytes,requests,"
         "layer_bytes_first,layer_requests_first,fused_fetched,daemon_rss_kb,daemon_cpu_s,"
         "disk_bytes\n";
  std::ofstream dat(out_dir + "/chart.dat");
  dat << "image";
  for (const auto& sc : scenarios) dat << " " << sc.name;
  dat << "\n";

  for (const auto& img : images) {
    std::string ref = reg.host() + "/bench/" + img.tag + ":v1";
    RunCommandOrThrow({"skopeo", "copy", "-q", "--dest-tls-verify=false",
                       "oci:" + layout + ":" + img.tag, "docker://" + ref},
                      std::chrono::minutes(10));
    auto manifest = LayoutManifest(layout, img.tag);
    auto layers = LayoutLayers(manifest);
    auto image_config = LayoutImageConfig(layout, manifest);
    uint64_t layers_total = 0;
    for (const auto& [d, size] : layers) layers_total += size;
    dat << img.tag;
    double baseline = 0, base_first = 0;
    Sample base_last;
    for (const auto& sc : scenarios) {
      // --quick keeps the lazy mode to busybox (unless --modes asks for it): cheap, and the quick
      // synthetic images' layers, written by `umoci insert`, cannot be indexed (see RESULTS.md).
      if ((sc.lazy || sc.guest) && quick && modes.empty() && img.tag != "busybox") {
        dat << " NaN";
        continue;
      }
      IndexInfo index;
      if (sc.NeedsIndex()) {
        std::fprintf(stderr, "%s / lazysnap index (untimed for the runs)\n", img.tag.c_str());
        index = IndexImage(ref, settings.index_span);
        if (sc.prefetch && index.ok) {
          // One untimed run records the start reads; the index is pushed again with them.
          std::fprintf(stderr, "%s / %s: recording the start reads (untimed)\n", img.tag.c_str(),
                       sc.name.c_str());
          TempDir tmp("bench-prefetch");
          RunSettings untimed = settings;
          untimed.logs_dir.clear();
          Scenario recorder = sc;  // a guest's start reads are recorded on the host
          if (sc.guest) {
            recorder.guest = false;
            recorder.lazysnap_config.clear();
            recorder.run_on_host = recorder.lazy = true;
          }
          Sample rec = RunScenario(recorder, img, ref, reg, layers, image_config, -1, untimed,
                                   tmp / "list.json");
          if (rec.ok) {
            index = IndexImage(ref, settings.index_span, tmp / "list.json");
          } else {
            index.ok = false;
            index.output = "recording the start reads failed: " + rec.error;
          }
        }
        std::fprintf(stderr, "  %.1f s, %llu bytes (%.2f%% of the layers)\n", index.seconds,
                     static_cast<unsigned long long>(index.index_bytes), index.pct_of_layers);
        if (!index.ok) std::fprintf(stderr, "  lazysnap index failed: %s\n", index.output.c_str());
        indexes.push_back({{"image", img.tag},
                           {"mode", sc.name},
                           {"ok", index.ok},
                           {"index_s", index.seconds},
                           {"index_bytes", index.index_bytes},
                           {"layer_bytes", layers_total},
                           {"pct_of_layers", index.pct_of_layers},
                           {"output", index.output}});
      }
      std::vector<double> ready, pull, create, run, first, guest_mount;
      Sample last;
      bool all_ok = sc.NeedsIndex() ? index.ok : true;
      for (int r = 0; r < runs && (!sc.NeedsIndex() || index.ok); ++r) {
        std::fprintf(stderr, "%s / %s run %d\n", img.tag.c_str(), sc.name.c_str(), r + 1);
        Sample s = RunScenario(sc, img, ref, reg, layers, image_config, r, settings);
        all_ok = all_ok && s.ok;
        if (!s.ok) std::fprintf(stderr, "  failed: %s\n", s.error.c_str());
        ready.push_back(s.pull + s.create + s.run);
        pull.push_back(s.pull);
        create.push_back(s.create);
        run.push_back(s.run);
        first.push_back(s.first_output);
        guest_mount.push_back(s.guest_mount_s);
        csv << img.tag << "," << sc.name << "," << r << "," << s.ok << "," << s.pull << ","
            << s.create << "," << s.run << "," << ready.back() << "," << s.first_output << ","
            << s.blob_bytes << "," << s.requests << "," << s.layer_bytes_first << ","
            << s.layer_requests_first << "," << s.fused_fetched << "," << s.daemon_rss_kb << ","
            << s.daemon_cpu_s << "," << s.disk_bytes << "\n";
        nlohmann::json row = {{"image", img.tag},
                              {"mode", sc.name},
                              {"run", r},
                              {"ok", s.ok},
                              {"error", s.error},
                              {"pull_s", s.pull},
                              {"create_s", s.create},
                              {"run_s", s.run},
                              {"ready_s", ready.back()},
                              {"first_output_s", s.first_output},
                              {"blob_bytes", s.blob_bytes},
                              {"requests", s.requests},
                              {"layer_bytes_until_first_output", s.layer_bytes_first},
                              {"layer_requests_until_first_output", s.layer_requests_first},
                              {"daemon_rss_kb", s.daemon_rss_kb},
                              {"daemon_cpu_s", s.daemon_cpu_s},
                              {"disk_bytes", s.disk_bytes},
                              {"runs_on_host", sc.run_on_host}};
        if (sc.guest) {
          row["guest_mount_s"] = s.guest_mount_s;
          row["guest_layers"] = s.guest_layers;
        }
        if (sc.lazy) {
          row["index_s"] = index.seconds;
          row["index_bytes"] = index.index_bytes;
          row["index_pct_of_layers"] = index.pct_of_layers;
          row["layer_bytes_total"] = layers_total;
          row["fused_layers"] = s.fused_layers;
          row["fused_bytes_fetched"] = s.fused_fetched;
          row["fused_rss_kb"] = s.fused_rss_kb;
          row["fused_cpu_s"] = s.fused_cpu_s;
        }
        results.push_back(row);
        last = s;
      }
      if (ready.empty()) {  // lazysnap index failed: no runs
        ready = pull = create = run = first = guest_mount = std::vector<double>{0};
        results.push_back({{"image", img.tag},
                           {"mode", sc.name},
                           {"ok", false},
                           {"error", "lazysnap index failed: " + index.output}});
      }
      double p50 = Pct(ready, 0.5), first50 = Pct(first, 0.5);
      if (sc.name == "native-overlayfs") {
        baseline = p50;
        base_first = first50;
        base_last = last;
      }
      char fbuf[32] = "-", bbuf[32] = "-";
      if (sc.TimesFirstOutput()) std::snprintf(fbuf, sizeof fbuf, "%.2f", first50);
      if (base_first > 0) std::snprintf(bbuf, sizeof bbuf, "%.2f", base_first);
      char row[640];
      std::snprintf(row, sizeof row,
                    "| %s | %s%s | %.2f | %.2f | %.2f | %.2f | %.2f | %s | %s | %.1f | %llu | "
                    "%.1f | %.2f | %.1f |\n",
                    img.tag.c_str(), sc.name.c_str(), all_ok ? "" : " (FAILED)", p50,
                    Pct(ready, 0.9), Pct(pull, 0.5), Pct(create, 0.5), Pct(run, 0.5), fbuf,
                    Speedup(baseline, p50).c_str(), static_cast<double>(last.blob_bytes) / 1e6,
                    static_cast<unsigned long long>(last.requests),
                    static_cast<double>(last.daemon_rss_kb) / 1024.0, last.daemon_cpu_s,
                    static_cast<double>(last.disk_bytes) / 1e6);
      md << row;
      dat << " " << p50;
      if (sc.lazy) {
        char lrow[640];
        std::snprintf(
            lrow, sizeof lrow,
            "| %s%s%s | %s | %.1f | %.2f%% | %s | %s | %s | %s / %llu | %s / %llu | %s | %.1f |\n",
            img.tag.c_str(), sc.prefetch ? " +prefetch" : "", all_ok ? "" : " (FAILED)",
            Mb(layers_total).c_str(), index.seconds, index.pct_of_layers, bbuf, fbuf,
            Speedup(base_first, first50).c_str(), Mb(base_last.layer_bytes_first).c_str(),
            static_cast<unsigned long long>(base_last.layer_requests_first),
            Mb(last.layer_bytes_first).c_str(),
            static_cast<unsigned long long>(last.layer_requests_first),
            Mb(last.fused_fetched).c_str(), static_cast<double>(last.fused_rss_kb) / 1024.0);
        lazy_md << lrow;
        if (base_first > 0) {
          char h[256];
          std::snprintf(h, sizeof h,
                        "%s: pull start -> first output, lazy%s %.2f s vs overlayfs full pull "
                        "%.2f s = %s (target >= 10x)",
                        img.tag.c_str(), sc.prefetch ? " with its prefetch list" : "", first50,
                        base_first, Speedup(base_first, first50).c_str());
          headlines.push_back(h);
        }
      }
      if (sc.guest) {
        char grow[512];
        std::snprintf(grow, sizeof grow,
                      "| %s | %s%s | %s | %s | %s | %.2f | %s / %llu | %s / %llu |\n",
                      img.tag.c_str(), sc.name.c_str(), all_ok ? "" : " (FAILED)", bbuf, fbuf,
                      Speedup(base_first, first50).c_str(), Pct(guest_mount, 0.5),
                      Mb(base_last.layer_bytes_first).c_str(),
                      static_cast<unsigned long long>(base_last.layer_requests_first),
                      Mb(last.layer_bytes_first).c_str(),
                      static_cast<unsigned long long>(last.layer_requests_first));
        guest_md << grow;
        if (base_first > 0) {
          char h[256];
          std::snprintf(h, sizeof h,
                        "%s: pull start -> first output, guest agent (%s layers) %.2f s vs "
                        "overlayfs full pull %.2f s = %s",
                        img.tag.c_str(), sc.guest_mode, first50, base_first,
                        Speedup(base_first, first50).c_str());
          headlines.push_back(h);
        }
      }
    }
    dat << "\n";
  }
  md << "\nready = pull + create + run of the image's ready command; first output = from the "
        "start of the pull to the container's first byte of output. proxy-lazysnap is host time "
        "only (the container runs in a Kata guest); guest-* add the guest's side without the VM: "
        "pull, then create = the container snapshot and its descriptor, run = lazysnap-guest "
        "mounting the rootfs + the ready command chroot'ed into it.\n";
  auto any = [&](bool Scenario::*flag) {
    return std::any_of(scenarios.begin(), scenarios.end(),
                       [&](const auto& sc) { return sc.*flag; });
  };
  if (any(&Scenario::lazy)) {
    md << "\nLazy mode (lazy-lazysnap): each image indexed once with `lazysnap index` (not part of "
          "the runs), then per run a fresh lazysnap-fused (empty chunk cache) + lazysnapd with "
          "[lazy] enabled + CRI containerd. +prefetch (lazy-prefetch-lazysnap): one untimed run "
          "recorded the start reads (`lazysnap prefetch`), pushed with the index (`lazysnap index "
          "--prefetch`); each run's lazysnap-fused fetches them at mount.\n\n"
       << lazy_md.str() << "\n";
  }
  if (any(&Scenario::guest)) {
    md << "\nGuest agent (guest-*): per run a fresh lazysnapd in proxy mode + CRI containerd pull "
          "(no layer bytes on the host), `ctr snapshots prepare` + `ctr snapshots mounts` for the "
          "Kata descriptor, then a fresh lazysnap-guest (empty state dir) in its own mount "
          "namespace on the host mounts the rootfs and the ready command runs chroot'ed into it "
          "with the image's Env, /proc and /dev. guest-erofs: no index in the registry, every "
          "layer fetched whole and built into EROFS; guest-lazy: indexed first (untimed), every "
          "layer served lazily over FUSE. No VM boot is included.\n\n"
       << guest_md.str() << "\n";
  }
  if (!headlines.empty()) {
    md << "\n";
    for (const auto& h : headlines) md << "- " << h << "\n";
  }
  dat.close();
  WriteFileAtomic(out_dir + "/results.json", results.dump(2));
  if (!indexes.empty()) WriteFileAtomic(out_dir + "/indexes.json", indexes.dump(2));
  WriteFileAtomic(out_dir + "/results.md", md.str());
  std::string series;
  for (size_t i = 0; i < scenarios.size(); ++i) {
    std::string c = std::to_string(i + 2);
    series += i == 0 ? "'" + out_dir + "/chart.dat' using 2:xtic(1) title columnheader(2)"
                     : ", '' using " + c + " title columnheader(" + c + ")";
  }
  std::string plot =
      "set terminal pngcairo size 1000,500\nset output '" + out_dir +
      "/chart.png'\n"
      "set style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.8 "
      "border -1\n"
      "set ylabel 'time to ready, p50 (s)'\nset key top left\nset grid ytics\nset xtics rotate by "
      "-20\n"
      "set title 'lazysnap-bench: time to ready per image and mode'\n"
      "plot " +
      series + "\n";
  WriteFileAtomic(out_dir + "/chart.gp", plot);
  auto g = RunCommand({"gnuplot", out_dir + "/chart.gp"}, std::chrono::minutes(1));
  if (g.exit_code != 0) std::fprintf(stderr, "gnuplot failed: %s\n", g.output.c_str());
  std::printf("%s", md.str().c_str());
  if (!logs_dir.empty()) WriteFileAtomic(logs_dir + "/registry.log", reg.ReadLog(), 0644);
  std::printf("\nwrote %s/results.{json,csv,md} and chart.png\n", out_dir.c_str());
  for (const auto& r : results) {
    if (!r["ok"].get<bool>()) return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lazysnap-bench: %s\n", e.what());
    return 1;
  }
}

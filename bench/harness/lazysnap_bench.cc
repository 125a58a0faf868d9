// lazysnap-bench: time to ready per image and mode, against containerd's overlayfs baseline in
// the same run. Sets everything up on loopback: a real docker-registry, and for every scenario run
// a fresh lazysnapd + containerd (CRI plugin on) in temp dirs, so caches start cold.
//
// Scenarios: native-overlayfs (baseline: containerd's own snapshotter), native-lazysnap,
// proxy-lazysnap (host side of a Kata pull: no run on the host). Lazy and guest-agent modes are
// reported as unavailable until they exist.
//
// usage: lazysnap-bench [--quick] [--runs N] [--images a,b,...] [--layout DIR] [--out DIR]
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/file_util.h"
#include "common/process.h"
#include "tests/support/containerd.h"
#include "tests/support/cri_client.h"
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

struct Scenario {
  std::string name;
  std::string snapshotter;
  std::string lazysnap_config;
  bool run_on_host;
};

struct Sample {
  double pull = 0, create = 0, run = 0;
  uint64_t blob_bytes = 0, requests = 0;
  uint64_t daemon_rss_kb = 0;
  double daemon_cpu_s = 0;
  uint64_t disk_bytes = 0;
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

void DropCaches() {
  ::sync();
  int fd = ::open("/proc/sys/vm/drop_caches", O_WRONLY);
  if (fd >= 0) {
    (void)!::write(fd, "3", 1);
    ::close(fd);
  }
}

Sample RunScenario(const Scenario& sc, const BenchImage& img, const std::string& ref,
                   const Registry& reg, int run) {
  Sample s;
  LazysnapdProcess daemon("log_level = \"warn\"\n" + sc.lazysnap_config);
  ContainerdOptions o;
  o.snapshotter_socket = daemon.socket();
  o.cri = true;
  o.mirror_host = reg.host();
  o.sandbox_image = reg.host() + "/pause:none";
  o.cri_snapshotter = sc.snapshotter;
  Containerd containerd(o);
  DropCaches();
  size_t before = reg.Requests().size();
  try {
    auto t0 = Clock::now();
    CriImageClient(containerd.address()).Pull(ref);
    auto t1 = Clock::now();
    s.pull = Seconds(t0, t1);
    if (sc.run_on_host) {
      std::string id =
          "bench-" + img.tag + "-" + std::to_string(run) + "-" + std::to_string(::getpid());
      std::vector<std::string> create = {
          "containers", "create", "--snapshotter", sc.snapshotter, ref, id, "--"};
      create.insert(create.end(), img.ready.begin(), img.ready.end());
      containerd.CtrOrThrow(create, 600, "k8s.io");
      auto t2 = Clock::now();
      std::string out = containerd.CtrOrThrow({"tasks", "start", id}, 600, "k8s.io");
      auto t3 = Clock::now();
      containerd.Ctr({"containers", "rm", id}, 60, "k8s.io");
      s.create = Seconds(t1, t2);
      s.run = Seconds(t2, t3);
    }
  } catch (const std::exception& e) {
    s.ok = false;
    s.error = e.what();
  }
  auto lines = reg.Requests();
  s.requests = lines.size() - before;
  s.blob_bytes = reg.BlobBytesServedSince(before);
  ProcStats(daemon.pid(), &s.daemon_rss_kb, &s.daemon_cpu_s);
  // Downloaded blobs plus unpacked snapshots, wherever the scenario's snapshotter keeps them.
  s.disk_bytes = DuBytes(daemon.root()) +
                 DuBytes(containerd.root_dir() + "/io.containerd.content.v1.content") +
                 DuBytes(containerd.root_dir() + "/io.containerd.snapshotter.v1.overlayfs");
  return s;
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

int Run(int argc, char** argv) {
  bool quick = false;
  int runs = 3;
  std::string only, layout, out_dir = "bench-out";
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
    else if (a == "--layout")
      layout = next();
    else if (a == "--out")
      out_dir = next();
    else
      throw Error(ErrorCode::kInvalidArgument, "unknown argument " + a +
                                                   " (usage: lazysnap-bench [--quick] [--runs N] "
                                                   "[--images a,b] [--layout DIR] [--out DIR])");
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
  std::vector<Scenario> scenarios = {
      {"native-overlayfs", "overlayfs", "", true},
      {"native-lazysnap", "lazysnap", "", true},
      {"proxy-lazysnap", "lazysnap", "[proxy]\nenable = true\n", false},
  };

  Registry reg;
  MakeDirs(out_dir);
  nlohmann::json results = nlohmann::json::array();
  std::ostringstream md;
  md << "| image | mode | ready p50 (s) | p90 | pull | create | run | speedup vs overlayfs | blob "
        "MB | requests | "
        "lazysnapd RSS MB | CPU s | disk MB "
        "|\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  std::ofstream csv(out_dir + "/results.csv");
  csv << "image,mode,run,ok,pull_s,create_s,run_s,ready_s,blob_bytes,requests,daemon_rss_kb,daemon_"
         "cpu_s,disk_bytes\n";
  std::ofstream dat(out_dir + "/chart.dat");
  dat << "image";
  for (const auto& sc : scenarios) dat << " " << sc.name;
  dat << "\n";

  for (const auto& img : images) {
    std::string ref = reg.host() + "/bench/" + img.tag + ":v1";
    RunCommandOrThrow({"skopeo", "copy", "-q", "--dest-tls-verify=false",
                       "oci:" + layout + ":" + img.tag, "docker://" + ref},
                      std::chrono::minutes(10));
    dat << img.tag;
    double baseline = 0;
    for (const auto& sc : scenarios) {
      std::vector<double> ready, pull, create, run;
      Sample last;
      bool all_ok = true;
      for (int r = 0; r < runs; ++r) {
        std::fprintf(stderr, "%s / %s run %d\n", img.tag.c_str(), sc.name.c_str(), r + 1);
        Sample s = RunScenario(sc, img, ref, reg, r);
        all_ok = all_ok && s.ok;
        if (!s.ok) std::fprintf(stderr, "  failed: %s\n", s.error.c_str());
        ready.push_back(s.pull + s.create + s.run);
        pull.push_back(s.pull);
        create.push_back(s.create);
        run.push_back(s.run);
        csv << img.tag << "," << sc.name << "," << r << "," << s.ok << "," << s.pull << ","
            << s.create << "," << s.run << "," << ready.back() << "," << s.blob_bytes << ","
            << s.requests << "," << s.daemon_rss_kb << "," << s.daemon_cpu_s << "," << s.disk_bytes
            << "\n";
        results.push_back({{"image", img.tag},
                           {"mode", sc.name},
                           {"run", r},
                           {"ok", s.ok},
                           {"error", s.error},
                           {"pull_s", s.pull},
                           {"create_s", s.create},
                           {"run_s", s.run},
                           {"ready_s", ready.back()},
                           {"blob_bytes", s.blob_bytes},
                           {"requests", s.requests},
                           {"daemon_rss_kb", s.daemon_rss_kb},
                           {"daemon_cpu_s", s.daemon_cpu_s},
                           {"disk_bytes", s.disk_bytes},
                           {"runs_on_host", sc.run_on_host}});
        last = s;
      }
      double p50 = Pct(ready, 0.5);
      if (sc.name == "native-overlayfs") baseline = p50;
      char row[512];
      std::snprintf(row, sizeof row,
                    "| %s | %s%s | %.2f | %.2f | %.2f | %.2f | %.2f | %s | %.1f | %llu | %.1f | "
                    "%.2f | %.1f |\n",
                    img.tag.c_str(), sc.name.c_str(), all_ok ? "" : " (FAILED)", p50,
                    Pct(ready, 0.9), Pct(pull, 0.5), Pct(create, 0.5), Pct(run, 0.5),
                    Speedup(baseline, p50).c_str(), static_cast<double>(last.blob_bytes) / 1e6,
                    static_cast<unsigned long long>(last.requests),
                    static_cast<double>(last.daemon_rss_kb) / 1024.0, last.daemon_cpu_s,
                    static_cast<double>(last.disk_bytes) / 1e6);
      md << row;
      dat << " " << p50;
    }
    dat << "\n";
  }
  md << "\nready = pull + create + run of the image's ready command; proxy-lazysnap is host time "
        "only "
        "(the container runs in a Kata guest). lazy-on-host and guest-agent modes: not available "
        "yet.\n";
  dat.close();
  WriteFileAtomic(out_dir + "/results.json", results.dump(2));
  WriteFileAtomic(out_dir + "/results.md", md.str());
  std::string plot =
      "set terminal pngcairo size 1000,500\nset output '" + out_dir +
      "/chart.png'\n"
      "set style data histograms\nset style histogram clustered gap 1\nset style fill solid 0.8 "
      "border -1\n"
      "set ylabel 'time to ready, p50 (s)'\nset key top left\nset grid ytics\nset xtics rotate by "
      "-20\n"
      "set title 'lazysnap-bench: time to ready per image and mode'\n"
      "plot '" +
      out_dir +
      "/chart.dat' using 2:xtic(1) title columnheader(2), '' using 3 title columnheader(3), "
      "'' using 4 title columnheader(4)\n";
  WriteFileAtomic(out_dir + "/chart.gp", plot);
  auto g = RunCommand({"gnuplot", out_dir + "/chart.gp"}, std::chrono::minutes(1));
  if (g.exit_code != 0) std::fprintf(stderr, "gnuplot failed: %s\n", g.output.c_str());
  std::printf("%s", md.str().c_str());
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

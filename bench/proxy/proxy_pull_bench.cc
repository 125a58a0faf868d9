// Proxy-mode pull time vs a native full pull of the same image, measured in one run through the
// real containerd CRI plugin (PullImage) and a real docker-registry on 127.0.0.1. Each run gets a
// fresh lazysnapd and containerd, so nothing is cached between runs.
//   native-overlayfs : CRI snapshotter = containerd's overlayfs (the baseline users have today)
//   native-lazysnap  : CRI snapshotter = lazysnap, [proxy] enable = false
//   proxy-lazysnap   : CRI snapshotter = lazysnap, [proxy] enable = true (no layer downloaded)
// Usage: proxy_pull_bench [--runs N] [--layer-mb M]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "tests/support/containerd.h"
#include "tests/support/cri_client.h"
#include "tests/support/lazysnapd.h"
#include "tests/support/oci_image.h"
#include "tests/support/registry.h"

using namespace lazysnap::testing;

namespace {

std::string RandomBytes(size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  return s;
}

struct Mode {
  const char* name;
  const char* snapshotter;
  const char* config;
};

double PullSeconds(const Mode& m, const Registry& reg, const std::string& ref,
                   uint64_t* blob_bytes) {
  LazysnapdProcess daemon(m.config);
  ContainerdOptions o;
  o.snapshotter_socket = daemon.socket();
  o.cri = true;
  o.mirror_host = reg.host();
  o.sandbox_image = reg.host() + "/pause:none";
  o.cri_snapshotter = m.snapshotter;
  Containerd containerd(o);
  size_t before = reg.Requests().size();
  CriImageClient cri(containerd.address());
  auto t0 = std::chrono::steady_clock::now();
  cri.Pull(ref);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  *blob_bytes = reg.BlobBytesServedSince(before);
  return s;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int Run(int argc, char** argv) {
  int runs = 3, layer_mb = 32;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--runs")) runs = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--layer-mb")) layer_mb = std::atoi(argv[i + 1]);
  }
  Registry reg;
  OciImageBuilder b;
  b.AddBusyboxLayer();
  for (int l = 0; l < 3; ++l) {
    b.AddFileLayer({{"data/layer" + std::to_string(l),
                     RandomBytes(static_cast<size_t>(layer_mb) << 20, l + 1)}});
  }
  auto image = b.Push(reg.host(), "bench/proxy:v1");
  uint64_t image_bytes = 0;
  for (auto s : image.layer_sizes) image_bytes += s;

  std::vector<Mode> modes = {
      {"native-overlayfs (baseline)", "overlayfs", ""},
      {"native-lazysnap", "lazysnap", ""},
      {"proxy-lazysnap", "lazysnap", "[proxy]\nenable = true\n"},
  };
  std::printf(
      "CRI PullImage of a 4-layer image (%.1f MB of layer blobs), %d runs each, fresh daemons per "
      "run\n\n",
      static_cast<double>(image_bytes) / 1e6, runs);
  std::printf("| mode | pull p50 (s) | layer bytes from registry |\n|---|---|---|\n");
  std::vector<double> medians;
  for (const auto& m : modes) {
    std::vector<double> t;
    uint64_t bytes = 0;
    for (int r = 0; r < runs; ++r) t.push_back(PullSeconds(m, reg, image.ref, &bytes));
    medians.push_back(Median(t));
    std::printf("| %s | %.3f | %llu |\n", m.name, medians.back(),
                static_cast<unsigned long long>(bytes));
  }
  std::printf(
      "\nproxy pull is %.1fx faster than the native overlayfs full pull (%.1fx vs native "
      "lazysnap)\n",
      medians[0] / medians[2], medians[1] / medians[2]);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "proxy_pull_bench: %s\n", e.what());
    return 1;
  }
}

// Lazy mode end to end on real peers: docker-registry on 127.0.0.1, `lazysnap index`, the real
// lazysnap-fused and lazysnapd binaries, and containerd's CRI plugin. An image of several layers
// (~280 MB compressed: busybox, many small files, big random files) is indexed, pulled lazily
// (no layer blob is downloaded), and a container reads a small file and checksums a big one.
// The lazily mounted tree equals a native overlayfs pull byte for byte; the registry serves only
// the byte ranges that were read. Faults: registry outages (reads wait and resume, or fail with
// EIO after the configured timeout, never wrong bytes) and lazysnapd kill -9 during reads.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/file_util.h"
#include "common/process.h"
#include "common/sha256.h"
#include "common/temp_dir.h"
#include "common/unique_fd.h"
#include "tests/erofs/tree.h"
#include "tests/support/containerd.h"
#include "tests/support/cri_client.h"
#include "tests/support/fused.h"
#include "tests/support/http_client.h"
#include "tests/support/lazysnapd.h"
#include "tests/support/oci_image.h"
#include "tests/support/pseudo_random.h"
#include "tests/support/registry.h"

namespace lazysnap::testing {
namespace {

constexpr int kReadTimeoutS = 6;

std::string Sha256HexOf(const std::string& s) {
  return Sha256Hex(s);
}

// Runs `cmd` (a mount command printed by `ctr snapshots view --target`).
void RunMountCommand(const std::string& printed) {
  std::string cmd = printed.substr(0, printed.find('\n'));
  ASSERT_TRUE(cmd.starts_with("mount ")) << printed;
  erofs::testing::Sh(cmd);
}

// The tests that count what was fetched, or stop the registry under a read, turn the
// background fetch (on by default) off: it would fetch the rest of each layer meanwhile.
constexpr const char* kNoBackground = "background_fetch = false\n";

// EROFS mounts on this machine whose super options include `option` (/proc/self/mountinfo).
size_t ErofsMountsWith(const std::string& option) {
  size_t n = 0;
  std::istringstream lines(ReadFile("/proc/self/mountinfo"));
  for (std::string line; std::getline(lines, line);) {
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream tail(line.substr(dash + 3));
    std::string fstype, source, superopts;
    tail >> fstype >> source >> superopts;
    if (fstype == "erofs" && ("," + superopts + ",").find("," + option + ",") != std::string::npos)
      ++n;
  }
  return n;
}

// EROFS mounts' bdis (/sys/class/bdi/erofs-N) whose read-ahead is `kb`.
size_t ErofsBdisWithReadAheadKb(unsigned kb) {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/sys/class/bdi")) {
    if (!e.path().filename().string().starts_with("erofs")) continue;
    std::string v = ReadFile(e.path().string() + "/read_ahead_kb");
    if (std::stoul(v) == kb) ++n;
  }
  return n;
}

// Bytes of `path` in the page cache (mincore of a read-only mapping).
uint64_t ResidentBytes(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) ThrowErrno("open " + path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || st.st_size == 0) return 0;
  size_t len = static_cast<size_t>(st.st_size);
  void* map = ::mmap(nullptr, len, PROT_READ, MAP_SHARED, fd.get(), 0);
  if (map == MAP_FAILED) ThrowErrno("mmap " + path);
  long page = ::sysconf(_SC_PAGESIZE);
  std::vector<unsigned char> vec((len + page - 1) / page);
  int rc = ::mincore(map, len, vec.data());
  ::munmap(map, len);
  if (rc != 0) ThrowErrno("mincore " + path);
  uint64_t pages = 0;
  for (unsigned char v : vec) pages += v & 1;
  return pages * static_cast<uint64_t>(page);
}

// The one file through which the kernel path's EROFS mount at `mountpoint` reads its layer's tar.
std::string BlobFileOf(const FusedProcess& fused, const std::string& mountpoint) {
  return fused.root() + "/blobs/" + Sha256Hex(mountpoint).substr(0, 24) + "/tar";
}

// lazysnap-fused + lazysnapd (lazy mode on, same [lazy] config) + CRI containerd on `reg`.
struct LazyStack {
  explicit LazyStack(const Registry& reg, const std::string& fused_config = kNoBackground)
      : fused({reg.host()}, kReadTimeoutS, fused_config),
        daemon("metrics_address = \"127.0.0.1:0\"\n" + fused.config()),
        containerd({.snapshotter_socket = daemon.socket(),
                    .cri = true,
                    .mirror_host = reg.host(),
                    .sandbox_image = reg.host() + "/pause:none"}) {}
  FusedProcess fused;
  LazysnapdProcess daemon;
  Containerd containerd;
};

struct Layers {
  std::map<std::string, std::string> small, big1, big2;
};

class LazyCriTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    registry_ = new Registry();
    files_ = new Layers;
    for (int i = 0; i < 1500; ++i) {
      files_->small["usr/share/many/d" + std::to_string(i % 30) + "/f" + std::to_string(i)] =
          "small file " + std::to_string(i) + "\n" + std::string(static_cast<size_t>(i % 700), 'x');
    }
    files_->small["etc/motd"] = "hello from a lazy layer\n";
    files_->big1["big/blob1"] = PseudoRandomBytes(120 << 20, 1);
    files_->big2["big/blob2"] = PseudoRandomBytes(80 << 20, 2);
    files_->big2["big/blob3"] = PseudoRandomBytes(60 << 20, 3);
    files_->big2["etc/msg"] = "top layer\n";
    OciImageBuilder b;
    b.AddBusyboxLayer();
    b.AddFileLayer(files_->small);
    b.AddFileLayer(files_->big1);
    b.AddFileLayer(files_->big2);
    b.SetCmd({"/bin/sh"});
    image_ = new PushedImage(b.Push(registry_->host(), "lazy/app:v1"));
    auto r = RunCommand({LazysnapCliBinary(), "index", image_->ref, "--plain-http"},
                        std::chrono::minutes(5));
    index_output_ = new std::string(r.output);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() {
    delete index_output_;
    delete image_;
    delete files_;
    delete registry_;
  }

  // The image's top snapshot through lazysnap vs containerd's own overlayfs snapshotter after a
  // full pull: byte for byte, hardlink groups included.
  static void ExpectLazyTreeEqualsNative(Containerd& containerd) {
    std::string chain = containerd.TopCommittedSnapshot("lazysnap", "k8s.io");
    TempDir cmp("lazy-cmp");
    MakeDirs(cmp / "lazy");
    MakeDirs(cmp / "native");
    containerd.CtrOrThrow(
        {"images", "pull", "--plain-http", "--snapshotter", "overlayfs", image_->ref}, 300,
        "native-cmp");
    RunMountCommand(containerd.CtrOrThrow({"snapshots", "--snapshotter", "lazysnap", "view",
                                           "--target", cmp / "lazy", "cmp-lazy", chain},
                                          60, "k8s.io"));
    RunMountCommand(containerd.CtrOrThrow({"snapshots", "--snapshotter", "overlayfs", "view",
                                           "--target", cmp / "native", "cmp-native", chain},
                                          60, "native-cmp"));
    auto want = erofs::testing::Snapshot(cmp / "native");
    auto got = erofs::testing::Snapshot(cmp / "lazy");
    ::umount2((cmp / "lazy").c_str(), MNT_DETACH);
    ::umount2((cmp / "native").c_str(), MNT_DETACH);
    EXPECT_GT(want.size(), 1500u);
    auto diff = erofs::testing::Diff(want, got, false);
    EXPECT_TRUE(diff.empty()) << diff.size() << " differences, first: " << diff.front();
    containerd.Ctr({"snapshots", "--snapshotter", "lazysnap", "rm", "cmp-lazy"}, 60, "k8s.io");
  }

  // Waits (up to a minute) until lazysnap-fused has served `bytes` of file data.
  static void WaitUntilServed(FusedProcess& fused, uint64_t bytes) {
    auto served = [&] {
      uint64_t n = 0;
      nlohmann::json st = fused.Status();
      for (const auto& l : st["layers"]) n += l["bytes_served"].get<uint64_t>();
      return n;
    };
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (served() < bytes && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_GE(served(), bytes);
  }

  // A container checksums the three big files; `interrupt` runs once its reads are under way
  // (tens of MB served of the 260 MB); the checksums must come out right and new containers start.
  static void ExpectReadsSurvive(LazyStack& stack, const std::string& name,
                                 const std::function<void()>& interrupt) {
    auto& [fused, daemon, containerd] = stack;
    auto run = std::async(std::launch::async, [&] {
      return containerd.Ctr({"run", "--rm", "--snapshotter", "lazysnap", image_->ref, name + "-1",
                             "sh", "-c", "sleep 2; sha256sum /big/blob1 /big/blob2 /big/blob3"},
                            300, "k8s.io");
    });
    WaitUntilServed(fused, 40u << 20);
    interrupt();
    auto r = run.get();
    EXPECT_EQ(r.exit_code, 0) << r.output;
    for (const auto* layer : {&files_->big1, &files_->big2}) {
      for (const auto& [file, bytes] : *layer) {
        if (!file.starts_with("big/")) continue;
        EXPECT_NE(r.output.find(Sha256HexOf(bytes) + "  /" + file), std::string::npos) << r.output;
      }
    }
    std::string out = containerd.CtrOrThrow(
        {"run", "--rm", "--snapshotter", "lazysnap", image_->ref, name + "-2", "cat", "/etc/msg"},
        120, "k8s.io");
    EXPECT_NE(out.find("top layer"), std::string::npos) << out;
  }

  // lazysnap-fused dies while a container reads; its FUSE connections live on in the fd keeper,
  // the next lazysnap-fused serves them again (and has the kernel resend what the dead one had
  // read but not answered): the container's reads finish with the right bytes.
  static void ExpectFusedKill9KeepsReading(const std::string& fused_config,
                                           const std::string& name) {
    LazyStack stack(*registry_, fused_config);
    auto& fused = stack.fused;
    CriImageClient(stack.containerd.address()).Pull(image_->ref);
    // A directory opened before the kill and listed after it (the successor has no handle).
    std::string small_layer;
    nlohmann::json st = fused.Status();
    for (const auto& l : st["layers"]) {
      if (l["layer"] == image_->layer_digests[1]) small_layer = l["mountpoint"];
    }
    ASSERT_FALSE(small_layer.empty());
    UniqueFd dir(::open((small_layer + "/usr/share/many/d0").c_str(), O_RDONLY | O_DIRECTORY));
    ASSERT_TRUE(dir) << std::strerror(errno);
    ExpectReadsSurvive(stack, name, [&] {
      fused.Kill9();
      std::this_thread::sleep_for(std::chrono::milliseconds(700));
      fused.Start();
    });
    auto listed = std::async(std::launch::async, [fd = dir.release()] {
      DIR* d = ::fdopendir(fd);
      if (d == nullptr) return std::string("fdopendir: ") + std::strerror(errno);
      size_t entries = 0;
      errno = 0;
      while (::readdir(d) != nullptr) ++entries;
      std::string result = errno ? std::strerror(errno) : std::to_string(entries) + " entries";
      ::closedir(d);
      return result;
    });
    if (listed.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
      ADD_FAILURE() << "readdir of a directory opened before the kill hangs";
      fused.KillKeeper();  // ends the connection: the read fails instead of waiting
    }
    EXPECT_EQ(listed.get(), std::to_string(1500 / 30 + 2) + " entries");
    // The successor knows how the kernel path's mounts it adopted read their blobs.
    bool directio = fused_config.find("erofs_directio = true") != std::string::npos;
    nlohmann::json after = fused.Status();
    for (const auto& l : after["layers"]) {
      if (l["path"] == "kernel-erofs") {
        EXPECT_EQ(l["erofs_directio"], directio) << l.dump();
      }
    }
    std::string log = fused.ReadLog();
    size_t kept = 0;
    for (size_t p = log.find("connection=kept"); p != std::string::npos;
         p = log.find("connection=kept", p + 1)) {
      ++kept;
    }
    EXPECT_EQ(kept, image_->layer_digests.size()) << log;
    EXPECT_EQ(fused.Status()["layers"].size(), image_->layer_digests.size());
  }

  static Registry* registry_;
  static Layers* files_;
  static PushedImage* image_;
  static std::string* index_output_;
};

Registry* LazyCriTest::registry_ = nullptr;
Layers* LazyCriTest::files_ = nullptr;
PushedImage* LazyCriTest::image_ = nullptr;
std::string* LazyCriTest::index_output_ = nullptr;

// Layer-blob GET request lines (range or whole) after the first `skip` requests.
std::vector<std::string> LayerGets(const Registry& reg, const PushedImage& img, size_t skip) {
  std::vector<std::string> out;
  auto reqs = reg.Requests();
  for (size_t i = skip; i < reqs.size(); ++i) {
    for (const auto& d : img.layer_digests) {
      if (reqs[i].starts_with("GET ") && reqs[i].find("/blobs/" + d) != std::string::npos)
        out.push_back(reqs[i]);
    }
  }
  return out;
}

TEST_F(LazyCriTest, IndexedImagePullsLazilyRunsAndEqualsNativePull) {
  EXPECT_NE(index_output_->find("pushed index artifact"), std::string::npos) << *index_output_;
  LazyStack stack(*registry_, std::string(kNoBackground) + "metrics_address = \"127.0.0.1:0\"\n");
  auto& [fused, daemon, containerd] = stack;
  size_t before = registry_->Requests().size();
  CriImageClient(containerd.address()).Pull(image_->ref);
  EXPECT_TRUE(LayerGets(*registry_, *image_, before).empty())
      << "the pull downloaded layer bytes: " << LayerGets(*registry_, *image_, before).front();

  // Every layer is served by lazysnap-fused; lazysnapd's metrics count them as lazy.
  std::string decided = HttpGet(daemon.MetricsAddress(), "/metrics");
  const std::string layers = std::to_string(image_->layer_digests.size());
  for (const std::string& sample :
       {"lazysnapd_layer_prepares_total{mode=\"lazy\"} " + layers,
        "lazysnapd_snapshots{kind=\"committed\",mode=\"lazy\"} " + layers,
        std::string("lazysnapd_layer_prepares_total{mode=\"native\"} 0"),
        std::string("lazysnapd_lazy_fallbacks_total 0")}) {
    EXPECT_NE(decided.find(sample + "\n"), std::string::npos) << sample << decided;
  }
  nlohmann::json st = fused.Status();
  ASSERT_EQ(st["layers"].size(), image_->layer_digests.size()) << st.dump();
  std::map<std::string, std::string> mount_of;  // layer digest -> mountpoint
  for (const auto& l : st["layers"]) mount_of[l["layer"]] = l["mountpoint"];
  for (const auto& d : image_->layer_digests) EXPECT_TRUE(mount_of.count(d)) << d;

  // A container reads a small file and checksums a big one.
  size_t before_run = registry_->Requests().size();
  std::string out =
      containerd.CtrOrThrow({"run", "--rm", "--snapshotter", "lazysnap", image_->ref, "lazy-run-1",
                             "sh", "-c", "cat /etc/motd /etc/msg; sha256sum /big/blob1"},
                            300, "k8s.io");
  EXPECT_NE(out.find("hello from a lazy layer\ntop layer\n"), std::string::npos) << out;
  EXPECT_NE(out.find(Sha256HexOf(files_->big1.at("big/blob1"))), std::string::npos) << out;
  // Buffered (the default): the blob file's page cache holds what EROFS read through it too.
  EXPECT_GT(ResidentBytes(BlobFileOf(fused, mount_of[image_->layer_digests[2]])),
            files_->big1.at("big/blob1").size() / 2);

  // Only what was read came from the registry: blob1's layer in full, from the top layer only
  // the range holding /etc/msg (its two big files were never read), and range requests only.
  st = fused.Status();
  for (const auto& l : st["layers"]) {
    std::string d = l["layer"];
    size_t idx = static_cast<size_t>(
        std::find(image_->layer_digests.begin(), image_->layer_digests.end(), d) -
        image_->layer_digests.begin());
    ASSERT_LT(idx, image_->layer_digests.size());
    uint64_t size = image_->layer_sizes[idx];
    uint64_t fetched = l["bytes_fetched"];
    if (idx == 3) {
      EXPECT_LT(fetched, size / 10) << "top layer: fetched " << fetched << " of " << size;
      EXPECT_GT(fetched, 0u);
    }
    if (idx == 2) {
      EXPECT_GE(fetched, size * 9 / 10);
    }
    EXPECT_LE(fetched, size + (1 << 20));
  }
  for (const auto& r : LayerGets(*registry_, *image_, before_run)) {
    EXPECT_EQ(r.find("HTTP/1.1\" 200"), std::string::npos) << "whole-blob GET: " << r;
  }
  // The same numbers on lazysnap-fused's Prometheus endpoint (nothing reads meanwhile).
  std::string metrics = HttpGet(st["metrics_address"], "/metrics");
  EXPECT_NE(metrics.find("lazysnap_layers_mounted " + std::to_string(image_->layer_digests.size()) +
                         "\n"),
            std::string::npos)
      << metrics;
  for (const auto& l : st["layers"]) {
    std::string labels = "{layer=\"" + l["layer"].get<std::string>() + "\",image=\"" + image_->ref +
                         "\",path=\"kernel-erofs\"} ";
    for (const auto& [key, name] : {std::pair{"bytes_fetched", "fetched_bytes_total"},
                                    {"bytes_served", "served_bytes_total"},
                                    {"requests", "fetch_requests_total"}}) {
      std::string sample = "lazysnap_layer_" + std::string(name) + labels +
                           std::to_string(l[key].get<uint64_t>()) + "\n";
      EXPECT_NE(metrics.find(sample), std::string::npos) << sample << metrics;
    }
  }

  // Byte for byte: the lazy tree vs containerd's own overlayfs snapshotter after a full pull.
  std::string top;
  for (const auto& l : st["layers"]) {
    if (l["layer"] == image_->layer_digests.back()) top = l["mountpoint"];
  }
  // This kernel's EROFS takes a FUSE-served tar as its blob: every layer is on the kernel path,
  // buffered, with the mounts' read-ahead at erofs_read_ahead_kb.
  for (const auto& l : st["layers"]) {
    EXPECT_EQ(l["path"], "kernel-erofs") << l.dump();
    EXPECT_EQ(l["erofs_directio"], false) << l.dump();
  }
  EXPECT_GE(ErofsBdisWithReadAheadKb(512), image_->layer_digests.size());
  ExpectLazyTreeEqualsNative(containerd);

  // lazysnap status shows the per-layer numbers.
  auto status = RunCommand({LazysnapCliBinary(), "status", "--socket", fused.socket()});
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_NE(status.output.find(top), std::string::npos) << status.output;
}

TEST_F(LazyCriTest, KernelPathWithDirectIoEqualsNativePull) {
  // erofs_directio = true (Linux 6.13+): EROFS reads the tar with direct I/O, in
  // erofs_read_ahead_kb pieces, and caches it once.
  size_t directio_before = ErofsMountsWith("directio");
  LazyStack stack(*registry_, std::string("erofs_directio = true\n") + kNoBackground);
  auto& [fused, daemon, containerd] = stack;
  CriImageClient(containerd.address()).Pull(image_->ref);
  nlohmann::json st = fused.Status();
  ASSERT_EQ(st["layers"].size(), image_->layer_digests.size());
  for (const auto& l : st["layers"]) {
    EXPECT_EQ(l["path"], "kernel-erofs") << l.dump();
    EXPECT_EQ(l["erofs_directio"], true) << l.dump();
  }
  EXPECT_EQ(ErofsMountsWith("directio"), directio_before + image_->layer_digests.size());
  EXPECT_GE(ErofsBdisWithReadAheadKb(512), image_->layer_digests.size());
  std::string out = containerd.CtrOrThrow(
      {"run", "--rm", "--snapshotter", "lazysnap", image_->ref, "lazy-directio-1", "sh", "-c",
       "cat /etc/motd /etc/msg; sha256sum /big/blob1"},
      120, "k8s.io");
  EXPECT_NE(out.find("hello from a lazy layer\ntop layer\n"), std::string::npos) << out;
  EXPECT_NE(out.find(Sha256HexOf(files_->big1.at("big/blob1"))), std::string::npos) << out;
  // The 120 MB read left blob1's layer bytes in EROFS's page cache only, not in the blob file's.
  std::string blob_layer_mount;
  for (const auto& l : st["layers"]) {
    if (l["layer"] == image_->layer_digests[2]) blob_layer_mount = l["mountpoint"];
  }
  EXPECT_LT(ResidentBytes(BlobFileOf(fused, blob_layer_mount)), 8u << 20);
  ExpectLazyTreeEqualsNative(containerd);
}

TEST_F(LazyCriTest, TreeOverFuseEqualsNativePull) {
  // kernel_erofs = false (and the fallback where a kernel refuses): the whole tree over FUSE.
  LazyStack stack(*registry_, std::string("kernel_erofs = false\n") + kNoBackground);
  auto& [fused, daemon, containerd] = stack;
  CriImageClient(containerd.address()).Pull(image_->ref);
  nlohmann::json st = fused.Status();
  ASSERT_EQ(st["layers"].size(), image_->layer_digests.size());
  for (const auto& l : st["layers"]) EXPECT_EQ(l["path"], "fuse") << l.dump();
  std::string out = containerd.CtrOrThrow({"run", "--rm", "--snapshotter", "lazysnap", image_->ref,
                                           "lazy-tree-1", "sh", "-c", "cat /etc/motd /etc/msg"},
                                          120, "k8s.io");
  EXPECT_NE(out.find("hello from a lazy layer\ntop layer\n"), std::string::npos) << out;
  ExpectLazyTreeEqualsNative(containerd);
}

TEST_F(LazyCriTest, RegistryOutageBlocksThenResumesOrFailsWithEio) {
  LazyStack stack(*registry_);
  auto& [fused, daemon, containerd] = stack;
  CriImageClient(containerd.address()).Pull(image_->ref);
  std::string top;
  nlohmann::json st = fused.Status();
  for (const auto& l : st["layers"]) {
    if (l["layer"] == image_->layer_digests.back()) top = l["mountpoint"];
  }
  ASSERT_FALSE(top.empty());

  // Outage shorter than the read timeout: the read waits and then returns the right bytes.
  registry_->Stop();
  auto reader = std::async(std::launch::async, [&] {
    return RunCommand({"sha256sum", top + "/big/blob2"}, std::chrono::minutes(3));
  });
  EXPECT_EQ(reader.wait_for(std::chrono::seconds(2)), std::future_status::timeout)
      << "a read completed while the registry was down";
  registry_->Start();
  auto r = reader.get();
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(Sha256HexOf(files_->big2.at("big/blob2"))), std::string::npos)
      << r.output;

  // Outage longer than the timeout: EIO after about that long, and no bytes at all.
  registry_->Stop();
  auto t0 = std::chrono::steady_clock::now();
  auto fail = RunCommand({"sha256sum", top + "/big/blob3"}, std::chrono::minutes(3));
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  registry_->Start();
  EXPECT_NE(fail.exit_code, 0) << fail.output;
  EXPECT_NE(fail.output.find("Input/output error"), std::string::npos) << fail.output;
  EXPECT_GE(secs, kReadTimeoutS - 1);
  EXPECT_LT(secs, kReadTimeoutS * 10);
  // After the registry returns the same file reads correctly (nothing wrong was cached).
  auto again = RunCommand({"sha256sum", top + "/big/blob3"}, std::chrono::minutes(3));
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find(Sha256HexOf(files_->big2.at("big/blob3"))), std::string::npos);
}

TEST_F(LazyCriTest, LazysnapdKill9DuringReadsKeepsContainerReading) {
  LazyStack stack(*registry_);
  CriImageClient(stack.containerd.address()).Pull(image_->ref);
  ExpectReadsSurvive(stack, "lazy-kill", [&] {
    stack.daemon.Kill9();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    stack.daemon.Start();
  });
}

TEST_F(LazyCriTest, FusedKill9DuringReadsKeepsContainerReading) {
  // With direct I/O: the successor also finds out how the mounts it adopts read their blobs.
  ExpectFusedKill9KeepsReading(std::string("erofs_directio = true\n") + kNoBackground,
                               "lazy-fkill");
}

TEST_F(LazyCriTest, FusedKill9DuringReadsKeepsContainerReadingOnTheFuseTree) {
  // The tree over FUSE: directories opened before the kill are listed by the successor too.
  ExpectFusedKill9KeepsReading(std::string("kernel_erofs = false\n") + kNoBackground, "lazy-tkill");
}

TEST_F(LazyCriTest, ReadsFailAfterKeepConnectionsWhenNoSuccessorComes) {
  // lazysnap-fused dies and nobody starts it for longer than keep_connections_s: the keeper lets
  // the connections go and the blocked reads fail (instead of waiting forever).
  constexpr int kKeepS = 3;
  LazyStack stack(*registry_, "keep_connections_s = " + std::to_string(kKeepS) + "\n" +
                                  std::string(kNoBackground));
  auto& [fused, daemon, containerd] = stack;
  CriImageClient(containerd.address()).Pull(image_->ref);
  auto run = std::async(std::launch::async, [&] {
    return containerd.Ctr({"run", "--rm", "--snapshotter", "lazysnap", image_->ref, "lazy-orphan-1",
                           "sh", "-c", "sleep 2; sha256sum /big/blob1"},
                          120, "k8s.io");
  });
  WaitUntilServed(fused, 20u << 20);
  fused.Kill9();
  auto t0 = std::chrono::steady_clock::now();
  if (run.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
    ADD_FAILURE() << "reads still blocked a minute after lazysnap-fused died";
    fused.KillKeeper();
  }
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto r = run.get();
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find(Sha256HexOf(files_->big1.at("big/blob1"))), std::string::npos)
      << r.output;
  EXPECT_GE(waited, kKeepS - 0.5) << r.output;
  // The next lazysnap-fused mounts the layers anew: new containers start.
  fused.Start();
  std::string out = containerd.CtrOrThrow(
      {"run", "--rm", "--snapshotter", "lazysnap", image_->ref, "lazy-orphan-2", "cat", "/etc/msg"},
      120, "k8s.io");
  EXPECT_NE(out.find("top layer"), std::string::npos) << out;
}

TEST_F(LazyCriTest, FusedRestartRemountsItsLayers) {
  LazyStack stack(*registry_);
  auto& [fused, daemon, containerd] = stack;
  CriImageClient(containerd.address()).Pull(image_->ref);
  ASSERT_EQ(fused.Status()["layers"].size(), image_->layer_digests.size());
  // A crash of lazysnap-fused itself: its mounts die with it; a new one mounts them again from
  // its table, and new containers start on them.
  fused.Kill9();
  fused.Start();
  nlohmann::json st = fused.Status();
  EXPECT_EQ(st["layers"].size(), image_->layer_digests.size()) << fused.ReadLog();
  EXPECT_NE(fused.ReadLog().find("lazy mount restored"), std::string::npos);
  std::string out = containerd.CtrOrThrow({"run", "--rm", "--snapshotter", "lazysnap", image_->ref,
                                           "lazy-restart-1", "cat", "/etc/motd"},
                                          120, "k8s.io");
  EXPECT_NE(out.find("hello from a lazy layer"), std::string::npos) << out;
  // lazysnap-fused restarted without its table (a fresh root): lazysnapd notices the layers are
  // not served when a container is prepared on them and has them mounted again.
  fused.Kill9();
  ASSERT_EQ(::unlink((fused.root() + "/mounts.json").c_str()), 0);
  fused.Start();
  EXPECT_EQ(fused.Status()["layers"].size(), 0u);
  out = containerd.CtrOrThrow({"run", "--rm", "--snapshotter", "lazysnap", image_->ref,
                               "lazy-restart-2", "cat", "/etc/msg"},
                              120, "k8s.io");
  EXPECT_NE(out.find("top layer"), std::string::npos) << out;
  EXPECT_EQ(fused.Status()["layers"].size(), image_->layer_digests.size());
  // Mounted anew by this server (lazysnapd asked: dead FUSE mounts fail statfs, kernel EROFS
  // mounts are re-requested every time, a no-op for a server that has them).
  std::string log = fused.ReadLog();
  size_t mounted = 0;
  for (size_t p = log.find("lazy layer mounted"); p != std::string::npos;
       p = log.find("lazy layer mounted", p + 1)) {
    ++mounted;
  }
  EXPECT_EQ(mounted, 2 * image_->layer_digests.size()) << log;
  // A graceful stop unmounts everything it served.
  fused.Stop();
  std::string mounts = ReadFile("/proc/self/mounts");
  EXPECT_EQ(mounts.find(daemon.root() + "/snapshots/"), std::string::npos) << mounts;
}

TEST_F(LazyCriTest, BackgroundFetchMakesLayersLocalThenTheRegistryIsNotNeeded) {
  LazyStack stack(*registry_, "background_fetch_delay_s = 0\nbackground_fetch_mb_per_s = 0\n");
  auto& [fused, daemon, containerd] = stack;
  CriImageClient(containerd.address()).Pull(image_->ref);
  // Every layer's blob reaches the chunk cache, each byte fetched once.
  auto until = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  nlohmann::json st;
  auto all_done = [&] {
    st = fused.Status();
    if (st["layers"].size() != image_->layer_digests.size()) return false;
    for (const auto& l : st["layers"]) {
      if (l["background"] != "done") return false;
    }
    return true;
  };
  while (!all_done() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_TRUE(all_done()) << st.dump(1);
  for (const auto& l : st["layers"]) {
    size_t idx = static_cast<size_t>(
        std::find(image_->layer_digests.begin(), image_->layer_digests.end(), l["layer"]) -
        image_->layer_digests.begin());
    ASSERT_LT(idx, image_->layer_digests.size());
    EXPECT_EQ(l["bytes_fetched"].get<uint64_t>(), image_->layer_sizes[idx]) << l.dump();
  }
  auto status = RunCommand({LazysnapCliBinary(), "status", "--socket", fused.socket()});
  EXPECT_NE(status.output.find("done"), std::string::npos) << status.output;

  // The registry goes away for good: containers still start and read every byte of the image.
  registry_->Stop();
  auto out = containerd.Ctr(
      {"run", "--rm", "--snapshotter", "lazysnap", image_->ref, "lazy-bg-1", "sh", "-c",
       "cat /etc/motd /etc/msg && sha256sum /big/blob1 /big/blob2 /big/blob3 "
       "&& cat $(find /usr/share/many -type f) | wc -c"},
      300, "k8s.io");
  registry_->Start();
  EXPECT_EQ(out.exit_code, 0) << out.output;
  EXPECT_NE(out.output.find("hello from a lazy layer\ntop layer\n"), std::string::npos)
      << out.output;
  EXPECT_NE(out.output.find(Sha256HexOf(files_->big1.at("big/blob1"))), std::string::npos);
  EXPECT_NE(out.output.find(Sha256HexOf(files_->big2.at("big/blob2"))), std::string::npos);
  EXPECT_NE(out.output.find(Sha256HexOf(files_->big2.at("big/blob3"))), std::string::npos);
  size_t small_bytes = 0;
  for (const auto& [path, data] : files_->small) {
    if (path.starts_with("usr/share/many/")) small_bytes += data.size();
  }
  EXPECT_NE(out.output.find(std::to_string(small_bytes) + "\n"), std::string::npos) << out.output;
}

TEST_F(LazyCriTest, StartReadsRecordedOnOneNodeArePrefetchedOnAnother) {
  // An image of its own: this test pushes an artifact with a prefetch list, which the suite's
  // image must not get (other tests count what its start fetches).
  OciImageBuilder b;
  b.AddBusyboxLayer();
  const std::string started = PseudoRandomBytes(24 << 20, 11);
  const std::string unread = PseudoRandomBytes(16 << 20, 12);
  b.AddFileLayer({{"app/started", started}, {"app/unread", unread}, {"etc/app", "app conf\n"}});
  PushedImage img = b.Push(registry_->host(), "lazy/prefetch:v1");
  auto idx = RunCommand({LazysnapCliBinary(), "index", img.ref, "--plain-http"});
  ASSERT_EQ(idx.exit_code, 0) << idx.output;
  const std::vector<std::string> start = {"sh", "-c", "cat /etc/app && sha256sum /app/started"};
  TempDir tmp("lazy-prefetch");
  const std::string list = tmp / "list.json";
  {
    // Node one runs the container once and writes out what its start read.
    LazyStack one(*registry_);
    CriImageClient(one.containerd.address()).Pull(img.ref);
    std::vector<std::string> run = {"run", "--rm", "--snapshotter", "lazysnap", img.ref, "pf-1"};
    run.insert(run.end(), start.begin(), start.end());
    auto out = one.containerd.Ctr(run, 120, "k8s.io");
    ASSERT_EQ(out.exit_code, 0) << out.output;
    auto rec = RunCommand({LazysnapCliBinary(), "prefetch", img.ref, "--socket", one.fused.socket(),
                           "--output", list});
    ASSERT_EQ(rec.exit_code, 0) << rec.output;
    EXPECT_NE(rec.output.find("2 layers"), std::string::npos) << rec.output;
    auto pushed =
        RunCommand({LazysnapCliBinary(), "index", img.ref, "--plain-http", "--prefetch", list});
    ASSERT_EQ(pushed.exit_code, 0) << pushed.output;
    EXPECT_NE(pushed.output.find("with the prefetch list"), std::string::npos) << pushed.output;
    // Node one holds every index already: a new lazysnap-fused there still picks up the list
    // pushed since, at the image's next mount.
    one.fused.Stop();
    one.fused.Start();
    const std::string mnt = tmp / "mnt";
    MakeDirs(mnt);
    auto m = RunCommand({LazysnapCliBinary(), "mount", "--socket", one.fused.socket(),
                         "--plain-http", img.ref, mnt});
    ASSERT_EQ(m.exit_code, 0) << m.output;
    nlohmann::json st = one.fused.Status();
    uint64_t queued = 0;
    for (const auto& l : st["layers"]) queued += l["prefetch_spans"].get<uint64_t>();
    RunCommand({LazysnapCliBinary(), "umount", "--socket", one.fused.socket(), mnt});
    EXPECT_GT(queued, 0u) << st.dump(1) << one.fused.ReadLog();
    EXPECT_NE(one.fused.ReadLog().find("prefetch list downloaded"), std::string::npos);
    // A list recorded again replaces the kept one at the next server's first mount (this one:
    // the recorded list with one more range, which node two below then uses).
    const std::string list2 = tmp / "list2.json";
    nlohmann::json l2 = nlohmann::json::parse(ReadFile(list));
    l2["layers"].back()["ranges"].push_back({1, 4095});
    WriteFileAtomic(list2, l2.dump());
    auto again =
        RunCommand({LazysnapCliBinary(), "index", img.ref, "--plain-http", "--prefetch", list2});
    ASSERT_EQ(again.exit_code, 0) << again.output;
    one.fused.Stop();
    one.fused.Start();
    m = RunCommand({LazysnapCliBinary(), "mount", "--socket", one.fused.socket(), "--plain-http",
                    img.ref, mnt});
    ASSERT_EQ(m.exit_code, 0) << m.output;
    RunCommand({LazysnapCliBinary(), "umount", "--socket", one.fused.socket(), mnt});
    std::string kept =
        ReadFile(one.fused.root() + "/prefetch/" + img.manifest_digest.substr(7) + ".json");
    EXPECT_NE(kept.find("[1,4095]]"), std::string::npos) << kept;
  }

  // Node two (its own caches) fetches the list's spans at mount, before any container reads.
  LazyStack two(*registry_);
  CriImageClient(two.containerd.address()).Pull(img.ref);
  auto until = std::chrono::steady_clock::now() + std::chrono::minutes(2);
  nlohmann::json st;
  auto prefetched = [&] {
    st = two.fused.Status();
    if (st["layers"].size() != img.layer_digests.size()) return false;
    for (const auto& l : st["layers"]) {
      uint64_t want = l["prefetch_spans"].get<uint64_t>();
      if (want == 0 || l["prefetched_spans"].get<uint64_t>() < want) return false;
    }
    return true;
  };
  while (!prefetched() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(prefetched()) << st.dump(1);
  for (const auto& l : st["layers"]) {
    if (l["layer"] == img.layer_digests.back()) {
      EXPECT_LT(l["bytes_fetched"].get<uint64_t>(), img.layer_sizes.back()) << l.dump();
    }
  }

  auto dd_works = two.containerd.Ctr({"run", "--rm", "--snapshotter", "lazysnap", img.ref, "pf-0",
                                      "busybox", "dd", "if=/app/unread", "of=/dev/null", "count=0"},
                                     120, "k8s.io");
  ASSERT_EQ(dd_works.exit_code, 0) << dd_works.output;  // reads nothing of the file

  // With the registry gone the same start runs from what was prefetched; the middle of a file it
  // never read fails with EIO after the read timeout (the registry really is needed for the rest).
  registry_->Stop();
  std::vector<std::string> run = {"run", "--rm", "--snapshotter", "lazysnap", img.ref, "pf-2"};
  run.insert(run.end(), start.begin(), start.end());
  auto out = two.containerd.Ctr(run, 120, "k8s.io");
  auto miss = two.containerd.Ctr(
      {"run", "--rm", "--snapshotter", "lazysnap", img.ref, "pf-3", "busybox", "dd",
       "if=/app/unread", "of=/dev/null", "bs=4096", "skip=2560", "count=1"},
      120, "k8s.io");
  registry_->Start();
  EXPECT_EQ(out.exit_code, 0) << out.output;
  EXPECT_NE(out.output.find("app conf\n" + Sha256HexOf(started)), std::string::npos) << out.output;
  EXPECT_NE(miss.exit_code, 0) << miss.output;
}

TEST_F(LazyCriTest, MultiFrameZstdLayerPullsLazily) {
  // A top layer shipped as tar+zstd in 2 MiB frames: indexed at frame starts and
  // served lazily like the gzip ones.
  std::map<std::string, std::string> files = {{"big/zblob", PseudoRandomBytes(9 << 20, 9)},
                                              {"etc/msg", "zstd layer\n"}};
  OciImageBuilder b;
  b.AddBusyboxLayer();
  b.AddFileLayer(files);
  b.RecompressTopLayerAsZstdFrames();
  PushedImage img = b.Push(registry_->host(), "lazy/zstd:v1");
  auto r =
      RunCommand({LazysnapCliBinary(), "index", img.ref, "--plain-http"}, std::chrono::minutes(5));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("not indexed"), std::string::npos) << r.output;
  LazyStack stack(*registry_, kNoBackground);
  auto& [fused, daemon, containerd] = stack;
  CriImageClient(containerd.address()).Pull(img.ref);
  nlohmann::json st = fused.Status();
  ASSERT_EQ(st["layers"].size(), 2u) << st.dump();
  std::string out =
      containerd.CtrOrThrow({"run", "--rm", "--snapshotter", "lazysnap", img.ref, "lazy-zstd-1",
                             "sh", "-c", "cat /etc/msg; sha256sum /big/zblob"},
                            120, "k8s.io");
  EXPECT_NE(out.find("zstd layer\n"), std::string::npos) << out;
  EXPECT_NE(out.find(Sha256HexOf(files.at("big/zblob"))), std::string::npos) << out;
  // The registry holds our zstd blob as pushed (its digest is the one mounted), read in spans.
  st = fused.Status();
  bool found = false;
  for (const auto& l : st["layers"]) {
    if (l["layer"] == img.layer_digests.back()) {
      found = true;
      EXPECT_GE(l["spans_inflated"].get<uint64_t>(), 2u) << l.dump();
    }
  }
  EXPECT_TRUE(found) << st.dump();
  CriImageClient(containerd.address()).Remove(img.ref);
}

TEST_F(LazyCriTest, ImageWithoutIndexFallsBackToNative) {
  OciImageBuilder b;
  b.AddBusyboxLayer();
  b.AddFileLayer({{"etc/msg", "not indexed\n"}});
  PushedImage plain = b.Push(registry_->host(), "lazy/plain:v1");
  LazyStack stack(*registry_);
  auto& [fused, daemon, containerd] = stack;
  CriImageClient(containerd.address()).Pull(plain.ref);
  EXPECT_EQ(fused.Status()["layers"].size(), 0u);
  std::string out = containerd.CtrOrThrow(
      {"run", "--rm", "--snapshotter", "lazysnap", plain.ref, "lazy-plain-1", "cat", "/etc/msg"},
      120, "k8s.io");
  EXPECT_NE(out.find("not indexed"), std::string::npos) << out;
  EXPECT_NE(daemon.ReadLog().find("unpacking natively"), std::string::npos);
  std::string decided = HttpGet(daemon.MetricsAddress(), "/metrics");
  for (const char* sample : {"lazysnapd_layer_prepares_total{mode=\"native\"} 2\n",
                             "lazysnapd_layer_prepares_total{mode=\"lazy\"} 0\n"}) {
    EXPECT_NE(decided.find(sample), std::string::npos) << sample << decided;
  }
  // lazysnap-fused down: pulls still work, natively.
  fused.Stop();
  CriImageClient(containerd.address()).Remove(plain.ref);
}

}  // namespace
}  // namespace lazysnap::testing

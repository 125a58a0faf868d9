// lazysnap-guest end to end on real peers: a docker-registry on 127.0.0.1, `lazysnap index`, and a
// descriptor from a real proxy-mode CRI pull (containerd's CRI plugin + lazysnapd with [proxy]).
// Image v1 (busybox + 2 file layers, the top one overwriting /etc/msg and holding a big file) is
// indexed; v2 (v1 + one more layer) is not. The agent binary runs in a mount namespace of its own
// (`unshare -m --propagation private`), so nothing it mounts reaches the host's mount table; the
// test looks into that namespace through /proc/PID/root and nsenter.
//  - v1: every layer lazy; the rootfs equals containerd's native overlayfs unpack; a command runs
//    in it (chroot); the big unread file's bytes were not fetched.
//  - v2: every layer a full EROFS image (file-backed, and on a loop device); equal to native.
//  - mixed: after v1, v2's first three layers have local indexes: lazy, lazy, lazy, erofs.
//  - errors: malformed descriptors, a stopped registry, a layer missing from the registry after
//    two layers were mounted, a kernel without overlay / erofs: non-zero exit, a message naming
//    the problem, and nothing left mounted (checked in the namespace the agent ran in).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/file_util.h"
#include "common/process.h"
#include "common/sha256.h"
#include "common/temp_dir.h"
#include "labels/descriptor.h"
#include "lazy/control.h"
#include "tests/erofs/tree.h"
#include "tests/support/containerd.h"
#include "tests/support/cri_client.h"
#include "tests/support/fused.h"
#include "tests/support/lazysnapd.h"
#include "tests/support/oci_image.h"
#include "tests/support/pseudo_random.h"
#include "tests/support/registry.h"

namespace lazysnap::testing {
namespace {

using Tree = std::map<std::string, erofs::testing::Node>;
using Groups = std::set<std::set<std::string>>;

constexpr size_t kBigFile = 24 << 20;

std::string GuestBinary() {
  return LAZYSNAP_GUEST_PATH;
}

// Hardlink groups by (st_dev, st_ino): overlayfs over layers on different filesystems reports
// each lower's own st_dev, and EROFS images number their inodes alike, so st_ino alone (what
// tree.h's Diff compares) repeats across layers without anything being hard-linked.
Groups HardlinkGroups(const std::string& root) {
  std::map<std::pair<uint64_t, uint64_t>, std::set<std::string>> by;
  for (auto it = std::filesystem::recursive_directory_iterator(root);
       it != std::filesystem::recursive_directory_iterator(); ++it) {
    struct stat st;
    if (::lstat(it->path().c_str(), &st) != 0 || S_ISDIR(st.st_mode)) continue;
    by[{st.st_dev, st.st_ino}].insert(it->path().lexically_relative(root).string());
  }
  Groups out;
  for (auto& [k, paths] : by)
    if (paths.size() > 1) out.insert(paths);
  return out;
}

// OciImageBuilder::AddFileLayer, but every directory on the way to a written file gets a fixed
// mtime of its own per layer. umoci leaves a directory out of a layer when its mtime looks
// unchanged at its precision (two layers written within one second), and the parents a layer
// only implies get different attributes from every unpacker (containerd: the time of the pull;
// see erofs/layer_builder.h), which would make the comparison with a native pull flaky.
void AddLayer(OciImageBuilder& b, const std::map<std::string, std::string>& files, int n) {
  TempDir tmp("guest-layer");
  std::string bundle = tmp / "bundle", image = b.layout_dir() + ":img";
  RunCommandOrThrow({"umoci", "unpack", "--image", image, bundle});
  std::set<std::string> dirs;
  for (const auto& [path, data] : files) {
    std::string full = bundle + "/rootfs/" + path;
    MakeDirs(std::filesystem::path(full).parent_path().string());
    WriteFileAtomic(full, data);
    for (auto d = std::filesystem::path(path).parent_path(); !d.empty(); d = d.parent_path())
      dirs.insert(bundle + "/rootfs/" + d.string());
  }
  timespec t[2] = {{1600000000 + n * 86400, 0}, {1600000000 + n * 86400, 0}};
  for (const auto& d : dirs) {
    if (::utimensat(AT_FDCWD, d.c_str(), t, 0) != 0) ThrowErrno("utimensat " + d);
  }
  RunCommandOrThrow({"umoci", "repack", "--image", image, bundle});
}

struct NativeView {
  Tree tree;
  Groups groups;
};

// tree.h's Diff without its st_ino-only hardlink check, plus the (dev, ino) one.
std::vector<std::string> DiffTrees(const NativeView& want, const std::string& got_root) {
  auto got = erofs::testing::Snapshot(got_root);
  auto diffs = erofs::testing::Diff(want.tree, got, false);
  std::erase_if(diffs, [](const std::string& d) { return d.find("hardlink groups") != d.npos; });
  if (HardlinkGroups(got_root) != want.groups) diffs.push_back("hardlink groups differ");
  return diffs;
}

// The committed snapshot chain (bottom first) that ends at the only leaf.
std::vector<std::string> CommittedChain(const Containerd& c) {
  std::string ls = c.CtrOrThrow({"snapshots", "--snapshotter", "lazysnap", "ls"}, 60, "k8s.io");
  std::istringstream in(ls);
  std::string line;
  std::map<std::string, std::string> parent_of;
  std::set<std::string> parents;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string key, parent, kind;
    f >> key >> parent >> kind;
    if (kind != "Committed") continue;
    if (parent == "Committed") parent.clear();  // a root snapshot has no parent column
    parent_of[key] = parent;
    parents.insert(parent);
  }
  std::string leaf;
  for (const auto& [k, p] : parent_of)
    if (!parents.count(k)) leaf = k;
  std::vector<std::string> chain;
  for (std::string k = leaf; !k.empty(); k = parent_of[k]) chain.insert(chain.begin(), k);
  return chain;
}

// lazysnap-guest in a mount namespace of its own; its stdout/stderr kept in files.
class Agent {
 public:
  explicit Agent(std::vector<std::string> args) {
    std::vector<std::string> argv = {"unshare", "-m", "--propagation", "private", GuestBinary()};
    argv.insert(argv.end(), args.begin(), args.end());
    SpawnOptions so;
    so.stdout_path = dir_ / "stdout";
    so.stderr_path = dir_ / "stderr";
    so.die_with_parent = true;
    proc_ = Subprocess::Spawn(argv, so);
  }
  ~Agent() { proc_.Stop(std::chrono::seconds(20)); }

  pid_t pid() const { return proc_.pid(); }
  // A path as the agent sees it (inside its mount namespace).
  std::string Inside(const std::string& path) const {
    return "/proc/" + std::to_string(pid()) + "/root" + path;
  }
  std::string Stdout() const {
    return PathExists(dir_ / "stdout") ? ReadFile(dir_ / "stdout") : "";
  }
  std::string Stderr() const {
    return PathExists(dir_ / "stderr") ? ReadFile(dir_ / "stderr") : "";
  }
  std::string MountInfo() const {
    return ReadFile("/proc/" + std::to_string(pid()) + "/mountinfo");
  }
  // The first stdout line, parsed (the readiness report of `mount`).
  nlohmann::json WaitLine(std::chrono::seconds timeout = std::chrono::seconds(120)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      std::string out = Stdout();
      if (auto nl = out.find('\n'); nl != std::string::npos)
        return nlohmann::json::parse(out.substr(0, nl));
      if (!proc_.running()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    throw Error(ErrorCode::kUnavailable, "lazysnap-guest printed no line; stderr:\n" + Stderr());
  }
  // Runs a command in the agent's mount namespace.
  CommandResult Run(const std::vector<std::string>& cmd) const {
    std::vector<std::string> argv = {"nsenter", "-t", std::to_string(pid()), "-m", "--"};
    argv.insert(argv.end(), cmd.begin(), cmd.end());
    return RunCommand(argv, std::chrono::minutes(2));
  }
  std::optional<int> Wait(std::chrono::seconds t) { return proc_.Wait(t); }
  void Signal(int sig) { proc_.Signal(sig); }

 private:
  TempDir dir_{"guest-agent"};
  Subprocess proc_;
};

class GuestAgentTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    registry_ = new Registry();
    OciImageBuilder b;
    b.AddBusyboxLayer();
    AddLayer(b, {{"etc/msg", "layer 2\n"}, {"etc/two", "only in layer 2\n"}}, 1);
    AddLayer(b, {{"etc/msg", "layer 3\n"}, {"big/blob", PseudoRandomBytes(kBigFile, 7)}}, 2);
    b.SetCmd({"/bin/sh"});
    v1_ = new PushedImage(b.Push(registry_->host(), "guest/app:v1"));
    AddLayer(b, {{"etc/msg", "layer 4\n"}, {"usr/share/four", std::string(5000, 'f')}}, 3);
    v2_ = new PushedImage(b.Push(registry_->host(), "guest/app:v2"));
    auto r = RunCommand({LazysnapCliBinary(), "index", v1_->ref, "--plain-http"},
                        std::chrono::minutes(5));
    ASSERT_EQ(r.exit_code, 0) << r.output;

    // Descriptors from a real proxy-mode CRI pull: the container snapshot's Kata mount.
    LazysnapdProcess daemon("[proxy]\nenable = true\nfallback = \"native\"\n");
    Containerd containerd({.snapshotter_socket = daemon.socket(),
                           .cri = true,
                           .mirror_host = registry_->host(),
                           .sandbox_image = registry_->host() + "/pause:none"});
    CriImageClient cri(containerd.address());
    cri.Pull(v1_->ref);
    cri.Pull(v2_->ref);
    auto chain = CommittedChain(containerd);
    ASSERT_EQ(chain.size(), 4u);
    mounts_ = new std::map<std::string, std::string>;
    for (auto [name, top] : {std::pair{"v1", chain[2]}, std::pair{"v2", chain[3]}}) {
      std::string key = std::string("guest-ctr-") + name;
      containerd.CtrOrThrow({"snapshots", "--snapshotter", "lazysnap", "prepare", key, top}, 120,
                            "k8s.io");
      (*mounts_)[name] = containerd.CtrOrThrow(
          {"snapshots", "--snapshotter", "lazysnap", "mounts", "/rootfs", key}, 120, "k8s.io");
    }

    // The reference: containerd's own overlayfs snapshotter after a full (native) pull.
    containerd.CtrOrThrow(
        {"images", "pull", "--plain-http", "--snapshotter", "overlayfs", v2_->ref}, 300, "native");
    native_ = new std::map<std::string, NativeView>;
    TempDir views("guest-native");
    for (auto [name, top] : {std::pair{"v1", chain[2]}, std::pair{"v2", chain[3]}}) {
      std::string dir = views / name;
      MakeDirs(dir);
      std::string printed =
          containerd.CtrOrThrow({"snapshots", "--snapshotter", "overlayfs", "view", "--target", dir,
                                 std::string("guest-native-") + name, top},
                                60, "native");
      std::string cmd = printed.substr(0, printed.find('\n'));
      ASSERT_TRUE(cmd.starts_with("mount ")) << printed;
      erofs::testing::Sh(cmd);
      (*native_)[name] = {erofs::testing::Snapshot(dir), HardlinkGroups(dir)};
      ::umount2(dir.c_str(), MNT_DETACH);
    }
  }

  static void TearDownTestSuite() {
    delete native_;
    delete mounts_;
    delete v2_;
    delete v1_;
    delete registry_;
  }

  static labels::ProxyDescriptor Descriptor(const std::string& name) {
    const std::string& m = mounts_->at(name);
    auto pos = m.find(labels::kKataVolumeOptionPrefix);
    EXPECT_NE(pos, std::string::npos) << m;
    std::string b64 = m.substr(pos + std::strlen(labels::kKataVolumeOptionPrefix));
    return labels::DecodeKataVolume(b64.substr(0, b64.find_first_of(", \n")));
  }

  std::vector<std::string> CommonFlags(const std::string& state) const {
    return {"--state",        state, "--plain-http", registry_->host(),
            "--read-timeout", "10",  "--log-level",  "debug"};
  }

  // Runs `lazysnap-guest args...` to completion in a fresh mount namespace and prints that
  // namespace's mount table after the agent exited: what a failed agent would have leaked.
  struct Outcome {
    int exit_code;
    std::string output;     // the agent's stdout + stderr
    std::string mountinfo;  // the namespace's table once the agent exited
  };
  Outcome RunToCompletion(const std::vector<std::string>& args,
                          const std::string& stdin_text = "") {
    TempDir tmp("guest-run");
    std::string input = tmp / "stdin";
    WriteFileAtomic(input, stdin_text);
    std::vector<std::string> argv = {
        "unshare",
        "-m",
        "--propagation",
        "private",
        "/bin/sh",
        "-c",
        "\"$@\" <" + input + "; rc=$?; echo '--- mountinfo'; cat /proc/self/mountinfo; exit $rc",
        "sh",
        GuestBinary()};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = RunCommand(argv, std::chrono::minutes(3));
    auto cut = r.output.rfind("--- mountinfo");
    return {r.exit_code, r.output.substr(0, cut),
            cut == std::string::npos ? "" : r.output.substr(cut)};
  }

  static Registry* registry_;
  static PushedImage* v1_;
  static PushedImage* v2_;
  static std::map<std::string, std::string>* mounts_;  // "v1"/"v2" -> `ctr snapshots mounts`
  static std::map<std::string, NativeView>* native_;
};

Registry* GuestAgentTest::registry_ = nullptr;
PushedImage* GuestAgentTest::v1_ = nullptr;
PushedImage* GuestAgentTest::v2_ = nullptr;
std::map<std::string, std::string>* GuestAgentTest::mounts_ = nullptr;
std::map<std::string, NativeView>* GuestAgentTest::native_ = nullptr;

std::vector<std::string> Modes(const nlohmann::json& report) {
  std::vector<std::string> out;
  for (const auto& l : report["layers"]) out.push_back(l["mode"]);
  return out;
}

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

bool Mentions(const std::string& mountinfo, const std::string& path) {
  return mountinfo.find(" " + path + " ") != std::string::npos ||
         mountinfo.find(" " + path + "/") != std::string::npos;
}

TEST_F(GuestAgentTest, IndexedImageMountsLazilyEqualsNativeAndFetchesOnlyWhatIsRead) {
  TempDir tmp("guest-lazy");
  std::string state = tmp / "state", target = tmp / "rootfs", sock = tmp / "guest.sock";
  // The descriptor as `ctr snapshots mounts` prints it: a whole mount command line.
  WriteFileAtomic(tmp / "desc", mounts_->at("v1"));
  std::vector<std::string> args = {"mount", "--descriptor", tmp / "desc", "--target",
                                   target,  "--socket",     sock};
  for (const auto& f : CommonFlags(state)) args.push_back(f);
  Agent agent(args);
  nlohmann::json ready = agent.WaitLine();
  ASSERT_TRUE(ready.value("ready", false)) << ready.dump() << agent.Stderr();
  EXPECT_EQ(Modes(ready), (std::vector<std::string>{"lazy", "lazy", "lazy"})) << ready.dump();
  EXPECT_EQ(ready["image"], v1_->ref);
  for (const auto& l : ready["layers"]) {
    EXPECT_TRUE(l["seconds"].is_number());
    EXPECT_TRUE(l["mountpoint"].get<std::string>().starts_with(state + "/layers/"));
  }
  WaitForUnixSocket(sock);
  // Nothing in the host's mount table.
  std::string host = ReadFile("/proc/self/mountinfo");
  EXPECT_FALSE(Mentions(host, state) || Mentions(host, target)) << host;
  EXPECT_TRUE(Mentions(agent.MountInfo(), target));

  auto run = agent.Run({"chroot", target, "/bin/sh", "-c", "cat /etc/msg /etc/two"});
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_EQ(run.output, "layer 3\nonly in layer 2\n");

  // Only what was read came from the registry: of the top layer, /etc/msg's neighbourhood, not
  // the 24 MiB file beside it.
  auto st = RunCommand({GuestBinary(), "status", "--socket", sock});
  ASSERT_EQ(st.exit_code, 0) << st.output;
  nlohmann::json status = nlohmann::json::parse(st.output);
  ASSERT_EQ(status["mounts"].size(), 1u) << st.output;
  const auto& layers = status["mounts"][0]["layers"];
  ASSERT_EQ(layers.size(), 3u);
  uint64_t top_size = v1_->layer_sizes[2];
  uint64_t fetched = layers[2]["bytes_fetched"];
  EXPECT_EQ(layers[2]["mode"], "lazy");
  EXPECT_GT(fetched, 0u);
  EXPECT_LT(fetched, top_size / 4) << "top layer: fetched " << fetched << " of " << top_size;
  EXPECT_GT(layers[0]["bytes_fetched"].get<uint64_t>(), 0u);  // busybox ran
  std::printf("top layer: %llu of %llu bytes fetched\n", static_cast<unsigned long long>(fetched),
              static_cast<unsigned long long>(top_size));

  // Byte for byte the native unpack (this reads everything).
  auto diff = DiffTrees(native_->at("v1"), agent.Inside(target));
  EXPECT_TRUE(diff.empty()) << diff.size() << " differences, first: " << diff.front();

  // umount through the socket: the agent unmounts everything and exits 0.
  auto um = RunCommand({GuestBinary(), "umount", "--socket", sock, "--target", target});
  EXPECT_EQ(um.exit_code, 0) << um.output;
  EXPECT_EQ(agent.Wait(std::chrono::seconds(30)), std::optional<int>(0)) << agent.Stderr();
  EXPECT_NE(agent.Stderr().find("rootfs unmounted"), std::string::npos) << agent.Stderr();
  EXPECT_FALSE(PathExists(sock));
}

TEST_F(GuestAgentTest, ServeMountsUnindexedAsErofsThenMixedAndUnmountsEverything) {
  TempDir tmp("guest-serve");
  std::string state = tmp / "state", sock = tmp / "guest.sock";
  std::vector<std::string> args = {"serve", "--socket", sock};
  for (const auto& f : CommonFlags(state)) args.push_back(f);
  Agent agent(args);
  EXPECT_EQ(agent.WaitLine()["serving"], sock);

  // v2 has no index: all four layers fetched whole and mounted as EROFS images (base64 form).
  std::string t1 = tmp / "v2";
  auto r1 = lazy::CallControl(sock, {{"op", "mount"},
                                     {"descriptor", labels::EncodeKataVolume(Descriptor("v2"))},
                                     {"target", t1}});
  EXPECT_EQ(Modes(r1), (std::vector<std::string>(4, "erofs"))) << r1.dump();
  for (const auto& l : r1["layers"]) {
    EXPECT_EQ(l["erofs_backend"], "file") << l.dump();  // Linux >= 6.12: no loop device
    EXPECT_EQ(l["reason"], "no lazy index");
    EXPECT_GT(l["bytes_fetched"].get<uint64_t>(), 0u);
    EXPECT_TRUE(PathExists(l["image"].get<std::string>()));
  }
  auto run = agent.Run({"chroot", t1, "/bin/sh", "-c", "cat /etc/msg"});
  EXPECT_EQ(run.output, "layer 4\n");
  auto diff = DiffTrees(native_->at("v2"), agent.Inside(t1));
  EXPECT_TRUE(diff.empty()) << diff.size() << " differences, first: " << diff.front();

  // v1 (raw JSON form): indexed, all lazy. Its indexes now sit in the state dir...
  std::string t2 = tmp / "v1";
  auto r2 = lazy::CallControl(
      sock, {{"op", "mount"},
             {"descriptor", nlohmann::json::parse(labels::EncodeKataVolumeJson(Descriptor("v1")))},
             {"target", t2}});
  EXPECT_EQ(Modes(r2), (std::vector<std::string>(3, "lazy"))) << r2.dump();
  // ...so v2 again is mixed: its three shared layers lazy, its own top layer EROFS (image reused).
  std::string t3 = tmp / "v2-mixed";
  auto r3 =
      lazy::CallControl(sock, {{"op", "mount"}, {"descriptor", mounts_->at("v2")}, {"target", t3}});
  EXPECT_EQ(Modes(r3), (std::vector<std::string>{"lazy", "lazy", "lazy", "erofs"})) << r3.dump();
  EXPECT_EQ(r3["layers"][3]["image_reused"], true);
  run = agent.Run({"chroot", t3, "/bin/sh", "-c", "cat /etc/msg /etc/two"});
  EXPECT_EQ(run.output, "layer 4\nonly in layer 2\n");
  diff = DiffTrees(native_->at("v2"), agent.Inside(t3));
  EXPECT_TRUE(diff.empty()) << diff.size() << " differences, first: " << diff.front();

  // Same target twice: refused, the first rootfs untouched.
  EXPECT_THROW(
      lazy::CallControl(sock, {{"op", "mount"}, {"descriptor", mounts_->at("v2")}, {"target", t3}}),
      Error);

  // A layer the registry does not have, on top of two that mount fine: the error names it and
  // the two are unmounted again.
  labels::ProxyDescriptor bad = Descriptor("v1");
  bad.layers[2].digest = Sha256Digest("not a layer");
  std::string t4 = tmp / "bad";
  size_t mounts_before = Count(agent.MountInfo(), " " + state + "/");
  try {
    lazy::CallControl(
        sock, {{"op", "mount"}, {"descriptor", labels::EncodeKataVolume(bad)}, {"target", t4}});
    ADD_FAILURE() << "mounted a layer the registry lacks";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer 3/3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(registry_->host()), std::string::npos) << e.what();
  }
  EXPECT_FALSE(Mentions(agent.MountInfo(), t4));
  EXPECT_EQ(Count(agent.MountInfo(), " " + state + "/"), mounts_before) << agent.MountInfo();

  // status: three rootfs with their modes and counters.
  nlohmann::json st = lazy::CallControl(sock, {{"op", "status"}});
  ASSERT_EQ(st["mounts"].size(), 3u) << st.dump();
  for (const auto& m : st["mounts"]) {
    for (const auto& l : m["layers"]) {
      EXPECT_TRUE(l.contains("bytes_fetched")) << l.dump();
      if (l["mode"] == "lazy") {
        EXPECT_TRUE(l.contains("bytes_served")) << l.dump();
      }
    }
  }
  std::string mi = agent.MountInfo();
  EXPECT_TRUE(Mentions(mi, t1) && Mentions(mi, t2) && Mentions(mi, t3));
  EXPECT_TRUE(Mentions(mi, state));

  for (const auto& t : {t1, t2, t3}) {
    auto um = RunCommand({GuestBinary(), "umount", "--socket", sock, "--target", t});
    EXPECT_EQ(um.exit_code, 0) << um.output;
  }
  auto again = RunCommand({GuestBinary(), "umount", "--socket", sock, "--target", t1});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.output.find("no rootfs mounted at " + t1), std::string::npos) << again.output;
  mi = agent.MountInfo();
  EXPECT_FALSE(Mentions(mi, state) || Mentions(mi, t1) || Mentions(mi, t2) || Mentions(mi, t3))
      << mi;
  EXPECT_EQ(lazy::CallControl(sock, {{"op", "status"}})["mounts"].size(), 0u);
  // Per-rootfs dirs are gone; the EROFS images and lazy indexes stay for the next mount.
  EXPECT_TRUE(std::filesystem::is_empty(state + "/mounts")) << state;
  EXPECT_FALSE(std::filesystem::is_empty(state + "/images"));
  agent.Signal(SIGTERM);
  EXPECT_EQ(agent.Wait(std::chrono::seconds(30)), std::optional<int>(0)) << agent.Stderr();
}

TEST_F(GuestAgentTest, LoopBackendAndSigterm) {
  TempDir tmp("guest-loop");
  std::string state = tmp / "state", target = tmp / "rootfs";
  std::vector<std::string> args = {"mount", "--descriptor",    "-",   "--target",
                                   target,  "--erofs-backend", "loop"};
  for (const auto& f : CommonFlags(state)) args.push_back(f);
  WriteFileAtomic(tmp / "desc", labels::EncodeKataVolume(Descriptor("v2")) + "\n");
  // stdin: the base64 descriptor.
  std::vector<std::string> argv = {"unshare",
                                   "-m",
                                   "--propagation",
                                   "private",
                                   "/bin/sh",
                                   "-c",
                                   "exec \"$@\" <" + tmp / "desc",
                                   "sh",
                                   GuestBinary()};
  argv.insert(argv.end(), args.begin(), args.end());
  SpawnOptions so;
  so.stdout_path = tmp / "out";
  so.stderr_path = tmp / "err";
  so.die_with_parent = true;
  Subprocess proc = Subprocess::Spawn(argv, so);
  nlohmann::json ready;
  for (int i = 0; i < 2400 && ready.is_null(); ++i) {
    std::string out = PathExists(tmp / "out") ? ReadFile(tmp / "out") : "";
    if (out.find('\n') != std::string::npos) ready = nlohmann::json::parse(out);
    if (ready.is_null() && !proc.running()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(ready.value("ready", false)) << ReadFile(tmp / "err");
  EXPECT_EQ(Modes(ready), (std::vector<std::string>(4, "erofs")));
  for (const auto& l : ready["layers"]) EXPECT_EQ(l["erofs_backend"], "loop") << l.dump();
  auto cat = RunCommand({"nsenter", "-t", std::to_string(proc.pid()), "-m", "--", "chroot", target,
                         "/bin/sh", "-c", "cat /etc/msg"});
  EXPECT_EQ(cat.output, "layer 4\n");
  std::string losetup = RunCommand({"losetup", "-a"}).output;
  EXPECT_NE(losetup.find(state + "/images/"), std::string::npos) << losetup;
  proc.Signal(SIGTERM);
  EXPECT_EQ(proc.Wait(std::chrono::seconds(30)), std::optional<int>(0)) << ReadFile(tmp / "err");
  EXPECT_NE(ReadFile(tmp / "err").find("SIGTERM"), std::string::npos);
  // Autoclear: the loop devices went with the mounts.
  for (int i = 0; i < 50; ++i) {
    losetup = RunCommand({"losetup", "-a"}).output;
    if (losetup.find(state + "/images/") == std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(losetup.find(state + "/images/"), std::string::npos) << losetup;
}

// kill -9 leaves the rootfs overlay and dead FUSE layers mounted (here in the namespace the shell
// keeps); the next agent on that state dir detaches them and mounts the target again.
TEST_F(GuestAgentTest, RestartAfterKill9RecoversTheTarget) {
  TempDir tmp("guest-kill");
  std::string state = tmp / "state", target = tmp / "rootfs";
  WriteFileAtomic(tmp / "desc", mounts_->at("v1"));
  std::string script = R"SH(
    ready() { i=0; until grep -q '"ready":true' "$1"; do
      i=$((i+1)); [ $i -gt 600 ] && { echo "never ready: $(cat "$2")"; exit 91; }; sleep 0.1; done; }
    "$@" >"$T/out1" 2>"$T/err1" & p=$!
    ready "$T/out1" "$T/err1"
    kill -9 $p; wait $p
    echo "stale mounts: $(grep -c " $TARGET " /proc/self/mountinfo)"
    "$@" >"$T/out2" 2>"$T/err2" & p=$!
    ready "$T/out2" "$T/err2"
    chroot "$TARGET" /bin/sh -c 'cat /etc/msg'
    grep -o 'detached the stale rootfs' "$T/err2"
    kill -TERM $p; wait $p; echo "second agent exit $?"
    echo '--- mountinfo'; cat /proc/self/mountinfo)SH";
  std::vector<std::string> argv = {
      "unshare", "-m",          "--propagation", "private",      "/bin/sh",    "-c",       script,
      "sh",      GuestBinary(), "mount",         "--descriptor", tmp / "desc", "--target", target};
  for (const auto& f : CommonFlags(state)) argv.push_back(f);
  auto r = RunCommand(argv, std::chrono::minutes(3), {"T=" + tmp.path(), "TARGET=" + target});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("stale mounts: 1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("layer 3\ndetached the stale rootfs\nsecond agent exit 0"),
            std::string::npos)
      << r.output;
  std::string mi = r.output.substr(r.output.find("--- mountinfo"));
  EXPECT_FALSE(Mentions(mi, state) || Mentions(mi, target)) << mi;
}

TEST_F(GuestAgentTest, MalformedDescriptorsFailBeforeMountingAnything) {
  TempDir tmp("guest-bad");
  std::string state = tmp / "state", target = tmp / "rootfs";
  auto flags = CommonFlags(state);
  auto mount = [&](const std::string& text) {
    std::vector<std::string> args = {"mount", "--descriptor", "-", "--target", target};
    args.insert(args.end(), flags.begin(), flags.end());
    return RunToCompletion(args, text);
  };
  struct Case {
    std::string input, want;
  };
  std::string good = labels::EncodeKataVolumeJson(Descriptor("v1"));
  std::string wrong_type = good;
  wrong_type.replace(wrong_type.find("image_guest_pull"), 16, "direct_block");
  for (const Case& c : {Case{"", "empty input"}, Case{"not a descriptor at all", "neither"},
                        Case{"bm90IGpzb24=", "not valid JSON"},
                        Case{"{\"volume_type\":\"image_guest_pull\"}", "missing field source"},
                        Case{wrong_type, "volume_type is \"direct_block\""},
                        Case{"x,io.katacontainers.volume=!!!!,y", "invalid base64"}}) {
    auto o = mount(c.input);
    EXPECT_EQ(o.exit_code, 2) << c.input << "\n" << o.output;
    EXPECT_NE(o.output.find(c.want), std::string::npos) << c.input << "\n" << o.output;
    EXPECT_NE(o.output.find("descriptor"), std::string::npos) << o.output;
    EXPECT_FALSE(Mentions(o.mountinfo, state) || Mentions(o.mountinfo, target)) << o.mountinfo;
  }
  EXPECT_FALSE(PathExists(state));  // rejected before the agent touched anything
  auto missing = RunToCompletion({"mount", "--descriptor", tmp / "nope", "--target", target});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.output.find(tmp / "nope"), std::string::npos) << missing.output;
}

TEST_F(GuestAgentTest, UnreachableRegistryFailsClearlyAndLeavesNothingMounted) {
  TempDir tmp("guest-down");
  std::string state = tmp / "state", target = tmp / "rootfs";
  std::vector<std::string> args = {"mount", "--descriptor", "-", "--target", target};
  for (const auto& f : CommonFlags(state)) args.push_back(f);
  registry_->Stop();
  struct Restart {
    Registry* r;
    ~Restart() { r->Start(); }
  } restart{registry_};
  auto o = RunToCompletion(args, mounts_->at("v1"));
  EXPECT_EQ(o.exit_code, 1) << o.output;
  EXPECT_NE(o.output.find("layer 1/3"), std::string::npos) << o.output;
  EXPECT_NE(o.output.find("fetching the layer from " + registry_->host()), std::string::npos)
      << o.output;
  EXPECT_NE(o.output.find("\"ready\":false"), std::string::npos) << o.output;
  EXPECT_FALSE(Mentions(o.mountinfo, state) || Mentions(o.mountinfo, target)) << o.mountinfo;
  EXPECT_FALSE(PathExists(state + "/layers/0"));
}

TEST_F(GuestAgentTest, MissingLayerAfterTwoMountedUnwindsEverything) {
  TempDir tmp("guest-unwind");
  std::string state = tmp / "state", target = tmp / "rootfs";
  labels::ProxyDescriptor bad = Descriptor("v1");
  bad.layers[2].digest = Sha256Digest("no such layer");
  std::vector<std::string> args = {"mount", "--descriptor", "-", "--target", target};
  for (const auto& f : CommonFlags(state)) args.push_back(f);
  auto o = RunToCompletion(args, labels::EncodeKataVolumeJson(bad));
  EXPECT_EQ(o.exit_code, 1) << o.output;
  EXPECT_NE(o.output.find("layer 3/3 (" + bad.layers[2].digest.substr(0, 19) + ")"),
            std::string::npos)
      << o.output;
  // The two lower layers were mounted (lazily) before the failure...
  EXPECT_NE(o.output.find("lazy layer mounted"), std::string::npos) << o.output;
  // ...and unmounted again.
  EXPECT_FALSE(Mentions(o.mountinfo, state) || Mentions(o.mountinfo, target)) << o.mountinfo;
}

// Un-indexed layers are fetched and built into (index-only) EROFS images several at a time, each
// with its uncompressed tar beside it: the rootfs equals the one built a layer at a time (and
// containerd's). A layer the registry lacks fails the mount naming that layer, with nothing left
// mounted and no partial files.
TEST_F(GuestAgentTest, ParallelErofsBuildsEqualSerialOnesAndFailCleanly) {
  TempDir tmp("guest-parallel");
  WriteFileAtomic(tmp / "desc", mounts_->at("v2"));
  struct Variant {
    std::string workers;
    bool full;
  };
  for (const Variant& v : {Variant{"1", false}, Variant{"4", false}, Variant{"2", true}}) {
    std::string name = v.workers + (v.full ? "-full" : "");
    std::string state = tmp / ("state-" + name), target = tmp / ("rootfs-" + name);
    std::vector<std::string> args = {"mount", "--descriptor",      tmp / "desc", "--target",
                                     target,  "--parallel-layers", v.workers};
    if (v.full) args.push_back("--full-images");
    for (const auto& f : CommonFlags(state)) args.push_back(f);
    Agent agent(args);
    nlohmann::json ready = agent.WaitLine();
    ASSERT_TRUE(ready.value("ready", false)) << ready.dump() << agent.Stderr();
    EXPECT_EQ(Modes(ready), (std::vector<std::string>(4, "erofs"))) << ready.dump();
    for (const auto& l : ready["layers"]) {
      EXPECT_GT(l["bytes_fetched"].get<uint64_t>(), 0u) << l.dump();
      EXPECT_TRUE(l["build_seconds"].is_number()) << l.dump();
      EXPECT_GE(l["seconds"].get<double>(), l["build_seconds"].get<double>()) << l.dump();
      if (v.full) {  // the data copied into the image
        EXPECT_FALSE(l.contains("blob")) << l.dump();
        EXPECT_TRUE(l["image"].get<std::string>().ends_with(".full.erofs")) << l.dump();
      } else {  // index-only: the image holds metadata, its uncompressed tar the file data
        EXPECT_TRUE(PathExists(l["blob"].get<std::string>())) << l.dump();
        EXPECT_LT(l["image_bytes"].get<uint64_t>(), l["blob_bytes"].get<uint64_t>()) << l.dump();
      }
    }
    auto diff = DiffTrees(native_->at("v2"), agent.Inside(target));
    EXPECT_TRUE(diff.empty()) << name << ": " << diff.size()
                              << " differences, first: " << diff.front();
    agent.Signal(SIGTERM);
    EXPECT_EQ(agent.Wait(std::chrono::seconds(30)), std::optional<int>(0)) << agent.Stderr();
  }

  labels::ProxyDescriptor bad = Descriptor("v2");
  bad.layers[1].digest = Sha256Digest("no such layer");
  std::string state = tmp / "state-bad", target = tmp / "rootfs-bad";
  std::vector<std::string> args = {"mount", "--descriptor",      "-", "--target",
                                   target,  "--parallel-layers", "3"};
  for (const auto& f : CommonFlags(state)) args.push_back(f);
  auto o = RunToCompletion(args, labels::EncodeKataVolumeJson(bad));
  EXPECT_EQ(o.exit_code, 1) << o.output;
  EXPECT_NE(o.output.find("layer 2/4 (" + bad.layers[1].digest.substr(0, 19) + ")"),
            std::string::npos)
      << o.output;
  EXPECT_NE(o.output.find(registry_->host()), std::string::npos) << o.output;
  EXPECT_FALSE(Mentions(o.mountinfo, state) || Mentions(o.mountinfo, target)) << o.mountinfo;
  for (const auto& e : std::filesystem::directory_iterator(state + "/images"))
    EXPECT_EQ(e.path().string().find(".partial"), std::string::npos) << e.path();
  EXPECT_FALSE(PathExists(state + "/images/" + bad.layers[1].digest.substr(7) + ".erofs"));
  EXPECT_FALSE(PathExists(state + "/images/" + bad.layers[1].digest.substr(7) + ".tar"));
}

TEST_F(GuestAgentTest, MissingKernelFeaturesAreNamed) {
  TempDir tmp("guest-kernel");
  std::string target = tmp / "rootfs";
  WriteFileAtomic(tmp / "no-overlay", "nodev\tproc\nnodev\tfuse\n\terofs\n");
  WriteFileAtomic(tmp / "no-erofs", "nodev\tproc\nnodev\toverlay\nnodev\tfuse\n");
  WriteFileAtomic(tmp / "nothing", "nodev\tproc\nnodev\toverlay\n");
  struct Case {
    std::string file, descriptor, want;
  };
  for (const Case& c : {Case{"no-overlay", "v1", "the kernel lacks overlay"},
                        Case{"no-erofs", "v2", "the kernel lacks erofs"},
                        Case{"nothing", "v1", "the kernel lacks both erofs and fuse"}}) {
    std::string state = tmp / ("state-" + c.file);
    std::vector<std::string> args = {"mount", "--descriptor",       "-",         "--target",
                                     target,  "--filesystems-file", tmp / c.file};
    for (const auto& f : CommonFlags(state)) args.push_back(f);
    auto o = RunToCompletion(args, mounts_->at(c.descriptor));
    EXPECT_EQ(o.exit_code, 1) << o.output;
    EXPECT_NE(o.output.find(c.want), std::string::npos) << c.file << "\n" << o.output;
    EXPECT_FALSE(Mentions(o.mountinfo, state) || Mentions(o.mountinfo, target)) << o.mountinfo;
    // Found out before any layer was downloaded.
    EXPECT_TRUE(!PathExists(state + "/images") || std::filesystem::is_empty(state + "/images"))
        << c.file;
  }
}

}  // namespace
}  // namespace lazysnap::testing

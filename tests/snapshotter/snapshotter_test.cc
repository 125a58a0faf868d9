// The snapshotter core against the real kernel: mounts it returns are mounted and used.
#include "snapshotter/snapshotter.h"

#include <gtest/gtest.h>
#include <sys/mount.h>

#include <atomic>
#include <filesystem>
#include <map>

#include "common/error.h"
#include "common/file_util.h"
#include "common/temp_dir.h"

namespace lazysnap::snapshotter {
namespace {

std::string JoinOptions(const std::vector<std::string>& opts) {
  std::string s;
  for (const auto& o : opts) {
    if (o == "rbind" || o == "rw") continue;
    s += (s.empty() ? "" : ",") + o;
  }
  return s;
}

// Mounts what the snapshotter returned, like containerd's mount package does, and unmounts on scope
// exit.
class ScopedMount {
 public:
  ScopedMount(const std::vector<Mount>& mounts, const std::string& target) : target_(target) {
    const Mount& m = mounts.at(0);
    MakeDirs(target);
    int rc;
    if (m.type == "bind") {
      rc = ::mount(m.source.c_str(), target.c_str(), nullptr, MS_BIND | MS_REC, nullptr);
      bool ro = std::find(m.options.begin(), m.options.end(), "ro") != m.options.end();
      if (rc == 0 && ro)
        rc = ::mount(nullptr, target.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr);
    } else {
      rc = ::mount(m.source.c_str(), target.c_str(), m.type.c_str(), 0,
                   JoinOptions(m.options).c_str());
    }
    if (rc != 0) ThrowErrno("mount " + m.type + " at " + target);
  }
  ~ScopedMount() { ::umount2(target_.c_str(), MNT_DETACH); }

 private:
  std::string target_;
};

class SnapshotterTest : public ::testing::Test {
 protected:
  TempDir tmp_{"sntest"};
  Logger log_{LogLevel::kWarn};
  std::unique_ptr<Snapshotter> sn_ = Open();

  std::unique_ptr<Snapshotter> Open() {
    return std::make_unique<Snapshotter>(SnapshotterOptions{.root = tmp_ / "root", .overlay = {}},
                                         log_);
  }
  void ExpectCode(ErrorCode code, const std::function<void()>& fn) {
    try {
      fn();
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), code) << e.what();
    }
  }
};

TEST_F(SnapshotterTest, LayersStackThroughRealOverlay) {
  auto m1 = sn_->Prepare("ns/1/extract-1", "", {});
  {
    ScopedMount mnt(m1, tmp_ / "mnt");
    WriteFileAtomic(tmp_ / "mnt/base", "layer1");
    WriteFileAtomic(tmp_ / "mnt/shadowed", "old");
  }
  sn_->Commit("ns/2/sha256:l1", "ns/1/extract-1", {{"containerd.io/snapshot.ref", "x"}});
  auto m2 = sn_->Prepare("ns/3/extract-2", "ns/2/sha256:l1", {});
  ASSERT_EQ(m2[0].type, "overlay");
  {
    ScopedMount mnt(m2, tmp_ / "mnt");
    EXPECT_EQ(ReadFile(tmp_ / "mnt/base"), "layer1");
    WriteFileAtomic(tmp_ / "mnt/shadowed", "new");
  }
  sn_->Commit("ns/4/sha256:l2", "ns/3/extract-2", {});
  auto view = sn_->View("ns/5/view", "ns/4/sha256:l2", {});
  ASSERT_EQ(view[0].type, "overlay");
  {
    ScopedMount mnt(view, tmp_ / "mnt");
    EXPECT_EQ(ReadFile(tmp_ / "mnt/base"), "layer1");
    EXPECT_EQ(ReadFile(tmp_ / "mnt/shadowed"), "new");
    EXPECT_THROW(WriteFileAtomic(tmp_ / "mnt/x", "y"), Error);  // read-only
  }
  auto info = sn_->Stat("ns/4/sha256:l2");
  EXPECT_EQ(info.kind, Kind::kCommitted);
  EXPECT_EQ(info.parent, "ns/2/sha256:l1");
  EXPECT_EQ(sn_->Stat("ns/2/sha256:l1").labels.at("containerd.io/snapshot.ref"), "x");
  EXPECT_EQ(sn_->Stat("ns/5/view").kind, Kind::kView);
}

TEST_F(SnapshotterTest, ViewOfOneParentIsReadOnlyBind) {
  sn_->Prepare("a", "", {});
  sn_->Commit("c", "a", {});
  auto v = sn_->View("v", "c", {});
  EXPECT_EQ(v[0].type, "bind");
  EXPECT_EQ(v[0].options[0], "ro");
  EXPECT_EQ(sn_->Mounts("v")[0].source, v[0].source);
}

TEST_F(SnapshotterTest, Errors) {
  sn_->Prepare("a", "", {});
  ExpectCode(ErrorCode::kAlreadyExists, [&] { sn_->Prepare("a", "", {}); });
  ExpectCode(ErrorCode::kNotFound, [&] { sn_->Prepare("b", "missing", {}); });
  ExpectCode(ErrorCode::kInvalidArgument,
             [&] { sn_->Prepare("b", "a", {}); });  // parent not committed
  ExpectCode(ErrorCode::kInvalidArgument, [&] { sn_->Prepare("", "", {}); });
  ExpectCode(ErrorCode::kNotFound, [&] { sn_->Stat("nope"); });
  ExpectCode(ErrorCode::kNotFound, [&] { sn_->Commit("c", "nope", {}); });
  sn_->Commit("c", "a", {});
  ExpectCode(ErrorCode::kFailedPrecondition, [&] { sn_->Commit("c2", "c", {}); });  // committed
  ExpectCode(ErrorCode::kFailedPrecondition, [&] { sn_->Mounts("c"); });
  sn_->Prepare("a2", "c", {});
  ExpectCode(ErrorCode::kAlreadyExists, [&] { sn_->Commit("c", "a2", {}); });
  ExpectCode(ErrorCode::kFailedPrecondition, [&] { sn_->Remove("c"); });  // has a child
  sn_->Remove("a2");
  sn_->Remove("c");
  ExpectCode(ErrorCode::kNotFound, [&] { sn_->Remove("c"); });
  // Nothing half-made: failed calls left no rows and no directories.
  int count = 0;
  sn_->List(FilterSet{}, [&](const Info&) { ++count; });
  EXPECT_EQ(count, 0);
  EXPECT_TRUE(std::filesystem::is_empty(tmp_ / "root/snapshots"));
}

TEST_F(SnapshotterTest, LabelValidation) {
  ExpectCode(ErrorCode::kInvalidArgument, [&] {
    sn_->Prepare("a", "", {{std::string(4000, 'k'), std::string(97, 'v')}});
  });
  sn_->Prepare("a", "", {{std::string(4000, 'k'), std::string(96, 'v')}});
  ExpectCode(ErrorCode::kInvalidArgument, [&] { sn_->Prepare("b", "", {{"", "v"}}); });
  Info upd;
  upd.name = "a";
  upd.labels = {{"x", std::string(5000, 'v')}};
  ExpectCode(ErrorCode::kInvalidArgument, [&] { sn_->Update(upd, {"labels.x"}); });
}

TEST_F(SnapshotterTest, UpdateHonoursFieldMasks) {
  sn_->Prepare("a", "", {{"keep", "1"}, {"drop", "2"}});
  Info upd;
  upd.name = "a";
  upd.labels = {{"new", "3"}, {"keep", "changed"}};
  auto got = sn_->Update(upd, {"labels.new", "labels.drop"});
  EXPECT_EQ(got.labels, (Labels{{"keep", "1"}, {"new", "3"}}));
  got = sn_->Update(upd, {"labels"});
  EXPECT_EQ(got.labels, (Labels{{"keep", "changed"}, {"new", "3"}}));
  got = sn_->Update(Info{.name = "a", .labels = {{"only", "x"}}}, {});
  EXPECT_EQ(got.labels, (Labels{{"only", "x"}}));
  ExpectCode(ErrorCode::kInvalidArgument, [&] { sn_->Update(upd, {"parent"}); });
  ExpectCode(ErrorCode::kNotFound, [&] { sn_->Update(Info{.name = "zz"}, {}); });
  EXPECT_GE(sn_->Stat("a").updated_ns, sn_->Stat("a").created_ns);
}

TEST_F(SnapshotterTest, ListFilters) {
  sn_->Prepare("a", "", {{"containerd.io/snapshot.ref", "sha256:1"}});
  sn_->Commit("c1", "a", {{"containerd.io/snapshot.ref", "sha256:1"}});
  sn_->Prepare("b", "c1", {{"containerd.io/snapshot.ref", "sha256:2"}});
  sn_->Commit("c2", "b", {{"containerd.io/snapshot.ref", "sha256:2"}});
  sn_->Prepare("work", "c2", {});
  auto names = [&](const std::vector<std::string>& f) {
    std::vector<std::string> out;
    sn_->List(FilterSet::Parse(f), [&](const Info& i) { out.push_back(i.name); });
    return out;
  };
  EXPECT_EQ(names({R"(labels."containerd.io/snapshot.ref"==sha256:2,parent==c1)"}),
            (std::vector<std::string>{"c2"}));
  EXPECT_EQ(names({R"(labels."containerd.io/snapshot.ref"==sha256:2,parent==c2)"}),
            (std::vector<std::string>{}));
  EXPECT_EQ(names({"kind==active"}), (std::vector<std::string>{"work"}));
  EXPECT_EQ(names({"kind==active", "name==c1"}).size(), 2u);
  EXPECT_EQ(names({}).size(), 3u);
}

TEST_F(SnapshotterTest, UsageCountsBytesAndInodes) {
  auto m = sn_->Prepare("a", "", {});
  std::string fs = m[0].source;
  WriteFileAtomic(fs + "/f", std::string(100000, 'x'));
  MakeDirs(fs + "/d");
  ::link((fs + "/f").c_str(), (fs + "/d/hard").c_str());
  auto u = sn_->GetUsage("a");
  EXPECT_EQ(u.inodes, 3);  // fs, f (+ its hard link), d
  EXPECT_GE(u.size, 100000);
  sn_->Commit("c", "a", {});
  auto uc = sn_->GetUsage("c");
  EXPECT_EQ(uc.inodes, u.inodes);
  EXPECT_EQ(uc.size, u.size);
}

TEST_F(SnapshotterTest, CleanupRemovesOnlyUnownedDirs) {
  auto m = sn_->Prepare("a", "", {});
  MakeDirs(tmp_ / "root/snapshots/999/fs");
  MakeDirs(tmp_ / "root/snapshots/new-55/fs");
  MakeDirs(tmp_ / "root/snapshots/rm-3/fs");
  MakeDirs(tmp_ / "root/snapshots/999/fs/mnt");
  ASSERT_EQ(::mount("tmpfs", (tmp_ / "root/snapshots/999/fs/mnt").c_str(), "tmpfs", 0, nullptr), 0);
  EXPECT_EQ(sn_->Cleanup(), 3);
  EXPECT_TRUE(PathExists(m[0].source));
  EXPECT_FALSE(PathExists(tmp_ / "root/snapshots/999"));
  EXPECT_EQ(sn_->Cleanup(), 0);
}

TEST_F(SnapshotterTest, ReopenKeepsEverything) {
  sn_->Prepare("a", "", {{"l", "v"}});
  sn_->Commit("c", "a", {{"l", "v"}});
  sn_->Prepare("b", "c", {});
  sn_.reset();
  sn_ = Open();
  EXPECT_EQ(sn_->Stat("c").labels.at("l"), "v");
  EXPECT_EQ(sn_->Stat("b").parent, "c");
  EXPECT_EQ(sn_->Mounts("b")[0].type, "overlay");
}

TEST_F(SnapshotterTest, SecondInstanceOnSameRootIsRefused) {
  try {
    Open();
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
    EXPECT_NE(std::string(e.what()).find("another lazysnapd"), std::string::npos);
  }
}

TEST_F(SnapshotterTest, CorruptedDatabaseIsAClearError) {
  sn_->Prepare("a", "", {});
  sn_.reset();
  std::filesystem::remove(tmp_ / "root/metadata.db-wal");
  std::filesystem::remove(tmp_ / "root/metadata.db-shm");
  WriteFileAtomic(tmp_ / "root/metadata.db", std::string(8192, 'G'));
  try {
    Open();
    FAIL() << "opened a garbage database";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << e.what();
    EXPECT_NE(std::string(e.what()).find("metadata.db"), std::string::npos);
  }
  // The damaged file is left in place for the operator, not replaced by an empty one.
  EXPECT_EQ(ReadFile(tmp_ / "root/metadata.db"), std::string(8192, 'G'));
}

// The lazy-layer protocol with a planner whose mounts are plain files: a layer Prepare with
// snapshot.ref is planned lazy; Materialize fails while `mount_fails`.
class FakeLazyPlanner : public LayerPlanner {
 public:
  bool mount_fails = false;
  int materialized = 0;
  std::vector<std::string> released;

  LayerPlan Plan(const PrepareRequest& req) override {
    LayerPlan plan;
    auto ref = req.labels.find("containerd.io/snapshot.ref");
    if (ref == req.labels.end()) return plan;
    plan.mode = LayerMode::kLazy;
    plan.remote_name = ref->second;
    plan.remote_labels = req.labels;
    return plan;
  }
  void Materialize(const LayerPlan& plan, const std::string& fs_dir) override {
    ++materialized;
    if (mount_fails) throw Error(ErrorCode::kUnavailable, "lazysnap-fused is not running");
    WriteFileAtomic(fs_dir + "/served", plan.remote_name);
  }
  void Release(const std::string& fs_dir) noexcept override { released.push_back(fs_dir); }
};

uint64_t Get(const std::atomic<uint64_t>& v) {
  return v.load();
}

TEST_F(SnapshotterTest, LazyLayersFallBackToNativeWhenTheyCannotBeMountedAndAreCounted) {
  FakeLazyPlanner planner;
  sn_.reset();
  sn_ = std::make_unique<Snapshotter>(
      SnapshotterOptions{.root = tmp_ / "root", .overlay = {}, .planner = &planner}, log_);
  const SnapshotterCounters& c = sn_->counters();
  auto idx = [](LayerMode m) { return static_cast<size_t>(m); };

  // lazysnap-fused down: the layer is unpacked natively and nothing of the lazy attempt is left.
  planner.mount_fails = true;
  auto m = sn_->Prepare("ns/1/extract-1", "", {{"containerd.io/snapshot.ref", "chain-1"}});
  EXPECT_EQ(m.at(0).type, "bind");
  EXPECT_EQ(planner.released.size(), 1u);
  ExpectCode(ErrorCode::kNotFound, [&] { sn_->Stat("chain-1"); });
  EXPECT_EQ(sn_->Stat("ns/1/extract-1").kind, Kind::kActive);
  EXPECT_EQ(Get(c.lazy_fallbacks), 1u);
  EXPECT_EQ(Get(c.layer_prepares[idx(LayerMode::kNative)]), 1u);
  EXPECT_EQ(Get(c.layer_prepares[idx(LayerMode::kLazy)]), 0u);
  int dirs = 0;
  for (const auto& e : std::filesystem::directory_iterator(tmp_ / "root/snapshots")) {
    (void)e;
    ++dirs;
  }
  EXPECT_EQ(dirs, 1) << "the failed lazy layer's directory was left";
  sn_->Remove("ns/1/extract-1");

  // Mounted: a remote snapshot (ALREADY_EXISTS), then reused by a second pull.
  planner.mount_fails = false;
  ExpectCode(ErrorCode::kAlreadyExists, [&] {
    sn_->Prepare("ns/2/extract-1", "", {{"containerd.io/snapshot.ref", "chain-1"}});
  });
  ExpectCode(ErrorCode::kAlreadyExists, [&] {
    sn_->Prepare("ns/3/extract-1", "", {{"containerd.io/snapshot.ref", "chain-1"}});
  });
  EXPECT_EQ(Get(c.layer_prepares[idx(LayerMode::kLazy)]), 2u);
  EXPECT_EQ(Get(c.remote_reused), 1u);
  EXPECT_EQ(planner.materialized, 2);

  // A container on it: the layer's fs dir holds no live mount (a plain dir here), so it is
  // mounted again before the overlay is returned; if that fails, Mounts fails rather than
  // stacking a container on an empty lower dir.
  auto top = sn_->Prepare("ns/4/container", "chain-1", {});
  EXPECT_EQ(top.at(0).type, "overlay");
  EXPECT_EQ(Get(c.lazy_remounts), 1u);
  planner.mount_fails = true;
  ExpectCode(ErrorCode::kUnavailable, [&] { sn_->Mounts("ns/4/container"); });
  EXPECT_EQ(Get(c.lazy_unavailable), 1u);

  std::map<std::pair<Kind, LayerMode>, int64_t> tally;
  for (const auto& t : sn_->Tally()) tally[{t.kind, t.mode}] = t.count;
  EXPECT_EQ(tally.size(), 2u);
  EXPECT_EQ((tally[{Kind::kCommitted, LayerMode::kLazy}]), 1);
  EXPECT_EQ((tally[{Kind::kActive, LayerMode::kNative}]), 1);
}

}  // namespace
}  // namespace lazysnap::snapshotter

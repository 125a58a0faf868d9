// The layer builder against the real tools and the real kernel: a tar corpus made by
// make_tar_corpus.py (every entry kind, long/unicode names, big ids, xattrs, edge sizes, 5,000
// entries, whiteouts, duplicates, no end-of-archive blocks), gzip'ed and zstd'ed, built as full
// and index-only images; fsck.erofs passes; the kernel's EROFS mount (mount(2) on the image file,
// `device=` the tar for index-only) shows exactly what `tar -x` gives; two layers stack under
// overlayfs like `tar -x` of both with whiteouts applied. Hostile layers fail cleanly.
#include "erofs/layer_builder.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "common/error.h"
#include "common/file_util.h"
#include "common/process.h"
#include "common/sha256.h"
#include "common/temp_dir.h"

namespace lazysnap::erofs {
namespace {

namespace fs = std::filesystem;

// A read-only kernel mount, unmounted on scope exit even when an assertion fails.
class Mount {
 public:
  Mount(const std::string& source, const std::string& target, const char* type, unsigned long flags,
        const std::string& data)
      : target_(target) {
    MakeDirs(target);
    if (::mount(source.c_str(), target.c_str(), type, flags, data.c_str()) != 0) {
      ThrowErrno("mount " + std::string(type) + " " + source + " on " + target + " (" + data + ")");
    }
  }
  ~Mount() { ::umount2(target_.c_str(), MNT_DETACH); }
  Mount(const Mount&) = delete;
  Mount& operator=(const Mount&) = delete;

 private:
  std::string target_;
};

std::map<std::string, std::string> Xattrs(const std::string& path) {
  std::map<std::string, std::string> out;
  char names[65536];
  ssize_t n = ::llistxattr(path.c_str(), names, sizeof(names));
  for (ssize_t i = 0; i < n;) {
    std::string name(names + i);
    i += static_cast<ssize_t>(name.size()) + 1;
    char value[65536];
    ssize_t v = ::lgetxattr(path.c_str(), name.c_str(), value, sizeof(value));
    if (v >= 0) out[name] = std::string(value, static_cast<size_t>(v));
  }
  return out;
}

struct Node {
  struct stat st {};
  std::string target;  // symlink
  std::string sha;     // regular file contents
  std::map<std::string, std::string> xattrs;
};

// Every path under root (relative, "" for root) with what a comparison needs.
std::map<std::string, Node> Walk(const std::string& root) {
  std::map<std::string, Node> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    std::string p = it->path().string();
    Node n;
    if (::lstat(p.c_str(), &n.st) != 0) ThrowErrno("lstat " + p);
    if (S_ISLNK(n.st.st_mode)) n.target = fs::read_symlink(p).string();
    if (S_ISREG(n.st.st_mode)) n.sha = Sha256Hex(ReadFile(p));
    n.xattrs = Xattrs(p);
    // Not fs::relative: it resolves symlinks (etc/link would become etc/hostname).
    out[p.substr(root.size() + 1)] = n;
  }
  return out;
}

// `tar -x` of a layer with OCI whiteouts turned into what overlayfs expects, which is what the
// image must show: `.wh.X` -> X as a 0:0 character device, `.wh..wh..opq` -> the directory's
// trusted.overlay.opaque = "y".
std::map<std::string, Node> ExpectedTree(const std::string& tar, const std::string& dir,
                                         std::set<std::string>* explicit_paths) {
  MakeDirs(dir);
  RunCommandOrThrow(
      {"tar", "-xpf", tar, "-C", dir, "--xattrs", "--xattrs-include=*", "--numeric-owner"});
  auto list = RunCommandOrThrow({"tar", "-tf", tar, "--quoting-style=literal"});
  size_t start = 0;
  while (start < list.size()) {
    size_t end = list.find('\n', start);
    std::string name = list.substr(start, end - start);
    while (!name.empty() && name.back() == '/') name.pop_back();
    if (!name.empty()) explicit_paths->insert(name);
    start = end == std::string::npos ? list.size() : end + 1;
  }
  auto tree = Walk(dir);
  std::map<std::string, Node> out;
  for (auto& [path, node] : tree) {
    fs::path p(path);
    std::string base = p.filename().string();
    std::string parent = p.parent_path().string();
    if (base == ".wh..wh..opq") {
      out[parent].xattrs["trusted.overlay.opaque"] = "y";
      continue;
    }
    if (base.starts_with(".wh.")) {
      // mkfs --aufs also marks a directory holding whiteouts with an empty overlay origin.
      out[parent].xattrs["trusted.overlay.origin"] = "";
      std::string victim = (parent.empty() ? "" : parent + "/") + base.substr(4);
      Node w;
      w.st.st_mode = S_IFCHR;
      w.st.st_rdev = makedev(0, 0);
      out[victim] = w;
      explicit_paths->insert(victim);
      continue;
    }
    auto& slot = out[path];
    auto kept_xattrs = slot.xattrs;  // an opaque marker seen before its directory
    slot = node;
    for (auto& [k, v] : kept_xattrs) slot.xattrs[k] = v;
  }
  return out;
}

// Compares the mounted image with the expected tree; returns a list of differences.
std::string Diff(const std::map<std::string, Node>& want, const std::map<std::string, Node>& got,
                 const std::set<std::string>& explicit_paths) {
  std::string out;
  auto bad = [&](const std::string& path, const std::string& what) {
    if (out.size() < 4000) out += path + ": " + what + "\n";
  };
  for (const auto& [path, w] : want) {
    auto it = got.find(path);
    if (it == got.end()) {
      bad(path, "missing from the image");
      continue;
    }
    const Node& g = it->second;
    if ((w.st.st_mode & S_IFMT) != (g.st.st_mode & S_IFMT)) {
      bad(path,
          "type differs: " + std::to_string(w.st.st_mode) + " vs " + std::to_string(g.st.st_mode));
      continue;
    }
    if (S_ISCHR(w.st.st_mode) || S_ISBLK(w.st.st_mode)) {
      if (w.st.st_rdev != g.st.st_rdev) bad(path, "device numbers differ");
    }
    bool whiteout = S_ISCHR(w.st.st_mode) && w.st.st_rdev == makedev(0, 0) && w.st.st_nlink == 0;
    if (whiteout || !explicit_paths.count(path)) continue;  // implicit dirs: type only
    if ((w.st.st_mode & 07777) != (g.st.st_mode & 07777)) bad(path, "mode differs");
    if (w.st.st_uid != g.st.st_uid || w.st.st_gid != g.st.st_gid) bad(path, "owner differs");
    if (!S_ISDIR(w.st.st_mode) && w.st.st_size != g.st.st_size) bad(path, "size differs");
    if (w.st.st_mtim.tv_sec != g.st.st_mtim.tv_sec ||
        w.st.st_mtim.tv_nsec != g.st.st_mtim.tv_nsec) {
      bad(path, "mtime differs: " + std::to_string(w.st.st_mtim.tv_sec) + "." +
                    std::to_string(w.st.st_mtim.tv_nsec) + " vs " +
                    std::to_string(g.st.st_mtim.tv_sec) + "." +
                    std::to_string(g.st.st_mtim.tv_nsec));
    }
    if (w.sha != g.sha) bad(path, "contents differ");
    if (w.target != g.target) bad(path, "symlink target differs");
    if (w.xattrs != g.xattrs) bad(path, "xattrs differ");
  }
  for (const auto& [path, g] : got) {
    if (!want.count(path)) bad(path, "in the image only");
  }
  // Hardlink identity: paths sharing an inode in one tree share one in the other.
  std::map<std::pair<dev_t, ino_t>, std::set<std::string>> wl, gl;
  for (const auto& [p, n] : want)
    if (S_ISREG(n.st.st_mode) && n.st.st_nlink > 1) wl[{n.st.st_dev, n.st.st_ino}].insert(p);
  for (const auto& [p, n] : got)
    if (S_ISREG(n.st.st_mode) && n.st.st_nlink > 1) gl[{n.st.st_dev, n.st.st_ino}].insert(p);
  std::set<std::set<std::string>> wsets, gsets;
  for (auto& [k, v] : wl) wsets.insert(v);
  for (auto& [k, v] : gl) gsets.insert(v);
  if (wsets != gsets) bad("(hardlinks)", "link groups differ");
  return out;
}

class LayerBuilderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    corpus_ = new TempDir("erofs-corpus");
    RunCommandOrThrow({"python3", TESTS_EROFS_DIR "/make_tar_corpus.py", corpus_->path()});
    for (const char* t : {"kinds", "gnu", "noeof"}) {
      std::string tar = corpus_->path() + "/" + t + ".tar";
      RunCommandOrThrow({"sh", "-c", "gzip -9 -n -c " + tar + " > " + tar + ".gz"});
      RunCommandOrThrow({"zstd", "-q", "-f", tar, "-o", tar + ".zst"});
    }
  }
  static void TearDownTestSuite() { delete corpus_; }
  static std::string Tar(const std::string& name) { return corpus_->path() + "/" + name; }

  // Builds `layer`, checks fsck, mounts it, and compares with tar -x of `plain_tar`.
  void BuildMountCompare(const std::string& layer, const std::string& plain_tar, ImageMode mode,
                         const std::string& compression = "") {
    SCOPED_TRACE(layer + (mode == ImageMode::kIndexOnly ? " index-only" : " full") +
                 (compression.empty() ? "" : " -z" + compression));
    BuildOptions o;
    o.layer_path = layer;
    o.output_path = dir_ / "layer.erofs";
    o.mode = mode;
    o.compression = compression;
    if (mode == ImageMode::kIndexOnly) o.blob_path = dir_ / "layer.blob";
    uint64_t observed = 0;
    o.observer = [&](const char*, size_t n) {
      observed += n;
      return true;
    };
    BuildResult r = BuildLayerImage(o);
    std::string plain = ReadFile(plain_tar);
    EXPECT_EQ(r.diff_id, Sha256Digest(plain));
    EXPECT_EQ(observed, plain.size());
    EXPECT_GT(r.image_bytes, 0u);
    std::vector<std::string> fsck = {DefaultFsckPath()};
    std::string mount_data;
    if (mode == ImageMode::kIndexOnly) {
      EXPECT_EQ(ReadFile(o.blob_path), plain) << "the blob device is the uncompressed tar";
      fsck.push_back("--device=" + o.blob_path);
      mount_data = "device=" + o.blob_path;
    }
    fsck.push_back(o.output_path);
    auto f = RunCommand(fsck);
    EXPECT_EQ(f.exit_code, 0) << f.output;

    std::set<std::string> explicit_paths;
    std::string run = std::to_string(++runs_);
    auto want = ExpectedTree(plain_tar, dir_ / ("x" + run), &explicit_paths);
    Mount m(o.output_path, dir_ / ("mnt" + run), "erofs", MS_RDONLY, mount_data);
    auto got = Walk(dir_ / ("mnt" + run));
    EXPECT_EQ(Diff(want, got, explicit_paths), "");
    EXPECT_GE(got.size(), 3u);
  }

  static TempDir* corpus_;
  TempDir dir_{"erofs-build"};
  int runs_ = 0;
};

TempDir* LayerBuilderTest::corpus_ = nullptr;

TEST_F(LayerBuilderTest, FullImagesEqualTarExtraction) {
  BuildMountCompare(Tar("kinds.tar"), Tar("kinds.tar"), ImageMode::kFull);
  BuildMountCompare(Tar("gnu.tar.gz"), Tar("gnu.tar"), ImageMode::kFull);
}

TEST_F(LayerBuilderTest, IndexOnlyImagesEqualTarExtraction) {
  BuildMountCompare(Tar("kinds.tar.gz"), Tar("kinds.tar"), ImageMode::kIndexOnly);
  BuildMountCompare(Tar("gnu.tar.zst"), Tar("gnu.tar"), ImageMode::kIndexOnly);
}

TEST_F(LayerBuilderTest, CompressedFullImagesEqualTarExtraction) {
  BuildMountCompare(Tar("kinds.tar.zst"), Tar("kinds.tar"), ImageMode::kFull, "lz4hc");
  BuildMountCompare(Tar("kinds.tar.gz"), Tar("kinds.tar"), ImageMode::kFull, "zstd");
}

TEST_F(LayerBuilderTest, ATarWithoutEndOfArchiveBlocksBuilds) {
  BuildMountCompare(Tar("noeof.tar"), Tar("noeof.tar"), ImageMode::kFull);
  BuildMountCompare(Tar("noeof.tar.gz"), Tar("noeof.tar"), ImageMode::kIndexOnly);
}

// A rootfs-like layer of real files: busybox-static plus every file of installed packages
// (coreutils, libc6, bash, dpkg), as a distribution's base layer would hold them.
TEST_F(LayerBuilderTest, ARootfsOfInstalledPackagesEqualsTarExtraction) {
  std::string list = dir_ / "files.txt";
  // On a merged-/usr host bin, lib, ... are symlinks: list the real paths under usr/ only.
  RunCommandOrThrow({"sh", "-c",
                     "{ echo usr/bin/busybox; dpkg -L coreutils libc6 bash dpkg | sed 's|^/||' | "
                     "sort -u | while read -r f; do case \"$f\" in bin/*|sbin/*|lib/*|lib32/*|"
                     "lib64/*|libx32/*) continue;; esac; if [ -f \"/$f\" ] || [ -L \"/$f\" ]; "
                     "then echo \"$f\"; fi; done; } > " +
                         list});
  std::string tar = dir_ / "rootfs.tar";
  RunCommandOrThrow({"tar", "-cf", tar, "-C", "/", "--no-recursion", "-T", list, "--xattrs"},
                    std::chrono::minutes(5));
  RunCommandOrThrow({"sh", "-c", "gzip -1 -c " + tar + " > " + tar + ".gz"});
  BuildMountCompare(tar + ".gz", tar, ImageMode::kFull);
  BuildMountCompare(tar + ".gz", tar, ImageMode::kIndexOnly);
}

TEST_F(LayerBuilderTest, ImagesAreReproducible) {
  for (ImageMode mode : {ImageMode::kFull, ImageMode::kIndexOnly}) {
    std::string first;
    for (int i = 0; i < 2; ++i) {
      BuildOptions o;
      o.layer_path = Tar("kinds.tar.gz");
      o.output_path = dir_ / ("r" + std::to_string(i) + ".erofs");
      o.mode = mode;
      if (mode == ImageMode::kIndexOnly) o.blob_path = dir_ / ("r" + std::to_string(i) + ".blob");
      BuildLayerImage(o);
      std::string bytes = ReadFile(o.output_path);
      if (i == 0) first = bytes;
      EXPECT_EQ(Sha256Hex(bytes), Sha256Hex(first)) << "same layer, different image bytes";
    }
  }
}

TEST_F(LayerBuilderTest, LayersStackUnderOverlayfsLikeTarWithWhiteoutsApplied) {
  std::map<std::string, std::string> images;
  for (const char* l : {"lower", "upper"}) {
    BuildOptions o;
    o.layer_path = Tar(std::string(l) + ".tar");
    o.output_path = dir_ / (std::string(l) + ".erofs");
    o.mode = ImageMode::kIndexOnly;
    o.blob_path = dir_ / (std::string(l) + ".blob");
    BuildLayerImage(o);
    images[l] = o.output_path;
  }
  Mount lower(images["lower"], dir_ / "lower", "erofs", MS_RDONLY, "device=" + dir_ / "lower.blob");
  Mount upper(images["upper"], dir_ / "upper", "erofs", MS_RDONLY, "device=" + dir_ / "upper.blob");
  Mount ovl("overlay", dir_ / "merged", "overlay", MS_RDONLY,
            "lowerdir=" + dir_ / "upper" + ":" + dir_ / "lower");
  // What `tar -x` of both layers in order gives after applying the whiteouts by hand.
  std::map<std::string, std::string> want = {
      {"a/keep", "lower keep"}, {"a/new", "upper new"}, {"b/fresh", "fresh"}, {"c", "upper c"}};
  std::map<std::string, std::string> got;
  for (auto& e : fs::recursive_directory_iterator(dir_ / "merged")) {
    if (e.is_regular_file())
      got[e.path().string().substr((dir_ / "merged").size() + 1)] = ReadFile(e.path());
  }
  EXPECT_EQ(got, want);
}

TEST_F(LayerBuilderTest, HostileLayersFailCleanlyAndLeaveNothing) {
  std::string good = ReadFile(Tar("kinds.tar.gz"));
  struct Case {
    std::string name, bytes, expect;
  };
  std::string tar = ReadFile(Tar("gnu.tar"));
  std::string absurd = tar;
  // The first header's size field claims 64 GiB of data that never comes.
  std::memcpy(&absurd[124], "00777777777\0", 12);
  unsigned sum = 0;
  std::memset(&absurd[148], ' ', 8);
  for (int i = 0; i < 512; ++i) sum += static_cast<unsigned char>(absurd[i]);
  std::snprintf(&absurd[148], 8, "%06o", sum);
  std::vector<Case> cases = {
      {"truncated.tar.gz", good.substr(0, good.size() / 2), "truncated gzip"},
      {"corrupt.tar.gz", good.substr(0, 100) + std::string(500, 'z') + good.substr(600),
       "corrupt gzip"},
      {"garbage.tar", std::string(4096, 'G'), "mkfs.erofs failed"},
      {"absurd.tar", absurd, "mkfs.erofs failed"},
      {"trailing.tar.gz", good + "not gzip", "garbage after the gzip stream"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    WriteFileAtomic(dir_ / c.name, c.bytes);
    BuildOptions o;
    o.layer_path = dir_ / c.name;
    o.output_path = dir_ / "bad.erofs";
    o.mode = ImageMode::kIndexOnly;
    o.blob_path = dir_ / "bad.blob";
    try {
      BuildLayerImage(o);
      ADD_FAILURE() << "built an image from " << c.name;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos) << e.what();
    }
    EXPECT_FALSE(PathExists(o.output_path));
    EXPECT_FALSE(PathExists(o.output_path + ".partial"));
    EXPECT_FALSE(PathExists(o.blob_path));
    EXPECT_FALSE(PathExists(o.blob_path + ".partial"));
  }
  // A decompression bomb is cut off at the configured bound.
  BuildOptions o;
  o.layer_path = Tar("kinds.tar.gz");
  o.output_path = dir_ / "bomb.erofs";
  o.max_uncompressed = 1 << 20;
  try {
    BuildLayerImage(o);
    ADD_FAILURE() << "no bound";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kResourceExhausted) << e.what();
  }
}

TEST_F(LayerBuilderTest, DotDotPathsNeverEscapeTheImage) {
  // Entries that climb out of the layer: the image (if any) holds nothing outside its root.
  RunCommandOrThrow({"python3", "-c",
                     "import tarfile,io,sys\n"
                     "t=tarfile.open(sys.argv[1],'w')\n"
                     "for n in ['../escape','a/../../escape2','ok']:\n"
                     "  i=tarfile.TarInfo(n); d=b'x'; i.size=1; t.addfile(i,io.BytesIO(d))\n"
                     "t.close()\n",
                     dir_ / "dotdot.tar"});
  BuildOptions o;
  o.layer_path = dir_ / "dotdot.tar";
  o.output_path = dir_ / "dotdot.erofs";
  try {
    BuildLayerImage(o);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    return;  // refusing is fine too
  }
  Mount m(o.output_path, dir_ / "mnt", "erofs", MS_RDONLY, "");
  EXPECT_FALSE(PathExists(dir_ / "escape"));
  for (auto& e : fs::recursive_directory_iterator(dir_ / "mnt")) {
    EXPECT_EQ(e.path().string().find(".."), std::string::npos);
  }
}

}  // namespace
}  // namespace lazysnap::erofs

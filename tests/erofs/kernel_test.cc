// Images built from generated layers, mounted by the kernel (file-backed EROFS, overlayfs) and
// compared with `tar -x` of the same layers; the userspace Reader must agree with the kernel on
// every file. Needs root.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "common/error.h"
#include "common/file_util.h"
#include "common/sha256.h"
#include "common/temp_dir.h"
#include "erofs/layer_builder.h"
#include "erofs/reader.h"
#include "tests/erofs/tree.h"

namespace lazysnap::erofs {
namespace {

using testing::Diff;
using testing::Mount;
using testing::Node;
using testing::Sh;
using testing::Snapshot;

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += "  " + x + "\n";
  return s;
}

uint8_t DtOf(uint32_t mode) {
  return static_cast<uint8_t>(IFTODT(mode));
}

// The same view as Snapshot(), but through the userspace Reader.
void ReaderWalk(const Reader& r, uint64_t ino, const std::string& rel,
                std::map<std::string, Node>* out) {
  Attr a = r.GetAttr(ino);
  Node n;
  n.mode = a.mode;
  n.uid = a.uid;
  n.gid = a.gid;
  n.size = S_ISREG(a.mode) || S_ISLNK(a.mode) ? a.size : 0;
  n.mtime = a.mtime;
  n.mtime_nsec = a.mtime_nsec;
  n.rdev = a.rdev;
  n.ino = a.ino;
  n.nlink = S_ISDIR(a.mode) ? 0 : a.nlink;
  if (S_ISREG(a.mode)) n.content = Sha256Hex(r.Read(ino, 0, a.size + 10));
  if (S_ISLNK(a.mode)) n.content = r.ReadLink(ino);
  for (const auto& name : r.ListXattrs(ino)) n.xattrs[name] = r.GetXattr(ino, name).value();
  (*out)[rel] = n;
  if (!S_ISDIR(a.mode)) return;
  for (const DirEntry& e : r.ReadDir(ino)) {
    std::string child = rel.empty() ? e.name : rel + "/" + e.name;
    EXPECT_EQ(e.type, DtOf(r.GetAttr(e.ino).mode)) << child;
    EXPECT_EQ(r.Lookup(child), e.ino) << child;
    ReaderWalk(r, e.ino, child, out);
  }
}

// Reader vs kernel: same tree, attributes, data, xattrs, and st_ino == nid.
void ExpectReaderAgrees(const Reader& r, const std::map<std::string, Node>& kernel) {
  std::map<std::string, Node> mine;
  ReaderWalk(r, r.root_ino(), "", &mine);
  EXPECT_EQ(Join(Diff(kernel, mine)), "");
  for (const auto& [path, n] : kernel) {
    auto it = mine.find(path);
    if (it != mine.end()) {
      EXPECT_EQ(n.ino, it->second.ino) << path;
    }
  }
}

uint64_t FileSize(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

// MapRange of a whole file: contiguous, in order, inside the device, covering [0, size).
void ExpectMapCovers(const Reader& r, uint64_t ino, uint64_t device_size) {
  uint64_t size = r.GetAttr(ino).size;
  uint64_t next = 0;
  for (const Extent& e : r.MapRange(ino, 0, UINT64_MAX)) {
    EXPECT_EQ(e.file_offset, next);
    EXPECT_GT(e.length, 0u);
    next = e.file_offset + e.length;
    if (e.hole) continue;
    EXPECT_EQ(e.device, 0u);
    EXPECT_LE(e.offset + e.device_length, device_size);
    if (e.compressed) {
      EXPECT_LE(e.device_length, 1u << 20);
    } else {
      EXPECT_EQ(e.device_length, e.length);
    }
  }
  EXPECT_EQ(next, size);
}

class ErofsKernel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (geteuid() != 0) return;
    dir_ = new TempDir("erofs-kernel");
    for (const char* kind : {"corpus", "lower", "upper", "rootfs", "rootslash"})
      Sh(std::string("python3 " EROFS_TEST_DIR "/make_layer.py ") + kind + " " + *dir_ / kind +
         ".tar");
    Sh("gzip -n -k " + *dir_ / "corpus.tar" + " " + *dir_ / "rootfs.tar");
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root (mount)";
  }
  static std::string Layer(const std::string& name) { return *dir_ / name; }

  // tar -x as the reference: owners, modes, mtimes (ns), xattrs, devices. Directory times are
  // restored last: GNU tar otherwise bumps them when it creates delayed (absolute) symlinks.
  std::map<std::string, Node> Extract(const std::string& tar, const std::string& into) {
    MakeDirs(into);
    Sh("tar --delay-directory-restore --xattrs --xattrs-include='*' --numeric-owner -xpf " + tar +
       " -C " + into);
    return Snapshot(into);
  }

  void CheckLayer(const std::string& layer, ImageMode mode, DataCompression comp, bool reader) {
    std::string img = tmp_ / "img.erofs", blob = tmp_ / "blob.tar";
    BuildOptions o;
    o.mode = mode;
    o.compression = comp;
    o.blob_path = blob;
    BuildLayerFromFile(layer, img, o);
    std::string fsck =
        std::string(FSCK_EROFS) + (mode == ImageMode::kIndexOnly ? " --device=" + blob : "");
    Sh(fsck + " " + img + " >/dev/null");
    auto want = Extract(layer, tmp_ / "ref");
    MakeDirs(tmp_ / "mnt");
    Mount m(img, tmp_ / "mnt", "erofs", mode == ImageMode::kIndexOnly ? "device=" + blob : "");
    auto got = Snapshot(tmp_ / "mnt");
    EXPECT_EQ(Join(Diff(want, got)), "");
    if (reader) {
      std::vector<std::shared_ptr<const BlockSource>> devs;
      if (mode == ImageMode::kIndexOnly) devs.push_back(std::make_shared<FileBlockSource>(blob));
      auto r = Reader::Open(std::make_shared<FileBlockSource>(img), devs);
      ExpectReaderAgrees(*r, got);
    }
  }

  static TempDir* dir_;
  TempDir tmp_{"erofs-kernel-case"};
};
TempDir* ErofsKernel::dir_ = nullptr;

TEST_F(ErofsKernel, FullImageMatchesTarExtract) {
  CheckLayer(Layer("corpus.tar.gz"), ImageMode::kFull, DataCompression::kNone, true);
}

TEST_F(ErofsKernel, IndexOnlyImageMatchesTarExtract) {
  CheckLayer(Layer("corpus.tar.gz"), ImageMode::kIndexOnly, DataCompression::kNone, true);
}

TEST_F(ErofsKernel, Lz4ImageMatchesTarExtract) {
  CheckLayer(Layer("corpus.tar"), ImageMode::kFull, DataCompression::kLz4, true);
  // Compressed data map to physical clusters in the image that decode to whole extents.
  auto r = Reader::Open(std::make_shared<FileBlockSource>(tmp_ / "img.erofs"));
  uint64_t big = r->Lookup("/files/big");
  EXPECT_EQ(r->GetAttr(big).size, 3u * 1024 * 1024 + 123 + (1 << 20));
  EXPECT_EQ(r->Read(big, 3u * 1024 * 1024 + 100, 100),
            ReadFile(tmp_ / "ref/files/big").substr(3u * 1024 * 1024 + 100, 100));
  ExpectMapCovers(*r, big, FileSize(tmp_ / "img.erofs"));
  bool any_compressed = false;
  for (const Extent& e : r->MapRange(big, 0, UINT64_MAX)) any_compressed |= e.compressed;
  EXPECT_TRUE(any_compressed);
  auto one = r->MapRange(big, 3u * 1024 * 1024 + 100, 1);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_LE(one[0].file_offset, 3u * 1024 * 1024 + 100);
  EXPECT_GT(one[0].file_offset + one[0].length, 3u * 1024 * 1024 + 100);
  EXPECT_EQ(r->ReadLink(r->Lookup("/links/sym")), "../files/f4096");
}

// The root spelled "/" first and "//" last (umoci insert's layers): mkfs.erofs gets "." (it
// crashes on "/"), and the mounted tree, root attributes included, is what tar -x makes of it.
TEST_F(ErofsKernel, RootSlashLayerMatchesTarExtract) {
  CheckLayer(Layer("rootslash.tar"), ImageMode::kFull, DataCompression::kNone, true);
  Sh("rm -rf " + tmp_ / "ref" + " " + tmp_ / "mnt");
  CheckLayer(Layer("rootslash.tar"), ImageMode::kIndexOnly, DataCompression::kNone, true);
}

TEST_F(ErofsKernel, ZstdImageFromGzipLayerMatchesTarExtract) {
  CheckLayer(Layer("corpus.tar.gz"), ImageMode::kFull, DataCompression::kZstd, true);
}

// mkfs.erofs compression layouts beyond what BuildLayer uses: big pclusters, legacy (full)
// indexes, larger zstd clusters. The reader must read every file exactly as the kernel does; for
// ztailpacking and fragments it must refuse clearly (kFailedPrecondition), never misread.
TEST_F(ErofsKernel, CompressedLayoutsReadLikeTheKernel) {
  struct Variant {
    std::string opts;
    bool supported;
  };
  const Variant variants[] = {
      {"-zlz4hc -C65536", true},         {"-zlz4 -Elegacy-compress", true},
      {"-zzstd -C16384", true},          {"-zlz4hc,level=1 -C16384 -Elegacy-compress", true},
      {"-zlz4hc -Eztailpacking", false}, {"-zlz4hc -Eall-fragments", false}};
  std::string tar = tmp_ / "corpus-end.tar";
  Sh("cat " + Layer("corpus.tar") + " /dev/null > " + tar + " && head -c 1024 /dev/zero >> " + tar);
  MakeDirs(tmp_ / "mnt");
  for (const Variant& v : variants) {
    SCOPED_TRACE(v.opts);
    std::string img = tmp_ / "v.erofs";
    Sh("rm -f " + img + " && " + std::string(MKFS_EROFS) + " --tar=f -b4096 --quiet " + v.opts +
       " " + img + " < " + tar);
    Mount m(img, tmp_ / "mnt", "erofs", "");
    auto kernel = Snapshot(tmp_ / "mnt");
    auto r = Reader::Open(std::make_shared<FileBlockSource>(img));
    if (v.supported) {
      ExpectReaderAgrees(*r, kernel);
      for (const char* path : {"/files/big", "/files/f65537", "/files/f4097", "/links/hard"})
        ExpectMapCovers(*r, r->Lookup(path), FileSize(img));
      continue;
    }
    int refused = 0;
    for (const auto& [path, n] : kernel) {
      if (!S_ISREG(n.mode) || n.size == 0) continue;
      uint64_t ino = r->Lookup(path);
      try {
        EXPECT_EQ(Sha256Hex(r->Read(ino, 0, n.size)), n.content) << path;
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::kFailedPrecondition) << path << ": " << e.what();
        ++refused;
      }
    }
    EXPECT_GT(refused, 0);
  }
}

// Directories a layer only implies get 0755 like tar -x / containerd give them (mkfs.erofs
// alone would make them, and the container root, 0777); declared ones keep their mode.
TEST_F(ErofsKernel, ImpliedDirectoriesAre0755) {
  std::string layer = tmp_ / "implicit.tar";
  Sh("python3 " EROFS_TEST_DIR "/make_layer.py implicit " + layer);
  for (ImageMode mode : {ImageMode::kFull, ImageMode::kIndexOnly}) {
    BuildOptions o;
    o.mode = mode;
    o.blob_path = tmp_ / "implicit.blob";
    BuildLayerFromFile(layer, tmp_ / "implicit.erofs", o);
    Sh(std::string(FSCK_EROFS) + (mode == ImageMode::kIndexOnly ? " --device=" + o.blob_path : "") +
       " " + tmp_ / "implicit.erofs >/dev/null");
    MakeDirs(tmp_ / "mnt");
    Mount m(tmp_ / "implicit.erofs", tmp_ / "mnt", "erofs",
            mode == ImageMode::kIndexOnly ? "device=" + o.blob_path : "");
    auto got = Snapshot(tmp_ / "mnt");
    auto perm = [&](const std::string& p) { return got.at(p).mode & 07777; };
    EXPECT_EQ(perm(""), 0755u);
    EXPECT_EQ(perm("abs"), 0755u);
    EXPECT_EQ(perm("explicit"), 0700u);
    EXPECT_EQ(perm("explicit/sub"), 0755u);
    EXPECT_EQ(perm("wide"), 0777u);
    EXPECT_EQ(perm("abs/file"), 0644u);
  }
}

TEST_F(ErofsKernel, RootfsLayerMatchesAndRuns) {
  CheckLayer(Layer("rootfs.tar.gz"), ImageMode::kIndexOnly, DataCompression::kNone, true);
  std::string img = tmp_ / "rootfs.erofs";
  BuildLayerFromFile(Layer("rootfs.tar.gz"), img, {});
  MakeDirs(tmp_ / "root");
  Mount m(img, tmp_ / "root", "erofs", "");
  EXPECT_EQ(Sh("chroot " + tmp_ / "root" + " /bin/sh -c 'echo hello from erofs | cat'"),
            "hello from erofs\n");
}

TEST_F(ErofsKernel, WhiteoutsAndOpaqueDirsStackUnderOverlay) {
  // Lower as a full image, upper index-only: the two kinds must stack.
  BuildLayerFromFile(Layer("lower.tar"), tmp_ / "lower.erofs", {});
  BuildOptions o;
  o.mode = ImageMode::kIndexOnly;
  o.blob_path = tmp_ / "upper.blob";
  BuildLayerFromFile(Layer("upper.tar"), tmp_ / "upper.erofs", o);

  for (const char* d : {"l", "u", "merged"}) MakeDirs(tmp_ / d);
  Mount lower(tmp_ / "lower.erofs", tmp_ / "l", "erofs", "");
  Mount upper(tmp_ / "upper.erofs", tmp_ / "u", "erofs", "device=" + o.blob_path);

  // The upper image itself: whiteouts are 0:0 char devices, opaque dirs carry the xattr.
  auto r = Reader::Open(std::make_shared<FileBlockSource>(tmp_ / "upper.erofs"),
                        {std::make_shared<FileBlockSource>(o.blob_path)});
  Attr wh = r->GetAttr(r->Lookup("etc/remove-me"));
  EXPECT_TRUE(S_ISCHR(wh.mode));
  EXPECT_EQ(wh.rdev, 0u);
  EXPECT_EQ(r->GetXattr(r->Lookup("opaque"), "trusted.overlay.opaque").value_or(""), "y");
  EXPECT_EQ(Join(Diff(Snapshot(tmp_ / "u"),
                      [&] {
                        std::map<std::string, Node> m;
                        ReaderWalk(*r, r->root_ino(), "", &m);
                        return m;
                      }())),
            "");

  Mount ovl("overlay", tmp_ / "merged", "overlay", "lowerdir=" + tmp_ / "u" + ":" + tmp_ / "l");
  auto got = Snapshot(tmp_ / "merged");

  // Reference: extract lower, apply upper's whiteouts, then extract the rest of upper.
  std::string ref = tmp_ / "ref";
  Extract(Layer("lower.tar"), ref);
  Sh("rm -rf " + ref + "/etc/remove-me " + ref + "/etc/sub " + ref + "/opaque/*");
  Sh("tar --numeric-owner -xpf " + Layer("upper.tar") + " --exclude='.wh.*' -C " + ref);
  auto want = Snapshot(ref);
  EXPECT_FALSE(want.count("etc/remove-me"));
  EXPECT_TRUE(want.count("opaque/visible"));
  // overlayfs reports its own st_ino for merged dirs; compare inode identity only for files.
  EXPECT_EQ(Join(Diff(want, got)), "");
}

}  // namespace
}  // namespace lazysnap::erofs

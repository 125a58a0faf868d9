// The root-name rewrite on the way to mkfs.erofs (erofs/tar_root_fix.h): headers whose path is the
// root spelled with slashes become ".", nothing else changes, however the stream is cut; and
// layers starting with "/" (umoci insert) build into images that fsck.erofs accepts.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/file_util.h"
#include "common/sha256.h"
#include "common/temp_dir.h"
#include "erofs/layer_builder.h"
#include "erofs/reader.h"
#include "erofs/tar_root_fix.h"
#include "erofs/tar_scanner.h"
#include "tests/erofs/tree.h"

namespace lazysnap::erofs {
namespace {

using testing::Sh;

void SetChecksum(std::string* h) {
  memset(h->data() + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char ch : *h) sum += ch;
  char buf[8];
  snprintf(buf, sizeof(buf), "%06o", sum);
  memcpy(h->data() + 148, buf, 7);  // "%06o\0" and the eighth byte stays ' ', as tar writes it
}

// A ustar header (GNU magic with `gnu`), checksum as GNU tar and Python write it.
std::string Header(const std::string& name, char type = '5', uint64_t size = 0,
                   const std::string& prefix = "", bool gnu = false) {
  std::string h(512, '\0');
  memcpy(h.data(), name.data(), std::min<size_t>(name.size(), 100));
  memcpy(h.data() + 100, type == '5' ? "0000755" : "0000644", 7);
  memcpy(h.data() + 108, "0000000", 7);
  memcpy(h.data() + 116, "0000000", 7);
  char buf[32];
  snprintf(buf, sizeof(buf), "%011llo", static_cast<unsigned long long>(size));
  memcpy(h.data() + 124, buf, 11);
  memcpy(h.data() + 136, "14533147620", 11);
  h[156] = type;
  memcpy(h.data() + 257,
         gnu ? "ustar  \0"
             : "ustar\0"
               "00",
         8);
  memcpy(h.data() + 345, prefix.data(), std::min<size_t>(prefix.size(), 155));
  SetChecksum(&h);
  return h;
}

std::string Padded(std::string data) {
  data.resize((data.size() + 511) / 512 * 512, '\0');
  return data;
}

std::string File(const std::string& name, const std::string& data) {
  return Header(name, '0', data.size()) + Padded(data);
}

// A PAX 'x' (or 'g') record block for the next entry.
std::string Pax(const std::map<std::string, std::string>& kv, char type = 'x') {
  std::string recs;
  for (const auto& [k, v] : kv) {
    std::string body = " " + k + "=" + v + "\n";
    size_t len = body.size() + 1;
    while (std::to_string(len).size() + body.size() != len) ++len;
    recs += std::to_string(len) + body;
  }
  return Header("PaxHeaders/x", type, recs.size()) + Padded(recs);
}

// A GNU 'L' (or 'K') long-name record.
std::string GnuLong(const std::string& name, char type = 'L') {
  return Header("././@LongLink", type, name.size() + 1, "", true) + Padded(name + '\0');
}

const std::string kEnd(1024, '\0');

std::string Fix(const std::string& in, const std::vector<size_t>& cuts, uint64_t* rewritten) {
  std::string out;
  TarRootFix fix(
      [&](const uint8_t* p, size_t n) { out.append(reinterpret_cast<const char*>(p), n); });
  size_t pos = 0;
  for (size_t i = 0; pos < in.size(); ++i) {
    size_t n = std::min(cuts[i % cuts.size()], in.size() - pos);
    fix.Feed(reinterpret_cast<const uint8_t*>(in.data()) + pos, n);
    pos += n;
  }
  fix.Flush();
  if (rewritten) *rewritten = fix.rewritten();
  return out;
}

std::string Fix(const std::string& in, uint64_t* rewritten = nullptr) {
  return Fix(in, {in.size() ? in.size() : 1}, rewritten);
}

void ExpectScans(const std::string& tar) {
  TarScanner s;
  EXPECT_NO_THROW({
    s.Feed(reinterpret_cast<const uint8_t*>(tar.data()), tar.size());
    s.Finish();
  });
}

TEST(ErofsTarRootFix, RootNamesBecomeDotWithAValidChecksum) {
  for (const char* name : {"/", "//", "./", "/./", "///././/", "./."}) {
    SCOPED_TRACE(name);
    for (bool gnu : {false, true}) {
      std::string in = Header(name, '5', 0, "", gnu) + File("a", "x") + kEnd;
      uint64_t n = 0;
      std::string out = Fix(in, &n);
      EXPECT_EQ(n, 1u);
      ASSERT_EQ(out.size(), in.size());
      // Byte for byte the header a tar writer makes for "." (name NUL-padded, "%06o\0 " sum).
      EXPECT_TRUE(out.substr(0, 512) == Header(".", '5', 0, "", gnu));
      EXPECT_EQ(out.substr(148, 8).substr(6), std::string("\0 ", 2));
      EXPECT_TRUE(out.substr(512) == in.substr(512));
      ExpectScans(out);
    }
  }
  // The ustar prefix is part of the path; it is cleared with the name.
  for (auto [prefix, name] : std::vector<std::pair<std::string, std::string>>{
           {"/", ""}, {"/", "/"}, {"./", "."}, {".", "/"}, {std::string(155, '/'), "/"}}) {
    SCOPED_TRACE(prefix + " + " + name);
    uint64_t n = 0;
    std::string out = Fix(Header(name, '5', 0, prefix) + kEnd, &n);
    EXPECT_EQ(n, 1u);
    EXPECT_TRUE(out.substr(0, 512) == Header(".", '5'));
  }
  // Any entry type: mkfs.erofs then refuses a non-directory root cleanly instead of crashing.
  uint64_t n = 0;
  EXPECT_TRUE(Fix(File("/", "data") + kEnd, &n) == File(".", "data") + kEnd);
  EXPECT_EQ(n, 1u);
}

TEST(ErofsTarRootFix, OtherNamesAreLeftAlone) {
  std::vector<std::string> blocks = {Header("."),
                                     Header("./a/"),
                                     Header("/a"),
                                     Header("a/"),
                                     Header("..."),
                                     Header("/.../"),
                                     Header("/", '5', 0, "usr"),  // "usr//"
                                     Header("x", '5', 0, "/"),    // "//x"
                                     File("./f", "data")};
  for (const std::string& b : blocks) {
    uint64_t n = 1;
    std::string in = b + kEnd;
    EXPECT_TRUE(Fix(in, &n) == in) << b.substr(0, 20);
    EXPECT_EQ(n, 0u);
  }
  // Without ustar magic (v7), bytes 345.. are not a prefix and stay as they were.
  std::string v7 = Header("/");
  memset(v7.data() + 257, 0, 8);
  v7.replace(345, 4, "junk");
  SetChecksum(&v7);
  std::string want = v7;
  memset(want.data(), 0, 100);
  want[0] = '.';
  SetChecksum(&want);
  EXPECT_TRUE(Fix(v7 + kEnd) == want + kEnd);
}

// A stream with root entries at several places, after data, PAX and GNU records, fed whole, byte
// by byte and in uneven pieces: the same output each time.
TEST(ErofsTarRootFix, HeadersStraddlingFeedsAreRewrittenAlike) {
  std::string lookalike = Header("/");  // data that would be rewritten if read as a header
  std::string in, want;
  auto add = [&](const std::string& bytes, const std::string& becomes = "") {
    in += bytes;
    want += becomes.empty() ? bytes : becomes;
  };
  add(Header("/"), Header("."));
  add(File("a", std::string(1000, 'a')));
  add(Header("//", '5', 0, "", true), Header(".", '5', 0, "", true));
  add(Pax({{"size", "1024"}, {"mtime", "1.5"}}) + Header("p", '0', 0) + lookalike + lookalike);
  add(GnuLong(std::string(300, 'g')) + File("short", "z"));
  add(Header("", '5', 0, "/"), Header("."));
  add(File("b", lookalike) + File("c", std::string(511, 'c')));
  add(Header("/./"), Header("."));
  add(kEnd);
  uint64_t n = 0;
  ASSERT_TRUE(Fix(in, &n) == want);
  EXPECT_EQ(n, 4u);
  ExpectScans(want);
  for (size_t piece : {1, 2, 7, 77, 148, 149, 156, 511, 512, 513, 1000, 4096})
    EXPECT_TRUE(Fix(in, {piece}, nullptr) == want) << "pieces of " << piece;
  std::mt19937 rng(7);
  for (int round = 0; round < 50; ++round) {
    std::vector<size_t> cuts;
    for (int i = 0; i < 40; ++i) cuts.push_back(rng() % 3 == 0 ? rng() % 4 : rng() % 1500);
    cuts.push_back(1);  // never an endless run of empty feeds
    EXPECT_TRUE(Fix(in, cuts, nullptr) == want) << "round " << round;
  }
}

TEST(ErofsTarRootFix, NormalTarsPassUnchanged) {
  TempDir tmp("erofs-rootfix");
  for (const char* kind : {"corpus", "lower", "upper", "implicit"}) {
    SCOPED_TRACE(kind);
    Sh(std::string("python3 " EROFS_TEST_DIR "/make_layer.py ") + kind + " " + tmp / "l.tar");
    std::string in = ReadFile(tmp / "l.tar");
    uint64_t n = 0;
    std::string out = Fix(in, {4093, 65536, 3}, &n);
    ASSERT_EQ(out.size(), in.size());
    if (in.compare(0, 2, "./") == 0) {
      // A "./" first entry (tar -C dir .) becomes "." in its name and checksum only: same image.
      EXPECT_EQ(n, 1u);
      EXPECT_EQ(out.substr(0, 2), std::string(".\0", 2));
      for (size_t i = 2; i < 512; ++i) {
        if (i >= 148 && i < 156) continue;  // the checksum
        ASSERT_EQ(out[i], in[i]) << "byte " << i;
      }
      ExpectScans(out.substr(0, 512) + kEnd);
      EXPECT_TRUE(out.substr(512) == in.substr(512));
    } else {
      EXPECT_EQ(n, 0u);
      EXPECT_TRUE(out == in);
    }
  }
  // Fed in one piece with nothing to rewrite (the implicit layer, last above), it goes out in one
  // piece: one write to mkfs.erofs.
  std::string in = ReadFile(tmp / "l.tar");
  int pieces = 0;
  TarRootFix fix([&](const uint8_t* p, size_t n) {
    EXPECT_EQ(p, reinterpret_cast<const uint8_t*>(in.data()));
    EXPECT_EQ(n, in.size());
    ++pieces;
  });
  fix.Feed(reinterpret_cast<const uint8_t*>(in.data()), in.size());
  fix.Flush();
  EXPECT_EQ(pieces, 1);
}

// 'x' / 'g' / 'L' / 'K' records and file data are data, whatever they look like; a PAX size=
// moves the next boundary, and a PAX path "/" is left alone (mkfs.erofs takes it as is).
TEST(ErofsTarRootFix, MetadataRecordsAndDataAreSkippedAsData) {
  std::string lookalike = Header("/");
  // 499 + "1025 comment=": the lookalike starts a block of the record's data.
  std::string hidden = std::string(499, 'f') + lookalike;
  std::string in = GnuLong(lookalike) + File("l", "x");
  in += GnuLong(lookalike, 'K') + Header("h", '2');
  in += Pax({{"comment", hidden}}, 'g') + Pax({{"comment", hidden}}) + File("c", "x");
  ASSERT_EQ(in.substr(in.size() - 2048, 512), lookalike);
  in += Pax({{"path", "/"}}) + Header("pax-root");
  in += Pax({{"size", "512"}}) + Header("sized", '0', 0) + lookalike;
  // Base-256 size (GNU): 512 bytes of data.
  std::string b256 = Header("b256", '0', 0);
  memset(b256.data() + 124, 0, 12);
  b256[124] = static_cast<char>(0x80);
  b256[134] = 0x02;
  SetChecksum(&b256);
  in += b256 + lookalike;
  std::string tail = Header("/") + kEnd;
  uint64_t n = 0;
  std::string out = Fix(in + tail, {333}, &n);
  EXPECT_EQ(n, 1u);
  EXPECT_TRUE(out == in + Header(".") + kEnd);
  ExpectScans(out);
}

TEST(ErofsTarRootFix, MalformedInputPassesThroughFromThere) {
  std::string bad_sum = Header("/");
  bad_sum[200] = 'x';
  std::string bad_size = Header("a", '0');
  bad_size.replace(124, 3, "9zz");
  SetChecksum(&bad_size);
  std::string bad_pax = Header("PaxHeaders/x", 'x', 10) + Padded("garbage!!\n");
  std::string huge_meta = Header("././@LongLink", 'L', TarScanner::kMaxMetaRecord + 1);
  for (const std::string& prefix : {bad_sum, bad_size, bad_pax, huge_meta, kEnd,
                                    std::string(512, 'G'), File("f", "x") + kEnd}) {
    std::string in = prefix + Header("/") + Header("//") + kEnd;
    uint64_t n = 0;
    std::string out = Fix(in, {100}, &n);
    EXPECT_TRUE(out == in);
    EXPECT_EQ(n, 0u);
  }
  // A stream cut inside a header: Flush gives the held-back bytes back unchanged.
  std::string cut = File("a", "x") + Header("/").substr(0, 300);
  EXPECT_TRUE(Fix(cut, {64}, nullptr) == cut);
  EXPECT_TRUE(IsTarRootPath("/") && IsTarRootPath("./.") && !IsTarRootPath(""));
  EXPECT_FALSE(IsTarRootPath("/..") || IsTarRootPath("..") || IsTarRootPath("/a/"));
}

// ---- through BuildLayer and the real mkfs.erofs ----

class ErofsRootSlashBuild : public ::testing::Test {
 protected:
  void SetUp() override {
    Sh("python3 " EROFS_TEST_DIR "/make_layer.py rootslash " + layer_);
    // mkfs.erofs behind a shell that keeps a copy of what it read.
    WriteFileAtomic(tmp_ / "mkfs.sh",
                    "#!/bin/sh\ncat > " + fed_ + " && exec " MKFS_EROFS " \"$@\" < " + fed_ + "\n",
                    0755);
  }
  TempDir tmp_{"erofs-rootslash"};
  std::string layer_ = tmp_ / "rootslash.tar";
  std::string fed_ = tmp_ / "fed.tar";
};

TEST_F(ErofsRootSlashBuild, FullAndIndexOnlyImagesPassFsck) {
  const std::string tar = ReadFile(layer_);
  ASSERT_EQ(tar.substr(0, 2), std::string("/\0", 2));
  Sh("gzip -n -c " + layer_ + " > " + tmp_ / "l.tar.gz");
  for (const std::string& input : {layer_, tmp_ / "l.tar.gz"}) {
    for (ImageMode mode : {ImageMode::kFull, ImageMode::kIndexOnly}) {
      SCOPED_TRACE(input + (mode == ImageMode::kFull ? " full" : " index-only"));
      BuildOptions o;
      o.mode = mode;
      o.blob_path = tmp_ / "blob.tar";
      std::string img = tmp_ / "img.erofs";
      BuildResult r = BuildLayerFromFile(input, img, o);
      EXPECT_EQ(r.tar_digest, Sha256Digest(tar));  // the digest is of the tar as it came
      EXPECT_EQ(r.entries, 10u);
      std::vector<std::shared_ptr<const BlockSource>> devs;
      std::string fsck = std::string(FSCK_EROFS);
      if (mode == ImageMode::kIndexOnly) {
        EXPECT_TRUE(ReadFile(o.blob_path) == tar);
        devs.push_back(std::make_shared<FileBlockSource>(o.blob_path));
        fsck += " --device=" + o.blob_path;
      }
      Sh(fsck + " --extract " + img + " >/dev/null");
      auto rd = Reader::Open(std::make_shared<FileBlockSource>(img), devs);
      Attr root = rd->GetAttr(rd->root_ino());
      EXPECT_EQ(root.mode, static_cast<uint32_t>(S_IFDIR | 0750));  // from the "/" entry
      EXPECT_EQ(root.mtime, 1700000005);
      EXPECT_EQ(rd->Read(rd->Lookup("etc/hello"), 0, 100), "hello\n");
      EXPECT_EQ(rd->Read(rd->Lookup("names/gnu-" + std::string(150, 'g')), 0, 100),
                "gnu long name\n");
      EXPECT_EQ(rd->Read(rd->Lookup("names/pax-" + std::string(200, 'p')), 0, 100),
                "pax long name\n");
      EXPECT_EQ(rd->GetAttr(rd->Lookup("big")).size, 70000u);
      EXPECT_EQ(rd->ReadLink(rd->Lookup("link")), "etc/hello");
    }
  }
}

// mkfs.erofs reads the layer with only the root headers ("/" first, "//" last) rewritten, in
// place: every other byte, and so every data offset of an index-only image, is unchanged.
TEST_F(ErofsRootSlashBuild, MkfsSeesOnlyTheRootHeadersRewritten) {
  const std::string tar = ReadFile(layer_);
  const size_t last = tar.size() - 1024 - 512;
  ASSERT_EQ(tar.substr(last, 3), std::string("//\0", 3));
  BuildOptions o;
  o.mode = ImageMode::kIndexOnly;
  o.blob_path = tmp_ / "blob.tar";
  o.mkfs_path = tmp_ / "mkfs.sh";
  BuildLayerFromFile(layer_, tmp_ / "i.erofs", o);
  std::string fed = ReadFile(fed_);
  ASSERT_EQ(fed.size(), tar.size());
  std::string want = tar;
  for (size_t at : {size_t{0}, last}) {
    std::string h = tar.substr(at, 512);
    memset(h.data(), 0, 100);
    h[0] = '.';
    SetChecksum(&h);
    want.replace(at, 512, h);
  }
  EXPECT_TRUE(fed == want);
  Sh(std::string(FSCK_EROFS) + " --device=" + o.blob_path + " " + tmp_ / "i.erofs >/dev/null");
  // A layer without root entries reaches mkfs.erofs byte for byte.
  Sh("python3 " EROFS_TEST_DIR "/make_layer.py implicit " + tmp_ / "implicit.tar");
  BuildLayerFromFile(tmp_ / "implicit.tar", tmp_ / "implicit.erofs", o);
  EXPECT_TRUE(ReadFile(fed_) == ReadFile(tmp_ / "implicit.tar"));
}

// What is not rewritten builds as it is: a PAX path "/" and a GNU long name of slashes.
TEST_F(ErofsRootSlashBuild, PaxAndGnuLongRootNamesBuildUnchanged) {
  std::string pax = Pax({{"path", "/"}}) + Header("root-by-pax") + File("a", "x") + kEnd;
  std::string gnu = GnuLong(std::string(150, '/')) + Header("root-by-gnu") + File("a", "x") + kEnd;
  for (const std::string* tar : {&pax, &gnu}) {
    WriteFileAtomic(tmp_ / "l.tar", *tar);
    BuildOptions o;
    o.mkfs_path = tmp_ / "mkfs.sh";
    BuildLayerFromFile(tmp_ / "l.tar", tmp_ / "l.erofs", o);
    EXPECT_TRUE(ReadFile(fed_) == *tar);
    Sh(std::string(FSCK_EROFS) + " " + tmp_ / "l.erofs >/dev/null");
    auto rd = Reader::Open(std::make_shared<FileBlockSource>(tmp_ / "l.erofs"));
    EXPECT_EQ(rd->GetAttr(rd->root_ino()).mode, static_cast<uint32_t>(S_IFDIR | 0755));
    EXPECT_EQ(rd->Read(rd->Lookup("a"), 0, 10), "x");
    std::vector<std::string> names;
    for (const DirEntry& e : rd->ReadDir(rd->root_ino())) names.push_back(e.name);
    EXPECT_EQ(names, std::vector<std::string>{"a"});
  }
}

}  // namespace
}  // namespace lazysnap::erofs

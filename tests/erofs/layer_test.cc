// Layer decoding, tar validation and image building (no mounts; see kernel_test.cc for those).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "common/error.h"
#include "common/file_util.h"
#include "common/sha256.h"
#include "common/temp_dir.h"
#include "common/unique_fd.h"
#include "erofs/layer_builder.h"
#include "erofs/layer_decoder.h"
#include "erofs/reader.h"
#include "erofs/tar_scanner.h"
#include "tests/erofs/tree.h"
#include "tests/support/small_disk.h"

namespace lazysnap::erofs {
namespace {

using testing::Sh;

std::string Decode(const std::string& data, LayerCompression* detected = nullptr) {
  TempDir tmp("erofs-dec");
  WriteFileAtomic(tmp / "in", data);
  UniqueFd fd(::open((tmp / "in").c_str(), O_RDONLY));
  std::string out;
  LayerCompression c = DecodeLayer(fd.get(), [&](const uint8_t* p, size_t n) {
    out.append(reinterpret_cast<const char*>(p), n);
  });
  if (detected) *detected = c;
  return out;
}

std::string Gzip(const std::string& data) {
  TempDir tmp("erofs-gz");
  WriteFileAtomic(tmp / "f", data);
  Sh("gzip -n " + tmp / "f");
  return ReadFile(tmp / "f.gz");
}

ErrorCode CodeOf(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "no lazysnap::Error thrown";
  return ErrorCode::kInternal;
}

TEST(ErofsLayerDecoder, DetectsAndInflatesGzipZstdAndPlain) {
  std::string data(300000, 'a');
  for (size_t i = 0; i < data.size(); i += 7) data[i] = static_cast<char>(i * 31);
  TempDir tmp("erofs-dec");
  WriteFileAtomic(tmp / "d", data);
  Sh("zstd -q -19 " + tmp / "d" + " -o " + tmp / "d.zst");
  LayerCompression c;
  EXPECT_EQ(Decode(data, &c), data);
  EXPECT_EQ(c, LayerCompression::kNone);
  EXPECT_EQ(Decode(Gzip(data), &c), data);
  EXPECT_EQ(c, LayerCompression::kGzip);
  EXPECT_EQ(Decode(ReadFile(tmp / "d.zst"), &c), data);
  EXPECT_EQ(c, LayerCompression::kZstd);
  // Concatenated gzip members (pigz, appended layers) are one stream.
  EXPECT_EQ(Decode(Gzip("first;") + Gzip("second")), "first;second");
  // Tiny inputs (shorter than the magic) are plain.
  EXPECT_EQ(Decode("x"), "x");
  EXPECT_EQ(Decode(""), "");
}

TEST(ErofsLayerDecoder, TruncatedOrCorruptStreamsAreDataLoss) {
  std::string gz = Gzip(std::string(100000, 'z') + "tail");
  EXPECT_EQ(CodeOf([&] { Decode(gz.substr(0, gz.size() - 9)); }), ErrorCode::kDataLoss);
  EXPECT_EQ(CodeOf([&] { Decode(gz.substr(0, 12)); }), ErrorCode::kDataLoss);
  std::string bad = gz;
  bad[bad.size() - 6] ^= 0x55;  // CRC32 in the trailer
  EXPECT_EQ(CodeOf([&] { Decode(bad); }), ErrorCode::kDataLoss);
  bad = gz;
  bad[bad.size() - 2] ^= 0x01;  // ISIZE in the trailer
  EXPECT_EQ(CodeOf([&] { Decode(bad); }), ErrorCode::kDataLoss);
  // Bytes after the last member that are not another member.
  EXPECT_EQ(CodeOf([&] { Decode(gz + std::string(16, '\0')); }), ErrorCode::kDataLoss);
  bad = gz;
  bad[10] = '\xff';  // first deflate block header: invalid block type
  EXPECT_EQ(CodeOf([&] { Decode(bad); }), ErrorCode::kDataLoss);
  std::string zst("\x28\xb5\x2f\xfd\x00\x00\x00\x00", 8);
  EXPECT_EQ(CodeOf([&] { Decode(zst); }), ErrorCode::kDataLoss);
}

// Checkpoints recorded while decoding let any uncompressed range be inflated from the nearest
// one, across gzip member boundaries too.
TEST(ErofsLayerDecoder, CheckpointsGiveRandomAccess) {
  std::string data;
  std::mt19937 rng(42);
  while (data.size() < 3 * 1024 * 1024) {
    if (rng() % 2) {
      for (int i = 0; i < 5000; ++i) data.push_back(static_cast<char>(rng()));
    } else {
      data += "line " + std::to_string(rng() % 1000) + " of some very compressible text\n";
    }
  }
  const size_t third = data.size() / 3;
  const std::string single = Gzip(data);
  const std::string multi =
      Gzip(data.substr(0, third)) + Gzip(data.substr(third, third)) + Gzip(data.substr(2 * third));
  for (const std::string* gz : {&single, &multi}) {
    TempDir tmp("erofs-cp");
    WriteFileAtomic(tmp / "l.gz", *gz);
    UniqueFd fd(::open((tmp / "l.gz").c_str(), O_RDONLY));
    std::vector<Checkpoint> cps;
    DecodeOptions o;
    o.checkpoint_span = 256 * 1024;
    o.on_checkpoint = [&](Checkpoint&& cp) { cps.push_back(std::move(cp)); };
    std::string out;
    DecodeLayer(
        fd.get(),
        [&](const uint8_t* p, size_t n) { out.append(reinterpret_cast<const char*>(p), n); }, o);
    ASSERT_TRUE(out == data);
    ASSERT_GE(cps.size(), data.size() / o.checkpoint_span - 1);
    EXPECT_EQ(cps[0].out, 0u);
    CompressedReader reader = [&](uint64_t off, uint8_t* buf, size_t len) -> size_t {
      if (off >= gz->size()) return 0;
      size_t n = std::min<size_t>(len, gz->size() - off);
      memcpy(buf, gz->data() + off, n);
      return n;
    };
    std::vector<std::pair<uint64_t, size_t>> reads = {{0, 100},           {1, 1},
                                                      {third - 5, 10},    {third, 300000},
                                                      {2 * third - 1, 2}, {data.size() - 10, 100}};
    for (int i = 0; i < 40; ++i) reads.emplace_back(rng() % data.size(), 1 + rng() % 70000);
    for (auto [off, len] : reads) {
      const Checkpoint* best = &cps[0];
      for (const auto& cp : cps)
        if (cp.out <= off) best = &cp;
      EXPECT_TRUE(InflateFromCheckpoint(*best, reader, off, len) == data.substr(off, len))
          << "offset " << off << " len " << len << " from checkpoint at " << best->out;
    }
    ASSERT_GT(cps.back().out, 0u);
    EXPECT_EQ(CodeOf([&] { InflateFromCheckpoint(cps.back(), reader, 0, 1); }),
              ErrorCode::kInvalidArgument);
    // A blob cut short after the checkpoint is data loss, not a short read.
    CompressedReader cut = [&](uint64_t off, uint8_t* buf, size_t len) -> size_t {
      uint64_t limit = cps[1].in + 1000;
      size_t n = off >= limit ? 0 : std::min<size_t>(len, limit - off);
      memcpy(buf, gz->data() + off, n);
      return n;
    };
    EXPECT_EQ(CodeOf([&] { InflateFromCheckpoint(cps[1], cut, cps[1].out, 1 << 20); }),
              ErrorCode::kDataLoss);
  }
}

// Frames of `sizes` bytes each (the rest in the last), with a skippable frame after the first.
std::string ZstdFrames(const std::string& data, const std::vector<size_t>& sizes) {
  std::string out;
  size_t pos = 0;
  for (size_t i = 0; pos < data.size(); ++i) {
    size_t n = i < sizes.size() ? std::min(sizes[i], data.size() - pos) : data.size() - pos;
    std::string f(ZSTD_compressBound(n), '\0');
    f.resize(ZSTD_compress(f.data(), f.size(), data.data() + pos, n, 3));
    out += f;
    if (i == 0) out += std::string("\x50\x2a\x4d\x18\x04\0\0\0skip", 12);
    pos += n;
  }
  return out;
}

TEST(ErofsLayerDecoder, ZstdFrameCheckpointsGiveRandomAccess) {
  std::string data;
  std::mt19937 rng(7);
  while (data.size() < 3 * 1024 * 1024) {
    if (rng() % 2) {
      for (int i = 0; i < 5000; ++i) data.push_back(static_cast<char>(rng()));
    } else {
      data += "line " + std::to_string(rng() % 1000) + " of some very compressible text\n";
    }
  }
  TempDir tmp("erofs-zcp");
  // Ours (frames of 100 KiB..1 MiB and a skippable frame) and pzstd's (its own frames, each
  // after a skippable frame holding its size).
  const std::string ours =
      ZstdFrames(data, {100 << 10, 100 << 10, 300 << 10, 1 << 20, 50 << 10, 700 << 10});
  WriteFileAtomic(tmp / "d", data);
  Sh("pzstd -q -1 -p 2 " + tmp / "d" + " -o " + tmp / "d.zst");
  const std::string pz = ReadFile(tmp / "d.zst");
  const std::string one = ZstdFrames(data, {});
  for (const std::string* zst : {&ours, &pz, &one}) {
    WriteFileAtomic(tmp / "l.zst", *zst);
    UniqueFd fd(::open((tmp / "l.zst").c_str(), O_RDONLY));
    std::vector<Checkpoint> cps;
    DecodeOptions o;
    o.checkpoint_span = 256 * 1024;
    o.on_checkpoint = [&](Checkpoint&& cp) { cps.push_back(std::move(cp)); };
    std::string out;
    EXPECT_EQ(
        DecodeLayer(
            fd.get(),
            [&](const uint8_t* p, size_t n) { out.append(reinterpret_cast<const char*>(p), n); },
            o),
        LayerCompression::kZstd);
    ASSERT_TRUE(out == data);
    ASSERT_FALSE(cps.empty());
    EXPECT_EQ(cps[0].in, 0u);
    EXPECT_EQ(cps[0].out, 0u);
    for (size_t i = 1; i < cps.size(); ++i) {
      EXPECT_GE(cps[i].out - cps[i - 1].out, o.checkpoint_span);
      EXPECT_GT(cps[i].in, cps[i - 1].in);
      EXPECT_LT(cps[i].out, data.size());  // none at the very end
      EXPECT_EQ(cps[i].bits, 0);
      EXPECT_TRUE(cps[i].window.empty());
    }
    if (zst == &one) {
      EXPECT_EQ(cps.size(), 1u);
    } else if (zst == &ours) {
      // Frames end at 100 and 200 KiB (too close), 500, 1524, 1574 (too close) and 2274 KiB.
      ASSERT_EQ(cps.size(), 4u);
      EXPECT_EQ(cps[1].out, 500u << 10);
      EXPECT_EQ(cps[2].out, 1524u << 10);
      EXPECT_EQ(cps[3].out, 2274u << 10);
    } else {
      EXPECT_GE(cps.size(), 2u);  // pzstd -1 cuts 2 MiB frames
    }
    CompressedReader reader = [&](uint64_t off, uint8_t* buf, size_t len) -> size_t {
      if (off >= zst->size()) return 0;
      size_t n = std::min<size_t>(len, zst->size() - off);
      memcpy(buf, zst->data() + off, n);
      return n;
    };
    for (size_t i = 0; i < cps.size(); ++i) {
      uint64_t end = i + 1 < cps.size() ? cps[i + 1].out : data.size();
      EXPECT_TRUE(DecodeZstdFrames(reader, cps[i].in, end - cps[i].out) ==
                  data.substr(cps[i].out, end - cps[i].out))
          << "span " << i << " at " << cps[i].out;
    }
    // Past the end: fewer bytes; a blob cut inside a frame: data loss. (Bytes changed in
    // transit are the fetcher's to catch: every chunk is checked against the index's digests.)
    EXPECT_EQ(DecodeZstdFrames(reader, cps.back().in, data.size()).size(),
              data.size() - cps.back().out);
    CompressedReader cut = [&](uint64_t off, uint8_t* buf, size_t len) -> size_t {
      uint64_t limit = cps.back().in + 1000;
      size_t n = off >= limit ? 0 : std::min<size_t>(len, limit - off);
      memcpy(buf, zst->data() + off, n);
      return n;
    };
    EXPECT_EQ(CodeOf([&] { DecodeZstdFrames(cut, cps.back().in, 1 << 20); }), ErrorCode::kDataLoss);
  }
}

// ---- tar scanner ----

// `size_field` (12 bytes, may be GNU base-256) overrides the octal size.
std::string TarHeader(const std::string& name, char type, uint64_t size,
                      const std::string& size_field = "") {
  std::string h(512, '\0');
  memcpy(h.data(), name.data(), std::min<size_t>(name.size(), 100));
  memcpy(h.data() + 100, "0000644", 7);
  memcpy(h.data() + 108, "0000000", 7);
  memcpy(h.data() + 116, "0000000", 7);
  char buf[32];
  snprintf(buf, sizeof(buf), "%011llo", static_cast<unsigned long long>(size));
  std::string sf = size_field.empty() ? std::string(buf) : size_field;
  memcpy(h.data() + 124, sf.data(), std::min<size_t>(sf.size(), 12));
  memcpy(h.data() + 136, "14533147620", 11);
  h[156] = type;
  memcpy(h.data() + 257,
         "ustar\0"
         "00",
         8);
  memset(h.data() + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char ch : h) sum += ch;
  snprintf(buf, sizeof(buf), "%06o", sum);
  memcpy(h.data() + 148, buf, 7);
  return h;
}

std::string TarFile(const std::string& name, const std::string& data) {
  std::string t = TarHeader(name, '0', data.size()) + data;
  t.resize((t.size() + 511) / 512 * 512, '\0');
  return t;
}

// Base-256 size field: 2^60 bytes.
const std::string kHugeSize("\x80\0\0\0\x10\0\0\0\0\0\0\0", 12);

void Scan(const std::string& tar) {
  TarScanner s;
  // Feed in odd pieces so headers straddle calls.
  for (size_t pos = 0; pos < tar.size(); pos += 77)
    s.Feed(reinterpret_cast<const uint8_t*>(tar.data()) + pos,
           std::min<size_t>(77, tar.size() - pos));
  s.Finish();
}

TEST(ErofsTarScanner, AcceptsWellFormedStreamsWithOrWithoutEndMarker) {
  std::string t = TarFile("a", "hello") + TarFile("dir/b", std::string(1000, 'b'));
  EXPECT_NO_THROW(Scan(t));
  EXPECT_NO_THROW(Scan(t + std::string(1024, '\0')));
  TarScanner s;
  s.Feed(reinterpret_cast<const uint8_t*>(t.data()), t.size());
  EXPECT_EQ(s.entries(), 2u);
  EXPECT_FALSE(s.saw_end_marker());
}

TEST(ErofsTarScanner, RejectsHostileHeaders) {
  EXPECT_EQ(CodeOf([] { Scan(TarFile("../evil", "x")); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf([] { Scan(TarFile("a/../../evil", "x")); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf([] { Scan(TarHeader("h", '1', 0).replace(157, 9, "../../etc", 9)); }),
            ErrorCode::kInvalidArgument);  // checksum breaks too: either way invalid
  std::string garbage(1024, 'G');
  EXPECT_EQ(CodeOf([&] { Scan(garbage); }), ErrorCode::kInvalidArgument);
  // An absurd (2^60 bytes) size is refused before any data is expected.
  EXPECT_EQ(CodeOf([] { Scan(TarHeader("big", '0', 0, kHugeSize)); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf([] { Scan(TarHeader("d", '5', 10) + std::string(512, 'x')); }),
            ErrorCode::kInvalidArgument);
  // Truncation: inside data, inside a header.
  EXPECT_EQ(CodeOf([] { Scan(TarFile("a", std::string(2000, 'a')).substr(0, 1500)); }),
            ErrorCode::kDataLoss);
  EXPECT_EQ(CodeOf([] { Scan(TarFile("a", "x") + std::string(100, 'h')); }), ErrorCode::kDataLoss);
  EXPECT_TRUE(EscapesRoot(".."));
  EXPECT_FALSE(EscapesRoot("./a/..b/c.."));
}

// A PAX record "size=N" followed by another metadata header instead of the entry it sizes:
// mkfs.erofs takes N as that header's size, so it parses as a header what this scanner reads as
// the record's data (here an entry named ../../x that the scanner never checked). Refused.
TEST(ErofsTarScanner, RejectsAPaxSizeFollowedByAnotherMetadataHeader) {
  auto padded = [](std::string t) {
    t.resize((t.size() + 511) / 512 * 512, '\0');
    return t;
  };
  auto pax = [&](const std::string& rec) {  // one "<len> key=value\n" record, len self-counting
    std::string body = " " + rec + "\n";
    size_t len = body.size() + 1;
    while (std::to_string(len).size() + body.size() != len) ++len;
    std::string r = std::to_string(len) + body;
    return padded(TarHeader("PaxHeaders/x", 'x', r.size()) + r);
  };
  std::string hidden = TarFile("../../x", "evil");  // 1024 bytes: header + one data block
  // A long-name record whose data is "name1" in its first block, then the hidden entry.
  std::string gnu_data = padded(std::string("name1") + '\0') + hidden;
  std::string gnu = TarHeader("././@LongLink", 'L', gnu_data.size()) + gnu_data;
  // A PAX comment whose value holds the hidden entry at data offset 512.
  std::string rec = "1537 comment=" + std::string(499, 'f') + hidden + "\n";
  ASSERT_EQ(rec.size(), 1537u);
  std::string x = padded(TarHeader("PaxHeaders/y", 'x', rec.size()) + rec);
  for (const std::string* meta : {&gnu, &x}) {
    // Without the size record first, each scans (the hidden entry is data).
    EXPECT_NO_THROW(Scan(*meta + TarFile("a", "x")));
    EXPECT_EQ(CodeOf([&] { Scan(pax("size=512") + *meta + TarFile("a", "x")); }),
              ErrorCode::kInvalidArgument);
  }
  // What tar writers do emit still scans: a size then its entry, metadata before a size.
  EXPECT_NO_THROW(Scan(pax("size=5") + TarHeader("sized", '0', 0) + std::string(512, 'd')));
  EXPECT_NO_THROW(Scan(gnu + pax("size=5") + TarHeader("n", '0', 0) + std::string(512, 'd')));
  EXPECT_NO_THROW(Scan(pax("path=p") + pax("mtime=1") + TarFile("q", "x")));
}

// ---- builder ----

class ErofsBuild : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("erofs-build");
    Sh("python3 " EROFS_TEST_DIR "/make_layer.py corpus " + *dir_ / "corpus.tar");
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string Corpus() { return *dir_ / "corpus.tar"; }
  TempDir tmp_{"erofs-build-case"};
  static TempDir* dir_;
};
TempDir* ErofsBuild::dir_ = nullptr;

TEST_F(ErofsBuild, FullImageIsReproducibleAndObserverSeesTheTar) {
  std::string tar = ReadFile(Corpus());
  Sh("gzip -n -c " + Corpus() + " > " + tmp_ / "l.tar.gz");
  Sha256 seen;
  uint64_t seen_bytes = 0;
  BuildOptions o;
  o.observer = [&](const uint8_t* p, size_t n) {
    seen.Update(p, n);
    seen_bytes += n;
  };
  std::vector<Checkpoint> cps;
  o.decode.checkpoint_span = 1 << 20;
  o.decode.on_checkpoint = [&](Checkpoint&& cp) { cps.push_back(std::move(cp)); };
  BuildResult a = BuildLayerFromFile(tmp_ / "l.tar.gz", tmp_ / "a.erofs", o);
  // The same pass left checkpoints that reach into the tar without inflating from the start.
  ASSERT_GE(cps.size(), 3u);
  std::string gz = ReadFile(tmp_ / "l.tar.gz");
  CompressedReader rd = [&](uint64_t off, uint8_t* buf, size_t len) -> size_t {
    size_t n = off >= gz.size() ? 0 : std::min<size_t>(len, gz.size() - off);
    memcpy(buf, gz.data() + off, n);
    return n;
  };
  const Checkpoint& cp = cps[cps.size() / 2];
  EXPECT_TRUE(InflateFromCheckpoint(cp, rd, cp.out + 12345, 4096) ==
              tar.substr(cp.out + 12345, 4096));
  EXPECT_EQ(a.input_compression, LayerCompression::kGzip);
  EXPECT_EQ(a.tar_size, tar.size());
  EXPECT_EQ(a.tar_digest, Sha256Digest(tar));
  EXPECT_EQ(seen.FinishDigest(), a.tar_digest);
  EXPECT_EQ(seen_bytes, tar.size());
  EXPECT_GT(a.entries, 5000u);
  EXPECT_FALSE(PathExists(tmp_ / "a.erofs.partial"));
  BuildResult b = BuildLayerFromFile(Corpus(), tmp_ / "b.erofs");
  EXPECT_EQ(b.input_compression, LayerCompression::kNone);
  EXPECT_EQ(a.image_size, b.image_size);
  EXPECT_TRUE(ReadFile(tmp_ / "a.erofs") == ReadFile(tmp_ / "b.erofs")) << "not reproducible";
  Sh(std::string(FSCK_EROFS) + " " + tmp_ / "a.erofs");
}

TEST_F(ErofsBuild, CompressedImagesAreReproducible) {
  for (auto c : {DataCompression::kLz4, DataCompression::kZstd}) {
    BuildOptions o;
    o.compression = c;
    BuildLayerFromFile(Corpus(), tmp_ / "c1.erofs", o);
    BuildLayerFromFile(Corpus(), tmp_ / "c2.erofs", o);
    EXPECT_TRUE(ReadFile(tmp_ / "c1.erofs") == ReadFile(tmp_ / "c2.erofs"));
    Sh(std::string(FSCK_EROFS) + " --extract " + tmp_ / "c1.erofs >/dev/null");
  }
}

TEST_F(ErofsBuild, IndexOnlyWritesTheTarAsBlob) {
  Sh("zstd -q -c " + Corpus() + " > " + tmp_ / "l.tar.zst");
  BuildOptions o;
  o.mode = ImageMode::kIndexOnly;
  o.blob_path = tmp_ / "blob.tar";
  BuildResult r = BuildLayerFromFile(tmp_ / "l.tar.zst", tmp_ / "i.erofs", o);
  EXPECT_EQ(r.input_compression, LayerCompression::kZstd);
  std::string blob = ReadFile(o.blob_path);
  EXPECT_TRUE(blob == ReadFile(Corpus()));
  EXPECT_EQ(r.tar_digest, Sha256Digest(blob));
  EXPECT_LT(r.image_size, blob.size() / 4);  // metadata only
  Sh(std::string(FSCK_EROFS) + " --device=" + o.blob_path + " " + tmp_ / "i.erofs >/dev/null");
  BuildLayerFromFile(tmp_ / "l.tar.zst", tmp_ / "i2.erofs", o);
  EXPECT_TRUE(ReadFile(tmp_ / "i.erofs") == ReadFile(tmp_ / "i2.erofs"));
  // The reader maps a file to the tar bytes holding it.
  auto reader = Reader::Open(std::make_shared<FileBlockSource>(tmp_ / "i.erofs"),
                             {std::make_shared<FileBlockSource>(o.blob_path)});
  ASSERT_EQ(reader->super().devices.size(), 1u);
  uint64_t ino = reader->Lookup("/files/f65537");
  auto ext = reader->MapRange(ino, 0, 1 << 20);
  ASSERT_EQ(ext.size(), 1u);
  EXPECT_EQ(ext[0].device, 1u);
  EXPECT_EQ(ext[0].length, 65537u);
  EXPECT_EQ(ext[0].offset % 512, 0u);
  EXPECT_TRUE(blob.substr(ext[0].offset, 65537) == reader->Read(ino, 0, 1 << 20));
  // One Reader, many threads (ASan/UBSan build): every thread must see the same bytes.
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (const char* path : {"/files/big", "/files/f4097", "/many/entry-00700", "/dup/file"}) {
        uint64_t i = reader->Lookup(path);
        Attr a = reader->GetAttr(i);
        auto ext = reader->MapRange(i, 0, a.size);
        std::string want;
        for (const auto& e : ext) want += blob.substr(e.offset, e.length);
        if (reader->Read(i, 0, a.size) != want || want.size() != a.size) ++mismatches;
        if (t == 0 && std::string(path) == "/dup/file" && want != "second\n") ++mismatches;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
  // Lookups in a many-block directory: present, absent before/between/after, and via files.
  uint64_t many = reader->Lookup("/many");
  EXPECT_GT(reader->GetAttr(many).size, 20u * reader->super().dir_block_size);
  EXPECT_TRUE(reader->LookupChild(many, "entry-00000"));
  EXPECT_TRUE(reader->LookupChild(many, "entry-04999"));
  EXPECT_TRUE(reader->LookupChild(many, "entry-02500"));
  for (const char* absent : {"a", "entry-0250", "entry-02500x", "entry-99999", "zzz", ".wh.x"})
    EXPECT_FALSE(reader->LookupChild(many, absent)) << absent;
  EXPECT_EQ(CodeOf([&] { reader->Lookup("/many/nope"); }), ErrorCode::kNotFound);
  EXPECT_EQ(CodeOf([&] { reader->Lookup("/files/f0/below-a-file"); }), ErrorCode::kInvalidArgument);
  auto part = reader->MapRange(ino, 1000, 10);
  ASSERT_EQ(part.size(), 1u);
  EXPECT_EQ(part[0].offset, ext[0].offset + 1000);
  EXPECT_EQ(part[0].length, 10u);
}

// Builds share no state (mkfs.erofs runs as a child per build): run two at once, from two
// threads, and get the same bytes as one at a time.
TEST_F(ErofsBuild, ConcurrentBuildsAreIndependent) {
  BuildOptions idx;
  idx.mode = ImageMode::kIndexOnly;
  idx.blob_path = tmp_ / "seq.blob";
  BuildLayerFromFile(Corpus(), tmp_ / "seq-full.erofs");
  BuildLayerFromFile(Corpus(), tmp_ / "seq-idx.erofs", idx);
  BuildOptions idx2 = idx;
  idx2.blob_path = tmp_ / "par.blob";
  std::string errors;
  std::mutex mu;
  auto run = [&](const std::string& out, const BuildOptions& o) {
    try {
      BuildLayerFromFile(Corpus(), out, o);
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(mu);
      errors += e.what();
    }
  };
  std::thread a(run, tmp_ / "par-full.erofs", BuildOptions{});
  std::thread b(run, tmp_ / "par-idx.erofs", idx2);
  a.join();
  b.join();
  EXPECT_EQ(errors, "");
  EXPECT_TRUE(ReadFile(tmp_ / "par-full.erofs") == ReadFile(tmp_ / "seq-full.erofs"));
  EXPECT_TRUE(ReadFile(tmp_ / "par-idx.erofs") == ReadFile(tmp_ / "seq-idx.erofs"));
  EXPECT_TRUE(ReadFile(idx2.blob_path) == ReadFile(idx.blob_path));
}

TEST_F(ErofsBuild, HostileLayersFailCleanly) {
  std::string tar = ReadFile(Corpus());
  auto build = [&](const std::string& data, ImageMode mode = ImageMode::kFull) {
    WriteFileAtomic(tmp_ / "bad", data);
    BuildOptions o;
    o.mode = mode;
    o.blob_path = tmp_ / "blob";
    return CodeOf([&] { BuildLayerFromFile(tmp_ / "bad", tmp_ / "bad.erofs", o); });
  };
  std::string gz = Gzip(tar);
  EXPECT_EQ(build(gz.substr(0, gz.size() / 2)), ErrorCode::kDataLoss);
  EXPECT_EQ(build(gz.substr(0, gz.size() / 2), ImageMode::kIndexOnly), ErrorCode::kDataLoss);
  EXPECT_EQ(build(tar.substr(0, 700000)), ErrorCode::kDataLoss);
  EXPECT_EQ(build(std::string(4096, 'G')), ErrorCode::kInvalidArgument);
  EXPECT_EQ(build(TarFile("ok", "fine") + TarFile("../escape", "x")), ErrorCode::kInvalidArgument);
  EXPECT_EQ(build(TarHeader("huge", '0', 0, kHugeSize) + std::string(1024, '\0')),
            ErrorCode::kInvalidArgument);
  // Nothing after the first end-of-archive block reaches mkfs.erofs (it was never validated),
  // but the blob and the digest keep the stream as it came.
  std::string trailer =
      TarFile("ok", "fine") + std::string(512, '\0') + TarFile("../after-end", "x");
  WriteFileAtomic(tmp_ / "trailer.tar", trailer);
  BuildOptions io;
  io.mode = ImageMode::kIndexOnly;
  io.blob_path = tmp_ / "trailer.blob";
  BuildResult tr = BuildLayerFromFile(tmp_ / "trailer.tar", tmp_ / "trailer.erofs", io);
  EXPECT_EQ(tr.tar_digest, Sha256Digest(trailer));
  EXPECT_TRUE(ReadFile(io.blob_path) == trailer);
  auto rd = Reader::Open(std::make_shared<FileBlockSource>(tmp_ / "trailer.erofs"),
                         {std::make_shared<FileBlockSource>(io.blob_path)});
  std::vector<std::string> names;
  for (const auto& e : rd->ReadDir(rd->root_ino())) names.push_back(e.name);
  EXPECT_EQ(names, std::vector<std::string>{"ok"});
  EXPECT_EQ(rd->Read(rd->Lookup("ok"), 0, 100), "fine");

  // A child that dies at once (EPIPE, no SIGPIPE death) and one that never reads (stall).
  BuildOptions dead;
  dead.mkfs_path = "/bin/false";
  EXPECT_EQ(CodeOf([&] { BuildLayerFromFile(Corpus(), tmp_ / "d.erofs", dead); }),
            ErrorCode::kInvalidArgument);
  WriteFileAtomic(tmp_ / "stuck.sh", "#!/bin/sh\nexec sleep 600\n", 0755);
  BuildOptions stuck;
  stuck.mkfs_path = tmp_ / "stuck.sh";
  stuck.stall_timeout = std::chrono::milliseconds(500);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(CodeOf([&] { BuildLayerFromFile(Corpus(), tmp_ / "s.erofs", stuck); }),
            ErrorCode::kUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
  // A failed rebuild leaves the earlier good image and blob as they were.
  {
    BuildOptions o;
    o.mode = ImageMode::kIndexOnly;
    o.blob_path = tmp_ / "good.blob";
    BuildLayerFromFile(Corpus(), tmp_ / "good.erofs", o);
    std::string img = ReadFile(tmp_ / "good.erofs");
    WriteFileAtomic(tmp_ / "trunc", tar.substr(0, 100000));
    EXPECT_EQ(CodeOf([&] { BuildLayerFromFile(tmp_ / "trunc", tmp_ / "good.erofs", o); }),
              ErrorCode::kDataLoss);
    EXPECT_TRUE(ReadFile(tmp_ / "good.erofs") == img);
    EXPECT_TRUE(ReadFile(o.blob_path) == tar);
    EXPECT_FALSE(PathExists(o.blob_path + ".partial"));
  }
  EXPECT_FALSE(PathExists(tmp_ / "bad.erofs"));
  EXPECT_FALSE(PathExists(tmp_ / "bad.erofs.partial"));
  EXPECT_FALSE(PathExists(tmp_ / "blob"));
  // Index-only without a blob path is a caller error.
  BuildOptions o;
  o.mode = ImageMode::kIndexOnly;
  EXPECT_EQ(CodeOf([&] { BuildLayerFromFile(Corpus(), tmp_ / "x.erofs", o); }),
            ErrorCode::kInvalidArgument);
}

// A disk too small for the image: mkfs.erofs fails with a misleading message of its own (a bad
// checksum); the error says the disk is full, and nothing is left on it.
TEST_F(ErofsBuild, AFullDiskIsNamedAsSuchAndLeavesNothing) {
  std::string tar = ReadFile(Corpus());
  ASSERT_GT(tar.size(), 1u << 20);
  lazysnap::testing::SmallDisk disk(tmp_ / "small", "256k");
  const std::string& mnt = disk.path();
  try {
    BuildLayerFromFile(Corpus(), mnt + "/full.erofs");
    ADD_FAILURE() << "an image larger than the disk was built";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kResourceExhausted) << e.what();
    EXPECT_NE(std::string(e.what()).find("no space left for the EROFS image " + mnt),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(std::filesystem::is_empty(mnt));
  // The same build on a disk with room succeeds: the layer was never the problem.
  EXPECT_NO_THROW(BuildLayerFromFile(Corpus(), tmp_ / "fits.erofs"));
}

}  // namespace
}  // namespace lazysnap::erofs

// The lazy layer index (lazy/layer_index.h): the wire format's round trip, strict rejection of
// every kind of damaged or inconsistent blob (Error(kDataLoss)), BuildLayerIndex on real layers
// made with tar/gzip/zstd, and the index artifact manifest parser (lazy/index_artifact.h).
#include "lazy/layer_index.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <random>
#include <string>

#include "common/error.h"
#include "common/file_util.h"
#include "common/process.h"
#include "common/sha256.h"
#include "common/temp_dir.h"
#include "erofs/layer_decoder.h"
#include "lazy/index_artifact.h"
#include "lazy/prefetch_list.h"
#include "tests/lazy/fuzz/layer_index_testutil.h"
#include "tests/support/pseudo_random.h"

namespace lazysnap::lazy {
namespace {

using erofs::LayerCompression;
using index_test::OpenPayload;
using index_test::SameIndex;
using index_test::SealPayload;
using index_test::SyntheticIndex;

// Decoding `blob` must fail with Error(kDataLoss) whose message contains `why`.
void ExpectDataLoss(std::string_view blob, const std::string& why = "") {
  try {
    DecodeLayerIndex(blob);
    ADD_FAILURE() << "decoded; expected a kDataLoss error containing \"" << why << "\"";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << e.what();
    EXPECT_NE(std::string(e.what()).find(why), std::string::npos)
        << "message \"" << e.what() << "\" lacks \"" << why << "\"";
  }
}

void ExpectRejected(const LayerIndex& x, const std::string& why) {
  SCOPED_TRACE(why);
  ExpectDataLoss(EncodeLayerIndex(x), why);
}

void PutU64(std::string& s, size_t off, uint64_t v) {
  ASSERT_LE(off + 8, s.size());
  std::memcpy(s.data() + off, &v, 8);
}

// Offsets in the plain payload (see layer_index.cc) of an index whose digests are sha256.
constexpr size_t kDigestLen = 71;          // "sha256:" + 64
constexpr size_t kLayerDigestLenOff = 12;  // after magic and version
constexpr size_t kLayerSizeOff = kLayerDigestLenOff + 8 + kDigestLen;
constexpr size_t kTarDigestLenOff = kLayerSizeOff + 8 + 1 + 8;  // layer size, compression, tar size
constexpr size_t kChunkCountOff = kTarDigestLenOff + 8 + kDigestLen + 8 + 4;  // + span, chunk size

TEST(LayerIndexCodec, RoundTrip) {
  for (auto c : {LayerCompression::kGzip, LayerCompression::kNone}) {
    LayerIndex x = SyntheticIndex(c, 32768);
    std::string blob = EncodeLayerIndex(x);
    LayerIndex y = DecodeLayerIndex(blob);
    EXPECT_TRUE(SameIndex(x, y));
    EXPECT_EQ(y.layer_digest, x.layer_digest);
    EXPECT_EQ(y.chunk_digests, x.chunk_digests);
    ASSERT_EQ(y.checkpoints.size(), x.checkpoints.size());
    EXPECT_EQ(y.erofs_image, x.erofs_image);
    EXPECT_EQ(EncodeLayerIndex(y), blob);                             // deterministic
    EXPECT_LT(blob.size(), x.erofs_image.size() + 32768 * 2 + 1024);  // actually compressed
  }
}

TEST(LayerIndexCodec, BoundaryValuesAccepted) {
  LayerIndex x = SyntheticIndex();
  x.checkpoints[1].window = std::string(32768, 'w');
  x.erofs_image = index_test::FakeErofsImage(1152);
  x.checkpoints.back().out = x.tar_size;
  x.checkpoints.back().in = x.layer_size;
  EXPECT_TRUE(SameIndex(DecodeLayerIndex(EncodeLayerIndex(x)), x));
  LayerIndex one = SyntheticIndex();
  one.layer_size = 1;
  one.chunk_digests.resize(1);
  one.checkpoints.resize(1);
  one.checkpoints[0].in = 0;
  EXPECT_TRUE(SameIndex(DecodeLayerIndex(EncodeLayerIndex(one)), one));
}

TEST(LayerIndexCodec, RejectsEmptyAndRandomBytes) {
  ExpectDataLoss("");
  ExpectDataLoss(std::string(1, '\0'));
  ExpectDataLoss("LZSNIDX1");
  std::mt19937 rng(7);
  const std::string zstd_magic = "\x28\xb5\x2f\xfd";
  for (int i = 0; i < 300; ++i) {
    std::string s(rng() % 3000, '\0');
    for (auto& ch : s) ch = static_cast<char>(rng());
    SCOPED_TRACE(i);
    ExpectDataLoss(s);
    ExpectDataLoss(zstd_magic + s);
  }
}

TEST(LayerIndexCodec, RejectsEveryTruncation) {
  std::string blob = EncodeLayerIndex(SyntheticIndex());
  for (size_t n = 0; n < blob.size(); ++n) {
    SCOPED_TRACE(n);
    ExpectDataLoss(blob.substr(0, n));
  }
}

TEST(LayerIndexCodec, RejectsTrailingBytesAfterTheFrame) {
  std::string blob = EncodeLayerIndex(SyntheticIndex());
  ExpectDataLoss(blob + std::string(1, '\0'), "trailing");
  ExpectDataLoss(blob + "x", "trailing");
  ExpectDataLoss(blob + blob, "trailing");
  // A zstd skippable frame is still bytes after the index's frame.
  ExpectDataLoss(blob + std::string("\x50\x2a\x4d\x18\x04\x00\x00\x00junk", 12), "trailing");
}

// No single flipped bit yields a different index: the decoder rejects it or (for bits zstd
// ignores) decodes exactly the original.
TEST(LayerIndexCodec, FlippedBytesNeverDecodeToSomethingElse) {
  LayerIndex x = SyntheticIndex();
  std::string blob = EncodeLayerIndex(x);
  int rejected = 0;
  for (size_t i = 0; i < blob.size(); ++i) {
    for (unsigned mask : {0x01u, 0x10u, 0x80u, 0xffu}) {
      std::string b = blob;
      b[i] = static_cast<char>(b[i] ^ mask);
      try {
        EXPECT_TRUE(SameIndex(DecodeLayerIndex(b), x)) << "byte " << i << " mask " << mask;
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << e.what();
        ++rejected;
      }
    }
  }
  EXPECT_GT(rejected, static_cast<int>(blob.size() * 3));
}

TEST(LayerIndexCodec, RejectsTamperedPayloadBehindAValidFrame) {
  std::string plain = OpenPayload(EncodeLayerIndex(SyntheticIndex()));
  EXPECT_TRUE(SameIndex(DecodeLayerIndex(SealPayload(plain)), SyntheticIndex()));
  ExpectDataLoss(SealPayload(""), "too short");
  {
    std::string p = plain;
    p[0] = 'X';
    ExpectDataLoss(SealPayload(p), "bad magic");
  }
  {
    std::string p = plain;
    p[8] = 2;
    ExpectDataLoss(SealPayload(p), "unsupported version 2");
  }
  ExpectDataLoss(SealPayload(plain + "x"), "trailing bytes");
  ExpectDataLoss(SealPayload(plain.substr(0, plain.size() - 1)), "EROFS image length");
  ExpectDataLoss(SealPayload(plain.substr(0, kChunkCountOff + 3)), "truncated");
  {
    // A byte changed behind the original self-digest (in a frame that itself is intact).
    Sha256 h;
    h.Update(plain);
    auto d = h.Finish();
    std::string p = plain;
    p[100] ^= 1;
    p.append(reinterpret_cast<const char*>(d.data()), d.size());
    std::string out(ZSTD_compressBound(p.size()), '\0');
    out.resize(ZSTD_compress(out.data(), out.size(), p.data(), p.size(), 1));
    ExpectDataLoss(out, "self-digest mismatch");
  }
}

// Lengths and counts far beyond the payload are refused before anything is allocated.
TEST(LayerIndexCodec, RejectsHugeLengthsAndCounts) {
  const LayerIndex x = SyntheticIndex();
  std::string plain = OpenPayload(EncodeLayerIndex(x));
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  {
    std::string p = plain;
    PutU64(p, kLayerDigestLenOff, kMax);
    ExpectDataLoss(SealPayload(p), "layer digest length out of bounds");
  }
  {
    std::string p = plain;
    PutU64(p, kTarDigestLenOff, uint64_t{1} << 40);
    ExpectDataLoss(SealPayload(p), "tar digest length out of bounds");
  }
  {
    // 2^28 chunk digests (8 GiB) claimed by a consistent layer size.
    std::string p = plain;
    PutU64(p, kLayerSizeOff, uint64_t{1} << 40);
    PutU64(p, kChunkCountOff, (uint64_t{1} << 40) / x.chunk_size);
    ExpectDataLoss(SealPayload(p), "chunk digests truncated");
  }
  const size_t cp_count_off = kChunkCountOff + 8 + 32 * x.chunk_digests.size();
  {
    std::string p = plain;
    PutU64(p, cp_count_off, uint64_t{1} << 60);
    ExpectDataLoss(SealPayload(p), "checkpoints truncated");
  }
  {
    std::string p = plain;
    PutU64(p, cp_count_off + 8 + 8 + 1 + 8, kMax);  // first checkpoint's window length
    ExpectDataLoss(SealPayload(p), "checkpoint window length out of bounds");
  }
  {
    std::string p = plain;
    PutU64(p, p.size() - x.erofs_image.size() - 8, kMax);
    ExpectDataLoss(SealPayload(p), "EROFS image length out of bounds");
  }
}

TEST(LayerIndexCodec, RejectsInconsistentIndexes) {
  const LayerIndex good = SyntheticIndex();
  const LayerIndex plain_tar = SyntheticIndex(LayerCompression::kNone);
  {
    LayerIndex x = good;
    x.chunk_digests.push_back(Sha256Digest("extra"));
    ExpectRejected(x, "chunk digest count does not match");
    x.chunk_digests.resize(2);
    ExpectRejected(x, "chunk digest count does not match");
    x = good;
    x.layer_size = 3 * 4096 + 1;
    ExpectRejected(x, "chunk digest count does not match");
  }
  {
    LayerIndex x = good;
    x.checkpoints[2].out = x.checkpoints[1].out;
    ExpectRejected(x, "not ascending");
    x = good;
    std::swap(x.checkpoints[1], x.checkpoints[2]);
    ExpectRejected(x, "not ascending");
    x = good;
    x.checkpoints[2].in = x.checkpoints[1].in - 1;
    ExpectRejected(x, "not ascending");
    x = good;
    x.checkpoints[0].out = 1;
    ExpectRejected(x, "not ascending from tar offset 0");
    x = good;
    x.checkpoints.erase(x.checkpoints.begin());
    ExpectRejected(x, "not ascending from tar offset 0");
  }
  {
    LayerIndex x = good;
    x.checkpoints[1].bits = 8;
    ExpectRejected(x, "bit offset above 7");
    x.checkpoints[1].bits = 255;
    ExpectRejected(x, "bit offset above 7");
  }
  {
    LayerIndex x = good;
    x.checkpoints[1].window = std::string(32769, 'w');
    ExpectRejected(x, "checkpoint window length out of bounds");
  }
  {
    LayerIndex x = good;
    x.checkpoints[2].out = x.tar_size + 1;
    ExpectRejected(x, "checkpoint out of bounds");
    x = good;
    x.checkpoints[2].in = x.layer_size + 1;
    ExpectRejected(x, "checkpoint out of bounds");
  }
  {
    LayerIndex x = good;
    x.erofs_image[1024] ^= 1;
    ExpectRejected(x, "no EROFS superblock");
    x.erofs_image = std::string(4096, '\0');
    ExpectRejected(x, "no EROFS superblock");
    x.erofs_image = index_test::FakeErofsImage(1151);
    ExpectRejected(x, "EROFS image too short");
    x.erofs_image.clear();
    ExpectRejected(x, "EROFS image too short");
  }
  {
    LayerIndex x = good;
    x.checkpoints.clear();
    ExpectRejected(x, "gzip layer without checkpoints");
    x = plain_tar;
    x.checkpoints = good.checkpoints;
    x.checkpoints.resize(1);
    ExpectRejected(x, "checkpoints on an uncompressed layer");
    x = plain_tar;
    x.tar_size = x.layer_size + 1;
    ExpectRejected(x, "tar size != layer size");
  }
  {
    LayerIndex x = good;
    x.compression = static_cast<LayerCompression>(3);
    ExpectRejected(x, "unsupported layer compression");
    x = good;
    x.compression = LayerCompression::kZstd;  // gzip checkpoints (windows) on a zstd layer
    ExpectRejected(x, "zstd checkpoint with gzip state");
    x = good;
    x.chunk_size = 4095;
    ExpectRejected(x, "bad chunk size");
    x.chunk_size = (64u << 20) + 1;
    x.chunk_digests.resize(1);
    ExpectRejected(x, "bad chunk size");
    x = good;
    x.layer_size = 0;
    x.chunk_digests.clear();
    x.checkpoints.resize(1);
    x.checkpoints[0].in = 0;
    ExpectRejected(x, "empty layer");
  }
  {
    LayerIndex x = good;
    x.layer_digest = "sha512:" + std::string(128, 'a');
    ExpectRejected(x, "layer digest is not sha256");
    x.layer_digest = "nope";
    ExpectRejected(x, "layer digest");
    x = good;
    x.tar_digest = "";
    ExpectRejected(x, "tar digest");
    x.tar_digest = "sha256:" + std::string(64, 'A');
    ExpectRejected(x, "tar digest");
    x.tar_digest = "sha256:" + std::string(201, 'a');
    ExpectRejected(x, "tar digest length out of bounds");
  }
}

// --- BuildLayerIndex on real layers -----------------------------------------------------------

std::string Text(size_t n) {
  std::string s;
  for (uint64_t i = 0; s.size() < n; ++i)
    s += "line " + std::to_string(i * 7919 % 100003) + " of text\n";
  s.resize(n);
  return s;
}

class BuildLayerIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MakeDirs(tmp_ / "root/etc/app");
    WriteFileAtomic(tmp_ / "root/etc/app/config", "key = value\n");
    WriteFileAtomic(tmp_ / "root/text", Text(400 * 1024));
    WriteFileAtomic(tmp_ / "root/rand", lazysnap::testing::PseudoRandomBytes(96 * 1024, 99));
    WriteFileAtomic(tmp_ / "root/empty", "");
    ASSERT_EQ(::symlink("text", (tmp_ / "root/link").c_str()), 0);
  }
  // Runs `sh -c cmd` in the temp dir.
  std::string Sh(const std::string& cmd) {
    return RunCommandOrThrow({"sh", "-c", "cd '" + tmp_.path() + "' && " + cmd});
  }

  TempDir tmp_{"layer-index"};
};

TEST_F(BuildLayerIndexTest, GzipLayer) {
  Sh("tar czf layer.tgz -C root . && gzip -dc layer.tgz > layer.tar");
  const std::string path = tmp_ / "layer.tgz";
  const std::string blob = ReadFile(path);
  const std::string tar = ReadFile(tmp_ / "layer.tar");
  const std::string digest = Sha256Digest(blob);
  constexpr uint32_t kChunk = 4096;
  LayerIndex idx = BuildLayerIndex(path, digest, {.span = 64 * 1024, .chunk_size = kChunk});

  EXPECT_EQ(idx.layer_digest, digest);
  EXPECT_EQ(idx.layer_size, blob.size());
  EXPECT_EQ(idx.compression, LayerCompression::kGzip);
  EXPECT_EQ(std::to_string(idx.tar_size) + "\n", Sh("gzip -dc layer.tgz | wc -c"));
  EXPECT_EQ(idx.tar_size, tar.size());
  EXPECT_EQ(idx.tar_digest, Sha256Digest(tar));
  EXPECT_EQ(idx.span, 64u * 1024);
  EXPECT_EQ(idx.chunk_size, kChunk);
  ASSERT_EQ(idx.chunk_digests.size(), (blob.size() + kChunk - 1) / kChunk);
  EXPECT_GT(idx.chunk_digests.size(), 1u);
  for (size_t i = 0; i < idx.chunk_digests.size(); ++i)
    EXPECT_EQ(idx.chunk_digests[i],
              Sha256Digest(std::string_view(blob).substr(i * kChunk, kChunk)));
  ASSERT_FALSE(idx.checkpoints.empty());
  EXPECT_EQ(idx.checkpoints.front().out, 0u);
  EXPECT_GE(idx.checkpoints.size(), 2u);
  for (size_t i = 1; i < idx.checkpoints.size(); ++i) {
    EXPECT_GT(idx.checkpoints[i].out, idx.checkpoints[i - 1].out);
    EXPECT_GE(idx.checkpoints[i].in, idx.checkpoints[i - 1].in);
    EXPECT_LE(idx.checkpoints[i].window.size(), 32768u);
    EXPECT_LE(idx.checkpoints[i].bits, 7);
  }
  ASSERT_GE(idx.erofs_image.size(), 1152u);
  uint32_t magic;
  std::memcpy(&magic, idx.erofs_image.data() + 1024, 4);
  EXPECT_EQ(magic, 0xE0F5E1E2u);

  std::string encoded = EncodeLayerIndex(idx);
  LayerIndex back = DecodeLayerIndex(encoded);
  EXPECT_TRUE(SameIndex(back, idx));
  EXPECT_LT(encoded.size(), tar.size());

  // Every decoded checkpoint restarts inflation at its tar offset.
  erofs::CompressedReader read = [&](uint64_t off, uint8_t* buf, size_t len) -> size_t {
    if (off >= blob.size()) return 0;
    size_t n = std::min<size_t>(len, blob.size() - off);
    std::memcpy(buf, blob.data() + off, n);
    return n;
  };
  for (const auto& cp : back.checkpoints) {
    SCOPED_TRACE(cp.out);
    EXPECT_EQ(erofs::InflateFromCheckpoint(cp, read, cp.out, 1000), tar.substr(cp.out, 1000));
  }
}

TEST_F(BuildLayerIndexTest, UncompressedLayer) {
  Sh("tar cf layer.tar -C root .");
  const std::string path = tmp_ / "layer.tar";
  const std::string blob = ReadFile(path);
  LayerIndex idx =
      BuildLayerIndex(path, Sha256Digest(blob), {.span = 64 * 1024, .chunk_size = 64 * 1024});
  EXPECT_EQ(idx.compression, LayerCompression::kNone);
  EXPECT_EQ(idx.tar_size, blob.size());
  EXPECT_EQ(idx.tar_digest, Sha256Digest(blob));
  EXPECT_TRUE(idx.checkpoints.empty());
  EXPECT_EQ(idx.chunk_digests.size(), (blob.size() + 65535) / 65536);
  EXPECT_TRUE(SameIndex(DecodeLayerIndex(EncodeLayerIndex(idx)), idx));
}

TEST_F(BuildLayerIndexTest, WrongDigestIsDataLoss) {
  Sh("tar czf layer.tgz -C root .");
  try {
    BuildLayerIndex(tmp_ / "layer.tgz", Sha256Digest("another layer"), {.span = 64 * 1024});
    FAIL() << "indexed a layer under the wrong digest";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << e.what();
  }
}

TEST_F(BuildLayerIndexTest, SingleFrameZstdLayerIsFailedPrecondition) {
  Sh("tar cf layer.tar -C root . && zstd -q -c layer.tar > layer.tar.zst");
  const std::string path = tmp_ / "layer.tar.zst";
  ASSERT_GT(ReadFile(tmp_ / "layer.tar").size(), 4u * 64 * 1024);  // one frame of > 4 spans
  try {
    BuildLayerIndex(path, Sha256Digest(ReadFile(path)), {.span = 64 * 1024});
    FAIL() << "indexed a zstd layer of one big frame";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFailedPrecondition) << e.what();
    EXPECT_NE(std::string(e.what()).find("in one frame"), std::string::npos) << e.what();
  }
}

// A zstd layer written as many frames (here 100 KiB pieces, as pzstd or the seekable format do)
// restarts at frame starts.
TEST_F(BuildLayerIndexTest, MultiFrameZstdLayer) {
  Sh("tar cf layer.tar -C root . && split -b 100k layer.tar piece. && "
     "for p in piece.*; do zstd -q -c $p >> layer.tar.zst; done");
  const std::string tar = ReadFile(tmp_ / "layer.tar");
  const std::string path = tmp_ / "layer.tar.zst";
  const std::string blob = ReadFile(path);
  LayerIndex idx =
      BuildLayerIndex(path, Sha256Digest(blob), {.span = 64 * 1024, .chunk_size = 64 * 1024});
  EXPECT_EQ(idx.compression, LayerCompression::kZstd);
  EXPECT_EQ(idx.tar_size, tar.size());
  EXPECT_EQ(idx.tar_digest, Sha256Digest(tar));
  ASSERT_EQ(idx.checkpoints.size(), (tar.size() + 102399) / 102400);
  LayerIndex back = DecodeLayerIndex(EncodeLayerIndex(idx));
  EXPECT_TRUE(SameIndex(back, idx));
  erofs::CompressedReader read = [&](uint64_t off, uint8_t* buf, size_t len) -> size_t {
    if (off >= blob.size()) return 0;
    size_t n = std::min<size_t>(len, blob.size() - off);
    std::memcpy(buf, blob.data() + off, n);
    return n;
  };
  for (size_t i = 0; i < back.checkpoints.size(); ++i) {
    const auto& cp = back.checkpoints[i];
    SCOPED_TRACE(cp.out);
    EXPECT_EQ(cp.out, i * 102400);
    EXPECT_EQ(erofs::DecodeZstdFrames(read, cp.in, 1000), tar.substr(cp.out, 1000));
  }
}

TEST_F(BuildLayerIndexTest, RejectsTinySpanAndChunk) {
  Sh("tar czf layer.tgz -C root .");
  const std::string path = tmp_ / "layer.tgz";
  const std::string digest = Sha256Digest(ReadFile(path));
  for (IndexBuildOptions o :
       {IndexBuildOptions{.span = 1024}, IndexBuildOptions{.chunk_size = 512}}) {
    try {
      BuildLayerIndex(path, digest, o);
      ADD_FAILURE() << "accepted span " << o.span << " chunk " << o.chunk_size;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    }
  }
}

// --- ParseIndexArtifact ------------------------------------------------------------------------

// `parse(json)` throws Error(kInvalidArgument) saying `why`.
template <typename Parse>
void ExpectRejected(Parse parse, const std::string& json, const std::string& why) {
  SCOPED_TRACE(json);
  try {
    parse(json);
    ADD_FAILURE() << "parsed; expected kInvalidArgument containing \"" << why << "\"";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
  }
}

void ExpectInvalid(const std::string& json, const std::string& why) {
  ExpectRejected(ParseIndexArtifact, json, why);
}

std::string Layer(const std::string& media, const std::string& digest, const std::string& size,
                  const std::string& annotations) {
  std::string s = R"({"mediaType":")" + media + R"(","digest":")" + digest + R"(","size":)" + size;
  if (!annotations.empty()) s += R"(,"annotations":)" + annotations;
  return s + "}";
}

std::string Annotated(const std::string& layer) {
  return std::string(R"({")") + kIndexedLayerAnnotation + R"(":")" + layer + R"("})";
}

std::string Artifact(const std::string& layers, const std::string& type = kIndexArtifactType) {
  return R"({"schemaVersion":2,"artifactType":")" + type + R"(","layers":)" + layers + "}";
}

TEST(IndexArtifact, ManifestRoundTripWithTwoLayers) {
  fetcher::ResolvedImage image;
  image.manifest_digest = Sha256Digest("manifest");
  image.manifest_bytes = "{\"schemaVersion\":2}";
  const std::string la = Sha256Digest("layer a"), lb = Sha256Digest("layer b");
  std::string json = IndexArtifactManifest(image, {{la, "index of a"}, {lb, "index b"}});
  IndexedLayers got = ParseIndexArtifact(json).layers;
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got.at(la).digest, Sha256Digest("index of a"));
  EXPECT_EQ(got.at(la).size, 10u);
  EXPECT_EQ(got.at(la).media_type, kLayerIndexMediaType);
  EXPECT_EQ(got.at(lb).digest, Sha256Digest("index b"));
  EXPECT_EQ(got.at(lb).size, 7u);
  EXPECT_FALSE(ParseIndexArtifact(json).prefetch);
  EXPECT_TRUE(ParseIndexArtifact(Artifact("[]")).layers.empty());
}

TEST(IndexArtifact, CarriesOnePrefetchList) {
  fetcher::ResolvedImage image;
  image.manifest_digest = Sha256Digest("manifest");
  const std::string la = Sha256Digest("layer a");
  const std::string list = EncodePrefetchList({{la, {{0, 4096}}}});
  IndexArtifact got = ParseIndexArtifact(IndexArtifactManifest(image, {{la, "index"}}, list));
  ASSERT_EQ(got.layers.size(), 1u);
  ASSERT_TRUE(got.prefetch);
  EXPECT_EQ(got.prefetch->media_type, kPrefetchListMediaType);
  EXPECT_EQ(got.prefetch->digest, Sha256Digest(list));
  EXPECT_EQ(got.prefetch->size, list.size());
  const std::string p = kPrefetchListMediaType;
  const std::string pa = Sha256Digest("p1"), pb = Sha256Digest("p2");
  ExpectInvalid(Artifact("[" + Layer(p, pa, "3", "") + "," + Layer(p, pb, "4", "") + "]"),
                "more than one prefetch list");
  ExpectInvalid(Artifact("[" + Layer(p, "sha256:nope", "3", "") + "]"), "prefetch list digest");
  ExpectInvalid(Artifact("[" + Layer(p, pa, "-3", "") + "]"), "no size");
}

// --- ParsePrefetchList -------------------------------------------------------------------------

void ExpectBadList(const std::string& json, const std::string& why) {
  ExpectRejected(ParsePrefetchList, json, why);
}

std::string List(const std::string& layers) {
  return std::string(R"({"mediaType":")") + kPrefetchListMediaType + R"(","layers":)" + layers +
         "}";
}

TEST(PrefetchList, RoundTripKeepsTheOrderOfRanges) {
  const std::string la = Sha256Digest("a"), lb = Sha256Digest("b");
  PrefetchList list{{la, {{8 << 20, 4 << 20}, {0, 4 << 20}, {1ull << 40, 1}}}, {lb, {}}};
  EXPECT_EQ(ParsePrefetchList(EncodePrefetchList(list)), list);
  EXPECT_TRUE(ParsePrefetchList(List("[]")).empty());
}

TEST(PrefetchList, RejectsMalformedLists) {
  const std::string la = Sha256Digest("a");
  auto layer = [&](const std::string& ranges) {
    return R"([{"digest":")" + la + R"(","ranges":)" + ranges + "}]";
  };
  ExpectBadList("", "not a JSON object");
  ExpectBadList("[]", "not a JSON object");
  ExpectBadList(R"({"layers":[]})", "mediaType");
  ExpectBadList(R"({"mediaType":"application/json","layers":[]})", "mediaType");
  ExpectBadList(List("{}"), "no layers array");
  ExpectBadList(List("[7]"), "not an object");
  ExpectBadList(List(R"([{"ranges":[]}])"), "no digest");
  ExpectBadList(List(R"([{"digest":"sha256:abc","ranges":[]}])"), "layer digest");
  ExpectBadList(List(R"([{"digest":")" + la + R"("}])"), "no ranges array");
  ExpectBadList(List(layer("[[1]]")), "not [offset, length]");
  ExpectBadList(List(layer("[[1,2,3]]")), "not [offset, length]");
  ExpectBadList(List(layer("[[-1,2]]")), "not [offset, length]");
  ExpectBadList(List(layer(R"([["1",2]])")), "not [offset, length]");
  ExpectBadList(List(layer("[[1.5,2]]")), "not [offset, length]");
  ExpectBadList(List(layer("[[5,0]]")), "empty or overflows");
  ExpectBadList(List(layer("[[18446744073709551615,2]]")), "empty or overflows");
  ExpectBadList(List(layer("[[0,1]]").substr(0, layer("[[0,1]]").size() - 1) + "," +
                     layer("[[0,1]]").substr(1)),
                "listed twice");
  std::string many = "[";
  for (size_t i = 0; i <= kMaxPrefetchRanges; ++i)
    many += (i ? ",[" : "[") + std::to_string(i) + ",1]";
  ExpectBadList(List(layer(many + "]")), "ranges, more than");
  ExpectBadList(std::string(kMaxPrefetchListBytes + 1, ' '), "bytes, more than");
}

TEST(IndexArtifact, IgnoresOtherMediaTypesAndUnannotatedLayers) {
  const std::string m = kLayerIndexMediaType;
  const std::string la = Sha256Digest("a"), lb = Sha256Digest("b"), lc = Sha256Digest("c");
  const std::string ia = Sha256Digest("ia"), ib = Sha256Digest("ib");
  std::string layers =
      "[" + Layer(m, ia, "11", Annotated(la)) + "," +
      Layer("application/vnd.oci.image.layer.v1.tar+gzip", ib, "5", Annotated(lb)) + "," +
      Layer(m, ib, "5", "") + "," + Layer(m, ib, "5", R"({"other":"x"})") + "," +
      Layer(m, ib, "5", "[1]") + "," +
      Layer(m, ib, "5", std::string(R"({")") + kIndexedLayerAnnotation + R"(":7})") + "," +
      Layer(m, ib, "12", Annotated(lc)) + "]";
  IndexedLayers got = ParseIndexArtifact(Artifact(layers)).layers;
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got.at(la).digest, ia);
  EXPECT_EQ(got.at(la).size, 11u);
  EXPECT_EQ(got.at(lc).digest, ib);
  EXPECT_EQ(got.at(lc).size, 12u);
  EXPECT_EQ(got.count(lb), 0u);
}

TEST(IndexArtifact, RejectsMalformedManifests) {
  const std::string m = kLayerIndexMediaType;
  const std::string la = Sha256Digest("a"), ia = Sha256Digest("ia");
  ExpectInvalid("", "not a JSON object");
  ExpectInvalid("{", "not a JSON object");
  ExpectInvalid("[]", "not a JSON object");
  ExpectInvalid(R"({"layers":[]})", "artifactType");
  ExpectInvalid(Artifact("[]", "application/vnd.example"), "artifactType");
  ExpectInvalid(R"({"artifactType":5,"layers":[]})", "artifactType");
  ExpectInvalid(R"({"artifactType":")" + std::string(kIndexArtifactType) + R"("})", "layers");
  ExpectInvalid(Artifact("{}"), "no layers array");
  ExpectInvalid(Artifact("[1]"), "not an object");
  ExpectInvalid(Artifact(R"([{"digest":")" + ia + R"("}])"), "no mediaType");
  ExpectInvalid(Artifact(R"([{"mediaType":7}])"), "no mediaType");
  ExpectInvalid(
      Artifact(R"([{"mediaType":")" + m + R"(","size":1,"annotations":)" + Annotated(la) + "}]"),
      "no digest");
  ExpectInvalid(Artifact(R"([{"mediaType":")" + m + R"(","digest":3,"size":1,"annotations":)" +
                         Annotated(la) + "}]"),
                "no digest");
  ExpectInvalid(Artifact(R"([{"mediaType":")" + m + R"(","digest":")" + ia + R"(","annotations":)" +
                         Annotated(la) + "}]"),
                "no size");
  for (const char* size : {R"("7")", "-1", "1.5", "null"})
    ExpectInvalid(Artifact("[" + Layer(m, ia, size, Annotated(la)) + "]"), "no size");
}

TEST(IndexArtifact, RejectsBadDigests) {
  const std::string m = kLayerIndexMediaType;
  const std::string la = Sha256Digest("a"), ia = Sha256Digest("ia");
  ExpectInvalid(Artifact("[" + Layer(m, "sha256:XYZ", "1", Annotated(la)) + "]"),
                "index blob digest");
  ExpectInvalid(Artifact("[" + Layer(m, "md5:" + std::string(32, 'a'), "1", Annotated(la)) + "]"),
                "index blob digest");
  ExpectInvalid(
      Artifact("[" + Layer(m, ia, "1", Annotated("sha256:" + std::string(64, 'A'))) + "]"),
      "indexed layer digest");
  ExpectInvalid(Artifact("[" + Layer(m, ia, "1", Annotated("latest")) + "]"),
                "indexed layer digest");
}

}  // namespace
}  // namespace lazysnap::lazy

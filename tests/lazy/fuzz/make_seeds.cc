// Writes the seed corpora of the lazy fuzz targets (committed under tests/lazy/fuzz/):
//   lazy_fuzz_seeds <dir>   ->  <dir>/index_corpus/*, <dir>/artifact_corpus/*,
//                               <dir>/prefetch_corpus/*
// Index seeds start with the selector byte of layer_index_fuzz.cc: '0' (even) a registry blob,
// '1' (odd) a plain payload that the entry seals. Artifact seeds are manifests: valid ones and
// ones with missing fields, wrong types and bad digests.
#include <cstdio>
#include <string>

#include "common/file_util.h"
#include "common/sha256.h"
#include "fetcher/manifest.h"
#include "fetcher/registry_client.h"
#include "lazy/index_artifact.h"
#include "lazy/layer_index.h"
#include "lazy/prefetch_list.h"
#include "tests/lazy/fuzz/layer_index_testutil.h"

namespace {

using namespace lazysnap;
using lazy::index_test::SyntheticIndex;

std::string Plain(const lazy::LayerIndex& x) {
  return lazy::index_test::OpenPayload(lazy::EncodeLayerIndex(x));
}

// A manifest with the fixed artifactType and the given layers array.
std::string Artifact(const std::string& layers) {
  return std::string(
             R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)") +
         R"("artifactType":"application/vnd.lazysnap.index.v1",)" +
         R"("config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":")" +
         Sha256Digest("{}") + R"(","size":2},"layers":)" + layers + "}";
}

std::string Layer(const std::string& media, const std::string& digest, const std::string& size,
                  const std::string& annotated) {
  std::string s = R"({"mediaType":")" + media + R"(","digest":")" + digest + R"(","size":)" + size;
  if (!annotated.empty())
    s += R"(,"annotations":{"io.lazysnap.layer.digest":")" + annotated + R"("})";
  return s + "}";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <tests/lazy/fuzz dir>\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  const std::string idx = dir + "/index_corpus/";
  const std::string art = dir + "/artifact_corpus/";
  MakeDirs(idx);
  MakeDirs(art);
  const std::string pre = dir + "/prefetch_corpus/";
  MakeDirs(pre);

  auto gzip = SyntheticIndex(erofs::LayerCompression::kGzip);
  auto none = SyntheticIndex(erofs::LayerCompression::kNone);
  WriteFileAtomic(idx + "blob-gzip", "0" + lazy::EncodeLayerIndex(gzip));
  WriteFileAtomic(idx + "blob-none", "0" + lazy::EncodeLayerIndex(none));
  WriteFileAtomic(idx + "plain-gzip", "1" + Plain(gzip));
  WriteFileAtomic(idx + "plain-none", "1" + Plain(none));
  auto one = SyntheticIndex(erofs::LayerCompression::kGzip);
  one.layer_size = 4096;
  one.chunk_digests.resize(1);
  one.checkpoints.resize(1);
  WriteFileAtomic(idx + "plain-one-chunk", "1" + Plain(one));

  const std::string m = lazy::kLayerIndexMediaType;
  const std::string la = Sha256Digest("layer a"), lb = Sha256Digest("layer b");
  const std::string ia = Sha256Digest("index a"), ib = Sha256Digest("index b");
  {
    fetcher::ResolvedImage image;
    image.manifest_digest = Sha256Digest("image manifest");
    image.manifest.media_type = fetcher::kOciManifest;
    image.manifest_bytes = std::string(512, 'm');
    WriteFileAtomic(art + "valid.json",
                    lazy::IndexArtifactManifest(image, {{la, "index a"}, {lb, "index b"}}));
  }
  WriteFileAtomic(
      art + "mixed.json",
      Artifact("[" + Layer(m, ia, "7", la) + "," +
               Layer("application/vnd.oci.image.layer.v1.tar", ib, "7", lb) + "," +
               Layer(m, ib, "7", "") + "," + R"({"mediaType":")" + m + R"(","digest":")" + ib +
               R"(","size":7,"annotations":{"io.lazysnap.layer.digest":5}})" + "]"));
  WriteFileAtomic(art + "missing-fields.json",
                  Artifact(R"([{"mediaType":")" + m +
                           R"(","annotations":{"io.lazysnap.layer.digest":")" + la + R"("}}])"));
  WriteFileAtomic(art + "wrong-types.json", Artifact("[" + Layer(m, ia, R"("7")", la) + "]"));
  WriteFileAtomic(art + "negative-size.json", Artifact("[" + Layer(m, ia, "-1", la) + "]"));
  WriteFileAtomic(art + "bad-digest.json",
                  Artifact("[" + Layer(m, "sha256:XYZ", "7", la) + "," +
                           Layer(m, ib, "7", "sha256:" + std::string(64, 'A')) + "]"));
  WriteFileAtomic(art + "layers-object.json", Artifact(R"({"0":{}})"));
  WriteFileAtomic(art + "wrong-artifact-type.json",
                  R"({"artifactType":"application/vnd.example.other","layers":[]})");
  WriteFileAtomic(art + "not-object.json", R"([1,"two",{"three":null}])");
  {
    fetcher::ResolvedImage image;
    image.manifest_digest = Sha256Digest("image manifest");
    WriteFileAtomic(art + "with-prefetch.json",
                    lazy::IndexArtifactManifest(image, {{la, "index a"}}, "list"));
  }

  const std::string pm = lazy::kPrefetchListMediaType;
  WriteFileAtomic(pre + "valid.json",
                  lazy::EncodePrefetchList(
                      {{la, {{4 << 20, 8 << 20}, {0, 4 << 20}}}, {lb, {{1ull << 33, 512}}}}));
  WriteFileAtomic(pre + "empty.json", lazy::EncodePrefetchList({}));
  auto list = [&](const std::string& layers) {
    return R"({"mediaType":")" + pm + R"(","layers":)" + layers + "}";
  };
  WriteFileAtomic(pre + "zero-length.json",
                  list(R"([{"digest":")" + la + R"(","ranges":[[0,0],[5,-1]]}])"));
  WriteFileAtomic(pre + "overflow.json",
                  list(R"([{"digest":")" + la + R"(","ranges":[[18446744073709551615,2]]}])"));
  WriteFileAtomic(pre + "twice.json", list(R"([{"digest":")" + la + R"(","ranges":[]},)" +
                                           R"({"digest":")" + la + R"(","ranges":[[1,1]]}])"));
  WriteFileAtomic(pre + "wrong-types.json",
                  list(R"([{"digest":"sha256:XYZ","ranges":{}},{"ranges":[["1",2]]},7])"));
  return 0;
}

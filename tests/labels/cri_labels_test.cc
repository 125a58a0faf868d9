#include "labels/cri_labels.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "common/sha256.h"
#include "labels/chain_id.h"
#include "labels/mode.h"

namespace lazysnap::labels {
namespace {

std::string D(int i) {
  return Sha256Digest("layer" + std::to_string(i));
}

LabelMap Full(int layers_above = 2) {
  std::string list = D(0);
  for (int i = 1; i <= layers_above; ++i) list += "," + D(i);
  return {{kSnapshotRef, D(100)},       {kCriImageRef, "127.0.0.1:5000/demo/app:v1"},
          {kCriManifestDigest, D(200)}, {kCriLayerDigest, D(0)},
          {kCriImageLayers, list},      {"containerd.io/snapshot/other", "x"}};
}

void ExpectInvalidNaming(const LabelMap& m, const std::string& label) {
  try {
    ParseLayerLabels(m);
    ADD_FAILURE() << "accepted labels; expected error naming " << label;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find(label), std::string::npos) << e.what();
  }
}

TEST(ParseLayerLabels, Complete) {
  auto p = ParseLayerLabels(Full());
  ASSERT_EQ(p.presence, LabelPresence::kComplete);
  EXPECT_EQ(p.target->chain_id.str(), D(100));
  EXPECT_EQ(p.target->image.domain, "127.0.0.1:5000");
  EXPECT_EQ(p.target->image_ref, "127.0.0.1:5000/demo/app:v1");
  EXPECT_EQ(p.target->manifest.str(), D(200));
  EXPECT_EQ(p.target->layer.str(), D(0));
  ASSERT_EQ(p.target->image_layers.size(), 3u);
  EXPECT_EQ(p.target->image_layers[2].str(), D(2));
  EXPECT_FALSE(p.target->image_layers_truncated);
}

TEST(ParseLayerLabels, AbsentAndRefOnly) {
  EXPECT_EQ(ParseLayerLabels({}).presence, LabelPresence::kNone);
  EXPECT_EQ(ParseLayerLabels({{"containerd.io/gc.root", "x"}}).presence, LabelPresence::kNone);
  auto p = ParseLayerLabels({{kSnapshotRef, D(1)}});
  EXPECT_EQ(p.presence, LabelPresence::kRefOnly);
  EXPECT_EQ(p.chain_id->str(), D(1));
  EXPECT_EQ(p.missing.size(), 4u);
}

TEST(ParseLayerLabels, TruncatedLayerListAtTheSizeLimit) {
  // As containerd builds it: digests appended while key + value stays within 4096 bytes.
  std::string list = D(0);
  int i = 1;
  while (std::string(kCriImageLayers).size() + list.size() + 72 <= kMaxLabelSize)
    list += "," + D(i++);
  auto m = Full();
  m[kCriImageLayers] = list;
  ValidateLabelSizes(m);
  auto p = ParseLayerLabels(m);
  EXPECT_TRUE(p.target->image_layers_truncated);
  EXPECT_EQ(p.target->image_layers.size(), static_cast<size_t>(i));
  // Cut mid-digest, as a byte-level truncation would leave it.
  m[kCriImageLayers] =
      (list + "," + D(i)).substr(0, kMaxLabelSize - std::string(kCriImageLayers).size());
  p = ParseLayerLabels(m);
  EXPECT_TRUE(p.target->image_layers_truncated);
  EXPECT_EQ(p.target->image_layers.size(), static_cast<size_t>(i));
}

TEST(ParseLayerLabels, MalformedNamesTheLabel) {
  auto m = Full();
  m[kSnapshotRef] = "sha256:nothex";
  ExpectInvalidNaming(m, kSnapshotRef);
  m = Full();
  m[kCriImageRef] = "Not A Ref";
  ExpectInvalidNaming(m, kCriImageRef);
  m = Full();
  m[kCriManifestDigest] = "";
  ExpectInvalidNaming(m, kCriManifestDigest);
  m = Full();
  m[kCriLayerDigest] = "sha256:" + std::string(64, 'Z');
  ExpectInvalidNaming(m, kCriLayerDigest);
  m = Full();
  m[kCriImageLayers] = D(0) + ",garbage," + D(1);
  ExpectInvalidNaming(m, kCriImageLayers);
  m = Full();
  m[kCriImageLayers] = D(5);  // must start with this layer
  ExpectInvalidNaming(m, kCriImageLayers);
  m = Full();
  m.erase(kCriManifestDigest);  // partial set
  ExpectInvalidNaming(m, kCriManifestDigest);
  m = Full();
  m.erase(kSnapshotRef);
  ExpectInvalidNaming(m, kSnapshotRef);
}

TEST(ValidateLabelSizes, Limit) {
  ValidateLabelSizes({{"k", std::string(4095, 'v')}});
  EXPECT_THROW(ValidateLabelSizes({{"k", std::string(4096, 'v')}}), Error);
  EXPECT_THROW(ValidateLabelSizes({{"", "v"}}), Error);
}

TEST(ChainIds, OciDefinition) {
  auto ids = ChainIds({D(1), D(2), D(3)});
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[0], D(1));
  EXPECT_EQ(ids[1], Sha256Digest(D(1) + " " + D(2)));
  EXPECT_EQ(ids[2], Sha256Digest(ids[1] + " " + D(3)));
  EXPECT_THROW(ChainIds({"bad"}), Error);
}

TEST(DecideLayerMode, Matrix) {
  ProxyPolicy on{.enable = true};
  ProxyPolicy off{};
  ProxyPolicy strict{.enable = true, .fallback_error = true};
  const std::string unpack_key = "k8s.io/3/extract-123-abc " + D(100);
  // Proxy: labelled layer unpack.
  auto d = DecideLayerMode(on, unpack_key, Full(), std::nullopt);
  EXPECT_EQ(d.mode, LayerMode::kProxy);
  EXPECT_EQ(d.target->chain_id.str(), D(100));
  EXPECT_EQ(DecideLayerMode(on, unpack_key, Full(), LayerMode::kProxy).mode, LayerMode::kProxy);
  // Homogeneous chains: a native parent keeps the child native.
  EXPECT_EQ(DecideLayerMode(on, unpack_key, Full(), LayerMode::kNative).mode, LayerMode::kNative);
  // Proxy off: native; a child of a proxy layer cannot be native.
  EXPECT_EQ(DecideLayerMode(off, unpack_key, Full(), std::nullopt).mode, LayerMode::kNative);
  EXPECT_THROW(DecideLayerMode(off, unpack_key, Full(), LayerMode::kProxy), Error);
  // Missing labels: fallback native (flagged) or error naming the containerd setting.
  d = DecideLayerMode(on, unpack_key, {{kSnapshotRef, D(100)}}, std::nullopt);
  EXPECT_EQ(d.mode, LayerMode::kNative);
  EXPECT_TRUE(d.fell_back);
  d = DecideLayerMode(on, "default/1/extract-9-x " + D(7), {},
                      std::nullopt);  // ctr pull: no labels at all
  EXPECT_TRUE(d.fell_back);
  try {
    DecideLayerMode(strict, unpack_key, {}, std::nullopt);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFailedPrecondition);
    EXPECT_NE(std::string(e.what()).find("disable_snapshot_annotations = false"),
              std::string::npos);
  }
  // Not a layer unpack (container rootfs): native, never refused, whatever the parent.
  d = DecideLayerMode(strict, "k8s.io/9/container-abc", {}, LayerMode::kProxy);
  EXPECT_EQ(d.mode, LayerMode::kNative);
  EXPECT_FALSE(d.fell_back);
  // Overrides: first match wins; prefix patterns; canonical or as-sent refs.
  ProxyPolicy ov{
      .enable = true,
      .overrides = {{"127.0.0.1:5000/demo/*", LayerMode::kNative}, {"*", LayerMode::kProxy}}};
  EXPECT_EQ(DecideLayerMode(ov, unpack_key, Full(), std::nullopt).mode, LayerMode::kNative);
  ProxyPolicy ov2{.enable = true,
                  .overrides = {{"127.0.0.1:5000/demo/app:v1", LayerMode::kNative}}};
  EXPECT_EQ(DecideLayerMode(ov2, unpack_key, Full(), std::nullopt).mode, LayerMode::kNative);
  // Malformed labels are INVALID_ARGUMENT even when the fallback would apply.
  auto bad = Full();
  bad[kCriLayerDigest] = "nope";
  EXPECT_THROW(DecideLayerMode(on, unpack_key, bad, std::nullopt), Error);
}

TEST(IsLayerUnpack, Keys) {
  EXPECT_TRUE(IsLayerUnpack("k8s.io/3/extract-1234-abcd " + D(1), {}));
  EXPECT_TRUE(IsLayerUnpack("anything", {{kSnapshotRef, D(1)}}));
  EXPECT_FALSE(IsLayerUnpack("k8s.io/3/mycontainer", {}));
  EXPECT_FALSE(IsLayerUnpack("k8s.io/3/extract-but-no-chain", {}));
}

}  // namespace
}  // namespace lazysnap::labels

#include "labels/descriptor.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/sha256.h"

namespace lazysnap::labels {
namespace {

ProxyDescriptor Sample() {
  ProxyDescriptor d;
  d.image_ref = "127.0.0.1:5000/demo/app:v1";
  d.manifest_digest = Sha256Digest("manifest");
  for (int i = 0; i < 3; ++i)
    d.layers.push_back(
        {Sha256Digest("l" + std::to_string(i)), Sha256Digest("c" + std::to_string(i))});
  return d;
}

TEST(Descriptor, RoundTrip) {
  auto d = Sample();
  EXPECT_EQ(DecodeKataVolume(EncodeKataVolume(d)), d);
  auto opt = KataVolumeOption(d);
  EXPECT_TRUE(opt.starts_with("io.katacontainers.volume="));
  EXPECT_EQ(FindKataVolume({"lowerdir=/a", opt, "upperdir=/b"}), d);
  EXPECT_THROW(FindKataVolume({"lowerdir=/a"}), Error);
}

TEST(Descriptor, KataFieldNames) {
  // The field names kata-containers' KataVirtualVolume (serde) reads.
  auto j = nlohmann::json::parse(EncodeKataVolumeJson(Sample()));
  EXPECT_EQ(j["volume_type"], "image_guest_pull");
  EXPECT_EQ(j["source"], "127.0.0.1:5000/demo/app:v1");
  EXPECT_TRUE(j["image_pull"]["metadata"].is_object());
  EXPECT_EQ(j["image_pull"]["metadata"]["io.lazysnap.version"], "1");
  EXPECT_EQ(j.size(),
            3u);  // empty optional fields are omitted, as serde's skip_serializing_if does
}

TEST(Base64, Vectors) {
  EXPECT_EQ(Base64Encode(""), "");
  EXPECT_EQ(Base64Encode("f"), "Zg==");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_EQ(Base64Encode("foo"), "Zm9v");
  for (const std::string& s :
       {std::string(), std::string("f"), std::string("fo"), std::string("foo"), std::string("foob"),
        std::string("fooba"), std::string("foobar"), std::string("\0\xff\x10", 3)}) {
    EXPECT_EQ(Base64Decode(Base64Encode(s)), s);
  }
  for (const char* bad : {"Zg=", "Z===", "Zm9v!A==", "Zg==Zg==", "*"})
    EXPECT_THROW(Base64Decode(bad), Error) << bad;
}

void ExpectBad(const std::string& json, const std::string& needle) {
  try {
    DecodeKataVolumeJson(json);
    ADD_FAILURE() << "accepted " << json;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Descriptor, StrictDecode) {
  auto j = nlohmann::json::parse(EncodeKataVolumeJson(Sample()));
  ExpectBad("not json", "not valid JSON");
  ExpectBad("[]", "not a JSON object");
  auto k = j;
  k["volume_type"] = "direct_block";
  ExpectBad(k.dump(), "volume_type");
  k = j;
  k.erase("source");
  ExpectBad(k.dump(), "source");
  k = j;
  k["source"] = "Bad Ref";
  ExpectBad(k.dump(), "source");
  k = j;
  k["image_pull"]["metadata"]["io.lazysnap.layers"] = "sha256:x";
  ExpectBad(k.dump(), "io.lazysnap.layers");
  k = j;
  k["image_pull"]["metadata"]["io.lazysnap.chain-ids"] = Sha256Digest("one");
  ExpectBad(k.dump(), "different lengths");
  k = j;
  k["image_pull"]["metadata"]["io.lazysnap.version"] = "2";
  ExpectBad(k.dump(), "io.lazysnap.version");
  k = j;
  k["image_pull"]["metadata"]["io.lazysnap.manifest-digest"] = 5;
  ExpectBad(k.dump(), "must be a string");
  k = j;
  k.erase("image_pull");
  ExpectBad(k.dump(), "image_pull");
  EXPECT_THROW(DecodeKataVolume(std::string(2 << 20, 'A')), Error);
}

}  // namespace
}  // namespace lazysnap::labels

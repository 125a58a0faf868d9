#include "labels/descriptor.h"

#include <openssl/evp.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "labels/digest.h"
#include "labels/reference.h"

namespace lazysnap::labels {
namespace {

[[noreturn]] void Bad(const std::string& why) {
  throw Error(ErrorCode::kInvalidArgument, "Kata volume descriptor: " + why);
}

std::string Join(const std::vector<DescriptorLayer>& layers, bool chain) {
  std::string s;
  for (const auto& l : layers) {
    if (!s.empty()) s.push_back(',');
    s += chain ? l.chain_id : l.digest;
  }
  return s;
}

std::vector<std::string> SplitDigests(const std::string& value, const char* field) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t comma = value.find(',', start);
    std::string entry =
        value.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    out.push_back(ParseDigest(entry, std::string("Kata volume descriptor: ") + field).str());
    if (out.size() > kMaxDescriptorLayers) Bad(std::string(field) + " lists more than 1024 layers");
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

const std::string& RequireString(const nlohmann::json& obj, const char* key, const char* where) {
  auto it = obj.find(key);
  if (it == obj.end()) Bad(std::string("missing field ") + where + key);
  if (!it->is_string()) Bad(std::string("field ") + where + key + " must be a string");
  return it->get_ref<const std::string&>();
}

}  // namespace

std::string Base64Encode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) Bad("base64 length is not a multiple of 4");
  for (char c : text) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/' || c == '=';
    if (!ok) Bad("invalid base64 character");
  }
  size_t pad = 0;
  if (!text.empty() && text.back() == '=') ++pad;
  if (text.size() > 1 && text[text.size() - 2] == '=') ++pad;
  if (text.substr(0, text.size() - pad).find('=') != std::string_view::npos)
    Bad("'=' inside base64 data");
  std::string out(text.size() / 4 * 3 + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) Bad("invalid base64");
  out.resize(static_cast<size_t>(n) - pad);  // EVP_DecodeBlock counts padding as zero bytes
  return out;
}

std::string EncodeKataVolumeJson(const ProxyDescriptor& d) {
  nlohmann::json meta = {
      {kMetaVersion, kDescriptorVersion},
      {kMetaManifest, d.manifest_digest},
      {kMetaLayers, Join(d.layers, false)},
      {kMetaChainIds, Join(d.layers, true)},
  };
  nlohmann::json j = {
      {"volume_type", kKataVolumeTypeGuestPull},
      {"source", d.image_ref},
      {"image_pull", {{"metadata", meta}}},
  };
  return j.dump();
}

std::string EncodeKataVolume(const ProxyDescriptor& d) {
  return Base64Encode(EncodeKataVolumeJson(d));
}

std::string KataVolumeOption(const ProxyDescriptor& d) {
  return kKataVolumeOptionPrefix + EncodeKataVolume(d);
}

ProxyDescriptor DecodeKataVolumeJson(std::string_view json) {
  if (json.size() > kMaxDescriptorBytes) Bad("larger than 1 MiB");
  nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) Bad("not valid JSON");
  if (!j.is_object()) Bad("not a JSON object");
  const std::string& type = RequireString(j, "volume_type", "");
  if (type != kKataVolumeTypeGuestPull)
    Bad("volume_type is \"" + type.substr(0, 64) + "\", want image_guest_pull");
  ProxyDescriptor d;
  d.image_ref = RequireString(j, "source", "");
  ParseReference(d.image_ref, "Kata volume descriptor: source");
  auto ip = j.find("image_pull");
  if (ip == j.end() || !ip->is_object()) Bad("missing object image_pull");
  auto meta = ip->find("metadata");
  if (meta == ip->end() || !meta->is_object()) Bad("missing object image_pull.metadata");
  const std::string& version = RequireString(*meta, kMetaVersion, "image_pull.metadata.");
  if (version != kDescriptorVersion) {
    Bad(std::string("unsupported ") + kMetaVersion + " \"" + version.substr(0, 16) +
        "\" (this build reads 1)");
  }
  d.manifest_digest = ParseDigest(RequireString(*meta, kMetaManifest, "image_pull.metadata."),
                                  std::string("Kata volume descriptor: ") + kMetaManifest)
                          .str();
  auto layers =
      SplitDigests(RequireString(*meta, kMetaLayers, "image_pull.metadata."), kMetaLayers);
  auto chains =
      SplitDigests(RequireString(*meta, kMetaChainIds, "image_pull.metadata."), kMetaChainIds);
  if (layers.size() != chains.size()) {
    Bad(std::string(kMetaLayers) + " and " + kMetaChainIds + " have different lengths (" +
        std::to_string(layers.size()) + " vs " + std::to_string(chains.size()) + ")");
  }
  for (size_t i = 0; i < layers.size(); ++i) d.layers.push_back({layers[i], chains[i]});
  return d;
}

ProxyDescriptor DecodeKataVolume(std::string_view base64) {
  if (base64.size() > kMaxDescriptorBytes * 4 / 3 + 4) Bad("larger than 1 MiB");
  return DecodeKataVolumeJson(Base64Decode(base64));
}

ProxyDescriptor FindKataVolume(const std::vector<std::string>& mount_options) {
  for (const auto& o : mount_options) {
    if (o.starts_with(kKataVolumeOptionPrefix)) {
      return DecodeKataVolume(
          std::string_view(o).substr(std::string_view(kKataVolumeOptionPrefix).size()));
    }
  }
  throw Error(ErrorCode::kNotFound,
              std::string("mount options carry no ") + kKataVolumeOptionPrefix + "...");
}

}  // namespace lazysnap::labels

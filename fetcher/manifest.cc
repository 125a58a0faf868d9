#include "fetcher/manifest.h"

#include <sys/utsname.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "labels/digest.h"

namespace lazysnap::fetcher {
namespace {

using nlohmann::json;

constexpr size_t kMaxManifestBytes = 4 << 20;  // the distribution spec's limit for manifests
constexpr size_t kMaxEntries = 10000;

[[noreturn]] void Bad(const std::string& what, const std::string& why) {
  throw Error(ErrorCode::kInvalidArgument, what + ": " + why);
}

json Load(std::string_view text, const char* what) {
  if (text.size() > kMaxManifestBytes) Bad(what, "larger than 4 MiB");
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) Bad(what, "not valid JSON");
  if (!j.is_object()) Bad(what, "not a JSON object");
  return j;
}

std::string Str(const json& o, const char* key, const std::string& where, bool required) {
  auto it = o.find(key);
  if (it == o.end()) {
    if (required) Bad(where, std::string("missing field \"") + key + "\"");
    return "";
  }
  if (!it->is_string()) Bad(where, std::string("field \"") + key + "\" must be a string");
  return it->get<std::string>();
}

Descriptor ParseDescriptor(const json& o, const std::string& where) {
  if (!o.is_object()) Bad(where, "must be an object");
  Descriptor d;
  d.media_type = Str(o, "mediaType", where, true);
  d.digest = labels::ParseDigest(Str(o, "digest", where, true), where + ".digest").str();
  auto size = o.find("size");
  if (size == o.end() || !size->is_number_integer() || size->get<int64_t>() < 0) {
    Bad(where, "field \"size\" must be a non-negative integer");
  }
  d.size = size->get<uint64_t>();
  auto p = o.find("platform");
  if (p != o.end()) {
    if (!p->is_object()) Bad(where, "field \"platform\" must be an object");
    d.platform_os = Str(*p, "os", where + ".platform", false);
    d.platform_arch = Str(*p, "architecture", where + ".platform", false);
    d.platform_variant = Str(*p, "variant", where + ".platform", false);
  }
  d.artifact_type = Str(o, "artifactType", where, false);
  return d;
}

void CheckSchema(const json& j, const char* what) {
  auto v = j.find("schemaVersion");
  if (v == j.end() || !v->is_number_integer() || v->get<int64_t>() != 2)
    Bad(what, "schemaVersion must be 2");
}

}  // namespace

std::string ManifestAcceptHeader() {
  return std::string("Accept: ") + kOciManifest + ", " + kOciIndex + ", " + kDockerManifest + ", " +
         kDockerManifestList;
}

bool IsIndexMediaType(std::string_view mt) {
  return mt == kOciIndex || mt == kDockerManifestList;
}

std::string DetectMediaType(std::string_view text, std::string_view content_type) {
  json j = json::parse(text, nullptr, false);
  if (j.is_object()) {
    auto mt = j.find("mediaType");
    if (mt != j.end() && mt->is_string()) return mt->get<std::string>();
    if (j.contains("manifests")) return kOciIndex;
    if (j.contains("layers")) return kOciManifest;
  }
  auto semi = content_type.find(';');
  return std::string(content_type.substr(0, semi));
}

Manifest ParseManifest(std::string_view text) {
  json j = Load(text, "manifest");
  CheckSchema(j, "manifest");
  Manifest m;
  m.media_type = Str(j, "mediaType", "manifest", false);
  if (!m.media_type.empty() && m.media_type != kOciManifest && m.media_type != kDockerManifest) {
    Bad("manifest", "unsupported mediaType \"" + m.media_type.substr(0, 100) + "\"");
  }
  auto cfg = j.find("config");
  if (cfg == j.end()) Bad("manifest", "missing field \"config\"");
  m.config = ParseDescriptor(*cfg, "manifest.config");
  auto layers = j.find("layers");
  if (layers == j.end() || !layers->is_array())
    Bad("manifest", "field \"layers\" must be an array");
  if (layers->size() > kMaxEntries) Bad("manifest", "more than 10000 layers");
  for (size_t i = 0; i < layers->size(); ++i) {
    m.layers.push_back(ParseDescriptor((*layers)[i], "manifest.layers[" + std::to_string(i) + "]"));
  }
  return m;
}

Index ParseIndex(std::string_view text) {
  json j = Load(text, "image index");
  CheckSchema(j, "image index");
  Index idx;
  idx.media_type = Str(j, "mediaType", "image index", false);
  auto ms = j.find("manifests");
  if (ms == j.end() || !ms->is_array()) Bad("image index", "field \"manifests\" must be an array");
  if (ms->size() > kMaxEntries) Bad("image index", "more than 10000 manifests");
  for (size_t i = 0; i < ms->size(); ++i) {
    idx.manifests.push_back(
        ParseDescriptor((*ms)[i], "image index.manifests[" + std::to_string(i) + "]"));
  }
  return idx;
}

const Descriptor& SelectPlatform(const Index& index, const std::string& os, const std::string& arch,
                                 const std::string& variant) {
  const Descriptor* any_variant = nullptr;
  std::string offered;
  for (const auto& d : index.manifests) {
    offered += (offered.empty() ? "" : ", ") + d.platform_os + "/" + d.platform_arch +
               (d.platform_variant.empty() ? "" : "/" + d.platform_variant);
    if (d.platform_os != os || d.platform_arch != arch) continue;
    if (d.platform_variant == variant) return d;
    if (!any_variant) any_variant = &d;
  }
  if (any_variant) return *any_variant;
  throw Error(ErrorCode::kNotFound, "image index has no manifest for " + os + "/" + arch +
                                        " (offers: " + (offered.empty() ? "none" : offered) + ")");
}

std::string HostArchitecture() {
  struct utsname u {};
  ::uname(&u);
  std::string m = u.machine;
  if (m == "x86_64") return "amd64";
  if (m == "aarch64") return "arm64";
  if (m == "i686" || m == "i386") return "386";
  if (m.starts_with("armv")) return "arm";
  return m;
}

}  // namespace lazysnap::fetcher

// OCI / Docker v2 image manifests and indexes (manifest lists): strict parsing of untrusted JSON
// from registries, and platform selection. Fuzzed.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lazysnap::fetcher {

inline constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr const char* kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr const char* kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr const char* kDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
// What a client accepts, for the Accept header.
std::string ManifestAcceptHeader();

struct Descriptor {
  std::string media_type;
  std::string digest;
  uint64_t size = 0;
  std::string platform_os, platform_arch, platform_variant;  // index entries only
  std::string artifact_type;  // "artifactType" (referrers index entries); empty when absent
};

struct Manifest {
  std::string media_type;
  Descriptor config;
  std::vector<Descriptor> layers;
};

struct Index {
  std::string media_type;
  std::vector<Descriptor> manifests;
};

bool IsIndexMediaType(std::string_view media_type);
// Media type from the JSON's own mediaType, else the HTTP Content-Type.
std::string DetectMediaType(std::string_view json, std::string_view content_type);
Manifest ParseManifest(std::string_view json);  // Error(kInvalidArgument) naming the field
Index ParseIndex(std::string_view json);
// The entry for linux/<arch>[/<variant>]; Error(kNotFound) listing what the index offers.
const Descriptor& SelectPlatform(const Index& index, const std::string& os, const std::string& arch,
                                 const std::string& variant = "");
// This host's GOARCH-style architecture ("amd64", "arm64", ...).
std::string HostArchitecture();

}  // namespace lazysnap::fetcher

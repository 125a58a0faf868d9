// The proxy descriptor a Kata guest receives instead of a rootfs: a KataVirtualVolume (the JSON
// type kata-containers' runtime and agent decode, kata-types src/mount.rs) of volume_type
// "image_guest_pull", base64-encoded into the mount option io.katacontainers.volume=... of a
// mount whose type Kata recognises (fuse.nydus-overlayfs). Defined once here, with both sides.
//
// JSON (fields Kata defines; empty ones omitted):
//   {"volume_type":"image_guest_pull","source":"<image ref>",
//    "image_pull":{"metadata":{"io.lazysnap.version":"1","io.lazysnap.manifest-digest":"sha256:..",
//      "io.lazysnap.layers":"sha256:l1,sha256:l2","io.lazysnap.chain-ids":"sha256:c1,sha256:c2"}}}
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lazysnap::labels {

inline constexpr const char* kKataVolumeOptionPrefix = "io.katacontainers.volume=";
inline constexpr const char* kKataVolumeTypeGuestPull = "image_guest_pull";
inline constexpr const char* kMetaVersion = "io.lazysnap.version";
inline constexpr const char* kMetaManifest = "io.lazysnap.manifest-digest";
inline constexpr const char* kMetaLayers = "io.lazysnap.layers";
inline constexpr const char* kMetaChainIds = "io.lazysnap.chain-ids";
inline constexpr const char* kDescriptorVersion = "1";

struct DescriptorLayer {
  std::string digest;    // compressed layer blob digest
  std::string chain_id;  // chainID of the image up to and including this layer
  bool operator==(const DescriptorLayer&) const = default;
};

struct ProxyDescriptor {
  std::string image_ref;        // as the CRI pull requested it (the guest resolves mirrors itself)
  std::string manifest_digest;  // the image manifest the layers belong to
  std::vector<DescriptorLayer> layers;  // bottom layer first
  bool operator==(const ProxyDescriptor&) const = default;
};

std::string EncodeKataVolumeJson(const ProxyDescriptor& d);
std::string EncodeKataVolume(const ProxyDescriptor& d);  // base64(JSON)
// Strict: unknown volume_type, missing/malformed fields, bad base64 or JSON, more than
// kMaxDescriptorLayers layers -> Error(kInvalidArgument) naming the field.
ProxyDescriptor DecodeKataVolumeJson(std::string_view json);
ProxyDescriptor DecodeKataVolume(std::string_view base64);
// "io.katacontainers.volume=<base64>"
std::string KataVolumeOption(const ProxyDescriptor& d);
// Finds and decodes the option in a mount's option list; Error(kNotFound) when absent.
ProxyDescriptor FindKataVolume(const std::vector<std::string>& mount_options);

inline constexpr size_t kMaxDescriptorLayers = 1024;
inline constexpr size_t kMaxDescriptorBytes = 1 << 20;

std::string Base64Encode(std::string_view data);
std::string Base64Decode(std::string_view text);  // Error(kInvalidArgument) on bad input

}  // namespace lazysnap::labels

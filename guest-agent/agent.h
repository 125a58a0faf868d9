// lazysnap-guest's core: turns a proxy-mode descriptor (labels/descriptor.h) into a container
// rootfs inside the guest. For each layer, bottom first:
//  - lazy:  the layer has a lazy index (lazysnap index pushed one, or an earlier mount left it in
//           the state dir): mounted read-only over FUSE by a LayerService in this process and
//           served from the registry on demand;
//  - erofs: otherwise the blob is fetched whole (digest-verified, streamed to disk), turned into a
//           full EROFS image by mkfs.erofs, and mounted by the kernel (file-backed, else loop).
// Then overlayfs with lowerdir = the layers, top first, and a fresh upper/work on the target.
// Everything mounted so far is unwound when a step fails.
//
// State under `state_dir` (one agent per state dir: agent.lock):
//   lazy/      LayerService root (downloaded layer indexes, keyed by layer digest)
//   cache/     chunk cache of lazily read bytes (unless cache_dir says otherwise)
//   images/    <layer hex>.erofs full images, reused by later mounts of the same layer
//   layers/<n>, upper/, work/                      the rootfs of `mount` (single_mount)
//   mounts/<hash of target>/{layers/<n>,upper,work}  each rootfs of `serve`
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "common/unique_fd.h"
#include "guest-agent/mounts.h"
#include "labels/descriptor.h"

namespace lazysnap::lazy {
class LayerService;
}

namespace lazysnap::guest {

struct AgentOptions {
  std::string state_dir = "/var/lib/lazysnap-guest";
  std::string cache_dir;  // empty: <state_dir>/cache
  uint64_t cache_max_bytes = 10ull << 30;
  std::vector<std::string> plain_http;    // registry hosts reached over http
  std::string hosts_dir;                  // containerd-style certs.d (mirrors)
  std::string docker_config;              // registry credentials ("auths")
  std::chrono::seconds read_timeout{60};  // a lazy read waits this long for the registry, then EIO
  ErofsBackend erofs_backend = ErofsBackend::kAuto;
  std::string mkfs_path;  // empty: the mkfs.erofs this build was configured with
  // Layers without a lazy index fetched and built into EROFS images at once (like containerd's
  // max_concurrent_downloads).
  unsigned parallel_layers = 3;
  // Un-indexed layers as index-only EROFS images + their tars (faster to build; EROFS extra
  // devices need Linux >= 5.16) or as full images (data copied in; any EROFS kernel).
  bool full_images = false;
  std::string filesystems_path = "/proc/filesystems";
  std::string fuse_device = "/dev/fuse";
  // `mount`: the one rootfs lives directly in state_dir (layers/<n>, upper, work).
  bool single_mount = false;
};

class GuestAgent {
 public:
  // Creates the state dir, takes its lock (Error(kFailedPrecondition) if another agent holds it)
  // and opens the lazy layer service.
  GuestAgent(const AgentOptions& opts, const Logger& log);
  ~GuestAgent();  // unmounts every rootfs
  GuestAgent(const GuestAgent&) = delete;
  GuestAgent& operator=(const GuestAgent&) = delete;

  // Mounts the image's rootfs at `target` (created if missing) and returns the readiness report:
  // {"ready":true,"target","image","manifest_digest","seconds",
  //  "layers":[{"index","digest","mode":"lazy"|"erofs","mountpoint","seconds",...}]}.
  // Errors name the layer and what failed; nothing stays mounted then.
  nlohmann::json Mount(const labels::ProxyDescriptor& desc, const std::string& target);
  // Unmounts the rootfs at `target` and its layers. Error(kNotFound) if none is mounted there.
  void Unmount(const std::string& target);
  void UnmountAll();
  size_t mounted() const;
  // {"mounts":[{"target","image","manifest_digest","layers":[{..., "mode", lazy counters}]}],
  //  "cache":{...}}
  nlohmann::json Status() const;

  // The socket protocol: {"op":"mount","descriptor":<string or object>,"target"},
  // {"op":"umount","target"}, {"op":"status"}, {"op":"ping"}.
  nlohmann::json Handle(const nlohmann::json& request);

  struct Rootfs;

 private:
  AgentOptions opts_;
  const Logger& log_;
  UniqueFd lock_fd_;
  std::unique_ptr<lazy::LayerService> service_;
  std::mutex ops_mu_;  // one mount/unmount at a time (status does not wait for them)
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Rootfs>> mounts_;  // target -> rootfs

  std::unique_ptr<Rootfs> MountRootfs(const labels::ProxyDescriptor& desc,
                                      const std::string& target, nlohmann::json* report);
};

}  // namespace lazysnap::guest

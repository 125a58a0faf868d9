// The kernel mounts the agent makes, each owned by an RAII handle so that a failure halfway
// through a rootfs leaves nothing mounted: EROFS images (file-backed, or on a loop device for
// kernels without file-backed EROFS) and the overlay on top.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace lazysnap::guest {

// Owns one mount(2): unmounts it on destruction (plainly; lazily with MNT_DETACH when busy).
class KernelMount {
 public:
  KernelMount() = default;
  // mount(2) or Error naming fstype, source, target and errno.
  KernelMount(const std::string& source, const std::string& target, const std::string& fstype,
              unsigned long flags, const std::string& data);
  KernelMount(KernelMount&& o) noexcept;
  KernelMount& operator=(KernelMount&& o) noexcept;
  KernelMount(const KernelMount&) = delete;
  KernelMount& operator=(const KernelMount&) = delete;
  ~KernelMount();

  // Returns false when the mount was busy and had to be detached instead.
  bool Unmount() noexcept;
  const std::string& target() const { return target_; }
  explicit operator bool() const { return !target_.empty(); }

 private:
  std::string target_;
};

enum class ErofsBackend {
  kAuto,  // file-backed mount, a loop device if the kernel refuses one
  kFile,  // file-backed only (Linux >= 6.12 with CONFIG_EROFS_FS_BACKED_BY_FILE)
  kLoop,  // always a loop device
};
ErofsBackend ParseErofsBackend(std::string_view name);  // "auto" | "file" | "loop"

// Mounts the EROFS image file `image` read-only at `target`; `blob` (optional): the uncompressed
// tar an index-only image keeps its file data in (EROFS's extra device). `*used` says how:
// "file" or "loop" (loop devices, for the image and the blob, are set up with autoclear: they go
// away with the mount).
KernelMount MountErofsImage(const std::string& image, const std::string& target,
                            ErofsBackend backend, std::string* used, const std::string& blob = "");

// overlayfs at `target`: `lowers` topmost first. Paths must not contain ':' or ','.
// Error(kInvalidArgument) if the options exceed a page (too many layers for mount(2)).
KernelMount MountOverlay(const std::vector<std::string>& lowers, const std::string& upper,
                         const std::string& work, const std::string& target);

struct MountEntry {
  std::string mountpoint, fstype, source, super_options;
};
// This process's mount namespace, from /proc/self/mountinfo, in its order.
std::vector<MountEntry> ReadMountTable();
// Mount points at or below `dir`, in mountinfo order.
std::vector<std::string> MountsAtOrBelow(const std::string& dir);
bool IsMountPoint(const std::string& path);

}  // namespace lazysnap::guest

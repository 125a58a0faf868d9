#include "guest-agent/mounts.h"

#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "common/error.h"
#include "common/temp_dir.h"
#include "common/unique_fd.h"

namespace lazysnap::guest {
namespace {

std::string Errno(int err) {
  return std::strerror(err);
}

// A loop device reading `image`, read-only, detached automatically once unused: the returned fd
// keeps it until the caller has mounted it.
UniqueFd AttachLoop(const std::string& image, std::string* device) {
  UniqueFd file(::open(image.c_str(), O_RDONLY | O_CLOEXEC));
  if (!file) ThrowErrno("open " + image);
  UniqueFd ctl(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
  if (!ctl) {
    throw Error(ErrorCode::kFailedPrecondition,
                "no loop devices (/dev/loop-control: " + Errno(errno) +
                    "): the kernel needs CONFIG_BLK_DEV_LOOP, or file-backed EROFS "
                    "(CONFIG_EROFS_FS_BACKED_BY_FILE, Linux >= 6.12)");
  }
  for (int attempt = 0; attempt < 16; ++attempt) {
    int n = ::ioctl(ctl.get(), LOOP_CTL_GET_FREE);
    if (n < 0) ThrowErrno("LOOP_CTL_GET_FREE");
    std::string dev = "/dev/loop" + std::to_string(n);
    UniqueFd loop(::open(dev.c_str(), O_RDWR | O_CLOEXEC));
    if (!loop) ThrowErrno("open " + dev);
    loop_config cfg{};
    cfg.fd = static_cast<uint32_t>(file.get());
    cfg.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
    std::strncpy(reinterpret_cast<char*>(cfg.info.lo_file_name), image.c_str(), LO_NAME_SIZE - 1);
    if (::ioctl(loop.get(), LOOP_CONFIGURE, &cfg) == 0) {
      *device = dev;
      return loop;
    }
    if (errno == EBUSY) continue;  // taken by someone else between GET_FREE and CONFIGURE
    if (errno != EINVAL && errno != ENOTTY) ThrowErrno("LOOP_CONFIGURE " + dev);
    // Kernels before 5.8: the two-step setup.
    if (::ioctl(loop.get(), LOOP_SET_FD, file.get()) != 0) {
      if (errno == EBUSY) continue;
      ThrowErrno("LOOP_SET_FD " + dev);
    }
    if (::ioctl(loop.get(), LOOP_SET_STATUS64, &cfg.info) != 0) {
      int err = errno;
      ::ioctl(loop.get(), LOOP_CLR_FD, 0);
      ThrowErrno("LOOP_SET_STATUS64 " + dev, err);
    }
    *device = dev;
    return loop;
  }
  throw Error(ErrorCode::kUnavailable, "no free loop device for " + image);
}

}  // namespace

KernelMount::KernelMount(const std::string& source, const std::string& target,
                         const std::string& fstype, unsigned long flags, const std::string& data) {
  if (::mount(source.c_str(), target.c_str(), fstype.c_str(), flags,
              data.empty() ? nullptr : data.c_str()) != 0) {
    int err = errno;
    std::string hint = err == EPERM ? " (the agent must run as root, with CAP_SYS_ADMIN)" : "";
    throw Error(err == ENODEV ? ErrorCode::kFailedPrecondition : ErrorCode::kInternal,
                "mount -t " + fstype + " " + source + " " + target + ": " + Errno(err) + hint);
  }
  target_ = target;
}

KernelMount::KernelMount(KernelMount&& o) noexcept : target_(std::exchange(o.target_, {})) {}

KernelMount& KernelMount::operator=(KernelMount&& o) noexcept {
  if (this != &o) {
    Unmount();
    target_ = std::exchange(o.target_, {});
  }
  return *this;
}

KernelMount::~KernelMount() {
  Unmount();
}

bool KernelMount::Unmount() noexcept {
  if (target_.empty()) return true;
  bool clean = true;
  if (::umount2(target_.c_str(), 0) != 0) {
    clean = false;
    ::umount2(target_.c_str(), MNT_DETACH);
  }
  target_.clear();
  return clean;
}

ErofsBackend ParseErofsBackend(std::string_view name) {
  if (name == "auto") return ErofsBackend::kAuto;
  if (name == "file") return ErofsBackend::kFile;
  if (name == "loop") return ErofsBackend::kLoop;
  throw Error(ErrorCode::kInvalidArgument,
              "--erofs-backend wants auto, file or loop, not \"" + std::string(name) + "\"");
}

KernelMount MountErofsImage(const std::string& image, const std::string& target,
                            ErofsBackend backend, std::string* used, const std::string& blob) {
  if (blob.find(',') != std::string::npos)
    throw Error(ErrorCode::kInvalidArgument, "EROFS blob path has ',': " + blob);
  std::string file_error;
  if (backend != ErofsBackend::kLoop) {
    // Linux >= 6.12 mounts an EROFS image file directly: no loop device, no block layer (and
    // opens the extra device as a file too).
    try {
      KernelMount m(image, target, "erofs", MS_RDONLY, blob.empty() ? "" : "device=" + blob);
      *used = "file";
      return m;
    } catch (const Error& e) {
      file_error = e.what();
      if (backend == ErofsBackend::kFile) {
        throw Error(ErrorCode::kFailedPrecondition,
                    file_error +
                        " (file-backed EROFS needs Linux >= 6.12 with "
                        "CONFIG_EROFS_FS_BACKED_BY_FILE; try --erofs-backend loop)");
      }
    }
  }
  std::string dev, blob_dev;
  UniqueFd loop = AttachLoop(image, &dev);
  UniqueFd blob_loop;
  if (!blob.empty()) blob_loop = AttachLoop(blob, &blob_dev);
  try {
    KernelMount m(dev, target, "erofs", MS_RDONLY, blob.empty() ? "" : "device=" + blob_dev);
    *used = "loop";
    return m;
  } catch (const Error& e) {
    throw Error(e.code(),
                std::string(e.what()) + (file_error.empty() ? "" : "; file-backed: " + file_error));
  }
}

KernelMount MountOverlay(const std::vector<std::string>& lowers, const std::string& upper,
                         const std::string& work, const std::string& target) {
  if (lowers.empty()) throw Error(ErrorCode::kInvalidArgument, "overlay needs a lower layer");
  std::string data = "lowerdir=";
  for (size_t i = 0; i < lowers.size(); ++i) {
    if (lowers[i].find_first_of(":,") != std::string::npos)
      throw Error(ErrorCode::kInvalidArgument, "layer path has ':' or ',': " + lowers[i]);
    data += (i ? ":" : "") + lowers[i];
  }
  for (const auto* p : {&upper, &work}) {
    if (p->find_first_of(":,") != std::string::npos)
      throw Error(ErrorCode::kInvalidArgument, "overlay path has ':' or ',': " + *p);
  }
  data += ",upperdir=" + upper + ",workdir=" + work + ",index=off";
  long page = ::sysconf(_SC_PAGESIZE);
  if (static_cast<long>(data.size()) >= page) {
    throw Error(ErrorCode::kInvalidArgument,
                "overlay options for " + std::to_string(lowers.size()) + " layers are " +
                    std::to_string(data.size()) + " bytes, over mount(2)'s page (" +
                    std::to_string(page) + "): use a shorter --state path");
  }
  return KernelMount("overlay", target, "overlay", 0, data);
}

std::vector<MountEntry> ReadMountTable() {
  std::ifstream in("/proc/self/mountinfo");
  std::vector<MountEntry> out;
  std::string line;
  // id parent major:minor root mountpoint options [optional fields...] - fstype source superopts
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, mountpoint, word;
    fields >> id >> parent >> devno >> root >> mountpoint;
    MountEntry e;
    e.mountpoint = UnescapeMountPath(mountpoint);
    while (fields >> word && word != "-") {
    }
    fields >> e.fstype >> e.source >> e.super_options;
    e.source = UnescapeMountPath(e.source);
    e.super_options = UnescapeMountPath(e.super_options);
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<std::string> MountsAtOrBelow(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : ReadMountTable()) {
    if (e.mountpoint == dir || e.mountpoint.starts_with(dir + "/")) out.push_back(e.mountpoint);
  }
  return out;
}

bool IsMountPoint(const std::string& path) {
  for (const auto& m : MountsAtOrBelow(path)) {
    if (m == path) return true;
  }
  return false;
}

}  // namespace lazysnap::guest

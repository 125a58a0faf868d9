// A real containerd (Debian's package) with its own root, state and sockets in a temp dir,
// wired to a lazysnapd socket as proxy plugin "lazysnap". Stopped and cleaned on destruction.
// runc state and shim sockets still live under /run/containerd, so each instance uses its own
// namespace and callers use unique container IDs.
#pragma once

#include <string>
#include <vector>

#include "common/process.h"
#include "common/temp_dir.h"

namespace lazysnap::testing {

struct ContainerdOptions {
  std::string snapshotter_socket;            // lazysnapd's socket
  bool cri = false;                          // enable the CRI plugin (snapshotter = "lazysnap")
  bool cri_snapshot_annotations = true;      // disable_snapshot_annotations = !this
  std::string mirror_host;                   // "127.0.0.1:PORT": plain-http registry for CRI pulls
  std::string sandbox_image;                 // CRI sandbox (pause) image
  std::string cri_snapshotter = "lazysnap";  // CRI's snapshotter (benchmarks compare "overlayfs")
};

class Containerd {
 public:
  explicit Containerd(const ContainerdOptions& opts);
  Containerd(const Containerd&) = delete;
  Containerd& operator=(const Containerd&) = delete;
  ~Containerd();

  const std::string& address() const { return address_; }
  const std::string& ns() const { return ns_; }
  std::string log_path() const { return dir_ / "containerd.log"; }
  std::string root_dir() const { return dir_ / "root"; }
  // Runs `ctr -a ADDR -n NS args...` (NS: `ns`, or this instance's own namespace when empty).
  CommandResult Ctr(const std::vector<std::string>& args, int timeout_s = 120,
                    const std::string& ns = "") const;
  // Like Ctr but throws with the output (and containerd's log tail) on failure.
  std::string CtrOrThrow(const std::vector<std::string>& args, int timeout_s = 120,
                         const std::string& ns = "") const;
  // A pulled image's top snapshot (its chain ID) in `snapshotter`: the committed snapshot that is
  // nobody's parent. Throws Error(kNotFound) when there is none.
  std::string TopCommittedSnapshot(const std::string& snapshotter, const std::string& ns) const;

 private:
  TempDir dir_{"containerd"};
  std::string address_;
  std::string ns_;
  Subprocess proc_;
};

}  // namespace lazysnap::testing

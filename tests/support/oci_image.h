// Builds small OCI images for tests with umoci (busybox-static rootfs plus extra layers) and
// pushes them to a registry with skopeo. Everything lives in a temp dir owned by the builder.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/temp_dir.h"

namespace lazysnap::testing {

struct PushedImage {
  std::string ref;                         // "127.0.0.1:PORT/repo:tag"
  std::string manifest_digest;             // "sha256:..."
  std::vector<std::string> layer_digests;  // compressed blob digests, bottom first
  std::vector<uint64_t> layer_sizes;
};

class OciImageBuilder {
 public:
  OciImageBuilder();
  // First layer: busybox-static at /bin/busybox with applet links (sh, echo, cat, ls,
  // sha256sum...).
  void AddBusyboxLayer();
  // A further layer holding `files` (path relative to / -> contents).
  void AddFileLayer(const std::map<std::string, std::string>& files);
  void SetCmd(const std::vector<std::string>& cmd);
  // Rewrites the top layer as tar+zstd in many frames (a frame per 2 MiB of tar, as pzstd -1
  // cuts them). Call last, before Push.
  void RecompressTopLayerAsZstdFrames();
  // Pushes over plain http to `registry_host` ("127.0.0.1:PORT") as `repo:tag`.
  PushedImage Push(const std::string& registry_host, const std::string& repo_tag) const;
  std::string layout_dir() const { return dir_ / "oci"; }

 private:
  TempDir dir_{"ociimg"};
  int layers_ = 0;
};

}  // namespace lazysnap::testing

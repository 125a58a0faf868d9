// `lazysnap mount <ref> <dir> [--socket S] [--hosts-dir DIR] [--plain-http] [--docker-config F]`
// `lazysnap umount <dir> [--socket S]`
// Mounts an indexed image read-only at <dir> without downloading it: lazysnap-fused mounts each
// layer lazily under <dir>/../.<name>.layers/<n> and overlayfs stacks them at <dir>. For looking
// into an image (like `ctr image mount`, but lazy); containers go through lazysnapd instead.
#include <sys/mount.h>

#include <cstdio>
#include <cstring>

#include "cli/args.h"
#include "cli/commands.h"
#include "common/error.h"
#include "common/file_util.h"
#include "fetcher/registry_client.h"
#include "labels/reference.h"
#include "lazy/control.h"

namespace lazysnap::cli {
namespace {

constexpr const char* kUsage =
    "usage: lazysnap mount <ref> <dir> [--socket SOCKET] [--hosts-dir DIR] [--plain-http]\n"
    "                      [--docker-config FILE]\n"
    "       lazysnap umount <dir> [--socket SOCKET]\n";
constexpr const char* kDefaultSocket = "/run/lazysnap/fused.sock";

std::string LayersDir(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  auto slash = dir.rfind('/');
  return dir.substr(0, slash + 1) + "." + dir.substr(slash + 1) + ".layers";
}

void UnmountLayers(const std::string& socket, const std::string& layers, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    std::string mp = layers + "/" + std::to_string(i);
    try {
      lazy::CallControl(socket, {{"op", "unmount"}, {"mountpoint", mp}}, std::chrono::seconds(30));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "lazysnap: unmount %s: %s\n", mp.c_str(), e.what());
    }
    ::rmdir(mp.c_str());
  }
  ::rmdir(layers.c_str());
}

}  // namespace

int RunMount(const std::vector<std::string>& args) {
  std::string ref_text, dir, socket = kDefaultSocket;
  fetcher::RegistryOptions opts;
  ArgParser p("lazysnap mount", kUsage);
  RegistryFlags(p.Value("--socket", &socket), &opts).Positional(&ref_text).Positional(&dir);
  if (auto rc = p.Parse(args)) return *rc;
  if (ref_text.empty() || dir.empty()) return p.UsageError();
  if (dir.front() != '/') return p.UsageError("<dir> must be absolute");
  std::string layers = LayersDir(dir);
  size_t mounted = 0;
  try {
    auto ref = labels::ParseReference(ref_text);
    fetcher::RegistryClient client(ref, opts);
    auto img = client.Resolve(ref);
    MakeDirs(dir);
    MakeDirs(layers, 0700);
    std::string lower;
    for (const auto& l : img.manifest.layers) {
      nlohmann::json req = {{"image_ref", ref_text},
                            {"manifest_digest", img.manifest_digest},
                            {"layer_digest", l.digest}};
      req["op"] = "prepare";
      if (!lazy::CallControl(socket, req).value("indexed", false)) {
        throw Error(
            ErrorCode::kFailedPrecondition,
            "layer " + l.digest + " has no lazy index (run `lazysnap index " + ref_text + "`)");
      }
      std::string mp = layers + "/" + std::to_string(mounted);
      MakeDirs(mp, 0755);
      req["op"] = "mount";
      req["mountpoint"] = mp;
      lazy::CallControl(socket, req);
      ++mounted;
      lower = lower.empty() ? mp : mp + ":" + lower;  // overlayfs wants the top layer first
    }
    if (mounted == 1) {
      if (::mount(lower.c_str(), dir.c_str(), nullptr, MS_BIND | MS_RDONLY, nullptr) != 0)
        ThrowErrno("bind mount " + dir);
    } else {
      // Two or more lowers and no upper: a read-only overlay.
      std::string data = "lowerdir=" + lower;
      if (::mount("overlay", dir.c_str(), "overlay", MS_RDONLY, data.c_str()) != 0)
        ThrowErrno("mount overlay at " + dir);
    }
    std::printf("%s mounted lazily at %s (%zu layers)\n", ref_text.c_str(), dir.c_str(), mounted);
    return 0;
  } catch (const std::exception& e) {
    UnmountLayers(socket, layers, mounted);
    std::fprintf(stderr, "lazysnap mount: %s\n", e.what());
    return 1;
  }
}

int RunUmount(const std::vector<std::string>& args) {
  std::string dir, socket = kDefaultSocket;
  ArgParser p("lazysnap umount", kUsage);
  p.Value("--socket", &socket).Positional(&dir);
  if (auto rc = p.Parse(args)) return *rc;
  if (dir.empty()) return p.UsageError();
  if (::umount2(dir.c_str(), 0) != 0 && errno != EINVAL) {
    std::fprintf(stderr, "lazysnap umount: %s: %s\n", dir.c_str(), std::strerror(errno));
    return 1;
  }
  std::string layers = LayersDir(dir);
  size_t n = 0;
  while (PathExists(layers + "/" + std::to_string(n))) ++n;
  UnmountLayers(socket, layers, n);
  return 0;
}

}  // namespace lazysnap::cli

#include "guest-agent/agent.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <filesystem>
#include <set>

#include "common/error.h"
#include "common/file_util.h"
#include "common/parallel.h"
#include "common/sha256.h"
#include "common/temp_dir.h"
#include "erofs/layer_builder.h"
#include "fetcher/registry_client.h"
#include "guest-agent/descriptor_input.h"
#include "guest-agent/kernel.h"
#include "labels/reference.h"
#include "lazy/layer_service.h"

namespace lazysnap::guest {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  double s = std::chrono::duration<double>(Clock::now() - t).count();
  return std::round(s * 1000) / 1000;
}

std::string Hex(const std::string& digest) {
  return digest.starts_with("sha256:") ? digest.substr(7) : digest;
}

std::string Short(const std::string& digest) {
  return "sha256:" + Hex(digest).substr(0, 12);
}

std::string NormalizeTarget(const std::string& target) {
  if (target.empty() || target.front() != '/')
    throw Error(ErrorCode::kInvalidArgument, "target must be an absolute path: \"" + target + "\"");
  std::string t = std::filesystem::path(target).lexically_normal().string();
  while (t.size() > 1 && t.back() == '/') t.pop_back();
  if (t == "/") throw Error(ErrorCode::kInvalidArgument, "target cannot be /");
  return t;
}

uint64_t FileSize(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

void RemoveTree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

// One mounted layer; unmounted when destroyed.
struct LayerHandle {
  virtual ~LayerHandle() = default;
};

struct ErofsLayer : LayerHandle {
  KernelMount mount;
  explicit ErofsLayer(KernelMount m) : mount(std::move(m)) {}
};

struct LazyLayer : LayerHandle {
  lazy::LayerService* service;
  std::string mountpoint;
  LazyLayer(lazy::LayerService* s, std::string mp) : service(s), mountpoint(std::move(mp)) {}
  ~LazyLayer() override {
    try {
      service->Unmount(mountpoint);
    } catch (...) {
      // The FUSE mount's own teardown detaches and aborts; nothing more to do here.
    }
  }
};

}  // namespace

struct GuestAgent::Rootfs {
  std::string target;
  std::string dir;  // holds layers/, upper/, work/
  std::string image_ref, manifest_digest;
  struct Layer {
    nlohmann::json info;  // index, digest, mode, mountpoint, timings...
    std::unique_ptr<LayerHandle> handle;
  };
  std::vector<Layer> layers;  // bottom first
  KernelMount overlay;
  nlohmann::json report;

  bool own_dir = false;   // `dir` itself goes too (serve: mounts/<hash>)
  bool detached = false;  // the overlay was busy and only detached: its upper is still in use

  // Overlay first, then the layers top down; the rootfs's dirs go once nothing is mounted there.
  bool Teardown() noexcept {
    if (!overlay.Unmount()) detached = true;
    while (!layers.empty()) layers.pop_back();
    if (!detached && !dir.empty() && MountsAtOrBelow(dir + "/layers").empty()) {
      for (const char* d : {"layers", "upper", "work"}) RemoveTree(dir + "/" + d);
      if (own_dir) ::rmdir(dir.c_str());
    }
    return !detached;
  }
  ~Rootfs() { Teardown(); }
};

GuestAgent::GuestAgent(const AgentOptions& opts, const Logger& log) : opts_(opts), log_(log) {
  if (opts_.state_dir.empty() || opts_.state_dir.front() != '/')
    throw Error(ErrorCode::kInvalidArgument, "--state must be an absolute path");
  while (opts_.state_dir.size() > 1 && opts_.state_dir.back() == '/') opts_.state_dir.pop_back();
  if (opts_.cache_dir.empty()) opts_.cache_dir = opts_.state_dir + "/cache";
  MakeDirs(opts_.state_dir, 0700);
  std::string lock = opts_.state_dir + "/agent.lock";
  lock_fd_.reset(::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock_fd_) ThrowErrno("open " + lock);
  if (::flock(lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      throw Error(ErrorCode::kFailedPrecondition,
                  "state directory " + opts_.state_dir +
                      " is in use by another lazysnap-guest (give each agent its own --state)");
    }
    ThrowErrno("flock " + lock);
  }
  MakeDirs(opts_.state_dir + "/images", 0700);
  // The service would remount what an earlier agent left in its table: those mounts belonged to
  // rootfs overlays that died with that agent. Start from nothing.
  ::unlink((opts_.state_dir + "/lazy/mounts.json").c_str());
  lazy::LayerServiceOptions so;
  so.root = opts_.state_dir + "/lazy";
  so.cache_dir = opts_.cache_dir;
  so.cache_max_bytes = opts_.cache_max_bytes;
  so.registry.hosts_dir = opts_.hosts_dir;
  so.registry.docker_config = opts_.docker_config;
  so.plain_http = opts_.plain_http;
  so.read_timeout = std::chrono::duration_cast<std::chrono::milliseconds>(opts_.read_timeout);
  MakeDirs(so.root, 0700);
  service_ = std::make_unique<lazy::LayerService>(so, log_);
}

GuestAgent::~GuestAgent() {
  UnmountAll();
}

size_t GuestAgent::mounted() const {
  std::lock_guard lock(mu_);
  return mounts_.size();
}

namespace {

// The uncompressed tar beside an index-only EROFS image: the image's file data.
std::string BlobOf(const std::string& image) {
  return image.substr(0, image.size() - std::string_view(".erofs").size()) + ".tar";
}

// Fetches layer `digest` of `image_ref` whole (digest-checked) and builds it into the index-only
// EROFS image `image` (metadata) and its uncompressed tar BlobOf(image) (file data), the blob
// published first and the image only when both are complete; with opts.full_images, into a full
// image alone. Index-only by default: mkfs.erofs then writes metadata alone while the tar goes
// straight to disk, ~20% less time and about half the system CPU for the same layer
// (bench/RESULTS.md), mounted the same way.
// Returns {"fetch_seconds", "bytes_fetched", "build_seconds"} for the readiness report.
nlohmann::json BuildErofsImage(const AgentOptions& opts, const Logger& log,
                               const std::string& image_ref, const std::string& digest,
                               const std::string& image) {
  std::string blob = image + ".layer.partial";
  UnlinkOnExit unlink_blob(blob);
  labels::Reference ref = labels::ParseReference(image_ref);
  fetcher::RegistryOptions ro;
  ro.hosts_dir = opts.hosts_dir;
  ro.docker_config = opts.docker_config;
  ro.plain_http = std::find(opts.plain_http.begin(), opts.plain_http.end(), ref.domain) !=
                  opts.plain_http.end();
  ro.log = &log;
  nlohmann::json info;
  auto tf = Clock::now();
  try {
    fetcher::RegistryClient client(ref, ro);
    info["bytes_fetched"] = client.FetchBlobToFile(digest, blob);
  } catch (const Error& e) {
    throw Error(e.code(), "fetching the layer from " + ref.RegistryHost() + ": " + e.what());
  }
  info["fetch_seconds"] = Since(tf);
  auto tb = Clock::now();
  erofs::BuildOptions bo;
  bo.mode = opts.full_images ? erofs::ImageMode::kFull : erofs::ImageMode::kIndexOnly;
  if (!opts.full_images) bo.blob_path = BlobOf(image);
  bo.mkfs_path = opts.mkfs_path;
  try {
    erofs::BuildLayerFromFile(blob, image, bo);
  } catch (const Error& e) {
    throw Error(e.code(), std::string("building its EROFS image: ") + e.what());
  }
  info["build_seconds"] = Since(tb);
  return info;
}

// An image built earlier (by this agent or an earlier one on the state dir), with its blob unless
// `full`: the builder publishes the blob first, so an index-only image never exists without it.
bool HasImage(const std::string& image, bool full) {
  return PathExists(image) && (full || PathExists(BlobOf(image)));
}

}  // namespace

std::unique_ptr<GuestAgent::Rootfs> GuestAgent::MountRootfs(const labels::ProxyDescriptor& desc,
                                                            const std::string& target,
                                                            nlohmann::json* report) {
  auto t0 = Clock::now();
  if (desc.layers.empty()) throw Error(ErrorCode::kInvalidArgument, "descriptor has no layers");
  KernelFeatures k = ProbeKernelFeatures(opts_.filesystems_path, opts_.fuse_device);
  if (!k.overlay) {
    throw Error(ErrorCode::kFailedPrecondition, "the kernel lacks overlay (not in " +
                                                    k.filesystems_path +
                                                    "): the guest kernel needs CONFIG_OVERLAY_FS");
  }
  if (!k.erofs && !k.fuse) {
    throw Error(ErrorCode::kFailedPrecondition,
                "the kernel lacks both erofs and fuse (not in " + k.filesystems_path + ", or no " +
                    k.fuse_device +
                    "): layers can be mounted neither lazily (CONFIG_FUSE_FS) nor as EROFS "
                    "images (CONFIG_EROFS_FS)");
  }
  auto fs = std::make_unique<Rootfs>();
  fs->target = target;
  fs->image_ref = desc.image_ref;
  fs->manifest_digest = desc.manifest_digest;
  std::string dir = opts_.single_mount
                        ? opts_.state_dir
                        : opts_.state_dir + "/mounts/" + Sha256Hex(target).substr(0, 16);
  // Dead mounts of an agent that was killed (its FUSE server gone) would block the layer dirs.
  if (int stale = UnmountAllBelow(dir + "/layers"); stale > 0)
    log_.Warn("detached stale layer mounts", {{"dir", dir}, {"count", std::to_string(stale)}});
  for (const char* d : {"layers", "upper", "work"}) RemoveTree(dir + "/" + d);
  fs->dir = dir;
  fs->own_dir = !opts_.single_mount;
  for (const char* d : {"layers", "upper", "work"}) MakeDirs(dir + "/" + d, 0755);

  // Plan: which layers have a lazy index. Index lookups are small; no layer bytes move yet, so a
  // kernel without erofs fails here before anything is downloaded.
  const size_t n = desc.layers.size();
  struct Plan {
    lazy::LayerRef ref;
    bool lazy = false;
    std::string why_not;
  };
  std::vector<Plan> plan(n);
  std::string unreachable;  // once the registry did not answer, only local indexes are used
  for (size_t i = 0; i < n; ++i) {
    plan[i].ref = {desc.image_ref, desc.manifest_digest, desc.layers[i].digest};
    if (!k.fuse) {
      plan[i].why_not = "the kernel lacks fuse";
      continue;
    }
    bool local =
        PathExists(opts_.state_dir + "/lazy/indexes/" + Hex(desc.layers[i].digest) + ".idx");
    if (!unreachable.empty() && !local) {
      plan[i].why_not = "index lookup failed: " + unreachable;
    } else {
      try {
        plan[i].lazy = service_->Prepare(plan[i].ref);
        if (!plan[i].lazy) plan[i].why_not = "no lazy index";
      } catch (const std::exception& e) {
        plan[i].why_not = std::string("index lookup failed: ") + e.what();
        log_.Warn("lazy index lookup failed; fetching the layer whole",
                  {{"layer", desc.layers[i].digest}, {"error", e.what()}});
        const auto* err = dynamic_cast<const Error*>(&e);
        if (err && err->code() == ErrorCode::kUnavailable) unreachable = e.what();
      }
    }
    if (!plan[i].lazy && !k.erofs) {
      throw Error(ErrorCode::kFailedPrecondition,
                  "layer " + std::to_string(i + 1) + "/" + std::to_string(n) + " (" +
                      Short(desc.layers[i].digest) + ") cannot be mounted lazily (" +
                      plan[i].why_not + ") and the kernel lacks erofs (not in " +
                      k.filesystems_path + "): the guest kernel needs CONFIG_EROFS_FS");
    }
  }

  // The layers without a lazy index are fetched and built into EROFS images before anything is
  // mounted, parallel_layers at a time: each is independent, and one build keeps about a core
  // busy (inflate) plus part of another (mkfs.erofs). A layer that occurs twice is built once.
  struct Built {
    bool ran = false;
    nlohmann::json info;
    std::exception_ptr error;
    double seconds = 0;
  };
  std::vector<Built> built(n);
  auto image_of = [&](size_t i) {
    // Full images are named apart: an index-only image must never be mounted without its tar.
    return opts_.state_dir + "/images/" + Hex(desc.layers[i].digest) +
           (opts_.full_images ? ".full.erofs" : ".erofs");
  };
  {
    std::vector<size_t> jobs;
    std::set<std::string> queued;
    for (size_t i = 0; i < n; ++i) {
      if (!plan[i].lazy && !HasImage(image_of(i), opts_.full_images) &&
          queued.insert(desc.layers[i].digest).second)
        jobs.push_back(i);
    }
    RunInParallel(jobs.size(), opts_.parallel_layers, [&](size_t j) {
      Built& b = built[jobs[j]];
      auto tb = Clock::now();
      try {
        b.info = BuildErofsImage(opts_, log_, desc.image_ref, desc.layers[jobs[j]].digest,
                                 image_of(jobs[j]));
      } catch (...) {
        b.error = std::current_exception();
      }
      b.seconds = Since(tb);
      b.ran = true;
      return !b.error;
    });
  }

  for (size_t i = 0; i < n; ++i) {
    auto tl = Clock::now();
    const std::string& digest = desc.layers[i].digest;
    std::string mp = dir + "/layers/" + std::to_string(i);
    MakeDirs(mp, 0755);
    Rootfs::Layer layer;
    layer.info = {{"index", i}, {"digest", digest}, {"mountpoint", mp}};
    try {
      if (plan[i].lazy) {
        try {
          service_->Mount(plan[i].ref, mp);
          layer.handle = std::make_unique<LazyLayer>(service_.get(), mp);
          layer.info["mode"] = "lazy";
        } catch (const std::exception& e) {
          if (!k.erofs) throw;
          log_.Warn("lazy mount failed; fetching the layer whole",
                    {{"layer", digest}, {"error", e.what()}});
          plan[i].why_not = std::string("lazy mount failed: ") + e.what();
        }
      }
      if (!layer.handle) {
        layer.info["mode"] = "erofs";
        layer.info["reason"] = plan[i].why_not;
        std::string image = image_of(i);
        layer.info["image"] = image;
        if (built[i].error) std::rethrow_exception(built[i].error);
        if (built[i].ran) {
          layer.info.update(built[i].info);
        } else if (HasImage(image, opts_.full_images)) {
          layer.info["image_reused"] = true;
          layer.info["bytes_fetched"] = 0;
        } else {  // a lazy mount that failed: built now
          layer.info.update(BuildErofsImage(opts_, log_, desc.image_ref, digest, image));
        }
        std::string blob = opts_.full_images ? "" : BlobOf(image);
        layer.info["image_bytes"] = FileSize(image);
        if (!blob.empty()) {
          layer.info["blob"] = blob;
          layer.info["blob_bytes"] = FileSize(blob);
        }
        std::string used;
        layer.handle = std::make_unique<ErofsLayer>(
            MountErofsImage(image, mp, opts_.erofs_backend, &used, blob));
        layer.info["erofs_backend"] = used;
      }
    } catch (const Error& e) {
      throw Error(e.code(), "layer " + std::to_string(i + 1) + "/" + std::to_string(n) + " (" +
                                Short(digest) + "): " + e.what());
    } catch (const std::exception& e) {
      throw Error(ErrorCode::kInternal, "layer " + std::to_string(i + 1) + "/" + std::to_string(n) +
                                            " (" + Short(digest) + "): " + e.what());
    }
    // A layer built ahead took its build time plus its mount now.
    layer.info["seconds"] = std::round((built[i].seconds + Since(tl)) * 1000) / 1000;
    log_.Info("layer mounted", {{"index", std::to_string(i)},
                                {"layer", digest},
                                {"mode", layer.info["mode"].get<std::string>()},
                                {"seconds", layer.info["seconds"].dump()}});
    fs->layers.push_back(std::move(layer));
  }

  std::vector<std::string> lowers;
  for (size_t i = n; i-- > 0;) lowers.push_back(fs->layers[i].info["mountpoint"]);
  auto to = Clock::now();
  fs->overlay = MountOverlay(lowers, dir + "/upper", dir + "/work", target);

  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : fs->layers) layers.push_back(l.info);
  *report = {{"ready", true},           {"target", target},
             {"image", desc.image_ref}, {"manifest_digest", desc.manifest_digest},
             {"layers", layers},        {"overlay_seconds", Since(to)},
             {"seconds", Since(t0)}};
  fs->report = *report;
  return fs;
}

nlohmann::json GuestAgent::Mount(const labels::ProxyDescriptor& desc,
                                 const std::string& target_in) {
  std::string target = NormalizeTarget(target_in);
  std::lock_guard ops(ops_mu_);
  {
    std::lock_guard lock(mu_);
    if (mounts_.count(target))
      throw Error(ErrorCode::kAlreadyExists, "a rootfs is mounted at " + target + " already");
    if (opts_.single_mount && !mounts_.empty()) {
      throw Error(ErrorCode::kFailedPrecondition,
                  "`lazysnap-guest mount` serves one rootfs; run `lazysnap-guest serve` for more");
    }
  }
  // An overlay over this state dir's layers that no rootfs of ours owns was left by an agent that
  // died (we hold the state lock): its lazy layers are dead, detach it. Anything else is not ours.
  for (const auto& m : ReadMountTable()) {
    if (m.mountpoint != target) continue;
    if (m.fstype == "overlay" &&
        m.super_options.find("lowerdir=" + opts_.state_dir + "/") != std::string::npos) {
      ::umount2(target.c_str(), MNT_DETACH);
      log_.Warn("detached the stale rootfs of an earlier agent", {{"target", target}});
    } else {
      throw Error(ErrorCode::kFailedPrecondition,
                  target + " is a mount point already (" + m.fstype + " " + m.source + ")");
    }
  }
  MakeDirs(target, 0755);
  log_.Info("mounting rootfs", {{"image", desc.image_ref},
                                {"target", target},
                                {"layers", std::to_string(desc.layers.size())}});
  nlohmann::json report;
  std::unique_ptr<Rootfs> fs;
  try {
    fs = MountRootfs(desc, target, &report);
  } catch (const Error& e) {
    log_.Error("rootfs mount failed; everything unmounted",
               {{"target", target}, {"error", e.what()}});
    throw Error(e.code(), "mount " + desc.image_ref + " at " + target + ": " + e.what());
  }
  log_.Info("rootfs ready", {{"target", target}, {"seconds", report["seconds"].dump()}});
  std::lock_guard lock(mu_);
  mounts_.emplace(target, std::move(fs));
  return report;
}

void GuestAgent::Unmount(const std::string& target_in) {
  std::string target = NormalizeTarget(target_in);
  std::lock_guard ops(ops_mu_);
  std::unique_ptr<Rootfs> fs;
  {
    std::lock_guard lock(mu_);
    auto it = mounts_.find(target);
    if (it == mounts_.end())
      throw Error(ErrorCode::kNotFound, "lazysnap-guest has no rootfs mounted at " + target);
    fs = std::move(it->second);
    mounts_.erase(it);
  }
  bool clean = fs->Teardown();
  if (!clean) log_.Warn("rootfs was busy; detached", {{"target", target}});
  log_.Info("rootfs unmounted", {{"target", target}});
}

void GuestAgent::UnmountAll() {
  std::lock_guard ops(ops_mu_);
  std::map<std::string, std::unique_ptr<Rootfs>> all;
  {
    std::lock_guard lock(mu_);
    all.swap(mounts_);
  }
  for (auto& [target, fs] : all) {
    fs->Teardown();
    log_.Info("rootfs unmounted", {{"target", target}});
  }
}

nlohmann::json GuestAgent::Status() const {
  nlohmann::json lazy = service_->Status();
  std::map<std::string, nlohmann::json> by_mountpoint;
  for (const auto& l : lazy["layers"]) by_mountpoint[l.value("mountpoint", "")] = l;
  nlohmann::json mounts = nlohmann::json::array();
  std::lock_guard lock(mu_);
  for (const auto& [target, fs] : mounts_) {
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& l : fs->layers) {
      nlohmann::json j = l.info;
      if (j["mode"] == "lazy") {
        auto it = by_mountpoint.find(j["mountpoint"]);
        if (it != by_mountpoint.end()) {
          for (const auto& [k, v] : it->second.items()) {
            if (!j.contains(k)) j[k] = v;
          }
        }
      }
      layers.push_back(j);
    }
    mounts.push_back({{"target", target},
                      {"image", fs->image_ref},
                      {"manifest_digest", fs->manifest_digest},
                      {"layers", layers}});
  }
  return {{"mounts", mounts}, {"cache", lazy["cache"]}};
}

nlohmann::json GuestAgent::Handle(const nlohmann::json& req) {
  auto str = [&](const char* key) {
    auto it = req.find(key);
    if (it == req.end() || !it->is_string() || it->get<std::string>().empty())
      throw Error(ErrorCode::kInvalidArgument,
                  std::string("request needs a string \"") + key + "\"");
    return it->get<std::string>();
  };
  std::string op = str("op");
  if (op == "ping") return nlohmann::json::object();
  if (op == "status") return Status();
  if (op == "mount") {
    auto it = req.find("descriptor");
    if (it == req.end()) throw Error(ErrorCode::kInvalidArgument, "request needs a \"descriptor\"");
    labels::ProxyDescriptor d;
    if (it->is_object()) {
      d = labels::DecodeKataVolumeJson(it->dump());
    } else if (it->is_string()) {
      d = ParseDescriptorInput(it->get<std::string>());
    } else {
      throw Error(ErrorCode::kInvalidArgument, "\"descriptor\" must be a string or an object");
    }
    return Mount(d, str("target"));
  }
  if (op == "umount" || op == "unmount") {
    Unmount(str("target"));
    return nlohmann::json::object();
  }
  throw Error(ErrorCode::kInvalidArgument, "unknown op \"" + op + "\"");
}

}  // namespace lazysnap::guest

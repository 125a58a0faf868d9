#include "lazy/layer_service.h"

#include <sys/mount.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include "common/error.h"
#include "common/file_util.h"
#include "common/sha256.h"
#include "common/temp_dir.h"
#include "erofs/reader.h"
#include "fetcher/chunk_cache.h"
#include "fetcher/multi_http.h"
#include "fetcher/range_fetcher.h"
#include "labels/digest.h"
#include "labels/reference.h"
#include "lazy/fd_keeper.h"
#include "lazy/fuse_layer.h"
#include "lazy/index_artifact.h"
#include "lazy/kernel_layer.h"
#include "lazy/layer_index.h"
#include "lazy/prefetch_list.h"
#include "lazy/tar_source.h"

namespace lazysnap::lazy {
namespace {

using Clock = std::chrono::steady_clock;

std::string Hex(const std::string& digest) {
  return digest.starts_with("sha256:") ? digest.substr(7) : digest;
}

// Whether something is mounted exactly at `path` (a stale FUSE mount of a killed server too).
bool IsMountPoint(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // fields: id parent major:minor root mountpoint ...
    size_t p = 0;
    for (int i = 0; i < 4 && p != std::string::npos; ++i) p = line.find(' ', p + 1);
    if (p == std::string::npos) continue;
    size_t e = line.find(' ', p + 1);
    if (UnescapeMountPath(line.substr(p + 1, e - p - 1)) == path) return true;
  }
  return false;
}

// A dead server's FUSE connection, kept by the fd keeper, to serve again: the blob under a
// kernel-path mount (kept under BlobDir(mountpoint)) or a tree (kept under the mountpoint).
struct Adopted {
  std::shared_ptr<KeptFd> fd;
  bool tree = false;
};

}  // namespace

struct LayerService::Impl {
  LayerServiceOptions opts;
  const Logger& log;
  std::unique_ptr<fetcher::ChunkCache> cache;
  std::unique_ptr<fetcher::MultiHttp> http;
  std::unique_ptr<FdKeeper> keeper;  // null: connections end with this process

  struct Mounted {
    LayerRef ref;
    std::shared_ptr<fetcher::RangeFetcher> fetcher;
    std::shared_ptr<TarSource> source;
    std::unique_ptr<FuseLayerMount> fuse;         // the tree over FUSE, or
    std::unique_ptr<KernelLayerMount> kernel;     // the kernel's EROFS over a FUSE-served tar
    std::unique_ptr<BackgroundFetch> background;  // last: stopped first
    std::string background_off;                   // why there is none: "disabled" or a reason
    FuseLayerStats Stats() const { return kernel ? kernel->Stats() : fuse->Stats(); }
  };
  mutable std::mutex mu;  // mounts
  std::map<std::string, Mounted> mounts;
  std::atomic<bool> kernel_refused{false};  // the kernel's EROFS refused a FUSE-backed mount

  std::mutex lookup_mu;  // lookups, downloads, prepared
  struct Lookup {
    IndexArtifact artifact;
    Clock::time_point at;
  };
  std::map<std::string, Lookup> lookups;  // manifest digest -> its index artifact
  // Each layer blob's GET, prepared (HEAD: endpoint, credentials) while its index downloaded;
  // taken by the layer's mount. Key: image ref + " " + layer digest. Layers that are never
  // mounted (already local, pull cancelled) leave theirs: entries older than kPreparedTtl, whose
  // token has likely expired anyway, are dropped at the next insert and not used.
  struct Prepared {
    fetcher::HttpRequest request;
    Clock::time_point at;
  };
  static constexpr std::chrono::minutes kPreparedTtl{5};
  std::map<std::string, Prepared> prepared;
  std::set<std::string> prefetch_looked_up;  // manifests LookUpPrefetchLocked looked for
  // Index downloads in flight, by layer digest, and prefetch list downloads, by "prefetch " +
  // manifest digest. containerd prepares an image's layers one after another; the first layer's
  // Prepare starts the downloads of every layer in the artifact (and of the image's prefetch
  // list), so each later Prepare finds its index on disk or on its way. Declared last: destroyed
  // (waited for) before the members the downloads use.
  std::map<std::string, std::shared_future<void>> downloads;

  Impl(const LayerServiceOptions& o, const Logger& l) : opts(o), log(l) {}

  // Downloads, verifies and keeps the index of `layer` (found in the artifact as `blob`), the
  // kernel path's EROFS image, and prepares the layer blob's GET. Runs on its own thread.
  void DownloadIndex(const LayerRef& layer, const fetcher::Descriptor& blob_desc) {
    auto client = ClientFor(layer.image_ref);
    std::string blob = client->FetchBlobToString(blob_desc.digest, 1ull << 30);  // verified
    LayerIndex idx = DecodeLayerIndex(blob);  // refuse a corrupt index before keeping it
    if (idx.layer_digest != layer.layer_digest) {
      throw Error(ErrorCode::kDataLoss, "index blob " + blob_desc.digest + " indexes layer " +
                                            idx.layer_digest + ", not " + layer.layer_digest);
    }
    if (opts.kernel_erofs) WriteFileAtomic(MetaPath(layer.layer_digest), idx.erofs_image, 0600);
    WriteFileAtomic(IndexPath(layer.layer_digest), blob, 0600);  // last: it means "indexed"
    log.Info("layer index downloaded", {{"layer", layer.layer_digest},
                                        {"index", blob_desc.digest},
                                        {"bytes", std::to_string(blob.size())}});
    try {
      fetcher::HttpRequest req = client->PrepareBlobRequest(layer.layer_digest);
      std::lock_guard lock(lookup_mu);
      auto now = Clock::now();
      std::erase_if(prepared, [&](const auto& e) { return now - e.second.at > kPreparedTtl; });
      prepared.insert_or_assign(layer.image_ref + " " + layer.layer_digest,
                                Prepared{std::move(req), now});
    } catch (const std::exception&) {
      // The first read prepares it then (and meets the registry's error there).
    }
  }

  // Downloads, checks and keeps the image's prefetch list. Never throws: without its list an
  // image starts as fast as before.
  void DownloadPrefetch(const LayerRef& layer, const fetcher::Descriptor& desc) {
    try {
      std::string blob = ClientFor(layer.image_ref)
                             ->FetchBlobToString(desc.digest, kMaxPrefetchListBytes);  // verified
      ParsePrefetchList(blob);  // refuse a malformed list before keeping it
      WriteFileAtomic(PrefetchPath(layer.manifest_digest), blob, 0600);
      log.Info("prefetch list downloaded",
               {{"manifest", layer.manifest_digest}, {"list", desc.digest}});
    } catch (const std::exception& e) {
      log.Warn("prefetch list not used",
               {{"manifest", layer.manifest_digest}, {"list", desc.digest}, {"error", e.what()}});
    }
  }

  // An image whose indexes are all local is not looked up by Prepare; its prefetch list (pushed,
  // or recorded again, after they were downloaded) is looked for once per server lifetime, on a
  // thread: Mount waits for it like for a list download. lookup_mu held.
  void LookUpPrefetchLocked(const LayerRef& layer) {
    std::string key = "prefetch " + layer.manifest_digest;
    if (!opts.prefetch || lookups.contains(layer.manifest_digest) || downloads.contains(key) ||
        !prefetch_looked_up.insert(layer.manifest_digest).second)
      return;
    downloads.emplace(key,
                      std::async(std::launch::async, [this, layer] {
                        try {
                          IndexArtifact a =
                              FindIndexArtifact(*ClientFor(layer.image_ref), layer.manifest_digest);
                          if (a.prefetch && !HasList(layer.manifest_digest, *a.prefetch))
                            DownloadPrefetch(layer, *a.prefetch);
                        } catch (const std::exception& e) {
                          log.Debug("no prefetch list looked up",
                                    {{"manifest", layer.manifest_digest}, {"error", e.what()}});
                        }
                      }).share());
  }

  // Whether the list kept for `manifest` is the blob `desc` (a list recorded again replaces it).
  bool HasList(const std::string& manifest, const fetcher::Descriptor& desc) const {
    std::string path = PrefetchPath(manifest);
    return PathExists(path) && Sha256Digest(ReadFile(path)) == desc.digest;
  }

  // The spans of `ref` the image's prefetch list names; none without a list (or a readable one).
  std::vector<TarRange> PrefetchRanges(const LayerRef& ref) const {
    std::string path = PrefetchPath(ref.manifest_digest);
    if (!opts.prefetch || !PathExists(path)) return {};
    try {
      PrefetchList list = ParsePrefetchList(ReadFile(path));
      auto it = list.find(ref.layer_digest);
      return it == list.end() ? std::vector<TarRange>{} : it->second;
    } catch (const std::exception& e) {
      log.Warn("prefetch list unreadable; not used", {{"path", path}, {"error", e.what()}});
      return {};
    }
  }

  std::optional<fetcher::HttpRequest> TakePrepared(const LayerRef& ref) {
    std::lock_guard lock(lookup_mu);
    auto it = prepared.find(ref.image_ref + " " + ref.layer_digest);
    if (it == prepared.end()) return std::nullopt;
    Prepared p = std::move(it->second);
    prepared.erase(it);
    if (Clock::now() - p.at > kPreparedTtl) return std::nullopt;
    return std::move(p.request);
  }

  std::string IndexPath(const std::string& layer) const {
    return opts.root + "/indexes/" + Hex(layer) + ".idx";
  }
  std::string PrefetchPath(const std::string& manifest) const {
    return opts.root + "/prefetch/" + Hex(manifest) + ".json";
  }
  std::string MetaPath(const std::string& layer) const {
    return opts.root + "/meta/" + Hex(layer) + ".erofs";
  }
  // Where the kernel path's FUSE-served tar of the layer mounted at `mountpoint` lives.
  std::string BlobDir(const std::string& mountpoint) const {
    return opts.root + "/blobs/" + Sha256Hex(mountpoint).substr(0, 24);
  }

  // A mount left at `mountpoint` by an earlier server (dead FUSE: ENOTCONN; a kernel EROFS mount
  // whose blob died) and its blob go before mounting anew.
  void DetachStale(const std::string& mountpoint) const {
    if (IsMountPoint(mountpoint)) ::umount2(mountpoint.c_str(), MNT_DETACH);
    std::string blob = BlobDir(mountpoint);
    if (IsMountPoint(blob)) ::umount2(blob.c_str(), MNT_DETACH);
  }

  // A client of the repository `image_ref` names (cri.image-ref), with this server's registry
  // options (mirrors, TLS, plain_http hosts).
  std::shared_ptr<fetcher::RegistryClient> ClientFor(const std::string& image_ref) const {
    labels::Reference image = labels::ParseReference(image_ref);
    fetcher::RegistryOptions r = opts.registry;
    r.plain_http = std::find(opts.plain_http.begin(), opts.plain_http.end(), image.domain) !=
                   opts.plain_http.end();
    r.log = &log;
    return std::make_shared<fetcher::RegistryClient>(image, r);
  }

  void SaveTable() {  // under mu
    nlohmann::json t = nlohmann::json::array();
    for (const auto& [mp, m] : mounts) {
      t.push_back({{"mountpoint", mp},
                   {"image_ref", m.ref.image_ref},
                   {"manifest_digest", m.ref.manifest_digest},
                   {"layer_digest", m.ref.layer_digest}});
    }
    WriteFileAtomic(opts.root + "/mounts.json", t.dump(1) + "\n", 0600);
  }

  void StartBackground(Mounted& m) const {
    if (!opts.background_fetch) {
      m.background_off = "disabled";
    } else if (m.fetcher->size() > opts.cache_max_bytes / 2) {
      // It would evict itself (and every other layer's chunks) before it finished.
      m.background_off = "layer larger than half the chunk cache";
    } else {
      m.background = std::make_unique<BackgroundFetch>(m.fetcher, opts.background, log);
    }
  }

  Mounted MountLayer(const LayerRef& ref, const std::string& mountpoint, Adopted adopt = {}) {
    std::string path = IndexPath(ref.layer_digest);
    if (!PathExists(path)) {
      throw Error(ErrorCode::kNotFound, "no index for layer " + ref.layer_digest);
    }
    LayerIndex idx = DecodeLayerIndex(ReadFile(path));
    if (idx.layer_digest != ref.layer_digest) {
      throw Error(ErrorCode::kDataLoss, "index " + path + " is for layer " + idx.layer_digest);
    }
    if (idx.chunk_size != cache->chunk_size()) {
      throw Error(ErrorCode::kFailedPrecondition,
                  "layer " + ref.layer_digest + ": index chunk size " +
                      std::to_string(idx.chunk_size) + " differs from the cache's " +
                      std::to_string(cache->chunk_size()) +
                      " (re-run `lazysnap index` or use a cache with that chunk size)");
    }
    auto client = ClientFor(ref.image_ref);
    fetcher::RangeFetcherOptions ro;
    ro.chunk_digests = idx.chunk_digests;
    ro.attempts = 2;
    ro.request_timeout_ms = 30000;
    ro.max_request_bytes = 16ull << 20;  // read-ahead batches (TarSourceOptions) fit one request
    ro.prepared_request = TakePrepared(ref);
    Mounted m;
    m.ref = ref;
    m.fetcher = std::make_shared<fetcher::RangeFetcher>(client, ref.layer_digest, idx.layer_size,
                                                        *cache, *http, ro);
    TarSourceOptions to;
    to.span_cache_bytes = opts.span_cache_bytes;
    to.store_dir = opts.span_store_bytes ? opts.root + "/spans" : "";
    to.store_bytes = opts.span_store_bytes;
    to.readahead_spans = opts.readahead_spans;
    to.workers = opts.readahead_threads;
    to.unavailable_timeout = opts.read_timeout;
    to.record_window = opts.record_window;
    m.source = std::make_shared<TarSource>(m.fetcher, idx.compression, idx.tar_size,
                                           std::move(idx.checkpoints), to);
    if (auto ranges = PrefetchRanges(ref); !ranges.empty()) {
      m.source->Prefetch(ranges);  // on a read-ahead thread, while the mount is made
      log.Info("prefetch list queued",
               {{"layer", ref.layer_digest},
                {"ranges", std::to_string(ranges.size())},
                {"spans", std::to_string(m.source->Stats().prefetch_spans)}});
    }
    FuseLayerOptions fo;
    fo.max_threads = opts.fuse_threads;
    fo.read_ahead_kb = opts.read_ahead_kb;
    fo.splice_reads = opts.splice_reads;
    fo.fsname = "lazysnap:" + Hex(ref.layer_digest).substr(0, 12);
    fo.ino_base = std::stoull(Hex(ref.layer_digest).substr(0, 5), nullptr, 16) << 40;
    fo.keeper = keeper.get();
    // A kept connection is served the way it was mounted, whatever the config says now.
    bool kernel_path = adopt.fd ? !adopt.tree : opts.kernel_erofs && !kernel_refused.load();
    if (kernel_path) {
      try {
        std::string meta = MetaPath(ref.layer_digest);
        if (!PathExists(meta)) WriteFileAtomic(meta, idx.erofs_image, 0600);
        std::string blob = BlobDir(mountpoint);
        if (!adopt.fd) MakeDirs(blob, 0700);  // (a kept blob mount answers nothing until adopted)
        FuseLayerOptions ko = fo;
        ko.adopt = adopt.fd;
        m.kernel = std::make_unique<KernelLayerMount>(
            mountpoint, meta, blob, m.source, ko,
            ErofsMountOptions{opts.erofs_directio, opts.erofs_read_ahead_kb}, log);
        StartBackground(m);
        return m;
      } catch (const std::exception& e) {
        if (adopt.fd) throw;  // the old mounts are still there: the caller replaces them
        ::rmdir(BlobDir(mountpoint).c_str());
        // A kernel that refuses once (no file-backed EROFS, before 6.12) refuses every layer.
        auto* le = dynamic_cast<const Error*>(&e);
        if (le && le->code() == ErrorCode::kFailedPrecondition) kernel_refused = true;
        log.Warn(
            "kernel EROFS path unavailable; serving the layer's tree over FUSE (for every "
            "layer from now on if the kernel refused)",
            {{"mountpoint", mountpoint}, {"error", e.what()}});
      }
    }
    auto reader = erofs::Reader::Open(
        std::make_shared<erofs::MemoryBlockSource>(std::move(idx.erofs_image)), {m.source});
    fo.adopt = adopt.fd;
    m.fuse = std::make_unique<FuseLayerMount>(mountpoint, std::move(reader), fo, log);
    StartBackground(m);
    return m;
  }

  void Restore() {
    std::string table = opts.root + "/mounts.json";
    if (!PathExists(table)) return;
    auto t = nlohmann::json::parse(ReadFile(table), nullptr, false);
    if (!t.is_array()) {
      log.Warn("mount table unreadable; starting with no mounts", {{"path", table}});
      return;
    }
    std::map<std::string, KeptFd> kept;  // FUSE mountpoint -> its connection, kept
    if (keeper) kept = keeper->TakeAll();
    std::lock_guard lock(mu);
    for (const auto& e : t) {
      if (!e.is_object()) continue;
      std::string mp = e.value("mountpoint", "");
      LayerRef ref{e.value("image_ref", ""), e.value("manifest_digest", ""),
                   e.value("layer_digest", "")};
      struct stat st;
      if (mp.empty()) continue;
      bool tree = kept.contains(mp);
      auto k = kept.find(tree ? mp : BlobDir(mp));
      if (k != kept.end() && IsMountPoint(mp) && IsMountPoint(k->first)) {
        try {
          mounts.emplace(
              mp, MountLayer(ref, mp, {std::make_shared<KeptFd>(std::move(k->second)), tree}));
          kept.erase(k);
          log.Info("lazy mount restored",
                   {{"mountpoint", mp}, {"layer", ref.layer_digest}, {"connection", "kept"}});
          continue;
        } catch (const std::exception& ex) {
          log.Warn("kept FUSE connection not served again; mounting the layer anew",
                   {{"mountpoint", mp}, {"error", ex.what()}});
        }
      }
      DetachStale(mp);  // the previous server's mounts are dead (their kept fds go below)
      if (::stat(mp.c_str(), &st) != 0) {
        log.Info("lazy mount dropped: its directory is gone", {{"mountpoint", mp}});
        continue;
      }
      try {
        mounts.emplace(mp, MountLayer(ref, mp));
        log.Info("lazy mount restored", {{"mountpoint", mp}, {"layer", ref.layer_digest}});
      } catch (const std::exception& ex) {
        log.Warn("lazy mount not restored", {{"mountpoint", mp}, {"error", ex.what()}});
      }
    }
    // Connections nobody serves again end now (their readers get errors instead of waiting).
    for (const auto& entry : kept) keeper->Drop(entry.first);
    SaveTable();
  }
};

LayerService::LayerService(const LayerServiceOptions& opts, const Logger& log)
    : impl_(std::make_unique<Impl>(opts, log)) {
  MakeDirs(opts.root + "/indexes", 0700);
  MakeDirs(opts.root + "/spans", 0700);
  MakeDirs(opts.root + "/meta", 0700);
  MakeDirs(opts.root + "/prefetch", 0700);
  MakeDirs(opts.root + "/blobs", 0700);
  fetcher::ChunkCacheOptions co;
  co.dir = opts.cache_dir;
  co.max_bytes = opts.cache_max_bytes;
  impl_->cache = std::make_unique<fetcher::ChunkCache>(co);
  impl_->http = std::make_unique<fetcher::MultiHttp>(8);
  if (!opts.fd_keeper_exe.empty()) {
    try {
      impl_->keeper = std::make_unique<FdKeeper>(opts.root + "/fdkeeper.sock", opts.fd_keeper_exe,
                                                 opts.keep_connections, log);
    } catch (const std::exception& e) {
      log.Warn("no fd keeper: FUSE connections end with this process", {{"error", e.what()}});
    }
  }
  impl_->Restore();
}

LayerService::~LayerService() {
  std::lock_guard lock(impl_->mu);
  impl_->mounts.clear();  // FUSE mounts first: they read through the fetchers and the cache
  if (impl_->keeper) impl_->keeper->Quit();  // nothing left to keep
}

bool LayerService::Prepare(const LayerRef& layer) {
  auto& im = *impl_;
  labels::ParseDigest(layer.layer_digest, "layer digest");
  labels::ParseDigest(layer.manifest_digest, "manifest digest");
  std::shared_future<void> download;
  {
    std::lock_guard lock(im.lookup_mu);
    std::erase_if(im.downloads, [](const auto& d) {  // finished ones: kept on disk, or retried
      return d.second.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
    });
    if (auto d = im.downloads.find(layer.layer_digest); d != im.downloads.end()) {
      download = d->second;
    } else {
      if (PathExists(im.IndexPath(layer.layer_digest))) {
        im.LookUpPrefetchLocked(layer);  // the indexes are local; a list may be new
        return true;
      }
      auto it = im.lookups.find(layer.manifest_digest);
      if (it == im.lookups.end() || Clock::now() - it->second.at > im.opts.negative_ttl) {
        Impl::Lookup l{FindIndexArtifact(*im.ClientFor(layer.image_ref), layer.manifest_digest),
                       Clock::now()};
        it = im.lookups.insert_or_assign(layer.manifest_digest, std::move(l)).first;
      }
      const IndexArtifact& artifact = it->second.artifact;
      if (!artifact.layers.contains(layer.layer_digest)) return false;
      std::string list_key = "prefetch " + layer.manifest_digest;
      if (artifact.prefetch && im.opts.prefetch && !im.downloads.contains(list_key) &&
          !im.HasList(layer.manifest_digest, *artifact.prefetch)) {
        fetcher::Descriptor desc = *artifact.prefetch;
        im.downloads.emplace(list_key, std::async(std::launch::async, [&im, layer, desc] {
                                         im.DownloadPrefetch(layer, desc);
                                       }).share());
      }
      for (const auto& entry : artifact.layers) {
        const std::string& digest = entry.first;
        if (im.downloads.contains(digest) || PathExists(im.IndexPath(digest))) continue;
        LayerRef other{layer.image_ref, layer.manifest_digest, digest};
        fetcher::Descriptor blob = entry.second;
        im.downloads.emplace(digest, std::async(std::launch::async, [&im, other, blob] {
                                       im.DownloadIndex(other, blob);
                                     }).share());
      }
      download = im.downloads.at(layer.layer_digest);
    }
  }
  download.get();  // rethrows the download's error (the caller unpacks natively)
  return true;
}

void LayerService::Mount(const LayerRef& layer, const std::string& mountpoint) {
  auto& im = *impl_;
  if (mountpoint.empty() || mountpoint.front() != '/')
    throw Error(ErrorCode::kInvalidArgument, "mountpoint must be absolute: " + mountpoint);
  std::shared_future<void> list;  // the image's prefetch list, if on its way
  {
    std::lock_guard lock(im.lookup_mu);
    auto d = im.downloads.find("prefetch " + layer.manifest_digest);
    if (d != im.downloads.end()) list = d->second;
  }
  if (list.valid()) list.wait();  // a small blob; DownloadPrefetch never throws
  std::lock_guard lock(im.mu);
  if (auto it = im.mounts.find(mountpoint); it != im.mounts.end()) {
    if (it->second.ref.layer_digest == layer.layer_digest) return;
    throw Error(ErrorCode::kAlreadyExists,
                mountpoint + " already serves layer " + it->second.ref.layer_digest);
  }
  im.DetachStale(mountpoint);
  im.mounts.emplace(mountpoint, im.MountLayer(layer, mountpoint));
  im.SaveTable();
  im.log.Info("lazy layer mounted", {{"mountpoint", mountpoint}, {"layer", layer.layer_digest}});
}

void LayerService::Unmount(const std::string& mountpoint) {
  auto& im = *impl_;
  std::lock_guard lock(im.mu);
  auto it = im.mounts.find(mountpoint);
  if (it == im.mounts.end()) return;
  im.mounts.erase(it);
  ::rmdir(im.BlobDir(mountpoint).c_str());  // the kernel path's blob mountpoint, if any
  im.SaveTable();
  im.log.Info("lazy layer unmounted", {{"mountpoint", mountpoint}});
}

nlohmann::json LayerService::Status() const {
  auto& im = *impl_;
  nlohmann::json layers = nlohmann::json::array();
  {
    std::lock_guard lock(im.mu);
    for (const auto& [mp, m] : im.mounts) {
      auto f = m.fetcher->Stats();
      auto s = m.source->Stats();
      auto u = m.Stats();
      layers.push_back({{"mountpoint", mp},
                        {"layer", m.ref.layer_digest},
                        {"image", m.ref.image_ref},
                        {"path", m.kernel ? "kernel-erofs" : "fuse"},
                        {"erofs_directio", m.kernel && m.kernel->directio()},
                        {"bytes_fetched", f.bytes_fetched},
                        {"requests", f.requests},
                        {"chunks_fetched", f.chunks_fetched},
                        {"chunk_hits", f.chunk_hits},
                        {"bytes_served", u.bytes_read},
                        {"file_reads", u.reads},
                        {"spans_inflated", s.spans_inflated},
                        {"span_hits", s.span_hits},
                        {"readahead_spans", s.readahead_spans},
                        {"store_hits", s.store_hits},
                        {"store_bytes", s.store_bytes},
                        {"store_disabled", s.store_disabled},
                        {"fetch_ms", s.fetch_us / 1000},
                        {"inflate_ms", s.inflate_us / 1000},
                        {"prefetch_spans", s.prefetch_spans},
                        {"prefetched_spans", s.prefetched},
                        {"start_read_spans", s.start_read_spans},
                        {"fuse_errors", u.errors}});
      nlohmann::json& l = layers.back();
      if (m.background) {
        auto b = m.background->Stats();
        l["background"] = BackgroundStateName(b.state);
        l["background_bytes"] = b.bytes_fetched;
        if (!b.error.empty()) l["background_error"] = b.error;
      } else {
        l["background"] = "off";
        l["background_off"] = m.background_off;
        l["background_bytes"] = 0;
      }
    }
  }
  auto c = im.cache->Stats();
  return {{"layers", layers},
          {"cache",
           {{"hits", c.hits},
            {"misses", c.misses},
            {"bytes_used", c.bytes_used},
            {"max_bytes", c.max_bytes},
            {"bytes_fetched", c.bytes_fetched},
            {"evictions", c.evictions}}}};
}

nlohmann::json LayerService::StartReads() const {
  auto& im = *impl_;
  nlohmann::json layers = nlohmann::json::array();
  std::lock_guard lock(im.mu);
  for (const auto& [mp, m] : im.mounts) {
    nlohmann::json ranges = nlohmann::json::array();
    for (const TarRange& r : m.source->StartReads()) ranges.push_back({r.offset, r.length});
    layers.push_back({{"mountpoint", mp},
                      {"layer", m.ref.layer_digest},
                      {"image", m.ref.image_ref},
                      {"manifest_digest", m.ref.manifest_digest},
                      {"ranges", ranges}});
  }
  return {{"layers", layers}};
}

}  // namespace lazysnap::lazy

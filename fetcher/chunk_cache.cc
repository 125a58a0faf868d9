#include "fetcher/chunk_cache.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "common/error.h"
#include "common/file_util.h"
#include "common/unique_fd.h"
#include "fetcher/uring_io.h"

namespace lazysnap::fetcher {

namespace {

constexpr uint32_t kMagic = 0x4a435a4c;  // "LZCJ"
constexpr size_t kRecordSize = 64;
constexpr int kFormatVersion = 1;

enum RecordType : uint8_t { kAdd = 1, kRemove = 2, kBlobVerified = 3, kBlobDropped = 4 };

using BlobId = std::array<uint8_t, 32>;

struct Record {
  RecordType type = kAdd;
  bool verified = false;
  uint32_t length = 0;
  uint64_t index = 0;
  BlobId blob{};
};

void PutU32(uint8_t* p, uint32_t v) {
  std::memcpy(p, &v, 4);
}
void PutU64(uint8_t* p, uint64_t v) {
  std::memcpy(p, &v, 8);
}
uint32_t GetU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
uint64_t GetU64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// magic u32 | type u8 | flags u8 | pad u16 | length u32 | index u64 | blob [32] | pad [8] | crc u32
std::array<uint8_t, kRecordSize> Encode(const Record& r) {
  std::array<uint8_t, kRecordSize> b{};
  PutU32(&b[0], kMagic);
  b[4] = r.type;
  b[5] = r.verified ? 1 : 0;
  PutU32(&b[8], r.length);
  PutU64(&b[12], r.index);
  std::memcpy(&b[20], r.blob.data(), 32);
  PutU32(&b[60], static_cast<uint32_t>(crc32(0, b.data(), 60)));
  return b;
}

bool Decode(const uint8_t* b, Record* r) {
  if (GetU32(b) != kMagic || GetU32(b + 60) != static_cast<uint32_t>(crc32(0, b, 60))) {
    return false;
  }
  if (b[4] < kAdd || b[4] > kBlobDropped) return false;
  r->type = static_cast<RecordType>(b[4]);
  r->verified = b[5] & 1;
  r->length = GetU32(b + 8);
  r->index = GetU64(b + 12);
  std::memcpy(r->blob.data(), b + 20, 32);
  return true;
}

int HexNibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

BlobId ParseBlobDigest(const std::string& digest) {
  BlobId id{};
  if (digest.size() != 71 || !digest.starts_with("sha256:")) {
    throw Error(ErrorCode::kInvalidArgument, "chunk cache: not a sha256 digest: " + digest);
  }
  for (size_t i = 0; i < 32; ++i) {
    int hi = HexNibble(digest[7 + 2 * i]), lo = HexNibble(digest[8 + 2 * i]);
    if (hi < 0 || lo < 0) {
      throw Error(ErrorCode::kInvalidArgument, "chunk cache: not a sha256 digest: " + digest);
    }
    id[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return id;
}

std::string Hex(const BlobId& id) {
  static const char* kDigits = "0123456789abcdef";
  std::string s;
  for (uint8_t b : id) {
    s += kDigits[b >> 4];
    s += kDigits[b & 15];
  }
  return s;
}

struct Key {
  BlobId blob;
  uint64_t index;
  bool operator<(const Key& o) const { return blob != o.blob ? blob < o.blob : index < o.index; }
};

struct ChunkMeta {
  uint32_t len = 0;
  bool verified = false;
  int pins = 0;  // readers in the middle of reading it: never evicted then
  std::list<Key>::iterator lru;
};

struct Blob {
  BlobId id{};
  std::string path;
  UniqueFd fd;
  std::unordered_map<uint64_t, ChunkMeta> chunks;
};

struct Counters {
  uint64_t hits = 0, misses = 0, bytes_read = 0, bytes_written = 0, bytes_fetched = 0,
           evictions = 0;
};

Counters LoadCounters(const std::string& path) {
  Counters c;
  if (!PathExists(path)) return c;
  auto j = nlohmann::json::parse(ReadFile(path), nullptr, false);
  if (!j.is_object()) return c;  // a torn counters file only loses statistics
  auto get = [&](const char* k) { return j.value(k, uint64_t{0}); };
  c.hits = get("hits");
  c.misses = get("misses");
  c.bytes_read = get("bytes_read");
  c.bytes_written = get("bytes_written");
  c.bytes_fetched = get("bytes_fetched");
  c.evictions = get("evictions");
  return c;
}

// Reads the journal: every record up to the first torn or corrupt one, and the byte length
// of that valid prefix.
std::vector<Record> ReadJournal(int fd, uint64_t* valid_bytes) {
  std::vector<Record> out;
  std::vector<uint8_t> buf(kRecordSize * 4096);
  uint64_t off = 0;
  for (;;) {
    ssize_t n = pread(fd, buf.data(), buf.size(), static_cast<off_t>(off));
    if (n < 0) {
      if (errno == EINTR) continue;
      ThrowErrno("chunk cache: reading journal");
    }
    size_t whole = static_cast<size_t>(n) / kRecordSize;
    for (size_t i = 0; i < whole; ++i) {
      Record r;
      if (!Decode(buf.data() + i * kRecordSize, &r)) {
        *valid_bytes = off + i * kRecordSize;
        return out;
      }
      out.push_back(r);
    }
    off += whole * kRecordSize;
    if (static_cast<size_t>(n) < buf.size()) break;
  }
  *valid_bytes = off;
  return out;
}

}  // namespace

struct ChunkCache::Impl {
  ChunkCacheOptions opts;
  uint32_t chunk_size = 0;
  UniqueFd lock_fd;
  UniqueFd journal_fd;
  uint64_t journal_end = 0;
  UringIo io;
  Counters base;  // persisted totals from earlier processes

  mutable std::mutex mu;  // everything below
  std::map<BlobId, std::shared_ptr<Blob>> blobs;
  std::list<Key> lru;        // front: most recently used
  std::set<Key> in_transit;  // being written or evicted: not readable, not re-writable
  uint64_t bytes_used = 0, chunk_count = 0;
  Counters session;
  std::vector<Record> pending;                    // journal records waiting for the next flush
  std::map<BlobId, std::shared_ptr<Blob>> dirty;  // blobs with data not yet fdatasync'ed

  std::mutex flush_mu;  // one flush (or eviction, or drop) at a time keeps the journal ordered
  std::mutex flusher_mu;
  std::condition_variable flusher_cv;
  bool stopping = false;
  std::thread flusher;

  explicit Impl(const ChunkCacheOptions& o) : opts(o), io(o.uring_depth) {}

  std::string BlobPath(const BlobId& id) const { return opts.dir + "/blobs/" + Hex(id); }

  std::shared_ptr<Blob> OpenBlob(const BlobId& id) {  // mu held
    auto it = blobs.find(id);
    if (it != blobs.end()) return it->second;
    auto b = std::make_shared<Blob>();
    b->id = id;
    b->path = BlobPath(id);
    b->fd = UniqueFd(::open(b->path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!b->fd) ThrowErrno("chunk cache: opening " + b->path);
    blobs[id] = b;
    return b;
  }

  void AddChunk(Blob& b, uint64_t index, uint32_t len, bool verified) {  // mu held
    auto [it, inserted] = b.chunks.try_emplace(index);
    if (!inserted) {
      it->second.verified = it->second.verified || verified;
      return;
    }
    it->second.len = len;
    it->second.verified = verified;
    lru.push_front({b.id, index});
    it->second.lru = lru.begin();
    bytes_used += len;
    ++chunk_count;
  }

  void RemoveChunk(Blob& b, std::unordered_map<uint64_t, ChunkMeta>::iterator it) {  // mu held
    bytes_used -= it->second.len;
    --chunk_count;
    lru.erase(it->second.lru);
    b.chunks.erase(it);
  }

  void AppendJournal(const std::vector<Record>& recs, bool sync) {  // flush_mu held
    if (recs.empty()) return;
    std::vector<uint8_t> buf;
    buf.reserve(recs.size() * kRecordSize);
    for (const auto& r : recs) {
      auto e = Encode(r);
      buf.insert(buf.end(), e.begin(), e.end());
    }
    io.PwriteAll(journal_fd.get(), buf.data(), buf.size(), journal_end);
    journal_end += buf.size();
    if (sync && ::fdatasync(journal_fd.get()) != 0) ThrowErrno("chunk cache: syncing journal");
  }

  void Replay() {
    uint64_t valid = 0;
    auto recs = ReadJournal(journal_fd.get(), &valid);
    struct stat st {};
    if (::fstat(journal_fd.get(), &st) != 0) ThrowErrno("chunk cache: stat journal");
    if (static_cast<uint64_t>(st.st_size) != valid) {
      // A torn tail from a crash: cut it so new records follow valid ones.
      if (::ftruncate(journal_fd.get(), static_cast<off_t>(valid)) != 0)
        ThrowErrno("chunk cache: truncating journal");
    }
    journal_end = valid;
    // Fold the records first, then open only the data files that still hold chunks (a dropped
    // blob's file must not be recreated).
    struct Live {
      uint32_t len;
      bool verified;
      size_t seq;  // last use order, for the LRU list
    };
    std::map<BlobId, std::map<uint64_t, Live>> live;
    for (size_t seq = 0; seq < recs.size(); ++seq) {
      const Record& r = recs[seq];
      switch (r.type) {
        case kAdd:
          // Lengths and indexes we never write: a record from another format or bit rot.
          if (r.length == 0 || r.length > chunk_size || r.index > (1ull << 40)) break;
          if (auto& c = live[r.blob][r.index]; c.len == r.length) {
            c.verified = c.verified || r.verified;
          } else {
            c = {r.length, r.verified, seq};
          }
          break;
        case kRemove:
          if (auto b = live.find(r.blob); b != live.end()) b->second.erase(r.index);
          break;
        case kBlobVerified:
          if (auto b = live.find(r.blob); b != live.end())
            for (auto& [i, c] : b->second) c.verified = true;
          break;
        case kBlobDropped:
          live.erase(r.blob);
          break;
      }
    }
    std::vector<std::tuple<size_t, BlobId, uint64_t>> order;
    std::lock_guard lock(mu);
    for (auto& [id, chunks] : live) {
      if (chunks.empty()) continue;
      std::string path = BlobPath(id);
      UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
      if (!fd) continue;  // removed by hand: its chunks are simply gone
      auto b = std::make_shared<Blob>();
      b->id = id;
      b->path = path;
      b->fd = std::move(fd);
      blobs[id] = b;
      for (auto& [i, c] : chunks) order.emplace_back(c.seq, id, i);
    }
    std::sort(order.begin(), order.end());
    for (auto& [seq, id, i] : order) {
      const Live& c = live[id][i];
      AddChunk(*blobs[id], i, c.len, c.verified);
    }
    // A data file shorter than its chunks (deleted or truncated by hand) loses those chunks.
    for (auto& [id, b] : blobs) {
      struct stat bs {};
      if (::fstat(b->fd.get(), &bs) != 0) ThrowErrno("chunk cache: stat " + b->path);
      for (auto it = b->chunks.begin(); it != b->chunks.end();) {
        uint64_t end = it->first * chunk_size + it->second.len;
        if (end > static_cast<uint64_t>(bs.st_size)) {
          RemoveChunk(*b, it++);
        } else {
          ++it;
        }
      }
    }
    if (recs.size() > 4 * chunk_count + 4096) Compact();
  }

  // Rewrites the journal as one record per live chunk (mu held, at open only).
  void Compact() {
    std::string tmp = opts.dir + "/journal.tmp";
    UniqueFd fd(::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd) ThrowErrno("chunk cache: creating " + tmp);
    std::vector<uint8_t> buf;
    for (auto it = lru.rbegin(); it != lru.rend(); ++it) {  // oldest first keeps LRU order
      const ChunkMeta& c = blobs[it->blob]->chunks[it->index];
      auto e = Encode({kAdd, c.verified, c.len, it->index, it->blob});
      buf.insert(buf.end(), e.begin(), e.end());
    }
    if (!buf.empty()) io.PwriteAll(fd.get(), buf.data(), buf.size(), 0);
    if (::fdatasync(fd.get()) != 0) ThrowErrno("chunk cache: syncing " + tmp);
    if (::rename(tmp.c_str(), (opts.dir + "/journal").c_str()) != 0)
      ThrowErrno("chunk cache: replacing journal");
    journal_fd = std::move(fd);
    journal_end = buf.size();
  }

  void FlushLocked() {  // flush_mu held
    std::vector<Record> recs;
    std::map<BlobId, std::shared_ptr<Blob>> to_sync;
    {
      std::lock_guard lock(mu);
      recs.swap(pending);
      to_sync.swap(dirty);
    }
    // Data first, then the records naming it: the journal never points at unsynced bytes.
    std::vector<UringOp> syncs;
    for (auto& [id, b] : to_sync)
      syncs.push_back({UringOp::Kind::kFdatasync, b->fd.get(), nullptr, 0, 0, 0});
    io.Run(syncs);
    for (const auto& op : syncs) {
      if (op.result < 0) ThrowErrno("chunk cache: fdatasync", static_cast<int>(-op.result));
    }
    bool removal = false;
    for (const auto& r : recs) removal = removal || r.type == kRemove || r.type == kBlobDropped;
    AppendJournal(recs, removal);
    if (bytes_used_snapshot() > opts.max_bytes) EvictLocked(opts.max_bytes);
    SaveCounters();
  }

  uint64_t bytes_used_snapshot() const {
    std::lock_guard lock(mu);
    return bytes_used;
  }

  void EvictLocked(uint64_t limit) {  // flush_mu held
    std::vector<Record> tombstones;
    std::vector<std::pair<std::shared_ptr<Blob>, Key>> victims;
    {
      std::lock_guard lock(mu);
      for (auto it = lru.end(); bytes_used > limit && it != lru.begin();) {
        --it;
        Key k = *it;
        auto b = blobs.find(k.blob);
        auto c = b->second->chunks.find(k.index);
        if (c->second.pins > 0) continue;
        tombstones.push_back({kRemove, false, c->second.len, k.index, k.blob});
        victims.emplace_back(b->second, k);
        in_transit.insert(k);
        it = std::next(it);  // RemoveChunk erases *it; step back over it next round
        RemoveChunk(*b->second, c);
        ++session.evictions;
      }
    }
    if (victims.empty()) return;
    // Tombstones are durable before any hole is punched: a crash in between never leaves a
    // journal naming zeroed bytes.
    AppendJournal(tombstones, true);
    for (auto& [b, k] : victims) {
      if (::fallocate(b->fd.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      static_cast<off_t>(k.index * chunk_size), chunk_size) != 0 &&
          errno != EOPNOTSUPP) {
        ThrowErrno("chunk cache: punching a hole in " + b->path);
      }
    }
    std::lock_guard lock(mu);
    for (auto& [b, k] : victims) in_transit.erase(k);
  }

  void SaveCounters() {
    Counters c;
    {
      std::lock_guard lock(mu);
      c = session;
    }
    nlohmann::json j = {{"hits", base.hits + c.hits},
                        {"misses", base.misses + c.misses},
                        {"bytes_read", base.bytes_read + c.bytes_read},
                        {"bytes_written", base.bytes_written + c.bytes_written},
                        {"bytes_fetched", base.bytes_fetched + c.bytes_fetched},
                        {"evictions", base.evictions + c.evictions}};
    WriteFileAtomic(opts.dir + "/counters.json", j.dump() + "\n", 0600);
  }

  void FlusherLoop() {
    std::unique_lock lock(flusher_mu);
    while (!stopping) {
      flusher_cv.wait_for(lock, std::chrono::milliseconds(opts.flush_interval_ms));
      if (stopping) break;
      bool work;
      {
        std::lock_guard l(mu);
        work = !pending.empty() || !dirty.empty();
      }
      if (!work) continue;
      lock.unlock();
      try {
        std::lock_guard f(flush_mu);
        FlushLocked();
      } catch (const std::exception&) {
        // Next round tries again; Flush() callers see the error themselves.
      }
      lock.lock();
    }
  }
};

ChunkCache::ChunkCache(const ChunkCacheOptions& opts) {
  if (opts.dir.empty()) throw Error(ErrorCode::kInvalidArgument, "chunk cache: no directory");
  MakeDirs(opts.dir + "/blobs", 0700);
  impl_ = std::make_unique<Impl>(opts);
  auto& im = *impl_;
  std::string lock_path = opts.dir + "/lock";
  im.lock_fd = UniqueFd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!im.lock_fd) ThrowErrno("chunk cache: opening " + lock_path);
  if (::flock(im.lock_fd.get(), LOCK_EX | LOCK_NB) != 0) {
    throw Error(ErrorCode::kFailedPrecondition,
                "chunk cache " + opts.dir + " is in use by another process");
  }
  std::string config_path = opts.dir + "/config.json";
  if (PathExists(config_path)) {
    auto j = nlohmann::json::parse(ReadFile(config_path), nullptr, false);
    if (!j.is_object() || j.value("version", 0) != kFormatVersion ||
        j.value("chunk_size", 0u) == 0) {
      throw Error(ErrorCode::kDataLoss,
                  "chunk cache: " + config_path + " is not a lazysnap cache config (format " +
                      std::to_string(kFormatVersion) + "); remove the directory to start over");
    }
    im.chunk_size = j["chunk_size"].get<uint32_t>();
  } else {
    if (opts.chunk_size < 4096 || opts.chunk_size > (64u << 20) ||
        (opts.chunk_size & (opts.chunk_size - 1)) != 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  "chunk cache: chunk size must be a power of two in [4 KiB, 64 MiB], got " +
                      std::to_string(opts.chunk_size));
    }
    im.chunk_size = opts.chunk_size;
    WriteFileAtomic(
        config_path,
        nlohmann::json{{"version", kFormatVersion}, {"chunk_size", im.chunk_size}}.dump() + "\n",
        0600);
  }
  std::string journal_path = opts.dir + "/journal";
  im.journal_fd = UniqueFd(::open(journal_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!im.journal_fd) ThrowErrno("chunk cache: opening " + journal_path);
  im.base = LoadCounters(opts.dir + "/counters.json");
  im.Replay();
  if (im.bytes_used > opts.max_bytes) {
    std::lock_guard f(im.flush_mu);
    im.EvictLocked(opts.max_bytes);
  }
  im.flusher = std::thread([&im] { im.FlusherLoop(); });
}

ChunkCache::~ChunkCache() {
  {
    std::lock_guard lock(impl_->flusher_mu);
    impl_->stopping = true;
  }
  impl_->flusher_cv.notify_all();
  impl_->flusher.join();
  try {
    Flush();
  } catch (const std::exception&) {
    // Unjournaled chunks are only lost from the cache; the next process fetches them again.
  }
}

uint32_t ChunkCache::chunk_size() const {
  return impl_->chunk_size;
}

size_t ChunkCache::Get(const std::string& digest, std::span<ChunkRead> chunks, bool need_verified) {
  auto& im = *impl_;
  BlobId id = ParseBlobDigest(digest);
  std::shared_ptr<Blob> blob;
  std::vector<UringOp> ops;
  std::vector<size_t> which;
  {
    std::lock_guard lock(im.mu);
    auto b = im.blobs.find(id);
    for (size_t i = 0; i < chunks.size(); ++i) {
      auto& c = chunks[i];
      c.hit = false;
      if (b == im.blobs.end()) continue;
      auto it = b->second->chunks.find(c.index);
      if (it == b->second->chunks.end() || it->second.len != c.len ||
          (need_verified && !it->second.verified)) {
        continue;
      }
      ++it->second.pins;
      im.lru.splice(im.lru.begin(), im.lru, it->second.lru);
      ops.push_back(
          {UringOp::Kind::kRead, b->second->fd.get(), c.buf, c.len, c.index * im.chunk_size, 0});
      which.push_back(i);
    }
    if (b != im.blobs.end()) blob = b->second;
  }
  im.io.Run(ops);
  size_t hits = 0;
  uint64_t bytes = 0;
  std::lock_guard lock(im.mu);
  for (size_t k = 0; k < which.size(); ++k) {
    auto& c = chunks[which[k]];
    if (auto it = blob->chunks.find(c.index); it != blob->chunks.end()) --it->second.pins;
    if (ops[k].result == static_cast<ssize_t>(c.len)) {
      c.hit = true;
      ++hits;
      bytes += c.len;
    }
  }
  im.session.hits += hits;
  im.session.misses += chunks.size() - hits;
  im.session.bytes_read += bytes;
  return hits;
}

bool ChunkCache::Contains(const std::string& digest, uint64_t index, bool need_verified) const {
  BlobId id = ParseBlobDigest(digest);
  std::lock_guard lock(impl_->mu);
  auto b = impl_->blobs.find(id);
  if (b == impl_->blobs.end()) return false;
  auto it = b->second->chunks.find(index);
  return it != b->second->chunks.end() && (!need_verified || it->second.verified);
}

void ChunkCache::Put(const std::string& digest, std::span<const ChunkWrite> chunks, bool verified) {
  auto& im = *impl_;
  BlobId id = ParseBlobDigest(digest);
  std::shared_ptr<Blob> blob;
  std::vector<UringOp> ops;
  std::vector<const ChunkWrite*> writing;
  {
    std::lock_guard lock(im.mu);
    blob = im.OpenBlob(id);
    for (const auto& c : chunks) {
      if (c.len == 0 || c.len > im.chunk_size) {
        throw Error(ErrorCode::kInvalidArgument,
                    "chunk cache: chunk of " + std::to_string(c.len) + " bytes");
      }
      auto it = blob->chunks.find(c.index);
      if (it != blob->chunks.end()) {
        if (verified && !it->second.verified) {
          it->second.verified = true;
          im.pending.push_back({kAdd, true, it->second.len, c.index, id});
        }
        continue;
      }
      if (!im.in_transit.insert({id, c.index}).second) continue;  // someone else has it
      ops.push_back({UringOp::Kind::kWrite, blob->fd.get(), const_cast<char*>(c.data), c.len,
                     c.index * im.chunk_size, 0});
      writing.push_back(&c);
    }
  }
  im.io.Run(ops);
  int error = 0;
  std::lock_guard lock(im.mu);
  for (size_t k = 0; k < ops.size(); ++k) {
    const ChunkWrite& c = *writing[k];
    im.in_transit.erase({id, c.index});
    if (ops[k].result != static_cast<ssize_t>(c.len)) {
      error = ops[k].result < 0 ? static_cast<int>(-ops[k].result) : EIO;
      continue;
    }
    // A blob dropped while we wrote is gone from the map: these bytes went to its old file.
    auto live = im.blobs.find(id);
    if (live == im.blobs.end() || live->second != blob) continue;
    im.AddChunk(*blob, c.index, static_cast<uint32_t>(c.len), verified);
    im.pending.push_back({kAdd, verified, static_cast<uint32_t>(c.len), c.index, id});
    im.dirty[id] = blob;
    im.session.bytes_written += c.len;
  }
  if (error != 0) {
    // Full disk and friends: the chunk stays uncached; callers serve from memory.
    throw Error(error == ENOSPC ? ErrorCode::kResourceExhausted : ErrorCode::kInternal,
                "chunk cache: writing " + blob->path + ": " + std::strerror(error));
  }
}

void ChunkCache::MarkVerified(const std::string& digest) {
  BlobId id = ParseBlobDigest(digest);
  std::lock_guard lock(impl_->mu);
  auto b = impl_->blobs.find(id);
  if (b == impl_->blobs.end()) return;
  for (auto& [i, c] : b->second->chunks) c.verified = true;
  impl_->pending.push_back({kBlobVerified, true, 0, 0, id});
}

void ChunkCache::DropBlob(const std::string& digest) {
  auto& im = *impl_;
  BlobId id = ParseBlobDigest(digest);
  std::lock_guard f(im.flush_mu);
  std::string path;
  {
    std::lock_guard lock(im.mu);
    auto b = im.blobs.find(id);
    if (b == im.blobs.end()) return;
    path = b->second->path;
    while (!b->second->chunks.empty()) im.RemoveChunk(*b->second, b->second->chunks.begin());
    im.blobs.erase(b);
    im.dirty.erase(id);
    im.pending.push_back({kBlobDropped, false, 0, 0, id});
  }
  im.FlushLocked();  // the drop record is durable before the data goes
  ::unlink(path.c_str());
}

void ChunkCache::Flush() {
  std::lock_guard f(impl_->flush_mu);
  impl_->FlushLocked();
}

void ChunkCache::Prune(uint64_t max_bytes) {
  std::lock_guard f(impl_->flush_mu);
  impl_->FlushLocked();
  impl_->EvictLocked(max_bytes);
  impl_->SaveCounters();
}

void ChunkCache::AddFetchedBytes(uint64_t n) {
  std::lock_guard lock(impl_->mu);
  impl_->session.bytes_fetched += n;
}

void ChunkCache::CountMisses(uint64_t n) {
  std::lock_guard lock(impl_->mu);
  impl_->session.misses += n;
}

ChunkCacheStats ChunkCache::Stats() const {
  auto& im = *impl_;
  std::lock_guard lock(im.mu);
  ChunkCacheStats s;
  s.hits = im.base.hits + im.session.hits;
  s.misses = im.base.misses + im.session.misses;
  s.bytes_read = im.base.bytes_read + im.session.bytes_read;
  s.bytes_written = im.base.bytes_written + im.session.bytes_written;
  s.bytes_fetched = im.base.bytes_fetched + im.session.bytes_fetched;
  s.evictions = im.base.evictions + im.session.evictions;
  s.chunks = im.chunk_count;
  s.bytes_used = im.bytes_used;
  s.blobs = 0;
  for (const auto& [id, b] : im.blobs) s.blobs += b->chunks.empty() ? 0 : 1;
  s.max_bytes = im.opts.max_bytes;
  s.chunk_size = im.chunk_size;
  return s;
}

ChunkCacheStats ChunkCache::ReadStats(const std::string& dir) {
  ChunkCacheStats s;
  std::string config_path = dir + "/config.json";
  if (!PathExists(config_path)) {
    throw Error(ErrorCode::kNotFound, "no chunk cache at " + dir);
  }
  auto j = nlohmann::json::parse(ReadFile(config_path), nullptr, false);
  if (j.is_object()) s.chunk_size = j.value("chunk_size", 0u);
  Counters c = LoadCounters(dir + "/counters.json");
  s.hits = c.hits;
  s.misses = c.misses;
  s.bytes_read = c.bytes_read;
  s.bytes_written = c.bytes_written;
  s.bytes_fetched = c.bytes_fetched;
  s.evictions = c.evictions;
  UniqueFd fd(::open((dir + "/journal").c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return s;
  uint64_t valid = 0;
  std::map<Key, std::pair<uint32_t, bool>> live;
  for (const auto& r : ReadJournal(fd.get(), &valid)) {
    if (r.type == kAdd) {
      live[{r.blob, r.index}] = {r.length, r.verified};
    } else if (r.type == kRemove) {
      live.erase({r.blob, r.index});
    } else if (r.type == kBlobDropped) {
      live.erase(live.lower_bound({r.blob, 0}), live.upper_bound({r.blob, UINT64_MAX}));
    }
  }
  std::set<BlobId> blobs;
  for (const auto& [k, v] : live) {
    s.bytes_used += v.first;
    ++s.chunks;
    blobs.insert(k.blob);
  }
  s.blobs = blobs.size();
  return s;
}

}  // namespace lazysnap::fetcher

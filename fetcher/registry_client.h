// An OCI distribution client for one repository: resolves references to manifests (following
// image indexes to this host's platform), fetches blobs verified against their digests, and reads
// byte ranges of blobs. Handles anonymous, Basic and Bearer-token auth (token reuse until expiry,
// one transparent re-auth on 401), mirrors from hosts.toml with fallback, redirects without
// forwarding credentials, and retries with exponential backoff and jitter.
// Not thread-safe: use one client per thread (tokens are cheap to fetch again).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/log.h"
#include "fetcher/http_client.h"
#include "fetcher/manifest.h"
#include "fetcher/registry_hosts.h"
#include "labels/reference.h"

namespace lazysnap::fetcher {

struct Credentials {
  std::string username;
  std::string password;
  bool empty() const { return username.empty() && password.empty(); }
};

struct RetryPolicy {
  int attempts = 4;  // per endpoint, for connection errors, 429, 5xx and short reads
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{5000};
};

struct RegistryOptions {
  std::string hosts_dir;    // containerd-style certs.d directory; empty: none
  bool plain_http = false;  // default endpoint scheme when no hosts.toml says otherwise
  std::map<std::string, Credentials> credentials;  // registry host -> credentials (daemon config)
  std::string docker_config;  // path of a docker config.json with "auths"; empty: none
  RetryPolicy retry;
  long connect_timeout_ms = 10000;
  long low_speed_time_s = 30;
  const Logger* log = nullptr;  // mirror fallbacks and retries are logged when set
};

struct ResolvedImage {
  std::string manifest_digest;  // of the platform manifest (not the index)
  std::string index_digest;     // when the reference named an index
  Manifest manifest;
  std::string manifest_bytes;
};

class RegistryClient {
 public:
  // `repo`: the image's registry host and path come from it (tag/digest are ignored).
  RegistryClient(const labels::Reference& repo, RegistryOptions opts);
  ~RegistryClient();
  RegistryClient(RegistryClient&&) noexcept;
  RegistryClient& operator=(RegistryClient&&) noexcept;

  // Resolves tag or digest to the manifest for linux/<host arch>. Verifies manifest bytes against
  // the digest when one is known (reference by digest, or Docker-Content-Digest).
  ResolvedImage Resolve(const labels::Reference& ref);
  // Fetches a blob into `sink`, verifying size and SHA-256 before returning; Error(kDataLoss)
  // naming host and digest on mismatch. The sink sees bytes before they are verified: callers
  // write to a temp file and publish it only after this returns. `reset` runs before every
  // attempt (a retry after a broken transfer starts the blob over).
  void FetchBlob(const std::string& digest, const BodySink& sink,
                 const std::function<void()>& reset, uint64_t expected_size = UINT64_MAX);
  std::string FetchBlobToString(const std::string& digest, uint64_t max_size = 64u << 20);
  // FetchBlob into the file `path` (created or truncated, mode 0600; truncated again before a
  // retry). `progress` (optional) sees each chunk's length. Returns the blob's size. A failed
  // write throws Error naming the file and errno (ENOSPC: the disk is full); the caller removes
  // or publishes the file.
  uint64_t FetchBlobToFile(const std::string& digest, const std::string& path,
                           uint64_t expected_size = UINT64_MAX,
                           const std::function<void(size_t)>& progress = {});
  // Bytes [offset, offset+length) of a blob, unverified (the caller verifies with chunk digests).
  // Accepts 206 with an exact Content-Range, or a 200 full body from which the range is cut.
  std::string ReadRange(const std::string& digest, uint64_t offset, uint64_t length);
  uint64_t BlobSize(const std::string& digest);
  // A GET of the blob that a concurrent range reader can send itself (on MultiHttp): the URL on
  // the first endpoint that answers a HEAD for it, with that endpoint's headers and current
  // credentials. Calling it again after a 401 authenticates again.
  HttpRequest PrepareBlobRequest(const std::string& digest);

  // Pushing. Pushes go to the registry's own endpoint (`server` of hosts.toml, or the registry
  // itself), never to mirrors; Bearer tokens for them are asked for with scope
  // "repository:<path>:pull,push" and kept apart from pull-only tokens.
  // Errors name the step, URL and status: kFailedPrecondition for 401/403/405 (not allowed),
  // kInvalidArgument for 400/413 (the registry refused what was sent), kUnavailable otherwise.
  //
  // Uploads `data` as a blob unless the registry has it already (HEAD first): POST an upload,
  // then PUT the bytes to its Location with ?digest=. Returns "sha256:<hex>".
  std::string PushBlob(const std::string& data);
  // PUT /v2/<repo>/manifests/<reference> with Content-Type `media_type`. `reference` is a tag or
  // the bytes' own digest (Error(kInvalidArgument) if it is another digest). Returns the digest
  // of `bytes`; Error(kDataLoss) if the registry's Docker-Content-Digest disagrees.
  std::string PushManifest(const std::string& reference, const std::string& media_type,
                           const std::string& bytes);
  // The raw manifest or index at a tag or digest: {media type, bytes}; nullopt when the registry
  // answers 404. `accept`: media types for the Accept header, comma separated (empty: every
  // manifest type Resolve accepts). Bytes fetched by digest are verified against it, by tag
  // against Docker-Content-Digest when sent (Error(kDataLoss)).
  std::optional<std::pair<std::string, std::string>> FetchManifest(const std::string& reference,
                                                                   const std::string& accept = "");
  // Manifests whose "subject" is `subject_digest`, with the given artifactType (empty: any).
  // Asks the OCI referrers API (GET /v2/<repo>/referrers/<digest>); where that answers 404 (the
  // registry lacks it, as docker-registry 2.8 does), reads the index at the referrers tag
  // "sha256-<hex>" instead. Nothing there: an empty vector.
  std::vector<Descriptor> Referrers(const std::string& subject_digest,
                                    const std::string& artifact_type = "");
  // The referrers tag schema's update, for registries without the referrers API: adds
  // `referrer` (mediaType, digest, size, artifactType) to the OCI index at tag "sha256-<hex>" of
  // the subject, creating the index if there is none. The index lists referrers in the order
  // they were last added: a no-op when that digest is last already, one listed further up moves
  // to the end. Read-modify-write without locking: concurrent writers can lose an entry.
  void AddReferrer(const std::string& subject_digest, const Descriptor& referrer);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Reads credentials for `registry_host` from a docker config.json ("auths": {"host": {"auth":
// base64(user:pass)} or username/password}). Empty when absent. Error(kInvalidArgument) if
// malformed.
Credentials CredentialsFromDockerConfig(const std::string& path, const std::string& registry_host);

}  // namespace lazysnap::fetcher

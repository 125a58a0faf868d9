#include "fetcher/registry_client.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "common/error.h"
#include "common/file_util.h"
#include "common/sha256.h"
#include "common/unique_fd.h"
#include "fetcher/url.h"
#include "fetcher/www_authenticate.h"
#include "labels/descriptor.h"
#include "labels/digest.h"

namespace lazysnap::fetcher {
namespace {

constexpr int kMaxRedirects = 5;

}  // namespace

Credentials CredentialsFromDockerConfig(const std::string& path, const std::string& registry_host) {
  if (path.empty() || !PathExists(path)) return {};
  auto j = nlohmann::json::parse(ReadFile(path), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    throw Error(ErrorCode::kInvalidArgument, "docker config " + path + ": not a JSON object");
  }
  auto auths = j.find("auths");
  if (auths == j.end() || !auths->is_object()) return {};
  for (const std::string& key :
       {registry_host, "https://" + registry_host, "http://" + registry_host}) {
    auto it = auths->find(key);
    if (it == auths->end() || !it->is_object()) continue;
    Credentials c;
    if (auto a = it->find("auth"); a != it->end() && a->is_string()) {
      std::string decoded = labels::Base64Decode(a->get<std::string>());
      auto colon = decoded.find(':');
      if (colon == std::string::npos) {
        throw Error(ErrorCode::kInvalidArgument,
                    "docker config " + path + ": auth for " + key + " is not user:password");
      }
      c.username = decoded.substr(0, colon);
      c.password = decoded.substr(colon + 1);
    } else {
      if (auto u = it->find("username"); u != it->end() && u->is_string())
        c.username = u->get<std::string>();
      if (auto p = it->find("password"); p != it->end() && p->is_string())
        c.password = p->get<std::string>();
    }
    return c;
  }
  return {};
}

struct RegistryClient::Impl {
  labels::Reference repo;
  RegistryOptions opts;
  std::vector<RegistryEndpoint> endpoints;
  Credentials creds;
  HttpClient http;
  std::mt19937 rng{std::random_device{}()};
  struct Token {
    std::string header;  // "Authorization: ..."
    std::chrono::steady_clock::time_point expires;
  };
  // TokenKey(endpoint host) -> auth header for this repository: pull-only and pull,push tokens
  // are kept apart (a pull token does not authorize pushes).
  std::map<std::string, Token> tokens;
  bool push = false;  // set while a push runs: tokens are asked for (and kept) with push scope

  std::string TokenKey(const std::string& host) const { return host + (push ? " push" : " pull"); }
  const Token* CurrentToken(const std::string& host) const {
    auto t = tokens.find(TokenKey(host));
    if (t == tokens.end() || t->second.expires <= std::chrono::steady_clock::now()) return nullptr;
    return &t->second;
  }

  void Log(const std::string& msg, std::initializer_list<LogField> f) {
    if (opts.log) opts.log->Warn(msg, f);
  }

  // Answers a 401 challenge: Basic with the configured credentials, or a Bearer token from the
  // realm for this repository's pull (or, while pushing, pull,push) scope. Returns false when
  // there is nothing to try.
  bool Authenticate(const RegistryEndpoint& ep, const HttpResponse& resp) {
    auto challenges = ParseWwwAuthenticate(resp.Header("www-authenticate"));
    std::string host = HostOf(ep.url);
    for (const auto& ch : challenges) {
      if (ch.scheme == "basic") {
        if (creds.empty()) return false;
        Token basic{
            "Authorization: Basic " + labels::Base64Encode(creds.username + ":" + creds.password),
            std::chrono::steady_clock::time_point::max()};
        tokens[host + " pull"] = basic;  // the same credentials serve pulls and pushes
        tokens[host + " push"] = basic;
        return true;
      }
      if (ch.scheme == "bearer") {
        auto realm = ch.params.find("realm");
        if (realm == ch.params.end()) {
          throw Error(ErrorCode::kUnavailable,
                      "registry " + host + " sent a Bearer challenge without realm");
        }
        std::string url =
            realm->second + (realm->second.find('?') == std::string::npos ? "?" : "&");
        if (auto s = ch.params.find("service"); s != ch.params.end())
          url += "service=" + UrlEncode(s->second) + "&";
        url += "scope=" + UrlEncode("repository:" + repo.path + (push ? ":pull,push" : ":pull"));
        HttpRequest req;
        req.url = url;
        req.tls = ep.tls;
        req.connect_timeout_ms = opts.connect_timeout_ms;
        req.timeout_ms = 60000;
        if (!creds.empty()) {
          req.headers.push_back("Authorization: Basic " +
                                labels::Base64Encode(creds.username + ":" + creds.password));
        }
        HttpResponse tr = http.Perform(req);
        if (tr.status != 200) {
          throw Error(tr.status == 401 || tr.status == 403 ? ErrorCode::kFailedPrecondition
                                                           : ErrorCode::kUnavailable,
                      "token server " + HostOf(url) + " answered " + std::to_string(tr.status) +
                          " for " + repo.path);
        }
        auto j = nlohmann::json::parse(tr.body, nullptr, false);
        std::string token;
        if (j.is_object()) {
          if (auto t = j.find("token"); t != j.end() && t->is_string())
            token = t->get<std::string>();
          if (auto t = j.find("access_token"); token.empty() && t != j.end() && t->is_string()) {
            token = t->get<std::string>();
          }
        }
        if (token.empty())
          throw Error(ErrorCode::kUnavailable,
                      "token server " + HostOf(url) + " returned no token");
        int64_t expires_in = 60;
        if (j.contains("expires_in") && j["expires_in"].is_number_integer()) {
          expires_in = std::max<int64_t>(j["expires_in"].get<int64_t>(), 10);
        }
        // Renew a little early so a token never expires in flight.
        tokens[TokenKey(host)] = {
            "Authorization: Bearer " + token,
            std::chrono::steady_clock::now() + std::chrono::seconds(expires_in - 5)};
        return true;
      }
    }
    return false;
  }

  // One request against one endpoint with auth, redirects and retries. Throws on transport
  // failure after the retries; returns the final response otherwise.
  // `on_attempt` runs before every attempt, so a sink that saw a failed attempt's bytes can
  // start over.
  // `body` goes with every attempt and redirect hop (PUT and POST always send one).
  HttpResponse Send(const RegistryEndpoint& ep, const std::string& path,
                    const std::vector<std::string>& extra, const std::string& method,
                    const BodySink& sink, long timeout_ms,
                    const std::function<void()>& on_attempt = nullptr,
                    const std::string& body = std::string()) {
    return SendUrl(ep, ep.api_root + path, path, extra, method, sink, timeout_ms, on_attempt, body);
  }

  // Send to an absolute URL on (or redirected from) endpoint `ep`, such as an upload Location;
  // `path` names the request in log lines.
  HttpResponse SendUrl(const RegistryEndpoint& ep, const std::string& start_url,
                       const std::string& path, const std::vector<std::string>& extra,
                       const std::string& method, const BodySink& sink, long timeout_ms,
                       const std::function<void()>& on_attempt, const std::string& body) {
    std::string host = HostOf(ep.url);
    auto backoff = opts.retry.initial_backoff;
    for (int attempt = 1;; ++attempt) {
      // An anonymous request's 401 is the challenge; a 401 to a request that carried a token
      // (expired or revoked early) earns one renewal, no more.
      bool challenged = false, renewed = false;
      if (on_attempt) on_attempt();
      try {
        std::string url = start_url;
        for (int hop = 0;; ++hop) {
          HttpRequest req;
          req.method = method;
          req.url = url;
          req.body = body;
          req.tls = ep.tls;
          req.headers = extra;
          req.headers.insert(req.headers.end(), ep.headers.begin(), ep.headers.end());
          req.connect_timeout_ms = opts.connect_timeout_ms;
          req.low_speed_time_s = opts.low_speed_time_s;
          req.timeout_ms = timeout_ms;
          // Credentials go only to the endpoint's own host, never to a redirect target.
          bool sent_token = false;
          if (HostOf(url) == host) {
            if (const Token* t = CurrentToken(host)) {
              req.headers.push_back(t->header);
              sent_token = true;
            }
          }
          HttpResponse resp = http.Perform(req, sink);
          bool& round = sent_token ? renewed : challenged;
          if (resp.status == 401 && !round && HostOf(url) == host) {
            round = true;
            tokens.erase(TokenKey(host));
            if (Authenticate(ep, resp)) continue;
            return resp;
          }
          if (resp.status >= 300 && resp.status < 400 && resp.status != 304) {
            std::string loc = resp.Header("location");
            if (loc.empty() || hop >= kMaxRedirects) return resp;
            url = ResolveLocation(url, loc);
            continue;
          }
          if (RetryableStatus(resp.status) && attempt < opts.retry.attempts) {
            auto wait = backoff;
            if (auto ra = resp.Header("retry-after"); !ra.empty()) {
              wait = std::chrono::milliseconds(std::min<long>(std::atol(ra.c_str()) * 1000, 30000));
            }
            Log("registry request will be retried",
                {{"host", host}, {"path", path}, {"status", std::to_string(resp.status)}});
            Sleep(wait, &backoff);
            goto next_attempt;
          }
          return resp;
        }
      } catch (const Error& e) {
        if (e.code() != ErrorCode::kUnavailable || attempt >= opts.retry.attempts) throw;
        Log("registry request will be retried",
            {{"host", host}, {"path", path}, {"error", e.what()}});
        Sleep(backoff, &backoff);
      }
    next_attempt:;
    }
  }

  void Sleep(std::chrono::milliseconds base, std::chrono::milliseconds* backoff) {
    // Full jitter: a random wait up to the current backoff, which then doubles up to the cap.
    std::uniform_int_distribution<long> d(base.count() / 2, std::max<long>(base.count(), 1));
    std::this_thread::sleep_for(std::chrono::milliseconds(d(rng)));
    *backoff = std::min(*backoff * 2, opts.retry.max_backoff);
  }

  // Tries each endpoint with the capability in order; a failing mirror falls back to the next.
  template <typename Fn>
  auto OverEndpoints(bool for_resolve, const std::string& what, Fn&& fn)
      -> decltype(fn(endpoints.front())) {
    std::string errors;
    for (size_t i = 0; i < endpoints.size(); ++i) {
      const auto& ep = endpoints[i];
      if (for_resolve ? !ep.resolve : !ep.pull) continue;
      try {
        return fn(ep);
      } catch (const Error& e) {
        bool last = i + 1 == endpoints.size();
        if (last || e.code() == ErrorCode::kDataLoss) throw;
        errors += std::string(e.what()) + "; ";
        Log("registry endpoint failed, trying the next",
            {{"endpoint", ep.url}, {"what", what}, {"error", e.what()}});
      }
    }
    throw Error(ErrorCode::kUnavailable, what + ": no endpoint succeeded: " + errors);
  }

  // Where pushes go: the registry's own endpoint (hosts.toml `server`, or the registry itself,
  // which ParseHostsToml puts last), never a mirror. A [host] entry for that same URL is used
  // instead when there is one: it carries the registry's CA, skip_verify and headers.
  // (RegistryEndpoint has no push capability: a mirror is never pushed to.)
  const RegistryEndpoint& PushEndpoint() const {
    const RegistryEndpoint* server = &endpoints.back();
    for (const auto& ep : endpoints) {
      if (!ep.is_mirror) {
        server = &ep;
        break;
      }
    }
    for (const auto& ep : endpoints) {
      if (ep.is_mirror && ep.url == server->url && ep.api_root == server->api_root) return ep;
    }
    return *server;
  }

  // GET of a manifest at `reference` on `ep`: {media type, bytes}, nullopt on 404, verified
  // against the digest it was asked by (or the Docker-Content-Digest sent for a tag).
  std::optional<std::pair<std::string, std::string>> GetManifest(const RegistryEndpoint& ep,
                                                                 const std::string& reference,
                                                                 const std::string& accept);
  // RegistryClient::PushBlob for bytes whose digest is known.
  std::string PushBlob(const std::string& data, const std::string& digest);
};

namespace {

// Sets the client's push mode for one call and restores the previous mode on the way out.
class PushScope {
 public:
  explicit PushScope(bool* flag) : flag_(flag), saved_(*flag) { *flag = true; }
  ~PushScope() { *flag_ = saved_; }
  PushScope(const PushScope&) = delete;
  PushScope& operator=(const PushScope&) = delete;

 private:
  bool* flag_;
  bool saved_;
};

}  // namespace

RegistryClient::RegistryClient(const labels::Reference& repo, RegistryOptions opts)
    : impl_(std::make_unique<Impl>()) {
  impl_->repo = repo;
  impl_->opts = std::move(opts);
  std::string host = repo.RegistryHost();
  impl_->endpoints = ResolveEndpoints(impl_->opts.hosts_dir, host, impl_->opts.plain_http);
  if (auto it = impl_->opts.credentials.find(host); it != impl_->opts.credentials.end()) {
    impl_->creds = it->second;
  } else {
    impl_->creds = CredentialsFromDockerConfig(impl_->opts.docker_config, host);
  }
}

RegistryClient::~RegistryClient() = default;
RegistryClient::RegistryClient(RegistryClient&&) noexcept = default;
RegistryClient& RegistryClient::operator=(RegistryClient&&) noexcept = default;

namespace {

[[noreturn]] void StatusError(const std::string& what, const std::string& url,
                              const HttpResponse& r) {
  ErrorCode code = ErrorCode::kUnavailable;
  if (r.status == 404) code = ErrorCode::kNotFound;
  if (r.status == 401 || r.status == 403) code = ErrorCode::kFailedPrecondition;
  std::string body = r.body.substr(0, 300);
  throw Error(code, what + " from " + url + ": HTTP " + std::to_string(r.status) +
                        (body.empty() ? "" : ": " + body));
}

// StatusError for writes: a registry that refuses what was sent (400 DIGEST_INVALID,
// MANIFEST_INVALID, MANIFEST_BLOB_UNKNOWN; 413) will refuse it again, and 405 means pushes are
// not allowed there (read-only registry, pull-through cache).
[[noreturn]] void PushStatusError(const std::string& what, const std::string& url,
                                  const HttpResponse& r) {
  if (r.status == 400 || r.status == 413 || r.status == 405) {
    std::string body = r.body.substr(0, 300);
    throw Error(r.status == 405 ? ErrorCode::kFailedPrecondition : ErrorCode::kInvalidArgument,
                what + " to " + url + ": HTTP " + std::to_string(r.status) +
                    (body.empty() ? "" : ": " + body));
  }
  StatusError(what, url, r);
}

bool IsDigestReference(const std::string& reference) {
  return reference.find(':') != std::string::npos;
}

// "sha256:<hex>" of a subject, checked; the referrers tag schema names its index "sha256-<hex>".
labels::Digest SubjectDigest(const std::string& digest) {
  labels::Digest d = labels::ParseDigest(digest, "subject digest");
  if (d.algorithm != "sha256") {
    throw Error(ErrorCode::kInvalidArgument, "only sha256 subjects are supported: " + digest);
  }
  return d;
}

std::vector<Descriptor> FilterByArtifactType(std::vector<Descriptor> in, const std::string& type) {
  if (type.empty()) return in;
  std::vector<Descriptor> out;
  for (auto& d : in) {
    if (d.artifact_type == type) out.push_back(std::move(d));
  }
  return out;
}

}  // namespace

std::optional<std::pair<std::string, std::string>> RegistryClient::Impl::GetManifest(
    const RegistryEndpoint& ep, const std::string& reference, const std::string& accept) {
  std::string expected;
  if (IsDigestReference(reference)) {
    labels::Digest d = labels::ParseDigest(reference, "manifest digest");
    if (d.algorithm != "sha256") {
      throw Error(ErrorCode::kInvalidArgument, "only sha256 manifests are supported: " + reference);
    }
    expected = d.str();
  }
  auto resp =
      Send(ep, "/" + repo.path + "/manifests/" + reference,
           {accept.empty() ? ManifestAcceptHeader() : "Accept: " + accept}, "GET", nullptr, 60000);
  if (resp.status == 404) return std::nullopt;
  if (resp.status != 200) StatusError("manifest " + reference, ep.url, resp);
  std::string digest = Sha256Digest(resp.body);
  std::string want = expected.empty() ? resp.Header("docker-content-digest") : expected;
  if (!want.empty() && want != digest) {
    throw Error(ErrorCode::kDataLoss, "manifest " + reference + " from " + ep.url + " has digest " +
                                          digest + ", expected " + want);
  }
  std::string ct = resp.Header("content-type");
  std::string media_type = ct.substr(0, ct.find(';'));
  while (!media_type.empty() && media_type.back() == ' ') media_type.pop_back();
  if (media_type.empty()) media_type = DetectMediaType(resp.body, "");
  return std::make_pair(media_type, std::move(resp.body));
}

ResolvedImage RegistryClient::Resolve(const labels::Reference& ref) {
  auto& im = *impl_;
  auto fetch = [&](const std::string& reference, const std::string& expected_digest) {
    return im.OverEndpoints(
        true, "manifest " + ref.Name() + ":" + reference, [&](const RegistryEndpoint& ep) {
          auto resp = im.Send(ep, "/" + im.repo.path + "/manifests/" + reference,
                              {ManifestAcceptHeader()}, "GET", nullptr, 60000);
          if (resp.status != 200) StatusError("manifest " + reference, ep.url, resp);
          std::string digest = Sha256Digest(resp.body);
          std::string want =
              expected_digest.empty() ? resp.Header("docker-content-digest") : expected_digest;
          if (!want.empty() && want != digest) {
            throw Error(ErrorCode::kDataLoss, "manifest " + reference + " from " + ep.url +
                                                  " has digest " + digest + ", expected " + want);
          }
          return std::make_pair(resp, digest);
        });
  };
  std::string reference = ref.digest.empty() ? ref.tag : ref.digest;
  auto [resp, digest] = fetch(reference, ref.digest);
  ResolvedImage out;
  std::string mt = DetectMediaType(resp.body, resp.Header("content-type"));
  if (IsIndexMediaType(mt)) {
    Index idx = ParseIndex(resp.body);
    out.index_digest = digest;
    const Descriptor& d = SelectPlatform(idx, "linux", HostArchitecture());
    auto [mresp, mdigest] = fetch(d.digest, d.digest);
    resp = mresp;
    digest = mdigest;
  }
  out.manifest = ParseManifest(resp.body);
  out.manifest_digest = digest;
  out.manifest_bytes = resp.body;
  return out;
}

void RegistryClient::FetchBlob(const std::string& digest, const BodySink& sink,
                               const std::function<void()>& reset, uint64_t expected_size) {
  auto& im = *impl_;
  labels::Digest d = labels::ParseDigest(digest, "blob digest");
  if (d.algorithm != "sha256") {
    throw Error(ErrorCode::kInvalidArgument, "only sha256 blobs are supported: " + digest);
  }
  im.OverEndpoints(false, "blob " + digest, [&](const RegistryEndpoint& ep) {
    Sha256 hash;
    uint64_t got = 0;
    auto counting = [&](long status, const char* data, size_t len) {
      hash.Update(data, len);
      got += len;
      return sink(status, data, len);
    };
    auto restart = [&] {  // a retried transfer starts the blob over, hash included
      hash = Sha256();
      got = 0;
      if (reset) reset();
    };
    auto resp =
        im.Send(ep, "/" + im.repo.path + "/blobs/" + digest, {}, "GET", counting, 0, restart);
    if (resp.status != 200) StatusError("blob " + digest, ep.url, resp);
    if (resp.aborted_by_sink) {
      throw Error(ErrorCode::kResourceExhausted, "blob " + digest + ": the reader stopped");
    }
    if (expected_size != UINT64_MAX && got != expected_size) {
      throw Error(ErrorCode::kDataLoss, "blob " + digest + " from " + HostOf(ep.url) + ": got " +
                                            std::to_string(got) + " bytes, expected " +
                                            std::to_string(expected_size));
    }
    std::string actual = hash.FinishDigest();
    if (actual != digest) {
      throw Error(ErrorCode::kDataLoss, "blob " + digest + " from " + HostOf(ep.url) +
                                            " failed verification: its bytes hash to " + actual);
    }
    return 0;
  });
}

uint64_t RegistryClient::FetchBlobToFile(const std::string& digest, const std::string& path,
                                         uint64_t expected_size,
                                         const std::function<void(size_t)>& progress) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) ThrowErrno("open " + path);
  uint64_t n = 0;
  int write_error = 0;
  try {
    FetchBlob(
        digest,
        [&](long, const char* data, size_t len) {
          if (progress) progress(len);
          while (len > 0) {
            ssize_t w = ::write(fd.get(), data, len);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
              write_error = errno;
              return false;
            }
            data += w;
            len -= static_cast<size_t>(w);
            n += static_cast<uint64_t>(w);
          }
          return true;
        },
        [&] {
          if (::ftruncate(fd.get(), 0) != 0 || ::lseek(fd.get(), 0, SEEK_SET) != 0)
            ThrowErrno("truncate " + path);
          n = 0;
        },
        expected_size);
  } catch (const Error&) {
    // A failed write stopped the transfer: report the write (a full disk), not "the reader
    // stopped".
    if (write_error != 0) ThrowErrno("write " + path, write_error);
    throw;
  }
  return n;
}

std::string RegistryClient::FetchBlobToString(const std::string& digest, uint64_t max_size) {
  std::string out;
  FetchBlob(
      digest,
      [&](long, const char* data, size_t len) {
        if (out.size() + len > max_size) return false;
        out.append(data, len);
        return true;
      },
      [&] { out.clear(); });
  return out;
}

std::string RegistryClient::ReadRange(const std::string& digest, uint64_t offset, uint64_t length) {
  auto& im = *impl_;
  labels::ParseDigest(digest, "blob digest");
  if (length == 0) return {};
  std::string range = std::to_string(offset) + "-" + std::to_string(offset + length - 1);
  return im.OverEndpoints(
      false, "blob " + digest + " range " + range, [&](const RegistryEndpoint& ep) {
        for (int attempt = 1;; ++attempt) {
          std::string out;
          uint64_t seen = 0;  // bytes of a 200 (whole blob) answer seen so far
          auto sink = [&](long status, const char* data, size_t len) {
            if (status == 200) {  // no range support: cut the range out of the whole blob
              uint64_t start = seen;
              seen += len;
              if (seen <= offset) return true;
              uint64_t from = offset > start ? offset - start : 0;
              uint64_t take = std::min<uint64_t>(len - from, length - out.size());
              out.append(data + from, take);
              return out.size() < length;  // stop once the range is complete
            }
            if (out.size() + len > length) return false;  // more than asked for: a broken server
            out.append(data, len);
            return true;
          };
          auto resp = im.Send(ep, "/" + im.repo.path + "/blobs/" + digest,
                              {"Range: bytes=" + range}, "GET", sink, 120000);
          if (resp.status == 206) {
            std::string cr = resp.Header("content-range");
            if (!cr.starts_with("bytes " + range + "/")) {
              throw Error(ErrorCode::kDataLoss, "blob " + digest + " from " + HostOf(ep.url) +
                                                    ": asked for bytes " + range +
                                                    ", got Content-Range \"" + cr + "\"");
            }
            if (resp.aborted_by_sink) {
              throw Error(ErrorCode::kDataLoss, "blob " + digest + " from " + HostOf(ep.url) +
                                                    ": range " + range +
                                                    " answered with more bytes than asked for");
            }
          } else if (resp.status != 200) {
            StatusError("blob " + digest + " range " + range, ep.url, resp);
          }
          if (out.size() == length) return out;
          if (attempt >= im.opts.retry.attempts) {
            throw Error(ErrorCode::kUnavailable, "blob " + digest + " from " + HostOf(ep.url) +
                                                     " range " + range + ": short read, " +
                                                     std::to_string(out.size()) + " of " +
                                                     std::to_string(length) + " bytes");
          }
          im.Log("short range read, retrying", {{"digest", digest}, {"range", range}});
        }
      });
}

uint64_t RegistryClient::BlobSize(const std::string& digest) {
  auto& im = *impl_;
  labels::ParseDigest(digest, "blob digest");
  return im.OverEndpoints(false, "blob " + digest, [&](const RegistryEndpoint& ep) {
    auto resp = im.Send(ep, "/" + im.repo.path + "/blobs/" + digest, {}, "HEAD", nullptr, 60000);
    if (resp.status != 200) StatusError("blob " + digest, ep.url, resp);
    std::string len = resp.Header("content-length");
    if (len.empty())
      throw Error(ErrorCode::kUnavailable,
                  "blob " + digest + " from " + ep.url + ": no Content-Length");
    return static_cast<uint64_t>(std::stoull(len));
  });
}

HttpRequest RegistryClient::PrepareBlobRequest(const std::string& digest) {
  auto& im = *impl_;
  labels::ParseDigest(digest, "blob digest");
  return im.OverEndpoints(false, "blob " + digest, [&](const RegistryEndpoint& ep) {
    std::string path = "/" + im.repo.path + "/blobs/" + digest;
    auto resp = im.Send(ep, path, {}, "HEAD", nullptr, 60000);
    if (resp.status != 200) StatusError("blob " + digest, ep.url, resp);
    HttpRequest req;
    req.url = ep.api_root + path;
    req.tls = ep.tls;
    req.headers = ep.headers;
    req.connect_timeout_ms = im.opts.connect_timeout_ms;
    req.low_speed_time_s = im.opts.low_speed_time_s;
    if (const auto* t = im.CurrentToken(HostOf(ep.url))) req.headers.push_back(t->header);
    return req;
  });
}

std::string RegistryClient::PushBlob(const std::string& data) {
  std::string digest = Sha256Digest(data);
  try {
    return impl_->PushBlob(data, digest);
  } catch (const Error& e) {
    // Transport errors name only the URL: say which blob it was.
    if (std::string(e.what()).find(digest) != std::string::npos) throw;
    throw Error(e.code(), "push of blob " + digest + ": " + e.what());
  }
}

std::string RegistryClient::Impl::PushBlob(const std::string& data, const std::string& digest) {
  auto& im = *this;
  PushScope scope(&im.push);
  const RegistryEndpoint& ep = im.PushEndpoint();
  std::string what = "blob " + digest;
  auto head = im.Send(ep, "/" + im.repo.path + "/blobs/" + digest, {}, "HEAD", nullptr, 60000);
  if (head.status == 200) return digest;  // there already: nothing to upload
  if (head.status != 404) PushStatusError(what, ep.url, head);

  std::string uploads = "/" + im.repo.path + "/blobs/uploads/";
  auto post = im.Send(ep, uploads, {}, "POST", nullptr, 60000);
  if (post.status != 202) PushStatusError("upload of " + what, ep.url, post);
  std::string location = post.Header("location");
  if (location.empty()) {
    throw Error(ErrorCode::kUnavailable, "upload of " + what + " to " + ep.url +
                                             ": the registry answered 202 without a Location");
  }
  std::string url = ResolveLocation(ep.api_root + uploads, location);
  url += url.find('?') == std::string::npos ? '?' : '&';
  url += "digest=" + UrlEncode(digest);
  // No overall timeout: a large blob takes what it takes (a stalled peer still times out).
  auto put = im.SendUrl(ep, url, uploads, {"Content-Type: application/octet-stream"}, "PUT",
                        nullptr, 0, nullptr, data);
  if (put.status != 201) PushStatusError("upload of " + what, ep.url, put);
  if (std::string got = put.Header("docker-content-digest"); !got.empty() && got != digest) {
    throw Error(ErrorCode::kDataLoss,
                "upload of " + what + " to " + ep.url + ": the registry stored it as " + got);
  }
  return digest;
}

std::string RegistryClient::PushManifest(const std::string& reference,
                                         const std::string& media_type, const std::string& bytes) {
  auto& im = *impl_;
  std::string digest = Sha256Digest(bytes);
  if (reference.empty()) throw Error(ErrorCode::kInvalidArgument, "manifest push without a tag");
  if (IsDigestReference(reference) &&
      labels::ParseDigest(reference, "manifest reference").str() != digest) {
    throw Error(ErrorCode::kInvalidArgument,
                "manifest pushed by digest " + reference + " but its bytes hash to " + digest);
  }
  PushScope scope(&im.push);
  const RegistryEndpoint& ep = im.PushEndpoint();
  auto resp = im.Send(ep, "/" + im.repo.path + "/manifests/" + reference,
                      {"Content-Type: " + media_type}, "PUT", nullptr, 60000, nullptr, bytes);
  if (resp.status != 201) PushStatusError("manifest " + reference, ep.url, resp);
  if (std::string got = resp.Header("docker-content-digest"); !got.empty() && got != digest) {
    throw Error(ErrorCode::kDataLoss, "manifest " + reference + " pushed to " + ep.url +
                                          " was stored as " + got + ", its bytes hash to " +
                                          digest);
  }
  return digest;
}

std::optional<std::pair<std::string, std::string>> RegistryClient::FetchManifest(
    const std::string& reference, const std::string& accept) {
  auto& im = *impl_;
  bool by_digest = IsDigestReference(reference);
  if (by_digest) labels::ParseDigest(reference, "manifest digest");  // fail before any request
  // A 404 on a mirror falls back to the next endpoint; only the last one's 404 means "none".
  try {
    return im.OverEndpoints(!by_digest, "manifest " + im.repo.Name() + ":" + reference,
                            [&](const RegistryEndpoint& ep) {
                              auto m = im.GetManifest(ep, reference, accept);
                              if (!m) {
                                throw Error(ErrorCode::kNotFound,
                                            "manifest " + reference + " not found at " + ep.url);
                              }
                              return m;
                            });
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kNotFound) return std::nullopt;
    throw;
  }
}

std::vector<Descriptor> RegistryClient::Referrers(const std::string& subject_digest,
                                                  const std::string& artifact_type) {
  auto& im = *impl_;
  labels::Digest subject = SubjectDigest(subject_digest);
  std::string path = "/" + im.repo.path + "/referrers/" + subject.str();
  if (!artifact_type.empty()) path += "?artifactType=" + UrlEncode(artifact_type);
  try {
    return im.OverEndpoints(true, "referrers of " + subject.str(), [&](const RegistryEndpoint& ep) {
      auto resp = im.Send(ep, path, {std::string("Accept: ") + kOciIndex}, "GET", nullptr, 60000);
      if (resp.status == 200) {
        // A registry may ignore the filter (it says so with OCI-Filters-Applied): filter here.
        return FilterByArtifactType(ParseIndex(resp.body).manifests, artifact_type);
      }
      if (resp.status != 404) StatusError("referrers of " + subject.str(), ep.url, resp);
      // No referrers API: the referrers tag schema.
      // Any manifest type is accepted: docker-registry answers 404 for one the Accept header
      // leaves out, and something other than an index at this tag must be an error.
      auto tagged = im.GetManifest(ep, "sha256-" + subject.hex, "");
      if (!tagged) {
        throw Error(ErrorCode::kNotFound, "no referrers of " + subject.str() + " at " + ep.url);
      }
      return FilterByArtifactType(ParseIndex(tagged->second).manifests, artifact_type);
    });
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kNotFound) return {};
    throw;
  }
}

void RegistryClient::AddReferrer(const std::string& subject_digest, const Descriptor& referrer) {
  auto& im = *impl_;
  labels::Digest subject = SubjectDigest(subject_digest);
  std::string digest = labels::ParseDigest(referrer.digest, "referrer digest").str();
  if (referrer.media_type.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "referrer " + digest + " has no media type");
  }
  PushScope scope(&im.push);
  const RegistryEndpoint& ep = im.PushEndpoint();
  std::string tag = "sha256-" + subject.hex;
  nlohmann::json index = {
      {"schemaVersion", 2}, {"mediaType", kOciIndex}, {"manifests", nlohmann::json::array()}};
  // Every manifest type is accepted so that something else at the tag is refused below instead
  // of looking absent (docker-registry answers 404 for types the Accept header leaves out) and
  // being overwritten.
  if (auto existing = im.GetManifest(ep, tag, "")) {
    // Strict validation first; then the JSON itself is kept, so fields this client does not
    // model (annotations) survive the update.
    Index parsed = ParseIndex(existing->second);
    if (!parsed.manifests.empty() && parsed.manifests.back().digest == digest) return;
    index = nlohmann::json::parse(existing->second);
  }
  // Listed further up: moved to the end, so that the order stays the order of the last
  // additions (readers take the last artifact of a type as the newest; a re-push of an older,
  // byte-identical artifact makes it the newest again). Its entry moves as it is.
  auto& list = index["manifests"];
  nlohmann::json entry = {
      {"mediaType", referrer.media_type}, {"digest", digest}, {"size", referrer.size}};
  if (!referrer.artifact_type.empty()) entry["artifactType"] = referrer.artifact_type;
  for (auto it = list.begin(); it != list.end(); ++it) {
    if (it->value("digest", "") == digest) {
      entry = *it;
      list.erase(it);
      break;
    }
  }
  list.push_back(std::move(entry));
  PushManifest(tag, kOciIndex, index.dump());
}

}  // namespace lazysnap::fetcher

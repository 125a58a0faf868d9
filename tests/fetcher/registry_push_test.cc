// Pushing with the registry client: blobs (skipped when present), manifests, OCI artifacts with a
// "subject", and referrers through the referrers tag schema, against a real docker-registry on
// 127.0.0.1 (Debian's 2.8, which has no referrers API). A scripted HTTP server in this file checks
// the exact requests (relative upload Locations, the digest parameter, empty bodies) and the
// error paths a real registry will not produce on demand.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "common/error.h"
#include "common/file_util.h"
#include "common/process.h"
#include "common/sha256.h"
#include "common/temp_dir.h"
#include "common/unique_fd.h"
#include "fetcher/manifest.h"
#include "fetcher/registry_client.h"
#include "tests/support/oci_image.h"
#include "tests/support/pseudo_random.h"
#include "tests/support/registry.h"
#include "tests/support/token_server.h"

namespace lazysnap::fetcher {
namespace {

using nlohmann::json;
using testing::OciImageBuilder;
using testing::PseudoRandomBytes;
using testing::PushedImage;
using testing::Registry;

constexpr const char* kEmptyMediaType = "application/vnd.oci.empty.v1+json";
constexpr const char* kEmptyDigest =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
constexpr const char* kSigType = "application/vnd.lazysnap.test.signature.v1";
constexpr const char* kSbomType = "application/vnd.lazysnap.test.sbom.v1";

RegistryOptions Plain(int attempts = 4) {
  RegistryOptions o;
  o.plain_http = true;
  o.retry.attempts = attempts;
  o.retry.initial_backoff = std::chrono::milliseconds(10);
  return o;
}

size_t Count(const Registry& reg, const std::string& prefix) {
  auto reqs = reg.Requests();
  return static_cast<size_t>(std::count_if(
      reqs.begin(), reqs.end(), [&](const std::string& r) { return r.starts_with(prefix); }));
}

// The access log line is written after the answer: wait until `n` lines with the prefix are in.
void WaitForCount(const Registry& reg, const std::string& prefix, size_t n) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (Count(reg, prefix) < n && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// An OCI artifact manifest: empty config, one layer holding `payload` (pushed), and `subject`.
struct Artifact {
  Descriptor desc;
  std::string bytes;
};

Artifact PushArtifact(RegistryClient& c, const std::string& artifact_type,
                      const std::string& payload, const Descriptor& subject) {
  EXPECT_EQ(c.PushBlob("{}"), kEmptyDigest);
  std::string layer = c.PushBlob(payload);
  json m = {
      {"schemaVersion", 2},
      {"mediaType", kOciManifest},
      {"artifactType", artifact_type},
      {"config", {{"mediaType", kEmptyMediaType}, {"digest", kEmptyDigest}, {"size", 2}}},
      {"layers",
       {{{"mediaType", "application/vnd.lazysnap.test.payload"},
         {"digest", layer},
         {"size", payload.size()}}}},
      {"subject",
       {{"mediaType", subject.media_type}, {"digest", subject.digest}, {"size", subject.size}}},
      {"annotations", {{"org.opencontainers.image.created", "2024-01-01T00:00:00Z"}}}};
  Artifact a;
  a.bytes = m.dump();
  a.desc.media_type = kOciManifest;
  a.desc.digest = Sha256Digest(a.bytes);
  a.desc.size = a.bytes.size();
  a.desc.artifact_type = artifact_type;
  // By digest, as artifacts are (a tag would be overwritten by the next one).
  EXPECT_EQ(c.PushManifest(a.desc.digest, kOciManifest, a.bytes), a.desc.digest);
  return a;
}

std::set<std::string> Digests(const std::vector<Descriptor>& ds) {
  std::set<std::string> out;
  for (const auto& d : ds) out.insert(d.digest);
  return out;
}

class RegistryPushTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    registry_ = new Registry();
    OciImageBuilder b;
    b.AddBusyboxLayer();
    image_ = new PushedImage(b.Push(registry_->host(), "push/app:v1"));
  }
  static void TearDownTestSuite() {
    delete image_;
    delete registry_;
  }
  static RegistryClient Client(const std::string& repo, const RegistryOptions& o = Plain()) {
    return RegistryClient(labels::ParseReference(registry_->host() + "/" + repo), o);
  }
  // The image manifest as a subject descriptor.
  static Descriptor Subject(RegistryClient& c) {
    auto m = c.FetchManifest(image_->manifest_digest);
    EXPECT_TRUE(m.has_value());
    Descriptor d;
    d.media_type = m->first;
    d.digest = image_->manifest_digest;
    d.size = m->second.size();
    return d;
  }

  static Registry* registry_;
  static PushedImage* image_;
};

Registry* RegistryPushTest::registry_ = nullptr;
PushedImage* RegistryPushTest::image_ = nullptr;

TEST_F(RegistryPushTest, PushesABlobOnceAndSkipsItWhenPresent) {
  auto c = Client("push/blobs");
  std::string data = PseudoRandomBytes(300000, 88172645463325252ull);
  std::string digest = c.PushBlob(data);
  EXPECT_EQ(digest, Sha256Digest(data));
  EXPECT_EQ(c.PushBlob(data), digest);
  EXPECT_EQ(Client("push/blobs").PushBlob(data), digest);  // a new client, the same answer
  WaitForCount(*registry_, "HEAD /v2/push/blobs/blobs/" + digest, 3);
  EXPECT_EQ(Count(*registry_, "HEAD /v2/push/blobs/blobs/" + digest), 3u);
  EXPECT_EQ(Count(*registry_, "POST /v2/push/blobs/blobs/uploads/"), 1u)
      << "the second and third push found the blob and uploaded nothing";
  EXPECT_EQ(Count(*registry_, "PUT /v2/push/blobs/blobs/uploads/"), 1u);
  EXPECT_EQ(c.FetchBlobToString(digest), data);
  EXPECT_EQ(c.BlobSize(digest), data.size());

  // The empty blob: a PUT with an empty body (Content-Length: 0).
  std::string empty = c.PushBlob("");
  EXPECT_EQ(empty, Sha256Digest(""));
  EXPECT_EQ(c.BlobSize(empty), 0u);
}

TEST_F(RegistryPushTest, ArtifactsWithASubjectAreListedAsReferrers) {
  auto c = Client("push/app");
  Descriptor subject = Subject(c);
  EXPECT_EQ(subject.media_type, kOciManifest);
  // The OCI empty descriptor's content is "{}".
  EXPECT_EQ(Sha256Digest("{}"), kEmptyDigest);

  Artifact sig1 = PushArtifact(c, kSigType, "signature one", subject);
  Artifact sig2 = PushArtifact(c, kSigType, "signature two", subject);
  Artifact sbom = PushArtifact(c, kSbomType, "an sbom", subject);

  // Fetched back by digest, byte for byte, with its media type.
  auto back = c.FetchManifest(sig1.desc.digest, kOciManifest);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->first, kOciManifest);
  EXPECT_EQ(back->second, sig1.bytes);
  EXPECT_EQ(json::parse(back->second)["subject"]["digest"], subject.digest);

  // Nothing refers to the image yet.
  EXPECT_TRUE(c.Referrers(subject.digest, kSigType).empty());

  c.AddReferrer(subject.digest, sig1.desc);
  c.AddReferrer(subject.digest, sig2.desc);
  c.AddReferrer(subject.digest, sbom.desc);
  std::string tag = "sha256-" + subject.digest.substr(7);
  WaitForCount(*registry_, "PUT /v2/push/app/manifests/" + tag, 3);
  c.AddReferrer(subject.digest, sbom.desc);  // listed last already: no update
  // One GET of the tag by the first Referrers() and one per AddReferrer().
  WaitForCount(*registry_, "GET /v2/push/app/manifests/" + tag, 5);
  EXPECT_EQ(Count(*registry_, "PUT /v2/push/app/manifests/" + tag), 3u);
  // Listed further up: moves to the end (the newest of its type, for readers taking the last).
  c.AddReferrer(subject.digest, sig1.desc);
  WaitForCount(*registry_, "PUT /v2/push/app/manifests/" + tag, 4);

  auto sigs = c.Referrers(subject.digest, kSigType);
  EXPECT_EQ(Digests(sigs), (std::set<std::string>{sig1.desc.digest, sig2.desc.digest}));
  for (const auto& d : sigs) {
    EXPECT_EQ(d.artifact_type, kSigType);
    EXPECT_EQ(d.media_type, kOciManifest);
    EXPECT_EQ(d.size, d.digest == sig1.desc.digest ? sig1.desc.size : sig2.desc.size);
  }
  auto sboms = c.Referrers(subject.digest, kSbomType);
  ASSERT_EQ(sboms.size(), 1u);
  EXPECT_EQ(sboms[0].digest, sbom.desc.digest);
  EXPECT_EQ(c.Referrers(subject.digest).size(), 3u);
  EXPECT_TRUE(c.Referrers(subject.digest, "application/vnd.other").empty());
  // The referrers API was asked first (docker-registry 2.8 answers 404), then the tag.
  WaitForCount(*registry_, "GET /v2/push/app/referrers/" + subject.digest, 1);
  EXPECT_GE(Count(*registry_, "GET /v2/push/app/referrers/" + subject.digest + "?artifactType="),
            1u);

  // The index at the referrers tag, as any other client of the tag schema reads it.
  auto idx = c.FetchManifest(tag, kOciIndex);
  ASSERT_TRUE(idx.has_value());
  EXPECT_EQ(idx->first, kOciIndex);
  Index parsed = ParseIndex(idx->second);
  ASSERT_EQ(parsed.manifests.size(), 3u);
  EXPECT_EQ(parsed.manifests[0].digest, sig2.desc.digest);
  EXPECT_EQ(parsed.manifests[1].artifact_type, kSbomType);
  EXPECT_EQ(parsed.manifests[2].digest, sig1.desc.digest);
  EXPECT_EQ(parsed.manifests[2].artifact_type, kSigType);

  // Another subject has no referrers.
  EXPECT_TRUE(c.Referrers(Sha256Digest("no such subject"), kSigType).empty());
}

TEST_F(RegistryPushTest, MissingManifestsAreNullopt) {
  auto c = Client("push/app");
  EXPECT_FALSE(c.FetchManifest("nope").has_value());
  EXPECT_FALSE(c.FetchManifest(Sha256Digest("missing")).has_value());
  EXPECT_FALSE(Client("push/never-pushed").FetchManifest("v1").has_value());
  auto v1 = c.FetchManifest("v1");
  ASSERT_TRUE(v1.has_value());
  EXPECT_EQ(Sha256Digest(v1->second), image_->manifest_digest);
  try {
    c.FetchManifest("sha256:xyz");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
  }
}

TEST_F(RegistryPushTest, RefusedPushesAreClearErrors) {
  auto c = Client("push/errors", Plain(1));
  // A digest reference that is not the bytes' digest: refused before any request.
  try {
    c.PushManifest(Sha256Digest("other"), kOciManifest, "{}");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    EXPECT_NE(std::string(e.what()).find("hash to"), std::string::npos) << e.what();
  }
  // A manifest whose config blob the registry lacks.
  json m = {
      {"schemaVersion", 2},
      {"mediaType", kOciManifest},
      {"config", {{"mediaType", kEmptyMediaType}, {"digest", Sha256Digest("absent")}, {"size", 6}}},
      {"layers", json::array()}};
  try {
    c.PushManifest("v1", kOciManifest, m.dump());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    std::string msg = e.what();
    EXPECT_NE(msg.find("400"), std::string::npos) << msg;
    EXPECT_NE(msg.find("MANIFEST_BLOB_UNKNOWN"), std::string::npos) << msg;
    EXPECT_NE(msg.find(registry_->host()), std::string::npos) << msg;
  }
  // Not JSON at all.
  try {
    c.PushManifest("v1", kOciManifest, "not json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
  }
  // The referrers tag holding an image manifest instead of an index.
  auto app = Client("push/app");
  Descriptor subject = Subject(app);
  auto image_bytes = app.FetchManifest(image_->manifest_digest)->second;
  auto img = RegistryClient(labels::ParseReference(registry_->host() + "/push/app"), Plain(1));
  std::string bogus = Sha256Digest("bogus subject");
  img.PushManifest("sha256-" + bogus.substr(7), kOciManifest, image_bytes);
  Descriptor ref{kOciManifest, subject.digest, subject.size};
  try {
    img.AddReferrer(bogus, ref);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
  }
  EXPECT_THROW(img.Referrers(bogus), Error);
  EXPECT_THROW(img.Referrers("sha256:short"), Error);
}

TEST(RegistryPush, ManifestBytesFailingTheirDigestAreDataLoss) {
  Registry reg;
  RegistryClient c(labels::ParseReference(reg.host() + "/corrupt/art"), Plain(1));
  c.PushBlob("{}");
  json m = {{"schemaVersion", 2},
            {"mediaType", kOciManifest},
            {"artifactType", kSigType},
            {"config", {{"mediaType", kEmptyMediaType}, {"digest", kEmptyDigest}, {"size", 2}}},
            {"layers", {{{"mediaType", kEmptyMediaType}, {"digest", kEmptyDigest}, {"size", 2}}}}};
  std::string bytes = m.dump();
  std::string digest = c.PushManifest(Sha256Digest(bytes), kOciManifest, bytes);
  ASSERT_TRUE(c.FetchManifest(digest).has_value());
  // docker-registry keeps manifests as blobs: damage the stored bytes, keeping them valid JSON
  // (the registry parses a manifest before serving it).
  std::string path = reg.BlobDataPath(digest);
  auto at = bytes.find("signature");
  ASSERT_NE(at, std::string::npos);
  {
    int fd = ::open(path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0) << path;
    ASSERT_EQ(::pwrite(fd, "S", 1, static_cast<off_t>(at)), 1);
    ::close(fd);
  }
  try {
    RegistryClient(labels::ParseReference(reg.host() + "/corrupt/art"), Plain(1))
        .FetchManifest(digest);
    FAIL() << "corrupted manifest accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << e.what();
    EXPECT_NE(std::string(e.what()).find(digest), std::string::npos) << e.what();
  }
}

TEST(RegistryPush, BasicAuthPushNeedsCredentials) {
  TempDir d("push-auth");
  WriteFileAtomic(d / "htpasswd", RunCommandOrThrow({"htpasswd", "-Bbn", "alice", "s3cret"}));
  testing::RegistryOptions ro;
  ro.htpasswd_file = d / "htpasswd";
  Registry reg(ro);
  auto ref = labels::ParseReference(reg.host() + "/private/art");
  try {
    RegistryClient(ref, Plain(1)).PushBlob("data");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFailedPrecondition) << e.what();
    EXPECT_NE(std::string(e.what()).find("401"), std::string::npos) << e.what();
  }
  RegistryOptions o = Plain(1);
  o.credentials[reg.host()] = {"alice", "s3cret"};
  RegistryClient c(ref, o);
  std::string digest = c.PushBlob("data");
  EXPECT_EQ(c.FetchBlobToString(digest), "data");
}

// Bearer tokens: pushes ask for pull,push; a pull-only token is not used for them, and each
// token is reused for what it covers.
TEST(RegistryPush, PushThroughATokenServerAsksForPushScope) {
  testing::TokenServerOptions to;
  to.users = {{"alice", "s3cret"}};
  testing::TokenServer tokens(to);
  testing::RegistryOptions ro;
  ro.token_realm = tokens.realm();
  ro.token_service = tokens.service();
  ro.token_issuer = tokens.issuer();
  ro.token_rootcert = tokens.cert_path();
  Registry reg(ro);
  auto ref = labels::ParseReference(reg.host() + "/tok/art");
  RegistryOptions o = Plain(1);
  o.credentials[reg.host()] = {"alice", "s3cret"};
  RegistryClient c(ref, o);

  EXPECT_FALSE(c.FetchManifest("v1").has_value());  // a pull token
  EXPECT_EQ(tokens.tokens_issued(), 1);
  std::string data = PseudoRandomBytes(100000, 7);
  std::string digest = c.PushBlob(data);  // the pull token does not do: a pull,push one
  EXPECT_EQ(tokens.tokens_issued(), 2);
  EXPECT_EQ(c.PushBlob("{}"), kEmptyDigest);
  json m = {
      {"schemaVersion", 2},
      {"mediaType", kOciManifest},
      {"artifactType", kSbomType},
      {"config", {{"mediaType", kEmptyMediaType}, {"digest", kEmptyDigest}, {"size", 2}}},
      {"layers",
       {{{"mediaType", "application/octet-stream"}, {"digest", digest}, {"size", data.size()}}}}};
  std::string bytes = m.dump();
  EXPECT_EQ(c.PushManifest("v1", kOciManifest, bytes), Sha256Digest(bytes));
  EXPECT_EQ(tokens.tokens_issued(), 2) << "the push token is reused for the whole push";
  auto back = c.FetchManifest("v1");
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->second, bytes);
  EXPECT_EQ(c.FetchBlobToString(digest), data);
  EXPECT_EQ(tokens.tokens_issued(), 2) << "the pull token is reused for pulls";

  // Referrers through token auth too.
  Descriptor art{kOciManifest, Sha256Digest(bytes), bytes.size()};
  art.artifact_type = kSbomType;
  c.AddReferrer(Sha256Digest("a subject"), art);
  EXPECT_EQ(c.Referrers(Sha256Digest("a subject"), kSbomType).size(), 1u);

  // Without credentials the token server refuses, and the error says so.
  try {
    RegistryClient(ref, Plain(1)).PushBlob("x");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFailedPrecondition) << e.what();
    EXPECT_NE(std::string(e.what()).find("token server"), std::string::npos) << e.what();
  }
}

// HTTPS with the registry's CA given in hosts.toml as a [host] entry for the server itself: pushes
// use that entry's TLS settings.
TEST(RegistryPush, HttpsPushUsesTheServersHostEntry) {
  TempDir d("push-tls");
  RunCommandOrThrow({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                     "-subj", "/CN=lazysnap test CA", "-keyout", d / "ca.key", "-out",
                     d / "ca.crt"});
  RunCommandOrThrow({"openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                     "-keyout", d / "server.key", "-out", d / "server.csr"});
  WriteFileAtomic(d / "ext.cnf", "subjectAltName=IP:127.0.0.1\n");
  RunCommandOrThrow({"openssl", "x509", "-req", "-in", d / "server.csr", "-CA", d / "ca.crt",
                     "-CAkey", d / "ca.key", "-CAcreateserial", "-days", "2", "-extfile",
                     d / "ext.cnf", "-out", d / "server.crt"});
  testing::RegistryOptions ro;
  ro.tls_cert = d / "server.crt";
  ro.tls_key = d / "server.key";
  Registry reg(ro);
  auto ref = labels::ParseReference(reg.host() + "/tls/art");
  RegistryOptions o;
  o.retry.attempts = 1;
  // Untrusted certificate without hosts.toml.
  EXPECT_THROW(RegistryClient(ref, o).PushBlob("data"), Error);
  std::string url = "https://" + reg.host();
  MakeDirs(d / ("certs/" + reg.host()));
  WriteFileAtomic(
      d / ("certs/" + reg.host() + "/hosts.toml"),
      "server = \"" + url + "\"\n[host.\"" + url + "\"]\n  ca = \"" + (d / "ca.crt") + "\"\n");
  o.hosts_dir = d / "certs";
  RegistryClient c(ref, o);
  std::string digest = c.PushBlob("data over tls");
  EXPECT_EQ(c.FetchBlobToString(digest), "data over tls");
}

// A scripted HTTP/1.1 server: one request per connection, answered by a handler, recorded.
struct FakeRequest {
  std::string method, target, body;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string Header(const std::string& n) const {
    auto it = headers.find(n);
    return it == headers.end() ? "" : it->second;
  }
};
struct FakeResponse {
  int status = 200;
  std::vector<std::string> headers;
  std::string body;
};

class FakeRegistry {
 public:
  using Handler = std::function<FakeResponse(const FakeRequest&)>;
  explicit FakeRegistry(Handler h) : handler_(std::move(h)) {
    listen_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      ThrowErrno("bind");
    socklen_t len = sizeof addr;
    ::getsockname(listen_.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    if (::listen(listen_.get(), 16) != 0) ThrowErrno("listen");
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeRegistry() {
    stop_ = true;
    thread_.join();
  }
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  std::vector<FakeRequest> requests() const {
    std::lock_guard<std::mutex> l(mu_);
    return requests_;
  }

 private:
  void Serve() {
    while (!stop_) {
      pollfd p{listen_.get(), POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      UniqueFd c(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (c.get() < 0) continue;
      std::string in;
      char buf[65536];
      size_t head_end;
      while ((head_end = in.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = ::recv(c.get(), buf, sizeof buf, 0);
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
      }
      if (head_end == std::string::npos) continue;
      FakeRequest r;
      std::string head = in.substr(0, head_end);
      auto eol = head.find("\r\n");
      std::string line = head.substr(0, eol);
      r.method = line.substr(0, line.find(' '));
      r.target = line.substr(r.method.size() + 1, line.rfind(' ') - r.method.size() - 1);
      size_t pos = eol == std::string::npos ? head.size() : eol + 2;
      while (pos < head.size()) {
        auto e = head.find("\r\n", pos);
        if (e == std::string::npos) e = head.size();
        std::string h = head.substr(pos, e - pos);
        auto colon = h.find(':');
        if (colon != std::string::npos) {
          std::string name = h.substr(0, colon);
          for (auto& ch : name)
            ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          auto v = h.find_first_not_of(' ', colon + 1);
          r.headers[name] = v == std::string::npos ? "" : h.substr(v);
        }
        pos = e + 2;
      }
      size_t want =
          std::stoul(r.Header("content-length").empty() ? "0" : r.Header("content-length"));
      if (r.Header("expect") == "100-continue") {
        std::string cont = "HTTP/1.1 100 Continue\r\n\r\n";
        (void)!::send(c.get(), cont.data(), cont.size(), MSG_NOSIGNAL);
      }
      r.body = in.substr(head_end + 4);
      while (r.body.size() < want) {
        ssize_t n = ::recv(c.get(), buf, sizeof buf, 0);
        if (n <= 0) break;
        r.body.append(buf, static_cast<size_t>(n));
      }
      FakeResponse resp = handler_(r);
      {
        std::lock_guard<std::mutex> l(mu_);
        requests_.push_back(r);
      }
      std::string out = "HTTP/1.1 " + std::to_string(resp.status) + " X\r\n";
      for (const auto& h : resp.headers) out += h + "\r\n";
      out +=
          "Content-Length: " + std::to_string(resp.body.size()) + "\r\nConnection: close\r\n\r\n";
      if (r.method != "HEAD") out += resp.body;
      (void)!::send(c.get(), out.data(), out.size(), MSG_NOSIGNAL);
    }
  }

  Handler handler_;
  UniqueFd listen_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<FakeRequest> requests_;
  std::thread thread_;
};

RegistryClient FakeClient(const FakeRegistry& f) {
  return RegistryClient(labels::ParseReference(f.host() + "/fake/app"), Plain(1));
}

TEST(RegistryPushProtocol, UploadFollowsARelativeLocationAndAddsTheDigest) {
  std::string location = "/v2/fake/app/blobs/uploads/u1";
  FakeRegistry f([&](const FakeRequest& r) -> FakeResponse {
    if (r.method == "HEAD") return {404, {}, ""};
    if (r.method == "POST") return {202, {"Location: " + location}, ""};
    if (r.method == "PUT") return {201, {}, ""};
    return {400, {}, ""};
  });
  auto c = FakeClient(f);
  std::string data = "blob bytes";
  std::string digest = c.PushBlob(data);
  auto reqs = f.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].method, "HEAD");
  EXPECT_EQ(reqs[0].target, "/v2/fake/app/blobs/" + digest);
  EXPECT_EQ(reqs[1].method, "POST");
  EXPECT_EQ(reqs[1].target, "/v2/fake/app/blobs/uploads/");
  EXPECT_EQ(reqs[1].Header("content-length"), "0");
  EXPECT_EQ(reqs[1].Header("content-type"), "") << "no invented form encoding";
  EXPECT_EQ(reqs[2].method, "PUT");
  EXPECT_EQ(reqs[2].target, location + "?digest=sha256%3A" + digest.substr(7));
  EXPECT_EQ(reqs[2].Header("content-type"), "application/octet-stream");
  EXPECT_EQ(reqs[2].body, data);

  // A Location with a query of its own (docker-registry's _state): the digest is appended.
  location = "/v2/fake/app/blobs/uploads/u2?_state=abc%3D";
  c.PushBlob("");
  reqs = f.requests();
  ASSERT_EQ(reqs.size(), 6u);
  EXPECT_EQ(reqs[5].target, location + "&digest=sha256%3A" + Sha256Digest("").substr(7));
  EXPECT_EQ(reqs[5].Header("content-length"), "0");
  EXPECT_EQ(reqs[5].body, "");
}

TEST(RegistryPushProtocol, FailedUploadsAreClearErrors) {
  int put_status = 400;
  bool location = true;
  int post_status = 202;
  FakeRegistry f([&](const FakeRequest& r) -> FakeResponse {
    if (r.method == "HEAD") return {404, {}, ""};
    if (r.method == "POST") {
      std::vector<std::string> h;
      if (location) h.push_back("Location: http://127.0.0.1:1/elsewhere/u1");  // absolute
      return {post_status, h, ""};
    }
    return {put_status,
            {"Content-Type: application/json"},
            R"({"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match"}]})"};
  });
  auto expect = [&](ErrorCode code, const std::string& needle) {
    try {
      FakeClient(f).PushBlob("data");
      FAIL() << "pushed";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), code) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(Sha256Digest("data")), std::string::npos) << e.what();
    }
  };
  // The PUT goes to the absolute Location (port 1 refuses connections): unavailable.
  expect(ErrorCode::kUnavailable, "127.0.0.1:1");
  location = false;
  expect(ErrorCode::kUnavailable, "without a Location");
  post_status = 405;
  expect(ErrorCode::kFailedPrecondition, "405");
  post_status = 500;
  expect(ErrorCode::kUnavailable, "500");
}

TEST(RegistryPushProtocol, PutErrorsCarryTheRegistrysMessage) {
  int put_status = 400;
  FakeRegistry f([&](const FakeRequest& r) -> FakeResponse {
    if (r.method == "HEAD") return {404, {}, ""};
    if (r.method == "POST") return {202, {"Location: uploads/u1"}, ""};  // relative to the path
    return {put_status,
            {},
            R"({"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match"}]})"};
  });
  try {
    FakeClient(f).PushBlob("data");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    EXPECT_NE(std::string(e.what()).find("DIGEST_INVALID"), std::string::npos) << e.what();
  }
  // "uploads/u1" is relative to the POST's URL, which ends in "uploads/".
  EXPECT_TRUE(
      f.requests().back().target.starts_with("/v2/fake/app/blobs/uploads/uploads/u1?digest="))
      << f.requests().back().target;
  put_status = 500;
  EXPECT_THROW(FakeClient(f).PushBlob("data"), Error);
}

TEST(RegistryPushProtocol, DigestsAreVerifiedBothWays) {
  std::string served = R"({"schemaVersion":2})";
  FakeRegistry f([&](const FakeRequest& r) -> FakeResponse {
    if (r.method == "PUT") return {201, {"Docker-Content-Digest: " + Sha256Digest("other")}, ""};
    return {200, {"Content-Type: application/vnd.oci.image.manifest.v1+json"}, served};
  });
  auto c = FakeClient(f);
  try {
    c.PushManifest("v1", kOciManifest, "{}");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << e.what();
  }
  EXPECT_EQ(f.requests().back().Header("content-type"), kOciManifest);
  EXPECT_EQ(f.requests().back().body, "{}");
  // Asked by one digest, served other bytes.
  try {
    c.FetchManifest(Sha256Digest("wanted"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << e.what();
  }
  auto ok = c.FetchManifest(Sha256Digest(served), kOciManifest);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->first, kOciManifest);
  EXPECT_EQ(f.requests().back().Header("accept"), kOciManifest);
}

TEST(RegistryPushProtocol, ReferrersApiIsUsedWhereItExists) {
  std::string subject = Sha256Digest("subject");
  json index = {{"schemaVersion", 2},
                {"mediaType", kOciIndex},
                {"manifests",
                 {{{"mediaType", kOciManifest},
                   {"digest", Sha256Digest("a")},
                   {"size", 10},
                   {"artifactType", kSigType}},
                  {{"mediaType", kOciManifest},
                   {"digest", Sha256Digest("b")},
                   {"size", 11},
                   {"artifactType", kSbomType}}}}};
  FakeRegistry f([&](const FakeRequest& r) -> FakeResponse {
    if (r.target.starts_with("/v2/fake/app/referrers/"))
      return {200, {"Content-Type: application/vnd.oci.image.index.v1+json"}, index.dump()};
    return {404, {}, ""};
  });
  auto c = FakeClient(f);
  // This server ignores the filter: the client applies it.
  auto sigs = c.Referrers(subject, kSigType);
  ASSERT_EQ(sigs.size(), 1u);
  EXPECT_EQ(sigs[0].digest, Sha256Digest("a"));
  EXPECT_EQ(sigs[0].size, 10u);
  EXPECT_EQ(sigs[0].artifact_type, kSigType);
  auto reqs = f.requests();
  ASSERT_EQ(reqs.size(), 1u) << "no fallback to the tag schema";
  EXPECT_EQ(reqs[0].target, "/v2/fake/app/referrers/" + subject +
                                "?artifactType=application%2Fvnd.lazysnap.test.signature.v1");
  EXPECT_EQ(c.Referrers(subject).size(), 2u);
  // A malformed index from the API is an error, not an empty answer.
  index["manifests"][0]["artifactType"] = 5;
  EXPECT_THROW(c.Referrers(subject), Error);
}

// Mirrors from hosts.toml serve reads; pushes go to the registry itself.
TEST_F(RegistryPushTest, PushesSkipMirrors) {
  FakeRegistry mirror([](const FakeRequest&) -> FakeResponse { return {404, {}, ""}; });
  TempDir d("push-hosts");
  MakeDirs(d / ("certs/" + registry_->host()));
  WriteFileAtomic(d / ("certs/" + registry_->host() + "/hosts.toml"),
                  "server = \"http://" + registry_->host() + "\"\n[host.\"http://" + mirror.host() +
                      "\"]\n  capabilities = [\"pull\", \"resolve\"]\n");
  RegistryOptions o = Plain(1);
  o.hosts_dir = d / "certs";
  RegistryClient c(labels::ParseReference(registry_->host() + "/push/mirrored"), o);
  std::string digest = c.PushBlob("through no mirror");
  c.PushBlob("{}");
  json m = {{"schemaVersion", 2},
            {"mediaType", kOciManifest},
            {"config", {{"mediaType", kEmptyMediaType}, {"digest", kEmptyDigest}, {"size", 2}}},
            {"layers",
             {{{"mediaType", "application/octet-stream"},
               {"digest", digest},
               {"size", std::string("through no mirror").size()}}}}};
  c.PushManifest("v1", kOciManifest, m.dump());
  c.AddReferrer(Sha256Digest("s"), {kOciManifest, Sha256Digest(m.dump()), m.dump().size()});
  EXPECT_TRUE(mirror.requests().empty()) << mirror.requests().front().target;
  // Reads ask the mirror first; its 404 falls back to the registry.
  auto back = c.FetchManifest("v1");
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->second, m.dump());
  EXPECT_EQ(c.Referrers(Sha256Digest("s")).size(), 1u);
  EXPECT_FALSE(mirror.requests().empty());
}

}  // namespace
}  // namespace lazysnap::fetcher

// The registry client against a real docker-registry on 127.0.0.1: plain http, Basic auth, HTTPS
// with a CA made here, mirrors with fallback, image indexes, ranges, and verification of
// corrupted bytes (the blob is damaged in the registry's own storage).
#include "fetcher/registry_client.h"

#include "fetcher/range_fetcher.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "common/file_util.h"
#include "common/process.h"
#include "common/sha256.h"
#include "common/temp_dir.h"
#include "common/unique_fd.h"
#include "labels/descriptor.h"
#include "tests/support/oci_image.h"
#include "tests/support/registry.h"
#include "tests/support/small_disk.h"
#include "tests/support/token_server.h"

namespace lazysnap::fetcher {
namespace {

using testing::OciImageBuilder;
using testing::PushedImage;
using testing::Registry;

std::string Pseudo(size_t n) {
  std::string s(n, '\0');
  uint64_t x = 88172645463325252ull;
  for (auto& c : s) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = static_cast<char>(x);
  }
  return s;
}

PushedImage BuildAndPush(const std::string& host, const std::string& repo_tag,
                         const std::vector<std::string>& skopeo_extra = {}) {
  OciImageBuilder b;
  b.AddBusyboxLayer();
  b.AddFileLayer({{"data/blob", Pseudo(3 << 20)}});
  if (skopeo_extra.empty()) return b.Push(host, repo_tag);
  std::vector<std::string> argv = {"skopeo", "copy"};
  argv.insert(argv.end(), skopeo_extra.begin(), skopeo_extra.end());
  argv.push_back("oci:" + b.layout_dir() + ":img");
  argv.push_back("docker://" + host + "/" + repo_tag);
  RunCommandOrThrow(argv);
  // Digests do not depend on where the image went: read them from a plain push description.
  PushedImage p;
  p.ref = host + "/" + repo_tag;
  return p;
}

class RegistryClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    registry_ = new Registry();
    image_ = new PushedImage(BuildAndPush(registry_->host(), "fetch/app:v1"));
  }
  static void TearDownTestSuite() {
    delete image_;
    delete registry_;
  }
  static RegistryClient Client(const RegistryOptions& opts) { return RegistryClient(Ref(), opts); }
  static labels::Reference Ref(const std::string& tag = "v1") {
    return labels::ParseReference(registry_->host() + "/fetch/app:" + tag);
  }
  static std::string Blob(const std::string& digest) {
    return Client(Plain()).FetchBlobToString(digest, 64 << 20);
  }
  static RegistryOptions Plain() {
    RegistryOptions o;
    o.plain_http = true;
    return o;
  }

  static Registry* registry_;
  static PushedImage* image_;
};

Registry* RegistryClientTest::registry_ = nullptr;
PushedImage* RegistryClientTest::image_ = nullptr;

TEST_F(RegistryClientTest, ResolvesTagAndDigest) {
  auto c = Client(Plain());
  auto r = c.Resolve(Ref());
  EXPECT_EQ(r.manifest_digest, image_->manifest_digest);
  ASSERT_EQ(r.manifest.layers.size(), 2u);
  EXPECT_EQ(r.manifest.layers[1].digest, image_->layer_digests[1]);
  EXPECT_EQ(Sha256Digest(r.manifest_bytes), image_->manifest_digest);
  auto by_digest = c.Resolve(
      labels::ParseReference(registry_->host() + "/fetch/app@" + image_->manifest_digest));
  EXPECT_EQ(by_digest.manifest_digest, image_->manifest_digest);
  try {
    c.Resolve(Ref("nope"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound) << e.what();
    EXPECT_NE(std::string(e.what()).find("404"), std::string::npos) << e.what();
  }
}

TEST_F(RegistryClientTest, FetchesAndVerifiesBlobs) {
  auto c = Client(Plain());
  for (size_t i = 0; i < image_->layer_digests.size(); ++i) {
    std::string blob = c.FetchBlobToString(image_->layer_digests[i], 64 << 20);
    EXPECT_EQ(Sha256Digest(blob), image_->layer_digests[i]);
    EXPECT_EQ(blob.size(), image_->layer_sizes[i]);
    EXPECT_EQ(c.BlobSize(image_->layer_digests[i]), image_->layer_sizes[i]);
  }
}

TEST_F(RegistryClientTest, FetchBlobToFileWritesTheBlobAndNamesAFullDisk) {
  auto c = Client(Plain());
  const std::string& digest = image_->layer_digests[1];
  TempDir tmp("blob-file");
  uint64_t seen = 0;
  uint64_t n = c.FetchBlobToFile(digest, tmp / "blob", image_->layer_sizes[1],
                                 [&](size_t len) { seen += len; });
  EXPECT_EQ(n, image_->layer_sizes[1]);
  EXPECT_EQ(seen, n);
  EXPECT_EQ(Sha256Digest(ReadFile(tmp / "blob")), digest);

  // A disk smaller than the blob: the error is the write's, naming the file, not "the reader
  // stopped".
  ASSERT_GT(image_->layer_sizes[1], 16384u);
  lazysnap::testing::SmallDisk disk(tmp / "small", "16k");
  const std::string& mnt = disk.path();
  try {
    c.FetchBlobToFile(digest, mnt + "/blob");
    ADD_FAILURE() << "a blob larger than the disk was written";
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("write " + mnt + "/blob"), std::string::npos) << what;
    EXPECT_NE(what.find(strerror(ENOSPC)), std::string::npos) << what;
  }
}

TEST_F(RegistryClientTest, RangeReadsMatchTheBlob) {
  auto c = Client(Plain());
  const std::string& digest = image_->layer_digests[1];
  std::string blob = Blob(digest);
  for (auto [off, len] : std::vector<std::pair<uint64_t, uint64_t>>{{0, 1},
                                                                    {0, 4096},
                                                                    {1, 4095},
                                                                    {blob.size() - 1, 1},
                                                                    {12345, 1 << 20},
                                                                    {0, blob.size()}}) {
    EXPECT_EQ(c.ReadRange(digest, off, len), blob.substr(off, len)) << off << "+" << len;
  }
  EXPECT_THROW(c.ReadRange(digest, blob.size(), 10), Error);  // 416 past the end
}

TEST_F(RegistryClientTest, CorruptedBlobIsDetectedNeverServedAsVerified) {
  // A private copy of the image so the shared one stays intact.
  Registry reg;
  auto img = BuildAndPush(reg.host(), "corrupt/app:v1");
  std::string path = reg.BlobDataPath(img.layer_digests[1]);
  {
    int fd = ::open(path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0) << path;
    ASSERT_EQ(::pwrite(fd, "X", 1, 1000), 1);
    ::close(fd);
  }
  RegistryOptions o = Plain();
  o.retry.attempts = 1;
  RegistryClient c(labels::ParseReference(reg.host() + "/corrupt/app:v1"), o);
  try {
    c.FetchBlobToString(img.layer_digests[1], 64 << 20);
    FAIL() << "corrupted blob accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
    EXPECT_NE(std::string(e.what()).find(img.layer_digests[1]), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(reg.host()), std::string::npos) << e.what();
  }
}

TEST_F(RegistryClientTest, FollowsImageIndexToHostPlatform) {
  // An index with an arm64 decoy and our amd64 manifest, pushed with curl.
  TempDir d("index");
  std::string manifest_size = std::to_string(Client(Plain()).Resolve(Ref()).manifest_bytes.size());
  // The registry checks that an index's manifests exist: the decoy is another real image.
  OciImageBuilder other;
  other.AddBusyboxLayer();
  auto decoy_image = other.Push(registry_->host(), "fetch/app:decoy");
  std::string decoy = decoy_image.manifest_digest;
  std::string decoy_size =
      std::to_string(Client(Plain()).Resolve(Ref("decoy")).manifest_bytes.size());
  std::string index =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)"
      R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
      decoy + R"(","size":)" + decoy_size +
      R"(,"platform":{"os":"linux","architecture":"arm64"}},)"
      R"({"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
      image_->manifest_digest + R"(","size":)" + manifest_size +
      R"(,"platform":{"os":"linux","architecture":")" + HostArchitecture() + R"("}}]})";
  WriteFileAtomic(d / "index.json", index);
  RunCommandOrThrow({"curl", "-sf", "-X", "PUT", "-H",
                     "Content-Type: application/vnd.oci.image.index.v1+json", "--data-binary",
                     "@" + (d / "index.json"),
                     "http://" + registry_->host() + "/v2/fetch/app/manifests/multi"});
  auto r = Client(Plain()).Resolve(Ref("multi"));
  EXPECT_EQ(r.index_digest, Sha256Digest(index));
  EXPECT_EQ(r.manifest_digest, image_->manifest_digest);
}

TEST_F(RegistryClientTest, MirrorFallsBackToNextWithALogLine) {
  TempDir d("hosts");
  int dead = testing::FreeTcpPort();
  MakeDirs(d / ("certs/" + registry_->host()));
  WriteFileAtomic(d / ("certs/" + registry_->host() + "/hosts.toml"),
                  "server = \"http://" + registry_->host() + "\"\n[host.\"http://127.0.0.1:" +
                      std::to_string(dead) + "\"]\n  capabilities = [\"pull\", \"resolve\"]\n");
  std::string logfile = d / "log";
  UniqueFd fd(::open(logfile.c_str(), O_WRONLY | O_CREAT, 0644));
  Logger log(LogLevel::kInfo, fd.get());
  RegistryOptions o;
  o.hosts_dir = d / "certs";
  o.retry.attempts = 1;
  o.connect_timeout_ms = 2000;
  o.log = &log;
  auto c = RegistryClient(Ref(), o);
  EXPECT_EQ(c.Resolve(Ref()).manifest_digest, image_->manifest_digest);
  std::string logged = ReadFile(logfile);
  EXPECT_NE(logged.find("registry endpoint failed, trying the next"), std::string::npos) << logged;
  EXPECT_NE(logged.find(std::to_string(dead)), std::string::npos) << logged;
}

TEST(RegistryClientAuth, BasicAuthWithHtpasswd) {
  TempDir d("auth");
  std::string htpasswd = RunCommandOrThrow({"htpasswd", "-Bbn", "alice", "s3cret"});
  WriteFileAtomic(d / "htpasswd", htpasswd);
  testing::RegistryOptions ro;
  ro.htpasswd_file = d / "htpasswd";
  Registry reg(ro);
  BuildAndPush(reg.host(), "private/app:v1",
               {"--dest-tls-verify=false", "--dest-creds", "alice:s3cret"});
  auto ref = labels::ParseReference(reg.host() + "/private/app:v1");
  RegistryOptions o;
  o.plain_http = true;
  o.retry.attempts = 1;
  // Anonymous: refused with a clear error.
  try {
    RegistryClient(ref, o).Resolve(ref);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFailedPrecondition) << e.what();
    EXPECT_NE(std::string(e.what()).find("401"), std::string::npos) << e.what();
  }
  // Wrong password: the same.
  o.credentials[reg.host()] = {"alice", "wrong"};
  EXPECT_THROW(RegistryClient(ref, o).Resolve(ref), Error);
  // From the daemon config.
  o.credentials[reg.host()] = {"alice", "s3cret"};
  auto r = RegistryClient(ref, o).Resolve(ref);
  EXPECT_EQ(r.manifest.layers.size(), 2u);
  // From a docker config.json.
  o.credentials.clear();
  WriteFileAtomic(d / "config.json", R"({"auths":{")" + reg.host() + R"(":{"auth":")" +
                                         labels::Base64Encode("alice:s3cret") + R"("}}})");
  o.docker_config = d / "config.json";
  RegistryClient c(ref, o);
  EXPECT_EQ(c.Resolve(ref).manifest.layers.size(), 2u);
  EXPECT_GT(c.FetchBlobToString(r.manifest.layers[1].digest).size(), 1000u);
}

// Bearer tokens from a real token server (JWT, RS256, x5c) that docker-registry verifies.
TEST(RegistryClientAuth, BearerTokensFromATokenServer) {
  testing::TokenServerOptions to;
  to.users = {{"alice", "s3cret"}};
  testing::TokenServer tokens(to);
  testing::RegistryOptions ro;
  ro.token_realm = tokens.realm();
  ro.token_service = tokens.service();
  ro.token_issuer = tokens.issuer();
  ro.token_rootcert = tokens.cert_path();
  Registry reg(ro);
  BuildAndPush(reg.host(), "tok/app:v1",
               {"--dest-tls-verify=false", "--dest-creds", "alice:s3cret"});
  auto ref = labels::ParseReference(reg.host() + "/tok/app:v1");
  RegistryOptions o;
  o.plain_http = true;
  o.retry.attempts = 1;
  // Wrong password: the token server refuses, and the error says so.
  o.credentials[reg.host()] = {"alice", "wrong"};
  try {
    RegistryClient(ref, o).Resolve(ref);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFailedPrecondition) << e.what();
    EXPECT_NE(std::string(e.what()).find("token server"), std::string::npos) << e.what();
  }
  o.credentials[reg.host()] = {"alice", "s3cret"};
  RegistryClient c(ref, o);
  int before = tokens.tokens_issued();
  auto r = c.Resolve(ref);
  ASSERT_EQ(r.manifest.layers.size(), 2u);
  for (const auto& l : r.manifest.layers) EXPECT_EQ(c.FetchBlobToString(l.digest).size(), l.size);
  EXPECT_EQ(c.ReadRange(r.manifest.layers[1].digest, 10, 100).size(), 100u);
  EXPECT_EQ(tokens.tokens_issued() - before, 1) << "one token, reused until it expires";

  // The range fetcher's concurrent requests carry the client's token.
  TempDir d("tok-cache");
  ChunkCacheOptions co;
  co.dir = d / "cache";
  co.chunk_size = 64 * 1024;
  ChunkCache cache(co);
  MultiHttp http(4);
  RangeFetcherOptions fo;
  fo.allow_unverified = true;
  const auto& layer = r.manifest.layers[1];
  RangeFetcher f(std::make_shared<RegistryClient>(ref, o), layer.digest, layer.size, cache, http,
                 fo);
  f.FetchAll();
  EXPECT_TRUE(f.verified());
  EXPECT_GT(f.Stats().requests, 0u);
}

TEST(RegistryClientAuth, ARejectedTokenIsRenewedOnceTransparently) {
  testing::TokenServer tokens;  // anonymous pulls
  testing::RegistryOptions ro;
  ro.token_realm = tokens.realm();
  ro.token_service = tokens.service();
  ro.token_issuer = tokens.issuer();
  ro.token_rootcert = tokens.cert_path();
  Registry reg(ro);
  BuildAndPush(reg.host(), "tok/app:v1", {"--dest-tls-verify=false"});
  auto ref = labels::ParseReference(reg.host() + "/tok/app:v1");
  RegistryOptions o;
  o.plain_http = true;
  o.retry.attempts = 1;
  RegistryClient c(ref, o);
  tokens.ExpireNextTokens(1);  // claims 300 s of life, but the registry rejects it
  int before = tokens.tokens_issued();
  auto r = c.Resolve(ref);
  EXPECT_EQ(r.manifest.layers.size(), 2u);
  EXPECT_EQ(tokens.tokens_issued() - before, 2) << "the stale token, then one renewal";
  c.FetchBlobToString(r.manifest.layers[0].digest);
  EXPECT_EQ(tokens.tokens_issued() - before, 2) << "the renewed token is reused";
  // A token server that keeps handing out stale tokens: one renewal only, then a clear error.
  tokens.ExpireNextTokens(100);
  RegistryClient stale(ref, o);
  try {
    stale.Resolve(ref);
    FAIL() << "resolved with rejected tokens";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kFailedPrecondition) << e.what();
    EXPECT_NE(std::string(e.what()).find("401"), std::string::npos) << e.what();
  }
}

TEST(RegistryClientTls, HttpsWithTestCa) {
  TempDir d("tls");
  // A CA, and a server certificate for 127.0.0.1 signed by it.
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
  BuildAndPush(reg.host(), "tls/app:v1", {"--dest-tls-verify=false"});
  auto ref = labels::ParseReference(reg.host() + "/tls/app:v1");
  RegistryOptions o;
  o.retry.attempts = 1;
  // Untrusted certificate: a clear error naming the host.
  try {
    RegistryClient(ref, o).Resolve(ref);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
    EXPECT_NE(std::string(e.what()).find(reg.host()), std::string::npos) << e.what();
  }
  auto with_hosts = [&](const std::string& body) {
    MakeDirs(d / ("certs/" + reg.host()));
    WriteFileAtomic(d / ("certs/" + reg.host() + "/hosts.toml"), body);
    o.hosts_dir = d / "certs";
    return RegistryClient(ref, o).Resolve(ref);
  };
  std::string url = "https://" + reg.host();
  EXPECT_EQ(with_hosts("server = \"" + url + "\"\n[host.\"" + url + "\"]\n  ca = \"" +
                       (d / "ca.crt") + "\"\n")
                .manifest.layers.size(),
            2u);
  EXPECT_EQ(with_hosts("[host.\"" + url + "\"]\n  skip_verify = true\n").manifest.layers.size(),
            2u);
}

}  // namespace
}  // namespace lazysnap::fetcher

#include "tests/support/fault_proxy.h"

namespace lazysnap::fetcher {
namespace {

using testing::Fault;
using testing::FaultProxy;

class FaultTest : public RegistryClientTest {
 protected:
  FaultProxy proxy_{registry_->port()};
  RegistryClient Through(int attempts = 4) {
    RegistryOptions o;
    o.plain_http = true;
    o.retry.attempts = attempts;
    o.retry.initial_backoff = std::chrono::milliseconds(20);
    o.low_speed_time_s = 2;
    // The image is addressed through the proxy's host:port (same repository, same digests).
    return RegistryClient(labels::ParseReference(proxy_.host() + "/fetch/app:v1"), o);
  }
  labels::Reference ProxyRef() { return labels::ParseReference(proxy_.host() + "/fetch/app:v1"); }
};

TEST_F(FaultTest, RetriesServerErrorsAndRateLimits) {
  proxy_.Inject(Fault::kHttp500, 2);
  EXPECT_EQ(Through().Resolve(ProxyRef()).manifest_digest, image_->manifest_digest);
  EXPECT_EQ(proxy_.faults_applied(), 2);
  proxy_.Inject(Fault::kHttp429, 1);
  EXPECT_EQ(Through().Resolve(ProxyRef()).manifest_digest, image_->manifest_digest);
}

TEST_F(FaultTest, RetriesResetConnections) {
  proxy_.Inject(Fault::kReset, 2);
  auto c = Through();
  std::string blob = c.FetchBlobToString(image_->layer_digests[1], 64 << 20);
  EXPECT_EQ(Sha256Digest(blob), image_->layer_digests[1]);
  EXPECT_EQ(proxy_.faults_applied(), 2);
  EXPECT_GE(proxy_.connections(), 3);
}

TEST_F(FaultTest, TruncatedBlobIsRefetchedWhole) {
  proxy_.Inject(Fault::kTruncate, 1, 100000);
  std::string blob = Through().FetchBlobToString(image_->layer_digests[1], 64 << 20);
  EXPECT_EQ(Sha256Digest(blob), image_->layer_digests[1]);  // reset() discarded the partial bytes
  EXPECT_EQ(proxy_.faults_applied(), 1);
  EXPECT_GE(proxy_.connections(), 2);  // the retry came on a new connection
}

TEST_F(FaultTest, TruncatedBlobToFileIsWrittenWholeOnce) {
  proxy_.Inject(Fault::kTruncate, 1, 100000);
  TempDir tmp("blob-file-retry");
  uint64_t n = Through().FetchBlobToFile(image_->layer_digests[1], tmp / "blob");
  EXPECT_EQ(n, image_->layer_sizes[1]);
  // The retry truncated the partial bytes of the first attempt instead of appending to them.
  EXPECT_EQ(Sha256Digest(ReadFile(tmp / "blob")), image_->layer_digests[1]);
  EXPECT_EQ(proxy_.faults_applied(), 1);
}

TEST_F(FaultTest, FlippedByteIsDetectedNeverReturned) {
  proxy_.Inject(Fault::kFlipByte, 10, 5000);
  try {
    Through(1).FetchBlobToString(image_->layer_digests[1], 64 << 20);
    FAIL() << "corrupted transfer accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << e.what();
  }
}

TEST_F(FaultTest, GivesUpWithAClearErrorNamingHostDigestAndRange) {
  proxy_.Inject(Fault::kHttp500, 100);
  try {
    Through(3).ReadRange(image_->layer_digests[1], 100, 200);
    FAIL();
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find(proxy_.host()), std::string::npos) << m;
    EXPECT_NE(m.find(image_->layer_digests[1]), std::string::npos) << m;
    EXPECT_NE(m.find("100-299"), std::string::npos) << m;
    EXPECT_NE(m.find("500"), std::string::npos) << m;
  }
  EXPECT_EQ(proxy_.faults_applied(), 3);
}

TEST_F(FaultTest, StalledPeerTimesOut) {
  proxy_.Inject(Fault::kStall, 100);
  RegistryOptions o;
  o.plain_http = true;
  o.retry.attempts = 1;
  o.low_speed_time_s = 1;
  RegistryClient c(ProxyRef(), o);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(c.Resolve(ProxyRef()), Error);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
}

}  // namespace
}  // namespace lazysnap::fetcher

// A real docker-registry (Debian's distribution/registry v2) on 127.0.0.1, in a temp dir,
// stopped and removed on destruction. Its access log (stderr/stdout) is kept so tests can
// assert which blobs were fetched.
#pragma once

#include <string>
#include <vector>

#include "common/process.h"
#include "common/temp_dir.h"

namespace lazysnap::testing {

struct RegistryOptions {
  std::string htpasswd_file;  // Basic auth when set
  std::string tls_cert;       // HTTPS when set (with tls_key)
  std::string tls_key;
  // Token auth when set: realm URL, service, issuer, and the token server's certificate bundle.
  std::string token_realm, token_service, token_issuer, token_rootcert;
};

class Registry {
 public:
  explicit Registry(const RegistryOptions& opts = {});
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;
  ~Registry();

  int port() const { return port_; }
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }  // "127.0.0.1:PORT"
  std::string url() const { return (tls_ ? "https://" : "http://") + host(); }
  std::string log_path() const { return dir_ / "registry.log"; }
  // Where the registry stores a blob's bytes (filesystem driver): tests corrupt it to test
  // verification.
  std::string BlobDataPath(const std::string& digest) const;
  std::string ReadLog() const;
  // Access-log request lines ("GET /v2/..../blobs/sha256:...") seen so far.
  std::vector<std::string> Requests() const;
  // Bytes of GET /v2/.../blobs/ responses in access-log lines after the first `skip_requests`.
  uint64_t BlobBytesServedSince(size_t skip_requests) const;
  void Stop();
  void Start();  // restarts after Stop(), same port and storage

 private:
  TempDir dir_{"registry"};
  int port_ = 0;
  bool tls_ = false;
  Subprocess proc_;
};

// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
int FreeTcpPort();
// Waits until something accepts TCP connections on 127.0.0.1:port; throws after the timeout.
void WaitForTcp(int port, int timeout_ms = 20000);
// Waits until a unix socket accepts connections; throws after the timeout.
void WaitForUnixSocket(const std::string& path, int timeout_ms = 20000);

}  // namespace lazysnap::testing

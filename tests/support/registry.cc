#include "tests/support/registry.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/file_util.h"
#include "common/unique_fd.h"

namespace lazysnap::testing {

int FreeTcpPort() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) ThrowErrno("bind");
  socklen_t len = sizeof addr;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

void WaitForTcp(int port, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  throw Error(ErrorCode::kUnavailable, "nothing listens on 127.0.0.1:" + std::to_string(port));
}

void WaitForUnixSocket(const std::string& path, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  throw Error(ErrorCode::kUnavailable, "nothing listens on " + path);
}

Registry::Registry(const RegistryOptions& opts)
    : port_(FreeTcpPort()), tls_(!opts.tls_cert.empty()) {
  std::ostringstream cfg;
  cfg << "version: 0.1\n"
      << "log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n"
      << "storage:\n  filesystem:\n    rootdirectory: " << (dir_ / "data") << "\n"
      << "  delete:\n    enabled: true\n"
      << "http:\n  addr: 127.0.0.1:" << port_ << "\n";
  if (tls_)
    cfg << "  tls:\n    certificate: " << opts.tls_cert << "\n    key: " << opts.tls_key << "\n";
  if (!opts.htpasswd_file.empty()) {
    cfg << "auth:\n  htpasswd:\n    realm: lazysnap-test\n    path: " << opts.htpasswd_file << "\n";
  } else if (!opts.token_realm.empty()) {
    cfg << "auth:\n  token:\n    realm: " << opts.token_realm
        << "\n    service: " << opts.token_service << "\n    issuer: " << opts.token_issuer
        << "\n    rootcertbundle: " << opts.token_rootcert << "\n";
  }
  WriteFileAtomic(dir_ / "config.yml", cfg.str());
  Start();
}

Registry::~Registry() {
  Stop();
}

void Registry::Start() {
  if (proc_.running()) return;
  SpawnOptions so;
  // Appending keeps the log across restarts: the file is reopened with O_TRUNC only the first time.
  std::string log = log_path();
  if (PathExists(log)) {
    std::rename(log.c_str(), (log + ".prev").c_str());
  }
  so.stdout_path = log;
  so.stderr_path = "=stdout";
  so.env = {"OTEL_TRACES_EXPORTER=none"};
  so.die_with_parent = true;
  proc_ = Subprocess::Spawn({"docker-registry", "serve", dir_ / "config.yml"}, so);
  WaitForTcp(port_);
}

void Registry::Stop() {
  proc_.Stop(std::chrono::seconds(5));
}

std::string Registry::ReadLog() const {
  std::string out;
  if (PathExists(log_path() + ".prev")) out = ReadFile(log_path() + ".prev");
  if (PathExists(log_path())) out += ReadFile(log_path());
  return out;
}

namespace {

struct AccessLine {
  std::string request;  // "GET /v2/..."
  uint64_t bytes = 0;   // response body size
};

// Access log lines look like:
//   127.0.0.1 - - [date] "GET /v2/x/blobs/sha256:.. HTTP/1.1" 200 1234 "" "user-agent"
std::vector<AccessLine> ParseAccessLog(const std::string& log) {
  std::vector<AccessLine> out;
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    auto q = line.find('"');
    if (q == std::string::npos) continue;
    auto e = line.find(" HTTP/", q);
    if (e == std::string::npos) continue;
    std::string req = line.substr(q + 1, e - q - 1);
    if (!(req.starts_with("GET ") || req.starts_with("HEAD ") || req.starts_with("PUT ") ||
          req.starts_with("POST ") || req.starts_with("PATCH ") || req.starts_with("DELETE "))) {
      continue;
    }
    AccessLine a{req, 0};
    auto close = line.find('"', e);
    if (close != std::string::npos) {
      std::istringstream rest(line.substr(close + 1));
      int status = 0;
      rest >> status >> a.bytes;
    }
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace

std::vector<std::string> Registry::Requests() const {
  std::vector<std::string> out;
  for (auto& a : ParseAccessLog(ReadLog())) out.push_back(std::move(a.request));
  return out;
}

uint64_t Registry::BlobBytesServedSince(size_t skip_requests) const {
  auto lines = ParseAccessLog(ReadLog());
  uint64_t total = 0;
  for (size_t i = skip_requests; i < lines.size(); ++i) {
    if (lines[i].request.starts_with("GET ") &&
        lines[i].request.find("/blobs/") != std::string::npos) {
      total += lines[i].bytes;
    }
  }
  return total;
}

}  // namespace lazysnap::testing

namespace lazysnap::testing {

std::string Registry::BlobDataPath(const std::string& digest) const {
  std::string hex = digest.substr(digest.find(':') + 1);
  return dir_ / ("data/docker/registry/v2/blobs/sha256/" + hex.substr(0, 2) + "/" + hex + "/data");
}

}  // namespace lazysnap::testing

// A small Docker-registry token server for tests (the "Bearer realm" of the token auth spec):
// answers GET /token?service=...&scope=... with an RS256 JWT signed by a key made here, whose
// self-signed certificate travels in the JWT's x5c header and is the bundle docker-registry's
// `auth.token.rootcertbundle` trusts. Checks Basic credentials when users are configured.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/temp_dir.h"
#include "common/unique_fd.h"

namespace lazysnap::testing {

struct TokenServerOptions {
  std::map<std::string, std::string> users;  // empty: anonymous pulls get tokens
  std::string service = "lazysnap-test-registry";
  std::string issuer = "lazysnap-test-token-issuer";
  int expires_in = 300;  // what the answer claims
};

class TokenServer {
 public:
  explicit TokenServer(TokenServerOptions opts = {});
  ~TokenServer();
  TokenServer(const TokenServer&) = delete;
  TokenServer& operator=(const TokenServer&) = delete;

  std::string realm() const { return "http://127.0.0.1:" + std::to_string(port_) + "/token"; }
  const std::string& service() const { return opts_.service; }
  const std::string& issuer() const { return opts_.issuer; }
  std::string cert_path() const { return dir_ / "token-cert.pem"; }
  int tokens_issued() const { return issued_; }
  int refusals() const { return refused_; }
  // The next `n` tokens are issued already expired while the answer still claims `expires_in`:
  // the registry rejects them and a client must authenticate again.
  void ExpireNextTokens(int n) { expire_next_ = n; }

 private:
  void Serve();
  std::string Answer(const std::string& request_head);
  std::string MakeJwt(const std::string& subject, const std::string& scope, bool expired);

  TokenServerOptions opts_;
  TempDir dir_{"token-server"};
  struct Keys;
  std::unique_ptr<Keys> keys_;
  UniqueFd listen_fd_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> issued_{0}, refused_{0}, expire_next_{0};
  std::thread thread_;
};

}  // namespace lazysnap::testing

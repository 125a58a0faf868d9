#include "tests/support/token_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "common/error.h"
#include "common/file_util.h"
#include "labels/descriptor.h"

namespace lazysnap::testing {

namespace {

std::string Base64Url(std::string_view data) {
  std::string s = labels::Base64Encode(data);
  for (auto& c : s) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  while (!s.empty() && s.back() == '=') s.pop_back();
  return s;
}

std::string UrlDecode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}

void Check(bool ok, const char* what) {
  if (!ok) throw Error(ErrorCode::kInternal, std::string("token server: ") + what);
}

}  // namespace

struct TokenServer::Keys {
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  std::string cert_der;
  ~Keys() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
};

TokenServer::TokenServer(TokenServerOptions opts)
    : opts_(std::move(opts)), keys_(std::make_unique<Keys>()) {
  keys_->key = EVP_RSA_gen(2048);
  Check(keys_->key != nullptr, "RSA key generation");
  X509* x = X509_new();
  keys_->cert = x;
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, keys_->key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("lazysnap test token signer"),
                             -1, -1, 0);
  X509_set_issuer_name(x, name);
  Check(X509_sign(x, keys_->key, EVP_sha256()) > 0, "certificate signing");
  unsigned char* der = nullptr;
  int len = i2d_X509(x, &der);
  Check(len > 0, "certificate encoding");
  keys_->cert_der.assign(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x);
  char* pem = nullptr;
  long pem_len = BIO_get_mem_data(bio, &pem);
  WriteFileAtomic(cert_path(), std::string(pem, static_cast<size_t>(pem_len)));
  BIO_free(bio);

  listen_fd_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listen_fd_) ThrowErrno("token server socket");
  int one = 1;
  ::setsockopt(listen_fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listen_fd_.get(), 16) != 0) {
    ThrowErrno("token server bind/listen");
  }
  socklen_t alen = sizeof(addr);
  ::getsockname(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), &alen);
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { Serve(); });
}

TokenServer::~TokenServer() {
  stop_ = true;
  thread_.join();
}

void TokenServer::Serve() {
  while (!stop_) {
    pollfd p{listen_fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    UniqueFd c(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!c) continue;
    std::string head;
    char buf[4096];
    while (head.find("\r\n\r\n") == std::string::npos && head.size() < 65536) {
      pollfd cp{c.get(), POLLIN, 0};
      if (::poll(&cp, 1, 5000) <= 0) break;
      ssize_t n = ::read(c.get(), buf, sizeof(buf));
      if (n <= 0) break;
      head.append(buf, static_cast<size_t>(n));
    }
    std::string resp;
    try {
      resp = Answer(head);
    } catch (const std::exception& e) {
      std::string body = std::string("{\"error\":\"") + e.what() + "\"}";
      resp =
          "HTTP/1.1 500 Internal Server Error\r\nContent-Length: " + std::to_string(body.size()) +
          "\r\nConnection: close\r\n\r\n" + body;
    }
    size_t off = 0;
    while (off < resp.size()) {
      ssize_t n = ::write(c.get(), resp.data() + off, resp.size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
  }
}

std::string TokenServer::Answer(const std::string& head) {
  auto reply = [](int status, const std::string& reason, const std::string& body,
                  const std::string& extra = "") {
    return "HTTP/1.1 " + std::to_string(status) + " " + reason +
           "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
           "\r\n" + extra + "Connection: close\r\n\r\n" + body;
  };
  std::istringstream in(head);
  std::string method, target;
  in >> method >> target;
  if (method != "GET" || !target.starts_with("/token")) {
    return reply(404, "Not Found", "{}");
  }
  std::map<std::string, std::string> query;
  if (auto q = target.find('?'); q != std::string::npos) {
    std::istringstream qs(target.substr(q + 1));
    std::string kv;
    while (std::getline(qs, kv, '&')) {
      auto eq = kv.find('=');
      if (eq == std::string::npos) continue;
      std::string k = kv.substr(0, eq), v = UrlDecode(kv.substr(eq + 1));
      query[k] = query[k].empty() ? v : query[k] + " " + v;  // several scope= parameters
    }
  }
  std::string subject;
  std::string lower = head;
  for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (auto a = lower.find("\r\nauthorization: basic "); a != std::string::npos) {
    size_t start = a + std::string("\r\nauthorization: basic ").size();
    std::string b64 = head.substr(start, head.find("\r\n", start) - start);
    std::string userpass = labels::Base64Decode(b64);
    auto colon = userpass.find(':');
    std::string user = userpass.substr(0, colon);
    std::string pass = colon == std::string::npos ? "" : userpass.substr(colon + 1);
    auto it = opts_.users.find(user);
    if (it == opts_.users.end() || it->second != pass) {
      ++refused_;
      return reply(401, "Unauthorized", R"({"errors":[{"code":"UNAUTHORIZED"}]})");
    }
    subject = user;
  } else if (!opts_.users.empty()) {
    ++refused_;
    return reply(401, "Unauthorized", R"({"errors":[{"code":"UNAUTHORIZED"}]})",
                 "WWW-Authenticate: Basic realm=\"token\"\r\n");
  }
  if (query["service"] != opts_.service) {
    return reply(400, "Bad Request", R"({"errors":[{"code":"UNSUPPORTED","detail":"service"}]})");
  }
  ++issued_;
  bool expired = expire_next_.fetch_sub(1) > 0;
  if (!expired) expire_next_ = 0;
  std::string jwt = MakeJwt(subject, query["scope"], expired);
  nlohmann::json body = {{"token", jwt}, {"access_token", jwt}, {"expires_in", opts_.expires_in}};
  return reply(200, "OK", body.dump());
}

std::string TokenServer::MakeJwt(const std::string& subject, const std::string& scopes,
                                 bool expired) {
  nlohmann::json header = {
      {"alg", "RS256"}, {"typ", "JWT"}, {"x5c", {labels::Base64Encode(keys_->cert_der)}}};
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  // "repository:name:pull,push" per scope; everything asked for is granted.
  nlohmann::json access = nlohmann::json::array();
  std::istringstream ss(scopes);
  std::string scope;
  while (ss >> scope) {
    auto c1 = scope.find(':'), c2 = scope.rfind(':');
    if (c1 == std::string::npos || c1 == c2) continue;
    nlohmann::json actions = nlohmann::json::array();
    std::istringstream as(scope.substr(c2 + 1));
    std::string a;
    while (std::getline(as, a, ',')) actions.push_back(a);
    access.push_back({{"type", scope.substr(0, c1)},
                      {"name", scope.substr(c1 + 1, c2 - c1 - 1)},
                      {"actions", actions}});
  }
  unsigned char jti[12];
  RAND_bytes(jti, sizeof(jti));
  // Expired tokens lie far outside any clock-skew leeway the registry allows.
  int64_t exp = expired ? now - 3600 : now + opts_.expires_in;
  nlohmann::json claims = {{"iss", opts_.issuer},
                           {"sub", subject},
                           {"aud", opts_.service},
                           {"exp", exp},
                           {"nbf", expired ? now - 7200 : now - 60},
                           {"iat", expired ? now - 7200 : now},
                           {"jti", Base64Url(std::string_view(reinterpret_cast<char*>(jti), 12))},
                           {"access", access}};
  std::string signing_input = Base64Url(header.dump()) + "." + Base64Url(claims.dump());
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t sig_len = 0;
  Check(EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, keys_->key) == 1, "sign init");
  Check(EVP_DigestSign(ctx, nullptr, &sig_len,
                       reinterpret_cast<const unsigned char*>(signing_input.data()),
                       signing_input.size()) == 1,
        "sign size");
  std::string sig(sig_len, '\0');
  Check(EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &sig_len,
                       reinterpret_cast<const unsigned char*>(signing_input.data()),
                       signing_input.size()) == 1,
        "sign");
  EVP_MD_CTX_free(ctx);
  sig.resize(sig_len);
  return signing_input + "." + Base64Url(sig);
}

}  // namespace lazysnap::testing

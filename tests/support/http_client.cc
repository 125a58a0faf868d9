#include "tests/support/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

#include "common/error.h"
#include "common/unique_fd.h"

namespace lazysnap::testing {

UniqueFd HttpConnect(const std::string& address) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos) throw Error(ErrorCode::kInvalidArgument, "bad " + address);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  if (inet_pton(AF_INET, address.substr(0, colon).c_str(), &a.sin_addr) != 1)
    throw Error(ErrorCode::kInvalidArgument, "bad host in " + address);
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  timeval tv{20, 0};
  ::setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    ThrowErrno("connect " + address);
  return s;
}

std::string HttpExchange(const std::string& address, const std::string& request) {
  UniqueFd s = HttpConnect(address);
  for (size_t off = 0; off < request.size();) {
    ssize_t n = ::send(s.get(), request.data() + off, request.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may close early on a bad request: read what it said
    off += static_cast<size_t>(n);
  }
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(s.get(), buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string HttpGet(const std::string& address, const std::string& path) {
  std::string r =
      HttpExchange(address, "GET " + path + " HTTP/1.1\r\nHost: " + address + "\r\n\r\n");
  if (!r.starts_with("HTTP/1.1 200 "))
    throw Error(ErrorCode::kUnavailable, "GET " + path + ": " + r.substr(0, r.find("\r\n")));
  size_t body = r.find("\r\n\r\n");
  return body == std::string::npos ? "" : r.substr(body + 4);
}

}  // namespace lazysnap::testing

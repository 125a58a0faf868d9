#include "common/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "common/error.h"

namespace lazysnap {
namespace {

// Concurrent connections served; more wait in the listen backlog.
constexpr int kServerThreads = 4;

bool IsTokenChar(char c) {  // RFC 9110 tchar
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsTokenChar(c)) return false;
  }
  return true;
}

// Visible ASCII, no spaces: what an origin-form target may hold.
bool IsTargetChar(char c) {
  return c > 0x20 && c < 0x7f;
}

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    default:
      return "Internal Server Error";
  }
}

void WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the client went away or stalled past the timeout
    data.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

std::optional<HttpRequestLine> ParseHttpRequestHead(std::string_view head) {
  if (head.size() > kMaxHttpHead || !head.ends_with("\r\n\r\n")) return std::nullopt;
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return std::nullopt;
  size_t sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return std::nullopt;
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!IsToken(method) || (version != "HTTP/1.1" && version != "HTTP/1.0")) return std::nullopt;
  if (target.empty() || target.front() != '/') return std::nullopt;
  for (char c : target) {
    if (!IsTargetChar(c)) return std::nullopt;
  }
  // Header lines: "name: value", until the empty line that ends the head.
  for (size_t pos = eol + 2; pos < head.size();) {
    size_t end = head.find("\r\n", pos);
    std::string_view h = head.substr(pos, end - pos);
    pos = end + 2;
    if (h.empty()) {
      if (pos != head.size()) return std::nullopt;  // bytes after the head's end
      break;
    }
    size_t colon = h.find(':');
    if (colon == std::string_view::npos || !IsToken(h.substr(0, colon))) return std::nullopt;
    for (char c : h.substr(colon + 1)) {
      if ((c < 0x20 && c != '\t') || c == 0x7f) return std::nullopt;
    }
  }
  size_t q = target.find('?');
  return HttpRequestLine{std::string(method), std::string(target.substr(0, q))};
}

HttpServer::HttpServer(const std::string& address, Handler handler, const Logger& log)
    : handler_(std::move(handler)), log_(log) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size())
    throw Error(ErrorCode::kInvalidArgument, "address \"" + address + "\" is not HOST:PORT");
  std::string host = address.substr(0, colon), port_text = address.substr(colon + 1);
  char* end = nullptr;
  long port = std::strtol(port_text.c_str(), &end, 10);
  if (*end != '\0' || port < 0 || port > 65535)
    throw Error(ErrorCode::kInvalidArgument, "address \"" + address + "\": bad port");
  sockaddr_storage ss{};
  socklen_t len = 0;
  bool v6 = host.size() > 2 && host.front() == '[' && host.back() == ']';
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &a->sin6_addr) != 1)
      throw Error(ErrorCode::kInvalidArgument, "address \"" + address + "\": bad IPv6 host");
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, host.c_str(), &a->sin_addr) != 1)
      throw Error(ErrorCode::kInvalidArgument,
                  "address \"" + address + "\": the host must be a numeric IPv4 or [IPv6] one");
    len = sizeof *a;
  }
  listen_.reset(::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listen_) ThrowErrno("socket for " + address);
  int one = 1;
  ::setsockopt(listen_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(listen_.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 ||
      ::listen(listen_.get(), 16) != 0) {
    throw Error(ErrorCode::kUnavailable,
                "cannot listen on " + address + ": " + std::strerror(errno));
  }
  ::getsockname(listen_.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  uint16_t bound_port = v6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                           : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  bound_ = host + ":" + std::to_string(bound_port);
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) ThrowErrno("pipe");
  stop_read_.reset(p[0]);
  stop_write_.reset(p[1]);
  // Every thread polls the listening socket; it is non-blocking so that the ones that lose the
  // race for a connection go back to polling instead of blocking in accept.
  if (::fcntl(listen_.get(), F_SETFL, O_NONBLOCK) != 0) ThrowErrno("fcntl O_NONBLOCK");
  for (int i = 0; i < kServerThreads; ++i) threads_.emplace_back([this] { Loop(); });
}

HttpServer::~HttpServer() {
  stop_write_.reset();  // every loop sees the pipe's EOF
  for (auto& t : threads_) t.join();
}

void HttpServer::Loop() {
  for (;;) {
    pollfd fds[2] = {{listen_.get(), POLLIN, 0}, {stop_read_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    if (!(fds[0].revents & POLLIN)) continue;
    // Accepted sockets do not inherit O_NONBLOCK: Serve's reads block (with a timeout).
    UniqueFd c(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (c) Serve(c.get());  // else EAGAIN: another thread took it
  }
}

void HttpServer::Serve(int conn) {
  timeval tv{5, 0};  // a client that stalls loses its connection, not the server
  ::setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(conn, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::string head;
  char buf[1024];
  while (head.find("\r\n\r\n") == std::string::npos && head.size() <= kMaxHttpHead &&
         std::chrono::steady_clock::now() < deadline) {
    ssize_t n = ::recv(conn, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    head.append(buf, static_cast<size_t>(n));
  }
  size_t end = head.find("\r\n\r\n");
  // A body (none is expected with GET/HEAD) stays unread: the connection closes after the reply.
  auto req =
      end == std::string::npos ? std::nullopt : ParseHttpRequestHead(head.substr(0, end + 4));
  HttpResponse resp;
  if (!req) {
    resp = {400, "text/plain; charset=utf-8", "bad request\n"};
  } else if (req->method != "GET" && req->method != "HEAD") {
    resp = {405, "text/plain; charset=utf-8", "only GET and HEAD\n"};
  } else {
    try {
      resp = handler_(req->path);
    } catch (const std::exception& e) {
      log_.Warn("HTTP handler failed", {{"path", req->path}, {"error", e.what()}});
      resp = {500, "text/plain; charset=utf-8", "internal error\n"};
    }
  }
  std::string out = "HTTP/1.1 " + std::to_string(resp.status) + " " + Reason(resp.status) +
                    "\r\nContent-Type: " + resp.content_type +
                    "\r\nContent-Length: " + std::to_string(resp.body.size()) +
                    "\r\nConnection: close\r\n\r\n";
  if (!req || req->method != "HEAD") out += resp.body;
  WriteAll(conn, out);
  // Closing with unread bytes would reset the connection, and the client could lose the reply:
  // end our side, then read what the client still sends (bounded) until it closes.
  ::shutdown(conn, SHUT_WR);
  timeval drain{1, 0};
  ::setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &drain, sizeof drain);
  for (size_t left = 1u << 20; left > 0;) {
    ssize_t n = ::recv(conn, buf, sizeof buf, 0);
    if (n <= 0) break;
    left -= std::min(left, static_cast<size_t>(n));
  }
}

}  // namespace lazysnap

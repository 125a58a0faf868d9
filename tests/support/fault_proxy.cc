#include "tests/support/fault_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "common/error.h"

namespace lazysnap::testing {
namespace {

UniqueFd ConnectLoopback(int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return UniqueFd();
  return fd;
}

bool WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

FaultProxy::FaultProxy(int upstream_port) : upstream_port_(upstream_port) {
  listen_fd_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  ::setsockopt(listen_fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listen_fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) ThrowErrno("bind");
  socklen_t len = sizeof a;
  ::getsockname(listen_fd_.get(), reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  if (::listen(listen_fd_.get(), 64) != 0) ThrowErrno("listen");
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) ThrowErrno("pipe2");
  wake_[0].reset(p[0]);
  wake_[1].reset(p[1]);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

FaultProxy::~FaultProxy() {
  stop_ = true;
  (void)!::write(wake_[1].get(), "x", 1);
  acceptor_.join();
  for (auto& t : workers_) t.join();
}

void FaultProxy::Inject(Fault fault, int count, uint64_t at) {
  std::lock_guard lock(mu_);
  fault_ = fault;
  remaining_ = count;
  at_ = at;
}

void FaultProxy::AcceptLoop() {
  while (!stop_) {
    pollfd fds[2] = {{listen_fd_.get(), POLLIN, 0}, {wake_[0].get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) <= 0 || (fds[1].revents & POLLIN)) continue;
    UniqueFd client(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!client) continue;
    ++connections_;
    Fault f = Fault::kNone;
    uint64_t at = 0;
    {
      std::lock_guard lock(mu_);
      if (remaining_ > 0) {
        --remaining_;
        f = fault_;
        at = at_;
        ++applied_;
      }
    }
    workers_.emplace_back(
        [this, c = std::move(client), f, at]() mutable { Serve(std::move(c), f, at); });
  }
}

void FaultProxy::Serve(UniqueFd client, Fault fault, uint64_t at) {
  if (fault == Fault::kReset) {
    linger l{1, 0};  // RST instead of FIN
    ::setsockopt(client.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    return;
  }
  if (fault == Fault::kHttp500 || fault == Fault::kHttp429) {
    char buf[8192];
    (void)!::recv(client.get(), buf, sizeof buf,
                  0);  // the request (headers fit one read on loopback)
    std::string resp =
        fault == Fault::kHttp500
            ? "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            : "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n"
              "Connection: close\r\n\r\n";
    WriteAll(client.get(), resp.data(), resp.size());
    return;
  }
  if (fault == Fault::kStall) {
    pollfd w{wake_[0].get(), POLLIN, 0};
    ::poll(&w, 1, -1);
    return;
  }
  UniqueFd up = ConnectLoopback(upstream_port_);
  if (!up) return;
  uint64_t down_bytes = 0;
  char buf[65536];
  while (!stop_) {
    pollfd fds[3] = {{client.get(), POLLIN, 0}, {up.get(), POLLIN, 0}, {wake_[0].get(), POLLIN, 0}};
    if (::poll(fds, 3, -1) <= 0 || (fds[2].revents & POLLIN)) return;
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::recv(client.get(), buf, sizeof buf, 0);
      if (n <= 0 || !WriteAll(up.get(), buf, static_cast<size_t>(n))) return;
    }
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::recv(up.get(), buf, sizeof buf, 0);
      if (n <= 0) return;
      size_t len = static_cast<size_t>(n);
      if (fault == Fault::kFlipByte && at >= down_bytes && at < down_bytes + len)
        buf[at - down_bytes] ^= 0x5a;
      if (fault == Fault::kTruncate && down_bytes + len > at) {
        WriteAll(client.get(), buf, static_cast<size_t>(at - down_bytes));
        return;  // closing mid-body: the client sees a short read
      }
      down_bytes += len;
      if (!WriteAll(client.get(), buf, len)) return;
    }
  }
}

}  // namespace lazysnap::testing

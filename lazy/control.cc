#include "lazy/control.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <list>
#include <mutex>
#include <thread>

#include "common/error.h"
#include "common/unique_fd.h"

namespace lazysnap::lazy {
namespace {

constexpr size_t kMaxMessage = 4 << 20;
constexpr ErrorCode kCodes[] = {ErrorCode::kInvalidArgument,   ErrorCode::kNotFound,
                                ErrorCode::kAlreadyExists,     ErrorCode::kFailedPrecondition,
                                ErrorCode::kUnavailable,       ErrorCode::kDataLoss,
                                ErrorCode::kResourceExhausted, ErrorCode::kInternal};

ErrorCode CodeFromName(const std::string& name) {
  for (ErrorCode c : kCodes) {
    if (name == ErrorCodeName(c)) return c;
  }
  return ErrorCode::kInternal;
}

sockaddr_un Address(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof(a.sun_path)) {
    throw Error(ErrorCode::kInvalidArgument, "socket path too long: " + path);
  }
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  return a;
}

// Reads up to the first newline; false on EOF before one. `deadline_ms` < 0: no timeout.
bool ReadLine(int fd, std::string& line, int timeout_ms) {
  line.clear();
  char buf[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) ThrowErrno("poll control socket");
    if (r == 0) throw Error(ErrorCode::kUnavailable, "control socket: timed out");
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) ThrowErrno("read control socket");
    if (n == 0) return false;
    line.append(buf, static_cast<size_t>(n));
    if (auto nl = line.find('\n'); nl != std::string::npos) {
      line.resize(nl);
      return true;
    }
    if (line.size() > kMaxMessage)
      throw Error(ErrorCode::kInvalidArgument, "control message too long");
  }
}

void WriteAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) ThrowErrno("write control socket");
    off += static_cast<size_t>(n);
  }
}

}  // namespace

nlohmann::json CallControl(const std::string& socket_path, const nlohmann::json& request,
                           std::chrono::milliseconds timeout) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) ThrowErrno("socket");
  sockaddr_un a = Address(socket_path);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    throw Error(ErrorCode::kUnavailable, "lazysnap-fused is not reachable on " + socket_path +
                                             ": " + std::strerror(errno) +
                                             " (is lazysnap-fused running?)");
  }
  WriteAll(fd.get(), request.dump() + "\n");
  std::string line;
  if (!ReadLine(fd.get(), line, static_cast<int>(timeout.count()))) {
    throw Error(ErrorCode::kUnavailable, "lazysnap-fused closed the connection without a reply");
  }
  nlohmann::json reply = nlohmann::json::parse(line, nullptr, false);
  if (!reply.is_object()) {
    throw Error(ErrorCode::kInternal, "lazysnap-fused sent a malformed reply");
  }
  if (!reply.value("ok", false)) {
    throw Error(CodeFromName(reply.value("code", "internal")),
                reply.value("error", std::string("lazysnap-fused: unspecified error")));
  }
  return reply;
}

struct ControlServer::Impl {
  std::string path;
  ControlHandler handler;
  const Logger& log;
  UniqueFd listen_fd;
  int wake[2] = {-1, -1};
  std::thread acceptor;
  std::mutex mu;
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done = std::make_shared<std::atomic<bool>>(false);
  };
  std::list<Worker> workers;
  std::atomic<bool> stopping{false};

  Impl(const Logger& l) : log(l) {}

  void Serve(UniqueFd conn) {
    nlohmann::json reply;
    try {
      std::string line;
      if (!ReadLine(conn.get(), line, 30000)) return;
      nlohmann::json req = nlohmann::json::parse(line, nullptr, false);
      if (!req.is_object())
        throw Error(ErrorCode::kInvalidArgument, "request is not a JSON object");
      reply = handler(req);
      reply["ok"] = true;
    } catch (const Error& e) {
      reply = {{"ok", false}, {"code", ErrorCodeName(e.code())}, {"error", e.what()}};
    } catch (const std::exception& e) {
      reply = {{"ok", false}, {"code", "internal"}, {"error", e.what()}};
    }
    try {
      WriteAll(conn.get(), reply.dump() + "\n");
    } catch (const std::exception& e) {
      log.Debug("control reply not delivered", {{"error", e.what()}});
    }
  }

  void AcceptLoop() {
    for (;;) {
      pollfd p[2] = {{listen_fd.get(), POLLIN, 0}, {wake[0], POLLIN, 0}};
      if (::poll(p, 2, -1) < 0) {
        if (errno == EINTR) continue;
        log.Error("control socket poll failed", {{"error", std::strerror(errno)}});
        return;
      }
      if (p[1].revents || stopping) return;
      int c = ::accept4(listen_fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      std::lock_guard lock(mu);
      for (auto it = workers.begin(); it != workers.end();) {  // reap finished connections
        if (*it->done) {
          it->thread.join();
          it = workers.erase(it);
        } else {
          ++it;
        }
      }
      Worker& w = workers.emplace_back();
      w.thread = std::thread([this, c, done = w.done] {
        Serve(UniqueFd(c));
        *done = true;
      });
    }
  }
};

ControlServer::ControlServer(const std::string& socket_path, ControlHandler handler,
                             const Logger& log)
    : impl_(std::make_unique<Impl>(log)) {
  impl_->path = socket_path;
  impl_->handler = std::move(handler);
  impl_->listen_fd.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!impl_->listen_fd) ThrowErrno("socket");
  sockaddr_un a = Address(socket_path);
  ::unlink(socket_path.c_str());  // a stale socket of a killed server
  if (::bind(impl_->listen_fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    ThrowErrno("bind " + socket_path);
  ::chmod(socket_path.c_str(), 0600);
  if (::listen(impl_->listen_fd.get(), 64) != 0) ThrowErrno("listen " + socket_path);
  if (::pipe2(impl_->wake, O_CLOEXEC) != 0) ThrowErrno("pipe2");
  impl_->acceptor = std::thread([this] { impl_->AcceptLoop(); });
}

ControlServer::~ControlServer() {
  impl_->stopping = true;
  char b = 1;
  (void)!::write(impl_->wake[1], &b, 1);
  impl_->acceptor.join();
  std::list<Impl::Worker> workers;
  {
    std::lock_guard lock(impl_->mu);
    workers.swap(impl_->workers);
  }
  for (auto& w : workers) w.thread.join();
  ::close(impl_->wake[0]);
  ::close(impl_->wake[1]);
  ::unlink(impl_->path.c_str());
}

}  // namespace lazysnap::lazy

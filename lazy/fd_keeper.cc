#include "lazy/fd_keeper.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

#include "common/error.h"
#include "common/file_util.h"

extern char** environ;

namespace lazysnap::lazy {
namespace {

constexpr size_t kMaxMessage = 1u << 16;

sockaddr_un Address(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path)
    throw Error(ErrorCode::kInvalidArgument, "fd keeper socket path too long: " + path);
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  return a;
}

// Sends `text` (with `fd` when >= 0) as one message.
void Send(int sock, const std::string& text, int fd) {
  iovec iov{const_cast<char*>(text.data()), text.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  if (::sendmsg(sock, &msg, MSG_NOSIGNAL) < 0) ThrowErrno("fd keeper: send");
}

// One message and the fd it carried, if any.
std::string Receive(int sock, UniqueFd* fd) {
  std::string buf(kMaxMessage, '\0');
  iovec iov{buf.data(), buf.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  if (n < 0) ThrowErrno("fd keeper: receive");
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int got = -1;
      std::memcpy(&got, CMSG_DATA(c), sizeof got);
      if (fd) {
        fd->reset(got);
      } else {
        ::close(got);
      }
    }
  }
  buf.resize(static_cast<size_t>(n));
  return buf;
}

UniqueFd Connect(const std::string& path) {
  UniqueFd s(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!s) ThrowErrno("fd keeper: socket");
  sockaddr_un a = Address(path);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return UniqueFd();
  return s;
}

}  // namespace

FdKeeper::FdKeeper(const std::string& socket_path, const std::string& exe,
                   std::chrono::seconds orphan_timeout, const Logger& log)
    : socket_(socket_path), log_(log) {
  if (!Connect(socket_)) Start(exe);  // else: a keeper from an earlier lazysnap-fused
  owner_ = Connect(socket_);
  if (!owner_) throw Error(ErrorCode::kUnavailable, "the fd keeper at " + socket_ + " went away");
  Send(owner_.get(), "own " + std::to_string(orphan_timeout.count()), -1);
  if (Receive(owner_.get(), nullptr) != "ok") {
    throw Error(ErrorCode::kUnavailable, "the fd keeper at " + socket_ + " refused an owner");
  }
}

void FdKeeper::Start(const std::string& exe) {
  ::unlink(socket_.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Outlives us and our process group, with default signal handling (we block SIGTERM/SIGINT
  // for a signal-waiting thread; a keeper must stay killable).
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  for (int fd = 0; fd <= 2; ++fd)
    posix_spawn_file_actions_addopen(&fa, fd, "/dev/null", fd ? O_WRONLY : O_RDONLY, 0);
  std::vector<std::string> args = {exe, "--fd-keeper", socket_};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, exe.c_str(), &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    throw Error(ErrorCode::kUnavailable,
                "cannot start the fd keeper " + exe + ": " + std::strerror(rc));
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!Connect(socket_)) {
    if (std::chrono::steady_clock::now() > deadline)
      throw Error(ErrorCode::kUnavailable, "the fd keeper did not come up at " + socket_);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  log_.Info("fd keeper started", {{"socket", socket_}, {"pid", std::to_string(pid)}});
}

void FdKeeper::Put(const std::string& name, int fd, const std::string& data) {
  if (name.empty() || name.find('\n') != std::string::npos)
    throw Error(ErrorCode::kInvalidArgument, "fd keeper: bad name \"" + name + "\"");
  UniqueFd s = Connect(socket_);
  if (!s) throw Error(ErrorCode::kUnavailable, "fd keeper gone: " + socket_);
  Send(s.get(), "put " + name + "\n" + data, fd);
  if (Receive(s.get(), nullptr) != "ok")
    throw Error(ErrorCode::kInternal, "fd keeper refused " + name);
}

void FdKeeper::Drop(const std::string& name) {
  UniqueFd s = Connect(socket_);
  if (!s) return;  // nothing kept anywhere
  Send(s.get(), "drop " + name, -1);
  Receive(s.get(), nullptr);
}

std::map<std::string, KeptFd> FdKeeper::TakeAll() {
  std::map<std::string, KeptFd> out;
  std::vector<std::string> names;
  {
    UniqueFd s = Connect(socket_);
    if (!s) return out;
    Send(s.get(), "list", -1);
    std::istringstream in(Receive(s.get(), nullptr));
    for (std::string n; std::getline(in, n);)
      if (!n.empty()) names.push_back(n);
  }
  for (const auto& n : names) {
    UniqueFd s = Connect(socket_);
    if (!s) break;
    Send(s.get(), "get " + n, -1);
    KeptFd k;
    std::string reply = Receive(s.get(), &k.fd);
    if (!k.fd || !reply.starts_with("ok\n")) continue;
    k.data = reply.substr(3);
    out.emplace(n, std::move(k));
  }
  return out;
}

void FdKeeper::Quit() {
  UniqueFd s = Connect(socket_);
  if (!s) return;
  Send(s.get(), "quit", -1);
  Receive(s.get(), nullptr);
}

namespace {

// The keeper's state: what it holds, and who owns it.
struct Keeper {
  std::map<std::string, KeptFd> kept;
  std::vector<UniqueFd> owners;  // open owner sessions
  std::chrono::seconds orphan_timeout{0};
  std::optional<std::chrono::steady_clock::time_point> orphaned_at;  // set: no owner since then

  // One request on a fresh connection `c`; false on "quit".
  bool Handle(UniqueFd c) {
    KeptFd in;
    std::string msg = Receive(c.get(), &in.fd);
    std::string reply = "ok";
    int reply_fd = -1;
    if (msg.starts_with("put ")) {
      size_t nl = msg.find('\n');
      if (nl == std::string::npos || !in.fd) {
        reply = "bad";
      } else {
        in.data = msg.substr(nl + 1);
        kept.insert_or_assign(msg.substr(4, nl - 4), std::move(in));
      }
    } else if (msg.starts_with("get ")) {
      auto it = kept.find(msg.substr(4));
      if (it == kept.end()) {
        reply = "none";
      } else {
        reply = "ok\n" + it->second.data;
        reply_fd = it->second.fd.get();
      }
    } else if (msg.starts_with("drop ")) {
      kept.erase(msg.substr(5));
    } else if (msg == "list") {
      reply.clear();
      for (const auto& [name, k] : kept) reply += name + "\n";
    } else if (msg.starts_with("own ")) {
      char* end = nullptr;
      long long secs = std::strtoll(msg.c_str() + 4, &end, 10);
      if (end == msg.c_str() + 4 || *end != '\0' || secs < 0) {
        reply = "bad";
      } else {
        orphan_timeout = std::chrono::seconds(secs);
        orphaned_at.reset();
        Send(c.get(), "ok", -1);
        owners.push_back(std::move(c));  // open until its process ends
        return true;
      }
    } else if (msg == "quit") {
      Send(c.get(), "ok", -1);
      return false;
    } else {
      reply = "bad";
    }
    Send(c.get(), reply, reply_fd);
    return true;
  }

  // Poll timeout: until the orphan deadline, or forever.
  int TimeoutMs() const {
    if (!orphaned_at || orphan_timeout.count() == 0 || kept.empty()) return -1;
    auto left = *orphaned_at + orphan_timeout - std::chrono::steady_clock::now();
    return static_cast<int>(
        std::max<int64_t>(0, std::chrono::ceil<std::chrono::milliseconds>(left).count()));
  }

  void ExpireOrphans() {
    if (TimeoutMs() == 0) kept.clear();  // closes every fd: the connections end
  }
};

}  // namespace

int RunFdKeeper(const std::string& socket_path) {
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  ::signal(SIGINT, SIG_IGN);  // a terminal's ^C is for lazysnap-fused, not for its connections
  UniqueFd lsock(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!lsock) return 1;
  ::umask(077);
  ::unlink(socket_path.c_str());
  sockaddr_un a = Address(socket_path);
  if (::bind(lsock.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return 1;
  // Before listen: whoever can connect finds the pid file.
  WriteFileAtomic(socket_path + ".pid", std::to_string(::getpid()) + "\n", 0600);
  if (::listen(lsock.get(), 16) != 0) return 1;
  Keeper k;
  for (bool running = true; running;) {
    std::vector<pollfd> fds{{lsock.get(), POLLIN, 0}};
    for (const auto& o : k.owners) fds.push_back({o.get(), POLLIN, 0});
    int n = ::poll(fds.data(), fds.size(), k.TimeoutMs());
    if (n < 0 && errno != EINTR) return 1;
    // An owner session that reads EOF (or anything: owners send nothing more) has ended.
    for (size_t i = fds.size() - 1; i >= 1; --i) {
      if (fds[i].revents == 0) continue;
      k.owners.erase(k.owners.begin() + static_cast<std::ptrdiff_t>(i - 1));
      if (k.owners.empty()) k.orphaned_at = std::chrono::steady_clock::now();
    }
    k.ExpireOrphans();
    if (!(fds[0].revents & POLLIN)) continue;
    UniqueFd c(::accept4(lsock.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!c) continue;
    try {
      running = k.Handle(std::move(c));
    } catch (const std::exception&) {
      // A client that went away mid-request: nothing changes.
    }
  }
  ::unlink(socket_path.c_str());
  ::unlink((socket_path + ".pid").c_str());
  return 0;
}

}  // namespace lazysnap::lazy

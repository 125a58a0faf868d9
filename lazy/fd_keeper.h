// The /dev/fuse fds of lazysnap-fused's mounts, kept by a small process of their own so that a
// killed or crashed lazysnap-fused does not take its FUSE connections with it.
//
// The kernel keeps a FUSE connection while any fd of it is open. With a dup of every session fd
// in the keeper, a dead server leaves its mounts in place and their readers waiting (not failing
// with ENOTCONN); the next lazysnap-fused takes the fds back (TakeAll), replays each
// connection's INIT request into a new libfuse session (FuseServer's adopt mode) and asks the
// kernel to resend the requests the dead server had read but not answered (FUSE_NOTIFY_RESEND,
// Linux 6.9+). Running containers read on as if nothing happened.
//
// The keeper is `lazysnap-fused --fd-keeper SOCKET`, started detached (its own session) by the
// first lazysnap-fused that finds none, its pid in SOCKET.pid. One request per connection on a
// SOCK_SEQPACKET unix socket (root-only): "put NAME\n" + data with one fd, "get NAME" -> data +
// fd, "list", "drop NAME", "quit". A graceful lazysnap-fused stop (everything unmounted) ends it.
//
// Each FdKeeper also holds an owner session ("own SECONDS", a connection left open for its
// lifetime). When the last owner's session ends (its process died) and no new owner comes within
// SECONDS, the keeper closes every fd it holds: the connections end and their blocked readers
// get errors instead of waiting for a successor forever (SECONDS = 0: they wait forever).
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <utility>

#include "common/log.h"
#include "common/unique_fd.h"

namespace lazysnap::lazy {

struct KeptFd {
  UniqueFd fd;
  std::string data;  // what the owner stored with it (a FuseServer: the raw INIT request)
};

class FdKeeper {
 public:
  // Connects to the keeper at `socket_path`, starting `exe --fd-keeper socket_path` when none
  // answers, and opens this owner's session: after this process is gone the keeper holds the
  // fds `orphan_timeout` longer for a successor (0: until one comes). Throws Error(kUnavailable)
  // when it cannot be started.
  FdKeeper(const std::string& socket_path, const std::string& exe,
           std::chrono::seconds orphan_timeout, const Logger& log);

  void Put(const std::string& name, int fd, const std::string& data);
  void Drop(const std::string& name);
  // Everything kept (dups: the keeper keeps its own until Drop).
  std::map<std::string, KeptFd> TakeAll();
  void Quit();  // ends the keeper and every connection only it still holds

  const std::string& socket_path() const { return socket_; }

 private:
  void Start(const std::string& exe);  // spawns the keeper and waits until it answers

  std::string socket_;
  const Logger& log_;
  UniqueFd owner_;  // the owner session: closed by the kernel when this process dies
};

// The keeper's own loop (`lazysnap-fused --fd-keeper SOCKET`); returns on "quit".
int RunFdKeeper(const std::string& socket_path);

}  // namespace lazysnap::lazy

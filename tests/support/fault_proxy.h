// A fault-injecting TCP proxy on 127.0.0.1 for tests: forwards connections to an upstream port
// and, for the first N connections of a configured fault, breaks them in a chosen way. Stops and
// joins its threads on destruction.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"

namespace lazysnap::testing {

enum class Fault {
  kNone,
  kReset,     // close the client connection right after accepting it
  kHttp500,   // answer the first request with 500, without forwarding
  kHttp429,   // answer with 429 and Retry-After: 1
  kTruncate,  // forward, but cut the response after `truncate_after` bytes
  kFlipByte,  // forward, but flip the response byte at `flip_at`
  kStall,     // accept, then never answer (until the proxy stops)
};

class FaultProxy {
 public:
  explicit FaultProxy(int upstream_port);
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  int port() const { return port_; }
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  // Applies `fault` to the next `count` connections (then connections pass through untouched).
  void Inject(Fault fault, int count, uint64_t at = 0);
  int connections() const { return connections_; }
  int faults_applied() const { return applied_; }

 private:
  void AcceptLoop();
  void Serve(UniqueFd client, Fault fault, uint64_t at);

  int upstream_port_;
  int port_ = 0;
  UniqueFd listen_fd_;
  UniqueFd wake_[2];  // a pipe that wakes every poll() at shutdown
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  Fault fault_ = Fault::kNone;
  int remaining_ = 0;
  uint64_t at_ = 0;
  std::atomic<int> connections_{0};
  std::atomic<int> applied_{0};
  std::thread acceptor_;
  std::vector<std::thread> workers_;
};

}  // namespace lazysnap::testing

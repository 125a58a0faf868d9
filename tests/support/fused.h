// The real lazysnap-fused binary as a child process, with its state, cache and control socket
// in a temp dir; restartable (SIGTERM or SIGKILL). Config() is the [lazy] section lazysnapd
// needs to reach it: tests hand the same text to LazysnapdProcess.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/process.h"
#include "common/temp_dir.h"

namespace lazysnap::testing {

class FusedProcess {
 public:
  // `plain_http`: registry hosts reached over http.
  // `extra_config`: more `[lazy]` keys (TOML lines), e.g. a benchmark's tuning.
  explicit FusedProcess(const std::vector<std::string>& plain_http, int read_timeout_s = 60,
                        const std::string& extra_config = "");
  ~FusedProcess();

  const std::string& config() const { return config_; }
  std::string socket() const { return dir_ / "fused.sock"; }
  std::string root() const { return dir_ / "root"; }
  std::string cache_dir() const { return dir_ / "cache"; }
  std::string ReadLog() const;
  nlohmann::json Status() const;  // the control protocol's status reply
  void Start();
  void Stop();
  void Kill9();
  // Kills the fd keeper (lazy/fd_keeper.h): the connections it holds end, their readers get
  // errors instead of waiting for a successor.
  void KillKeeper();

 private:
  TempDir dir_{"fused"};
  std::string config_;
  int starts_ = 0;
  Subprocess proc_;
};

std::string FusedBinary();
std::string LazysnapCliBinary();

}  // namespace lazysnap::testing

// The real lazysnapd binary run as a child process with its own root and socket; restartable
// (SIGTERM or SIGKILL) to test durability.
#pragma once

#include <string>

#include "common/process.h"
#include "common/temp_dir.h"

namespace lazysnap::testing {

class LazysnapdProcess {
 public:
  // `config_toml`: extra config file contents (root/address are set by the fixture via flags).
  // `log_level` is passed as --log-level (tests read debug lines); empty: the config's level
  // (benchmarks, whose config asks for warn).
  explicit LazysnapdProcess(const std::string& config_toml = "", std::string log_level = "debug");
  ~LazysnapdProcess();

  const std::string& socket() const { return socket_; }
  std::string root() const { return dir_ / "root"; }
  std::string log_path() const { return dir_ / "lazysnapd.log"; }
  std::string ReadLog() const;
  // The address the current run serves metrics on (its "metrics served" log line); throws Error
  // when it logged none.
  std::string MetricsAddress() const;
  void Start();
  void Stop();   // SIGTERM, wait
  void Kill9();  // SIGKILL, wait
  bool running() { return proc_.running(); }
  pid_t pid() const { return proc_.pid(); }

 private:
  TempDir dir_{"lazysnapd"};
  std::string socket_;
  std::string log_level_;
  int starts_ = 0;
  Subprocess proc_;
};

// Path of the built lazysnapd binary (set by CMake).
std::string LazysnapdBinary();

}  // namespace lazysnap::testing

// Child processes owned by RAII: a Subprocess that is destroyed while running is sent SIGTERM,
// then SIGKILL after a grace period, and reaped. Used for real peers in tests (docker-registry,
// containerd) and for tools the daemon drives.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace lazysnap {

struct SpawnOptions {
  std::vector<std::string> env;   // extra "K=V" entries added to the parent's environment
  std::string stdout_path;        // empty: inherit; otherwise truncate + write there
  std::string stderr_path;        // empty: inherit; "=stdout" shares stdout's file
  std::string stdin_path;         // empty: /dev/null
  std::string cwd;                // empty: inherit
  bool new_process_group = true;  // so Stop() also reaches the child's children
  // SIGTERM the child when the spawning thread dies, so a killed test or benchmark leaves no
  // peers behind. Only for children spawned by a thread that lives as long as they should.
  bool die_with_parent = false;
};

class Subprocess {
 public:
  Subprocess() = default;
  static Subprocess Spawn(const std::vector<std::string>& argv, const SpawnOptions& opts = {});
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  ~Subprocess();

  pid_t pid() const { return pid_; }
  bool running();  // false once the child has exited (and it is then reaped)
  // Waits for exit; returns the exit code, or 128+signal. nullopt on timeout.
  std::optional<int> Wait(std::chrono::milliseconds timeout = std::chrono::hours(24));
  void Signal(int sig);
  // SIGTERM, wait up to `grace`, then SIGKILL; returns the exit status as Wait does.
  int Stop(std::chrono::milliseconds grace = std::chrono::seconds(10));

 private:
  explicit Subprocess(pid_t pid, bool group) : pid_(pid), group_(group) {}
  pid_t pid_ = -1;
  bool group_ = false;
  std::optional<int> status_;
};

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr, interleaved
};

// Runs argv to completion, capturing its output. Throws Error(kUnavailable) on timeout
// (the child is killed) and Error(kNotFound) when the program cannot be started.
CommandResult RunCommand(const std::vector<std::string>& argv,
                         std::chrono::milliseconds timeout = std::chrono::minutes(5),
                         const std::vector<std::string>& env = {});

// Like RunCommand, but throws Error(kInternal) naming the command and its output on non-zero exit.
std::string RunCommandOrThrow(const std::vector<std::string>& argv,
                              std::chrono::milliseconds timeout = std::chrono::minutes(5),
                              const std::vector<std::string>& env = {});

}  // namespace lazysnap

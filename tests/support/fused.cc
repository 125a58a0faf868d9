#include "tests/support/fused.h"

#include <signal.h>

#include "common/file_util.h"
#include "lazy/control.h"
#include "tests/support/registry.h"

namespace lazysnap::testing {

std::string FusedBinary() {
  return LAZYSNAP_FUSED_PATH;
}
std::string LazysnapCliBinary() {
  return LAZYSNAP_CLI_PATH;
}

FusedProcess::FusedProcess(const std::vector<std::string>& plain_http, int read_timeout_s,
                           const std::string& extra_config) {
  std::string hosts;
  for (const auto& h : plain_http) hosts += (hosts.empty() ? "\"" : ", \"") + h + "\"";
  config_ = "[lazy]\nenable = true\nsocket = \"" + socket() + "\"\nroot = \"" + root() +
            "\"\ncache_dir = \"" + cache_dir() + "\"\nplain_http = [" + hosts +
            "]\nread_timeout_s = " + std::to_string(read_timeout_s) + "\n" + extra_config + "\n";
  WriteFileAtomic(dir_ / "config.toml", config_);
  Start();
}

FusedProcess::~FusedProcess() {
  Stop();  // a graceful stop ends the fd keeper too
  // A keeper left by a killed server that was not started again: its connections end with it.
  KillKeeper();
  UnmountAllBelow(root());
}

void FusedProcess::KillKeeper() {
  std::string pid_file = root() + "/fdkeeper.sock.pid";
  if (PathExists(pid_file)) {
    pid_t pid = static_cast<pid_t>(std::atol(ReadFile(pid_file).c_str()));
    if (pid > 1) ::kill(pid, SIGKILL);
  }
}

void FusedProcess::Start() {
  SpawnOptions so;
  so.stdout_path = dir_ / ("fused.log." + std::to_string(starts_++));
  so.stderr_path = "=stdout";
  so.die_with_parent = true;
  proc_ = Subprocess::Spawn(
      {FusedBinary(), "--config", dir_ / "config.toml", "--log-level", "debug"}, so);
  WaitForUnixSocket(socket(), 20000);
}

void FusedProcess::Stop() {
  proc_.Stop(std::chrono::seconds(10));
}

void FusedProcess::Kill9() {
  proc_.Signal(SIGKILL);
  proc_.Wait();
}

std::string FusedProcess::ReadLog() const {
  std::string out;
  for (int i = 0; i < starts_; ++i) {
    std::string p = dir_ / ("fused.log." + std::to_string(i));
    if (PathExists(p)) out += ReadFile(p);
  }
  return out;
}

nlohmann::json FusedProcess::Status() const {
  return lazy::CallControl(socket(), {{"op", "status"}}, std::chrono::seconds(10));
}

}  // namespace lazysnap::testing

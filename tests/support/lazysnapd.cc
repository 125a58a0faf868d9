#include "tests/support/lazysnapd.h"

#include <signal.h>

#include <utility>
#include <vector>

#include "common/error.h"
#include "common/file_util.h"
#include "tests/support/registry.h"

namespace lazysnap::testing {

std::string LazysnapdBinary() {
  return LAZYSNAPD_PATH;
}

LazysnapdProcess::LazysnapdProcess(const std::string& config_toml, std::string log_level)
    : socket_(dir_ / "lazysnap.sock"), log_level_(std::move(log_level)) {
  WriteFileAtomic(dir_ / "config.toml", config_toml);
  Start();
}

LazysnapdProcess::~LazysnapdProcess() {
  Stop();
}

void LazysnapdProcess::Start() {
  SpawnOptions so;
  // Each start logs to its own file; ReadLog() concatenates them.
  so.stdout_path = log_path() + "." + std::to_string(starts_++);
  so.stderr_path = "=stdout";
  so.die_with_parent = true;
  std::vector<std::string> argv = {
      LazysnapdBinary(), "--config", dir_ / "config.toml", "--root", root(), "--address", socket_};
  if (!log_level_.empty()) argv.insert(argv.end(), {"--log-level", log_level_});
  proc_ = Subprocess::Spawn(argv, so);
  WaitForUnixSocket(socket_, 20000);
}

void LazysnapdProcess::Stop() {
  proc_.Stop(std::chrono::seconds(10));
}

void LazysnapdProcess::Kill9() {
  proc_.Signal(SIGKILL);
  proc_.Wait();
}

std::string LazysnapdProcess::ReadLog() const {
  std::string out;
  for (int i = 0; i < starts_; ++i) {
    std::string p = log_path() + "." + std::to_string(i);
    if (PathExists(p)) out += ReadFile(p);
  }
  return out;
}

std::string LazysnapdProcess::MetricsAddress() const {
  std::string log = ReadFile(log_path() + "." + std::to_string(starts_ - 1));
  const std::string key = "msg=\"metrics served\" address=";
  size_t at = log.rfind(key);
  if (at == std::string::npos)
    throw Error(ErrorCode::kNotFound, "lazysnapd logged no metrics address:\n" + log);
  at += key.size();
  return log.substr(at, log.find_first_of(" \n", at) - at);
}

}  // namespace lazysnap::testing

#include "common/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>

#include "common/error.h"
#include "common/file_util.h"
#include "common/temp_dir.h"

extern char** environ;

namespace lazysnap {
namespace {

int DecodeStatus(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

std::string JoinArgv(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) {
    if (!s.empty()) s.push_back(' ');
    s += a;
  }
  return s;
}

}  // namespace

Subprocess Subprocess::Spawn(const std::vector<std::string>& argv, const SpawnOptions& opts) {
  if (argv.empty()) throw Error(ErrorCode::kInvalidArgument, "Subprocess::Spawn: empty argv");
  // Everything the child needs is prepared before fork: only async-signal-safe calls after it.
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; *e != nullptr; ++e) env_store.emplace_back(*e);
  for (const auto& kv : opts.env) {
    auto key = kv.substr(0, kv.find('=') + 1);
    std::erase_if(env_store, [&](const std::string& e) { return e.starts_with(key); });
    env_store.push_back(kv);
  }
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);

  int in_fd =
      ::open(opts.stdin_path.empty() ? "/dev/null" : opts.stdin_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (in_fd < 0) ThrowErrno("open stdin for " + argv[0]);
  int out_fd = -1, err_fd = -1;
  if (!opts.stdout_path.empty()) {
    out_fd = ::open(opts.stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out_fd < 0) ThrowErrno("open " + opts.stdout_path);
  }
  if (opts.stderr_path == "=stdout") {
    err_fd = out_fd;
  } else if (!opts.stderr_path.empty()) {
    err_fd = ::open(opts.stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (err_fd < 0) ThrowErrno("open " + opts.stderr_path);
  }
  // A pipe with CLOEXEC reports exec failure (errno) back to the parent.
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) ThrowErrno("pipe2");

  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) ThrowErrno("fork " + argv[0]);
  if (pid == 0) {
    if (opts.new_process_group) ::setpgid(0, 0);
    if (opts.die_with_parent) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(127);  // the parent died before prctl took effect
    }
    ::dup2(in_fd, 0);
    if (out_fd >= 0) ::dup2(out_fd, 1);
    if (err_fd >= 0) ::dup2(err_fd, 2);
    if (!opts.cwd.empty() && ::chdir(opts.cwd.c_str()) != 0) {
      int e = errno;
      (void)!::write(report[1], &e, sizeof e);
      ::_exit(127);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execvpe(args[0], args.data(), envp.data());
    int e = errno;
    (void)!::write(report[1], &e, sizeof e);
    ::_exit(127);
  }
  if (opts.new_process_group) ::setpgid(pid, pid);  // also here: no race with Signal()
  ::close(report[1]);
  ::close(in_fd);
  if (out_fd >= 0) ::close(out_fd);
  if (err_fd >= 0 && err_fd != out_fd) ::close(err_fd);
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(report[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(report[0]);
  if (n == sizeof child_errno) {
    int st;
    ::waitpid(pid, &st, 0);
    throw Error(child_errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kInternal,
                "cannot start " + argv[0] + ": " + std::strerror(child_errno));
  }
  return Subprocess(pid, opts.new_process_group);
}

Subprocess::Subprocess(Subprocess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), group_(other.group_), status_(other.status_) {}

Subprocess& Subprocess::operator=(Subprocess&& other) noexcept {
  if (this != &other) {
    if (pid_ > 0 && !status_) Stop();
    pid_ = std::exchange(other.pid_, -1);
    group_ = other.group_;
    status_ = other.status_;
  }
  return *this;
}

Subprocess::~Subprocess() {
  if (pid_ > 0 && !status_) Stop();
}

bool Subprocess::running() {
  if (pid_ <= 0 || status_) return false;
  int st;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = DecodeStatus(st);
    return false;
  }
  return true;
}

std::optional<int> Subprocess::Wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  if (status_) return status_;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(1);
  while (true) {
    int st;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      status_ = DecodeStatus(st);
      return status_;
    }
    if (r < 0 && errno != EINTR) {
      status_ = -1;
      return status_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
}

void Subprocess::Signal(int sig) {
  if (pid_ <= 0 || status_) return;
  if (group_) {
    ::kill(-pid_, sig);
  } else {
    ::kill(pid_, sig);
  }
}

int Subprocess::Stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return -1;
  if (status_) return *status_;
  Signal(SIGTERM);
  if (auto st = Wait(grace)) return *st;
  Signal(SIGKILL);
  return Wait().value_or(-1);
}

CommandResult RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                         const std::vector<std::string>& env) {
  TempDir tmp("run");
  std::string out_path = tmp.path() + "/out";
  SpawnOptions opts;
  opts.env = env;
  opts.stdout_path = out_path;
  opts.stderr_path = "=stdout";
  auto proc = Subprocess::Spawn(argv, opts);
  auto st = proc.Wait(timeout);
  if (!st) {
    proc.Stop(std::chrono::seconds(2));
    throw Error(ErrorCode::kUnavailable, "command timed out: " + JoinArgv(argv));
  }
  return CommandResult{*st, ReadFile(out_path)};
}

std::string RunCommandOrThrow(const std::vector<std::string>& argv,
                              std::chrono::milliseconds timeout,
                              const std::vector<std::string>& env) {
  auto r = RunCommand(argv, timeout, env);
  if (r.exit_code != 0) {
    throw Error(ErrorCode::kInternal, "command failed (exit " + std::to_string(r.exit_code) +
                                          "): " + JoinArgv(argv) + "\n" + r.output);
  }
  return r.output;
}

}  // namespace lazysnap

// FdKeeper against the real keeper process (`lazysnap-fused --fd-keeper`): fds put there stay
// usable after the putter is gone, come back with their data, and go on Drop; Quit ends it; a
// keeper whose owner is gone closes them after the orphan timeout unless a new owner comes.
#include "lazy/fd_keeper.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>

#include "common/error.h"
#include "common/file_util.h"
#include "common/temp_dir.h"
#include "tests/support/fused.h"

namespace lazysnap::lazy {
namespace {

using testing::FusedBinary;

struct Pipe {
  Pipe() {
    int p[2];
    EXPECT_EQ(::pipe2(p, O_CLOEXEC), 0);
    r.reset(p[0]);
    w.reset(p[1]);
  }
  UniqueFd r, w;
};

struct KillLeftKeeper {  // a failed assertion must not leave the keeper running
  std::string pid_file;
  ~KillLeftKeeper() {
    if (PathExists(pid_file))
      ::kill(static_cast<pid_t>(std::atol(ReadFile(pid_file).c_str())), SIGKILL);
  }
};

// True when the pipe's write end is closed everywhere within `ms` (read end polls EOF).
bool WriteEndClosedWithin(int read_fd, int ms) {
  pollfd p{read_fd, POLLIN, 0};
  if (::poll(&p, 1, ms) != 1) return false;
  char c = 0;
  return ::read(read_fd, &c, 1) == 0;
}

TEST(FdKeeper, KeepsFdsAcrossOwnersAndEndsOnQuit) {
  TempDir dir("fdkeeper");
  Logger log(LogLevel::kError);
  const std::string sock = dir / "keeper.sock";
  KillLeftKeeper guard{sock + ".pid"};
  Pipe p;
  pid_t keeper_pid = 0;
  {
    FdKeeper k(sock, FusedBinary(), std::chrono::seconds(0), log);
    ASSERT_TRUE(PathExists(sock + ".pid"));
    keeper_pid = static_cast<pid_t>(std::atol(ReadFile(sock + ".pid").c_str()));
    k.Put("/mnt/a", p.w.get(), std::string("init\0bytes", 10));
    k.Put("/mnt/b", p.w.get(), "");
    EXPECT_THROW(k.Put("bad\nname", p.w.get(), ""), Error);
  }
  p.w.reset();  // only the keeper's copies are left
  FdKeeper again(sock, FusedBinary(), std::chrono::seconds(0), log);  // the running keeper
  EXPECT_EQ(std::atol(ReadFile(sock + ".pid").c_str()), keeper_pid);
  auto kept = again.TakeAll();
  ASSERT_EQ(kept.size(), 2u);
  EXPECT_EQ(kept.at("/mnt/a").data, std::string("init\0bytes", 10));
  EXPECT_EQ(kept.at("/mnt/b").data, "");
  ASSERT_EQ(::write(kept.at("/mnt/a").fd.get(), "x", 1), 1);  // the kept fd is the pipe's end
  char c = 0;
  ASSERT_EQ(::read(p.r.get(), &c, 1), 1);
  EXPECT_EQ(c, 'x');
  again.Drop("/mnt/b");
  EXPECT_EQ(again.TakeAll().count("/mnt/b"), 0u);
  kept.clear();
  again.Quit();
  // With the keeper gone, every copy of the write end is closed: the pipe reads EOF.
  EXPECT_EQ(::read(p.r.get(), &c, 1), 0);
  EXPECT_FALSE(PathExists(sock));
  EXPECT_FALSE(PathExists(sock + ".pid"));
  int status = 0;  // started by this process: its child
  ASSERT_EQ(::waitpid(keeper_pid, &status, 0), keeper_pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST(FdKeeper, ClosesAnOrphansFdsAfterTheTimeoutUnlessANewOwnerComes) {
  TempDir dir("fdkeeper");
  Logger log(LogLevel::kError);
  const std::string sock = dir / "keeper.sock";
  KillLeftKeeper guard{sock + ".pid"};
  constexpr auto kTimeout = std::chrono::seconds(2);
  Pipe p;
  {
    FdKeeper k(sock, FusedBinary(), kTimeout, log);
    k.Put("/mnt/a", p.w.get(), "");
  }  // the owner is gone (its session closed, as when its process dies)
  p.w.reset();
  // A successor within the timeout finds the fd; its own session holds it past the timeout.
  EXPECT_FALSE(WriteEndClosedWithin(p.r.get(), 1000));
  {
    FdKeeper successor(sock, FusedBinary(), kTimeout, log);
    EXPECT_EQ(successor.TakeAll().size(), 1u);  // (a dup: the keeper keeps its own)
    EXPECT_FALSE(WriteEndClosedWithin(p.r.get(), 3000));
  }
  // No owner any more: within the timeout (and some slack) the keeper closes its copy.
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(WriteEndClosedWithin(p.r.get(), 10000));
  auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(waited, kTimeout - std::chrono::milliseconds(200));
  // The keeper itself runs on, holding nothing.
  FdKeeper last(sock, FusedBinary(), kTimeout, log);
  EXPECT_TRUE(last.TakeAll().empty());
  last.Quit();
}

}  // namespace
}  // namespace lazysnap::lazy

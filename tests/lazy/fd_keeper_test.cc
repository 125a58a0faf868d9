// FdKeeper against the real keeper process (`lazysnap-fused --fd-keeper`): fds put there stay
// usable after the putter is gone, come back with their data, and go on Drop; Quit ends it.
#include "lazy/fd_keeper.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

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

TEST(FdKeeper, KeepsFdsAcrossOwnersAndEndsOnQuit) {
  TempDir dir("fdkeeper");
  Logger log(LogLevel::kError);
  const std::string sock = dir / "keeper.sock";
  struct KillLeftKeeper {  // a failed assertion must not leave the keeper running
    std::string pid_file;
    ~KillLeftKeeper() {
      if (PathExists(pid_file))
        ::kill(static_cast<pid_t>(std::atol(ReadFile(pid_file).c_str())), SIGKILL);
    }
  } guard{sock + ".pid"};
  Pipe p;
  pid_t keeper_pid = 0;
  {
    FdKeeper k(sock, FusedBinary(), log);
    ASSERT_TRUE(PathExists(sock + ".pid"));
    keeper_pid = static_cast<pid_t>(std::atol(ReadFile(sock + ".pid").c_str()));
    k.Put("/mnt/a", p.w.get(), std::string("init\0bytes", 10));
    k.Put("/mnt/b", p.w.get(), "");
    EXPECT_THROW(k.Put("bad\nname", p.w.get(), ""), Error);
  }
  p.w.reset();                               // only the keeper's copies are left
  FdKeeper again(sock, FusedBinary(), log);  // attaches to the running keeper
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

}  // namespace
}  // namespace lazysnap::lazy

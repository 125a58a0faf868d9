#include "common/process.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <optional>
#include <thread>

#include "common/error.h"

namespace lazysnap {
namespace {

TEST(RunCommand, CapturesOutputAndExitCode) {
  auto r = RunCommand({"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.output.find("out"), std::string::npos);
  EXPECT_NE(r.output.find("err"), std::string::npos);
}

TEST(RunCommand, MissingProgramIsNotFound) {
  try {
    RunCommand({"/nonexistent/program"});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/program"), std::string::npos);
  }
}

TEST(RunCommand, TimeoutKillsChild) {
  EXPECT_THROW(RunCommand({"sleep", "30"}, std::chrono::milliseconds(200)), Error);
}

TEST(RunCommandOrThrow, NamesCommandOnFailure) {
  try {
    RunCommandOrThrow({"sh", "-c", "echo boom; exit 1"});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("boom"), std::string::npos);
  }
}

TEST(Subprocess, DestructorStopsProcessGroup) {
  pid_t pid;
  {
    auto p = Subprocess::Spawn({"sh", "-c", "sleep 60 & wait"});
    pid = p.pid();
    EXPECT_TRUE(p.running());
  }
  EXPECT_NE(::kill(pid, 0), 0);  // reaped and gone
}

TEST(Subprocess, DieWithParentEndsChildWhenSpawningThreadEnds) {
  pid_t pid = -1;
  std::optional<Subprocess> keep;
  std::thread t([&] {
    SpawnOptions o;
    o.die_with_parent = true;
    keep.emplace(Subprocess::Spawn({"sleep", "60"}, o));
    pid = keep->pid();
  });
  t.join();
  // The child gets SIGTERM once its spawning thread is gone.
  auto st = keep->Wait(std::chrono::seconds(10));
  ASSERT_TRUE(st.has_value()) << "child " << pid << " outlived its parent thread";
  EXPECT_EQ(*st, 128 + SIGTERM);
}

TEST(Subprocess, EnvIsPassed) {
  auto r = RunCommand({"sh", "-c", "echo $LAZYSNAP_X"}, std::chrono::seconds(5), {"LAZYSNAP_X=42"});
  EXPECT_EQ(r.output, "42\n");
}

}  // namespace
}  // namespace lazysnap

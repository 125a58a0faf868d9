#include "common/log.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fcntl.h>
#include "common/error.h"
#include "common/file_util.h"
#include "common/temp_dir.h"
#include "common/unique_fd.h"

namespace lazysnap {
namespace {

TEST(Logger, WritesStructuredLinesAboveLevel) {
  TempDir d("log");
  UniqueFd fd(::open((d / "log").c_str(), O_WRONLY | O_CREAT, 0644));
  Logger log(LogLevel::kInfo, fd.get());
  log.Debug("hidden");
  log.Info("hello world", {{"key", "sha256:x"}, {"q", "a \"b\""}});
  std::string s = ReadFile(d / "log");
  EXPECT_EQ(s.find("hidden"), std::string::npos);
  EXPECT_NE(s.find("level=info msg=\"hello world\" key=sha256:x q=\"a \\\"b\\\"\""),
            std::string::npos)
      << s;
}

TEST(Logger, ParseLevel) {
  EXPECT_EQ(ParseLogLevel("warn"), LogLevel::kWarn);
  EXPECT_THROW(ParseLogLevel("loud"), Error);
}

}  // namespace
}  // namespace lazysnap

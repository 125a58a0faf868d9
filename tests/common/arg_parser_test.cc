// The argument parser of the subcommands and daemons (common/arg_parser.h): flags, switches,
// positionals, post-parse hooks, and the exit codes of --help and of usage errors.
#include "common/arg_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lazysnap {
namespace {

TEST(ArgParser, FillsFlagsSwitchesAndPositionalsInOrder) {
  std::string out, ref, dir;
  bool json = false;
  std::vector<std::string> devices;
  ArgParser p("test", "usage\n");
  p.Value("-o|--output", &out).Switch("--json", &json).Values("--device", &devices);
  p.Positional(&ref).Positional(&dir);
  auto rc =
      p.Parse({"img:v1", "--output", "f", "--device", "a", "--json", "/mnt", "--device", "b"});
  EXPECT_FALSE(rc.has_value());
  EXPECT_EQ(out, "f");
  EXPECT_TRUE(json);
  EXPECT_EQ(devices, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(ref, "img:v1");
  EXPECT_EQ(dir, "/mnt");
  std::string short_out;
  ArgParser q("test", "usage\n");
  q.Value("-o|--output", &short_out);
  EXPECT_FALSE(q.Parse({"-o", "g"}).has_value());
  EXPECT_EQ(short_out, "g");
}

TEST(ArgParser, ThenRunsInOrderAfterASuccessfulParseOnly) {
  std::string v;
  std::vector<std::string> seen;
  auto parser = [&] {
    ArgParser p("test", "usage\n");
    p.Value("--v", &v).Then([&] { seen.push_back("first:" + v); }).Then([&] {
      seen.push_back("second");
    });
    return p;
  };
  EXPECT_EQ(parser().Parse({"--v", "x"}), std::nullopt);
  EXPECT_EQ(seen, (std::vector<std::string>{"first:x", "second"}));
  seen.clear();
  EXPECT_EQ(parser().Parse({"--bogus"}), 2);
  EXPECT_EQ(parser().Parse({"--help"}), 0);
  EXPECT_TRUE(seen.empty());
}

TEST(ArgParser, HelpIsZeroAndUsageErrorsAreTwo) {
  std::string v, pos;
  auto parser = [&] {
    ArgParser p("test", "usage\n");
    p.Value("--v", &v).Positional(&pos);
    return p;
  };
  EXPECT_EQ(parser().Parse({"--help"}), 0);
  EXPECT_EQ(parser().Parse({"-h", "--bogus"}), 0);
  EXPECT_EQ(parser().Parse({"--v"}), 2);                   // a value missing
  EXPECT_EQ(parser().Parse({"--bogus"}), 2);               // an unknown flag
  EXPECT_EQ(parser().Parse({"one", "two"}), 2);            // a positional too many
  EXPECT_EQ(parser().Parse({"--v", "-x"}), std::nullopt);  // a value may start with '-'
  EXPECT_EQ(v, "-x");
  EXPECT_EQ(parser().UsageError("why"), 2);
  // Parsing from an index skips a subcommand word; argc/argv skips the program name.
  pos.clear();
  EXPECT_EQ(parser().Parse({"stats", "p"}, 1), std::nullopt);
  EXPECT_EQ(pos, "p");
  char prog[] = "prog", flag[] = "--v", value[] = "y";
  char* argv[] = {prog, flag, value, nullptr};
  EXPECT_EQ(parser().Parse(3, argv), std::nullopt);
  EXPECT_EQ(v, "y");
}

TEST(ArgParser, UsageErrorsNameTheProgram) {
  ArgParser p("lazysnapd", "usage: lazysnapd\n");
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(p.Parse({"--nope"}), 2);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(err, "lazysnapd: unexpected argument \"--nope\"\nusage: lazysnapd\n");
}

}  // namespace
}  // namespace lazysnap

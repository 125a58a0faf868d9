// The subcommands' argument parser (cli/args.h): flags, switches, positionals, registry flags,
// the exit codes of --help and of usage errors; and ParseSize.
#include "cli/args.h"

#include <gtest/gtest.h>

#include <cstdint>

#include "common/error.h"

namespace lazysnap::cli {
namespace {

TEST(ArgParser, FillsFlagsSwitchesAndPositionalsInOrder) {
  std::string out, ref, dir;
  bool json = false;
  std::vector<std::string> devices;
  fetcher::RegistryOptions reg;
  reg.docker_config = "/given/config.json";
  ArgParser p("test", "usage\n");
  p.Value("-o|--output", &out).Switch("--json", &json).Values("--device", &devices);
  p.Registry(&reg).Positional(&ref).Positional(&dir);
  auto rc = p.Parse({"img:v1", "--output", "f", "--device", "a", "--json", "/mnt", "--device", "b",
                     "--plain-http", "--hosts-dir", "/etc/hosts.d"});
  EXPECT_FALSE(rc.has_value());
  EXPECT_EQ(out, "f");
  EXPECT_TRUE(json);
  EXPECT_EQ(devices, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(ref, "img:v1");
  EXPECT_EQ(dir, "/mnt");
  EXPECT_TRUE(reg.plain_http);
  EXPECT_EQ(reg.hosts_dir, "/etc/hosts.d");
  EXPECT_EQ(reg.docker_config, "/given/config.json");  // given: no default over it
  std::string short_out;
  ArgParser q("test", "usage\n");
  q.Value("-o|--output", &short_out);
  EXPECT_FALSE(q.Parse({"-o", "g"}).has_value());
  EXPECT_EQ(short_out, "g");
}

TEST(ArgParser, DockerConfigDefaultsToHome) {
  fetcher::RegistryOptions reg;
  ArgParser p("test", "usage\n");
  p.Registry(&reg);
  ASSERT_FALSE(p.Parse({}).has_value());
  if (const char* home = std::getenv("HOME")) {
    EXPECT_EQ(reg.docker_config, std::string(home) + "/.docker/config.json");
  }
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
  // Parsing from an index skips a subcommand word.
  pos.clear();
  EXPECT_EQ(parser().Parse({"stats", "p"}, 1), std::nullopt);
  EXPECT_EQ(pos, "p");
}

TEST(ParseSize, UnitsAndErrors) {
  EXPECT_EQ(ParseSize("0"), 0u);
  EXPECT_EQ(ParseSize("4096"), 4096u);
  EXPECT_EQ(ParseSize("4K"), 4096u);
  EXPECT_EQ(ParseSize("4KiB"), 4096u);
  EXPECT_EQ(ParseSize("512M"), 512ull << 20);
  EXPECT_EQ(ParseSize("2GiB"), 2ull << 30);
  EXPECT_EQ(ParseSize("3T"), 3ull << 40);
  for (const char* bad :
       {"", "M", "-5", "-5M", " 5", "5Q", "5 M", "4k", "99999999999999999999", "16777216T"}) {
    EXPECT_THROW(ParseSize(bad), Error) << bad;
  }
}

}  // namespace
}  // namespace lazysnap::cli

// What cli/args.h adds to the argument parser: the registry flags (and their docker config
// default); ParseSize.
#include "cli/args.h"

#include <gtest/gtest.h>

#include <cstdint>

#include "common/error.h"

namespace lazysnap::cli {
namespace {

TEST(RegistryFlags, FillTheRegistryOptions) {
  std::string ref;
  fetcher::RegistryOptions reg;
  reg.docker_config = "/given/config.json";
  ArgParser p("lazysnap test", "usage\n");
  RegistryFlags(p, &reg).Positional(&ref);
  auto rc = p.Parse({"--plain-http", "img:v1", "--hosts-dir", "/etc/hosts.d"});
  EXPECT_FALSE(rc.has_value());
  EXPECT_EQ(ref, "img:v1");
  EXPECT_TRUE(reg.plain_http);
  EXPECT_EQ(reg.hosts_dir, "/etc/hosts.d");
  EXPECT_EQ(reg.docker_config, "/given/config.json");  // given: no default over it
}

TEST(RegistryFlags, DockerConfigDefaultsToHome) {
  fetcher::RegistryOptions reg;
  ArgParser p("lazysnap test", "usage\n");
  RegistryFlags(p, &reg);
  ASSERT_FALSE(p.Parse({}).has_value());
  if (const char* home = std::getenv("HOME")) {
    EXPECT_EQ(reg.docker_config, std::string(home) + "/.docker/config.json");
  }
  fetcher::RegistryOptions given;
  ArgParser q("lazysnap test", "usage\n");
  RegistryFlags(q, &given);
  ASSERT_FALSE(q.Parse({"--docker-config", "/etc/auth.json"}).has_value());
  EXPECT_EQ(given.docker_config, "/etc/auth.json");
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

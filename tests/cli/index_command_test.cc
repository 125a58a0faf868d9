// `lazysnap index` as a user runs it, against a real docker-registry on 127.0.0.1: layers indexed
// several at a time give the artifact a one-at-a-time run gives.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "common/process.h"
#include "tests/support/oci_image.h"
#include "tests/support/registry.h"

namespace lazysnap::testing {
namespace {

CommandResult Cli(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {LAZYSNAP_CLI};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, std::chrono::seconds(120));
}

std::string ArtifactDigest(const std::string& output) {
  const std::string key = "pushed index artifact ";
  auto at = output.find(key);
  if (at == std::string::npos) return "";
  at += key.size();
  return output.substr(at, output.find(' ', at) - at);
}

TEST(IndexCommand, ParallelIndexingPushesTheArtifactASerialRunDoes) {
  Registry reg;
  OciImageBuilder b;
  b.AddBusyboxLayer();
  std::string big;
  for (uint64_t i = 0; big.size() < (6u << 20); ++i)
    big += "line " + std::to_string(i * 7919) + "\n";
  b.AddFileLayer({{"data/big.txt", big}});
  b.AddFileLayer({{"etc/msg", "top\n"}});
  auto img = b.Push(reg.host(), "cli/idx:v1");

  auto serial = Cli({"index", "--plain-http", "--parallel", "1", img.ref});
  ASSERT_EQ(serial.exit_code, 0) << serial.output;
  auto parallel = Cli({"index", "--plain-http", img.ref});  // default: 3 at a time
  ASSERT_EQ(parallel.exit_code, 0) << parallel.output;
  EXPECT_FALSE(ArtifactDigest(serial.output).empty()) << serial.output;
  EXPECT_EQ(ArtifactDigest(parallel.output), ArtifactDigest(serial.output)) << parallel.output;
  for (size_t i = 0; i < 3; ++i) {
    std::string line = "layer " + std::to_string(i + 1) + "/3 " + img.layer_digests[i];
    EXPECT_NE(parallel.output.find(line), std::string::npos) << parallel.output;
  }
  EXPECT_NE(parallel.output.find("3 of 3 layers"), std::string::npos) << parallel.output;

  auto bad = Cli({"index", "--plain-http", "--parallel", "0", img.ref});
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("--parallel wants a number"), std::string::npos) << bad.output;
}

}  // namespace
}  // namespace lazysnap::testing

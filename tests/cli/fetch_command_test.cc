// `lazysnap fetch` as a user runs it, against a real docker-registry on 127.0.0.1.
#include <gtest/gtest.h>

#include "common/file_util.h"
#include "common/process.h"
#include "common/sha256.h"
#include "common/temp_dir.h"
#include "tests/support/oci_image.h"
#include "tests/support/registry.h"

namespace lazysnap::testing {
namespace {

CommandResult Cli(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {LAZYSNAP_CLI};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, std::chrono::seconds(60));
}

TEST(FetchCommand, ManifestLayerAndRange) {
  Registry reg;
  OciImageBuilder b;
  b.AddBusyboxLayer();
  b.AddFileLayer({{"etc/msg", std::string(100000, 'm')}});
  auto img = b.Push(reg.host(), "cli/app:v1");
  TempDir d("clifetch");

  auto r = Cli({"fetch", "--plain-http", img.ref});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(img.manifest_digest), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("layer 1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(img.layer_digests[1]), std::string::npos) << r.output;

  r = Cli({"fetch", "--plain-http", img.ref, "--layer", "1", "-o", d / "layer.tgz"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string layer = ReadFile(d / "layer.tgz");
  EXPECT_EQ(Sha256Digest(layer), img.layer_digests[1]);
  EXPECT_NE(r.output.find("verified"), std::string::npos);
  EXPECT_FALSE(PathExists(d / "layer.tgz.partial"));

  r = Cli(
      {"fetch", "--plain-http", img.ref, "--layer", "1", "--range", "10-19", "-o", d / "range"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(ReadFile(d / "range"), layer.substr(10, 10));

  r = Cli({"fetch", "--plain-http", img.ref, "--layer", "7"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("has 2 layers"), std::string::npos) << r.output;
  r = Cli({"fetch", "--plain-http", reg.host() + "/cli/app:missing"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("404"), std::string::npos) << r.output;
  r = Cli({"fetch", "Bad Ref"});
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
}  // namespace lazysnap::testing

// `lazysnap build` and `lazysnap inspect` as a user runs them.
#include <gtest/gtest.h>

#include "common/file_util.h"
#include "common/process.h"
#include "common/temp_dir.h"

namespace lazysnap::testing {
namespace {

CommandResult Cli(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {LAZYSNAP_CLI};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, std::chrono::seconds(60));
}

bool Has(const std::string& out, const std::string& what) {
  return out.find(what) != std::string::npos;
}

TEST(ErofsCommands, BuildAndInspectFullAndIndexOnly) {
  TempDir d("clierofs");
  RunCommandOrThrow({"python3", EROFS_TEST_DIR "/make_layer.py", "lower", d / "l.tar"});
  RunCommandOrThrow({"/bin/sh", "-c", "gzip -n -c " + d / "l.tar" + " > " + d / "l.tar.gz"});

  auto r = Cli({"build", "--tar", d / "l.tar.gz", "-o", d / "full.erofs", "--compress", "lz4"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(Has(r.output, "(gzip)")) << r.output;
  EXPECT_TRUE(Has(r.output, "diff-id     sha256:")) << r.output;
  EXPECT_TRUE(PathExists(d / "full.erofs"));

  r = Cli({"build", "--tar", d / "l.tar.gz", "-o", d / "idx.erofs", "--index-only"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string blob = ReadFile(d / "idx.tar");  // default blob name
  EXPECT_TRUE(blob == ReadFile(d / "l.tar"));

  r = Cli({"inspect", d / "idx.erofs"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(Has(r.output, "1 extra device(s)")) << r.output;
  EXPECT_TRUE(Has(r.output, "  /etc/keep\n")) << r.output;
  EXPECT_TRUE(Has(r.output, "  /opaque/deep/x\n")) << r.output;

  // A file's ranges point at its bytes inside the tar.
  r = Cli({"inspect", d / "idx.erofs", "/etc/keep", "--device", d / "idx.tar"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  size_t at = r.output.find("device 1");
  ASSERT_NE(at, std::string::npos) << r.output;
  size_t lb = r.output.find('[', at);
  uint64_t off = std::stoull(r.output.substr(lb + 1));
  EXPECT_EQ(blob.substr(off, 5), "kept\n");
  EXPECT_TRUE(Has(r.output, "read 5 bytes OK")) << r.output;

  r = Cli({"inspect", d / "full.erofs", "/replace"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(Has(r.output, "/replace")) << r.output;

  // Errors: usage (2), bad input and missing paths (1) with a message.
  EXPECT_EQ(Cli({"build", "--tar", d / "l.tar"}).exit_code, 2);
  EXPECT_EQ(Cli({"build", "--tar", d / "l.tar", "-o", d / "x", "--blob", d / "b"}).exit_code, 2);
  WriteFileAtomic(d / "garbage", std::string(4096, 'G'));
  r = Cli({"build", "--tar", d / "garbage", "-o", d / "g.erofs"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Has(r.output, "checksum")) << r.output;
  EXPECT_FALSE(PathExists(d / "g.erofs"));
  r = Cli({"inspect", d / "idx.erofs", "/no/such"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Has(r.output, "no such file")) << r.output;
  r = Cli({"inspect", d / "garbage"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Has(r.output, "corrupt EROFS image")) << r.output;
}

}  // namespace
}  // namespace lazysnap::testing

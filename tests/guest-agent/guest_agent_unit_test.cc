// The agent's input handling without peers: every form a descriptor travels in, malformed ones,
// and the kernel feature probe.
#include <gtest/gtest.h>

#include "common/error.h"
#include "common/file_util.h"
#include "common/temp_dir.h"
#include "guest-agent/descriptor_input.h"
#include "guest-agent/kernel.h"
#include "guest-agent/mounts.h"

namespace lazysnap::guest {
namespace {

labels::ProxyDescriptor Sample() {
  labels::ProxyDescriptor d;
  d.image_ref = "127.0.0.1:5000/app:v1";
  d.manifest_digest = "sha256:" + std::string(64, 'a');
  d.layers = {{"sha256:" + std::string(64, 'b'), "sha256:" + std::string(64, 'c')},
              {"sha256:" + std::string(64, 'd'), "sha256:" + std::string(64, 'e')}};
  return d;
}

TEST(DescriptorInput, AcceptsEveryForm) {
  auto d = Sample();
  EXPECT_EQ(ParseDescriptorInput(labels::EncodeKataVolumeJson(d)), d);
  EXPECT_EQ(ParseDescriptorInput("  " + labels::EncodeKataVolume(d) + "\n"), d);
  EXPECT_EQ(ParseDescriptorInput(labels::KataVolumeOption(d)), d);
  EXPECT_EQ(ParseDescriptorInput("workdir=/w,upperdir=/u,lowerdir=/a:/b," +
                                 labels::KataVolumeOption(d) + ",ro"),
            d);
  EXPECT_EQ(ParseDescriptorInput("mount -t fuse.nydus-overlayfs overlay /rootfs -o lowerdir=/x," +
                                 labels::KataVolumeOption(d) + "\n"),
            d);
}

TEST(DescriptorInput, RejectsMalformed) {
  for (std::string bad :
       {"", "   \n", "hello world", "{}", "{\"volume_type\":\"image_guest_pull\"}",
        "io.katacontainers.volume=", "io.katacontainers.volume=@@@@", "YWJj", "{not json"}) {
    try {
      ParseDescriptorInput(bad);
      ADD_FAILURE() << "accepted \"" << bad << "\"";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << bad;
      EXPECT_NE(std::string(e.what()).find("descriptor"), std::string::npos) << e.what();
    }
  }
}

TEST(DescriptorInput, ReadsFilesAndNamesMissingOnes) {
  TempDir dir("guest-unit");
  WriteFileAtomic(dir / "d", labels::KataVolumeOption(Sample()));
  EXPECT_EQ(ParseDescriptorInput(ReadDescriptorSource(dir / "d")), Sample());
  try {
    ReadDescriptorSource(dir / "missing");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir / "missing"), std::string::npos);
  }
}

TEST(KernelFeatures, ReadsTheFilesystemList) {
  TempDir dir("guest-unit");
  WriteFileAtomic(dir / "fs", "nodev\tsysfs\nnodev\toverlay\n\terofs\nnodev\tfuse\n");
  WriteFileAtomic(dir / "dev", "");
  auto f = ProbeKernelFeatures(dir / "fs", "/dev/null");  // a char device stands in for /dev/fuse
  EXPECT_TRUE(f.overlay && f.erofs && f.fuse);
  f = ProbeKernelFeatures(dir / "fs", dir / "dev");  // not a device: no usable fuse
  EXPECT_FALSE(f.fuse);
  WriteFileAtomic(dir / "fs", "nodev\toverlayfs\n\terofs2\n");
  f = ProbeKernelFeatures(dir / "fs", "/dev/null");
  EXPECT_FALSE(f.overlay || f.erofs || f.fuse);
  EXPECT_THROW(ProbeKernelFeatures(dir / "none"), Error);
}

TEST(Mounts, ParsesBackendsAndRefusesOddOverlayPaths) {
  EXPECT_EQ(ParseErofsBackend("auto"), ErofsBackend::kAuto);
  EXPECT_EQ(ParseErofsBackend("file"), ErofsBackend::kFile);
  EXPECT_EQ(ParseErofsBackend("loop"), ErofsBackend::kLoop);
  EXPECT_THROW(ParseErofsBackend("fuse"), Error);
  EXPECT_THROW(MountOverlay({"/a:b"}, "/u", "/w", "/t"), Error);
  EXPECT_THROW(MountOverlay({}, "/u", "/w", "/t"), Error);
  std::vector<std::string> many(400, "/var/lib/lazysnap-guest/mounts/0123456789abcdef/layers/1");
  try {
    MountOverlay(many, "/u", "/w", "/t");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("over mount(2)'s page"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lazysnap::guest

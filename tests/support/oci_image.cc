#include "tests/support/oci_image.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/file_util.h"
#include "common/process.h"
#include "common/sha256.h"

namespace lazysnap::testing {
namespace {

const char* const kApplets[] = {"sh",   "echo",  "cat",  "ls",   "sha256sum", "wc",
                                "head", "sleep", "true", "test", "stat"};

}  // namespace

OciImageBuilder::OciImageBuilder() {
  RunCommandOrThrow({"umoci", "init", "--layout", layout_dir()});
  RunCommandOrThrow({"umoci", "new", "--image", layout_dir() + ":img"});
}

void OciImageBuilder::AddBusyboxLayer() {
  std::string bundle = dir_ / "bundle";
  RunCommandOrThrow({"umoci", "unpack", "--image", layout_dir() + ":img", bundle});
  std::string rootfs = bundle + "/rootfs";
  MakeDirs(rootfs + "/bin");
  std::filesystem::copy_file("/bin/busybox", rootfs + "/bin/busybox");
  for (const char* a : kApplets) std::filesystem::create_symlink("busybox", rootfs + "/bin/" + a);
  RunCommandOrThrow({"umoci", "repack", "--image", layout_dir() + ":img", bundle});
  std::filesystem::remove_all(bundle);
  RunCommandOrThrow(
      {"umoci", "config", "--image", layout_dir() + ":img", "--config.env", "PATH=/bin"});
  ++layers_;
}

void OciImageBuilder::AddFileLayer(const std::map<std::string, std::string>& files) {
  // unpack + repack rather than `umoci insert`: umoci 0.4.7's insert writes layer tars whose
  // last entry is cut short (GNU tar: "Unexpected EOF"), which a strict tar reader refuses.
  std::string bundle = dir_ / "bundle";
  RunCommandOrThrow({"umoci", "unpack", "--image", layout_dir() + ":img", bundle});
  for (const auto& [path, data] : files) {
    std::string full = bundle + "/rootfs/" + path;
    MakeDirs(std::filesystem::path(full).parent_path().string());
    WriteFileAtomic(full, data);
  }
  RunCommandOrThrow({"umoci", "repack", "--image", layout_dir() + ":img", bundle});
  std::filesystem::remove_all(bundle);
  ++layers_;
}

void OciImageBuilder::SetCmd(const std::vector<std::string>& cmd) {
  std::vector<std::string> argv = {"umoci", "config", "--image", layout_dir() + ":img",
                                   "--clear=config.cmd"};
  for (const auto& c : cmd) {
    argv.push_back("--config.cmd");
    argv.push_back(c);
  }
  RunCommandOrThrow(argv);
}

void OciImageBuilder::RecompressTopLayerAsZstdFrames() {
  const std::string blobs = layout_dir() + "/blobs/sha256/";
  auto index = nlohmann::json::parse(ReadFile(layout_dir() + "/index.json"));
  for (auto& m : index["manifests"]) {
    if (m["annotations"]["org.opencontainers.image.ref.name"] != "img") continue;
    auto manifest =
        nlohmann::json::parse(ReadFile(blobs + m["digest"].get<std::string>().substr(7)));
    auto& top = manifest["layers"].back();
    std::string gz = blobs + top["digest"].get<std::string>().substr(7);
    std::string zst = dir_ / "top.tar.zst";
    // One frame per 2 MiB of tar (pzstd's layout at -1, without the skippable frame pzstd puts
    // first: skopeo does not take that for zstd and would gzip the blob again on push).
    std::string pieces = dir_ / "top-piece.";
    RunCommandOrThrow({"sh", "-c",
                       "gzip -dc '" + gz + "' | split -b 2M - '" + pieces + "' && for p in '" +
                           pieces + "'*; do zstd -q -1 -c \"$p\" >> '" + zst +
                           "' && rm \"$p\"; done"});
    std::string data = ReadFile(zst);
    std::string digest = Sha256Digest(data);
    WriteFileAtomic(blobs + digest.substr(7), data);
    top["mediaType"] = "application/vnd.oci.image.layer.v1.tar+zstd";
    top["digest"] = digest;
    top["size"] = data.size();
    std::string mjson = manifest.dump();
    std::string mdigest = Sha256Digest(mjson);
    WriteFileAtomic(blobs + mdigest.substr(7), mjson);
    m["digest"] = mdigest;
    m["size"] = mjson.size();
  }
  WriteFileAtomic(layout_dir() + "/index.json", index.dump());
}

PushedImage OciImageBuilder::Push(const std::string& registry_host,
                                  const std::string& repo_tag) const {
  PushedImage out;
  out.ref = registry_host + "/" + repo_tag;
  RunCommandOrThrow({"skopeo", "copy", "--dest-tls-verify=false", "oci:" + layout_dir() + ":img",
                     "docker://" + out.ref});
  auto index = nlohmann::json::parse(ReadFile(layout_dir() + "/index.json"));
  for (const auto& m : index["manifests"]) {
    if (m["annotations"]["org.opencontainers.image.ref.name"] == "img")
      out.manifest_digest = m["digest"];
  }
  std::string hex = out.manifest_digest.substr(7);
  auto manifest = nlohmann::json::parse(ReadFile(layout_dir() + "/blobs/sha256/" + hex));
  for (const auto& l : manifest["layers"]) {
    out.layer_digests.push_back(l["digest"]);
    out.layer_sizes.push_back(l["size"]);
  }
  return out;
}

}  // namespace lazysnap::testing

// `lazysnap build`: an OCI layer (tar, tar.gz, tar.zst) -> EROFS image, full or index-only.
// `lazysnap inspect`: an EROFS image's tree, or one file's attributes and the blob byte ranges it
// needs (what a lazy fetch of that file would request).
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "common/error.h"
#include "erofs/layer_builder.h"
#include "erofs/reader.h"

namespace lazysnap::cli {
namespace {

constexpr const char* kBuildUsage =
    "usage: lazysnap build --tar LAYER[.gz|.zst] -o OUT.erofs [--compress lz4|zstd]\n"
    "                     [--index-only [--blob OUT.tar]]\n"
    "  full image: file data copied (optionally compressed) into OUT.erofs\n"
    "  --index-only: OUT.erofs holds metadata only; file data stay in the uncompressed tar,\n"
    "                written to --blob (default: OUT.erofs with .tar instead of .erofs)\n";

constexpr const char* kInspectUsage =
    "usage: lazysnap inspect IMAGE.erofs [PATH] [--device BLOB]...\n"
    "  without PATH: the whole tree with sizes; with PATH: its attributes, xattrs and, for a\n"
    "  file, the device byte ranges a read of the whole file needs\n";

std::string ModeString(uint32_t mode) {
  std::string s = "?---------";
  switch (mode & S_IFMT) {
    case S_IFREG:
      s[0] = '-';
      break;
    case S_IFDIR:
      s[0] = 'd';
      break;
    case S_IFLNK:
      s[0] = 'l';
      break;
    case S_IFCHR:
      s[0] = 'c';
      break;
    case S_IFBLK:
      s[0] = 'b';
      break;
    case S_IFIFO:
      s[0] = 'p';
      break;
    case S_IFSOCK:
      s[0] = 's';
      break;
  }
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i)
    if (mode & (1u << (8 - i))) s[1 + i] = rwx[i];
  if (mode & S_ISUID) s[3] = (mode & S_IXUSR) ? 's' : 'S';
  if (mode & S_ISGID) s[6] = (mode & S_IXGRP) ? 's' : 'S';
  if (mode & S_ISVTX) s[9] = (mode & S_IXOTH) ? 't' : 'T';
  return s;
}

std::string DeviceName(const erofs::Reader& r, uint32_t device) {
  if (device == 0) return "image";
  std::string tag = device <= r.super().devices.size() ? r.super().devices[device - 1].tag : "";
  return "device " + std::to_string(device) + (tag.empty() ? "" : " (" + tag + ")");
}

void PrintEntry(const erofs::Reader& r, uint64_t ino, const std::string& path) {
  erofs::Attr a = r.GetAttr(ino);
  std::string extra;
  if (S_ISLNK(a.mode)) extra = " -> " + r.ReadLink(ino);
  if (S_ISCHR(a.mode) || S_ISBLK(a.mode))
    extra = " [" + std::to_string(major(a.rdev)) + "," + std::to_string(minor(a.rdev)) + "]";
  std::printf("%s %6u:%-6u %12" PRIu64 "  %s%s\n", ModeString(a.mode).c_str(), a.uid, a.gid, a.size,
              path.c_str(), extra.c_str());
}

void PrintTree(const erofs::Reader& r, uint64_t ino, const std::string& path, uint64_t* files,
               uint64_t* bytes) {
  PrintEntry(r, ino, path.empty() ? "/" : path);
  erofs::Attr a = r.GetAttr(ino);
  ++*files;
  if (S_ISREG(a.mode)) *bytes += a.size;
  if (!S_ISDIR(a.mode)) return;
  for (const auto& e : r.ReadDir(ino)) PrintTree(r, e.ino, path + "/" + e.name, files, bytes);
}

}  // namespace

int RunBuild(const std::vector<std::string>& args) {
  std::string tar, out, blob;
  erofs::BuildOptions opts;
  std::string compress;
  bool index_only = false;
  ArgParser p("lazysnap build", kBuildUsage);
  p.Value("--tar", &tar).Value("-o", &out).Value("--blob", &blob);
  p.Switch("--index-only", &index_only).Value("--compress", &compress);
  if (auto rc = p.Parse(args)) return *rc;
  if (index_only) opts.mode = erofs::ImageMode::kIndexOnly;
  if (compress == "lz4") {
    opts.compression = erofs::DataCompression::kLz4;
  } else if (compress == "zstd") {
    opts.compression = erofs::DataCompression::kZstd;
  } else if (!compress.empty()) {
    return p.UsageError("--compress wants lz4 or zstd, got \"" + compress + "\"");
  }
  if (tar.empty() || out.empty()) return p.UsageError();
  if (!blob.empty() && opts.mode != erofs::ImageMode::kIndexOnly) {
    std::fprintf(stderr, "lazysnap build: --blob needs --index-only\n");
    return 2;
  }
  if (opts.mode == erofs::ImageMode::kIndexOnly &&
      opts.compression != erofs::DataCompression::kNone) {
    std::fprintf(stderr, "lazysnap build: --compress applies to full images only\n");
    return 2;
  }
  if (opts.mode == erofs::ImageMode::kIndexOnly && blob.empty()) {
    std::string base = out;
    if (base.size() > 6 && base.compare(base.size() - 6, 6, ".erofs") == 0)
      base.resize(base.size() - 6);
    blob = base + ".tar";
  }
  opts.blob_path = blob;
  try {
    auto start = std::chrono::steady_clock::now();
    erofs::BuildResult r = erofs::BuildLayerFromFile(tar, out, opts);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("image       %s (%s, %" PRIu64 " bytes)\n", out.c_str(),
                opts.mode == erofs::ImageMode::kFull ? "full" : "index-only", r.image_size);
    if (!blob.empty())
      std::printf("blob        %s (%" PRIu64 " bytes)\n", blob.c_str(), r.tar_size);
    std::printf("layer       %s (%s)\n", tar.c_str(),
                erofs::LayerCompressionName(r.input_compression));
    std::printf("diff-id     %s\n", r.tar_digest.c_str());
    std::printf("tar         %" PRIu64 " bytes, %" PRIu64 " entries\n", r.tar_size, r.entries);
    std::printf("time        %.3f s (%.1f MB/s of tar)\n", secs,
                secs > 0 ? static_cast<double>(r.tar_size) / 1e6 / secs : 0.0);
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "lazysnap build: %s\n", e.what());
    return 1;
  }
}

int RunInspect(const std::vector<std::string>& args) {
  std::string image, path;
  std::vector<std::string> devices;
  ArgParser p("lazysnap inspect", kInspectUsage);
  p.Values("--device", &devices).Positional(&image).Positional(&path);
  if (auto rc = p.Parse(args)) return *rc;
  if (image.empty()) return p.UsageError();
  try {
    std::vector<std::shared_ptr<const erofs::BlockSource>> devs;
    for (const auto& d : devices) devs.push_back(std::make_shared<erofs::FileBlockSource>(d));
    auto r = erofs::Reader::Open(std::make_shared<erofs::FileBlockSource>(image), devs);
    const erofs::SuperInfo& sb = r->super();
    if (path.empty()) {
      std::printf("EROFS image %s: block size %u, %" PRIu64 " inodes, %zu extra device(s)\n",
                  image.c_str(), sb.block_size, sb.inodes, sb.devices.size());
      for (size_t i = 0; i < sb.devices.size(); ++i)
        std::printf("  device %zu: %" PRIu64 " blocks%s%s\n", i + 1, sb.devices[i].blocks,
                    sb.devices[i].tag.empty() ? "" : ", tag ", sb.devices[i].tag.c_str());
      uint64_t files = 0, bytes = 0;
      PrintTree(*r, r->root_ino(), "", &files, &bytes);
      std::printf("%" PRIu64 " entries, %" PRIu64 " bytes in regular files\n", files, bytes);
      return 0;
    }
    uint64_t ino = r->Lookup(path);
    erofs::Attr a = r->GetAttr(ino);
    PrintEntry(*r, ino, path);
    std::printf("ino %" PRIu64 ", nlink %u, mtime %" PRId64 ".%09u\n", a.ino, a.nlink, a.mtime,
                a.mtime_nsec);
    for (const auto& name : r->ListXattrs(ino))
      std::printf("xattr %s=%zu bytes\n", name.c_str(), r->GetXattr(ino, name)->size());
    if (S_ISDIR(a.mode)) {
      uint64_t files = 0, bytes = 0;
      PrintTree(*r, ino, path == "/" ? "" : path, &files, &bytes);
      return 0;
    }
    if (!S_ISREG(a.mode)) return 0;
    std::vector<erofs::Extent> extents = r->MapRange(ino, 0, a.size);
    std::printf("%zu range(s) needed to read %" PRIu64 " bytes:\n", extents.size(), a.size);
    for (const auto& e : extents) {
      if (e.hole) {
        std::printf("  file [%" PRIu64 ", +%" PRIu64 ")  hole (zeros)\n", e.file_offset, e.length);
      } else {
        std::printf("  file [%" PRIu64 ", +%" PRIu64 ")  %s bytes [%" PRIu64 ", +%" PRIu64 ")%s\n",
                    e.file_offset, e.length, DeviceName(*r, e.device).c_str(), e.offset,
                    e.device_length, e.compressed ? " compressed" : "");
      }
    }
    if (!devices.empty() || sb.devices.empty()) {
      // All bytes are reachable: prove it by reading the file through the mapping.
      std::string data = r->Read(ino, 0, a.size);
      std::printf("read %zu bytes OK\n", data.size());
    }
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "lazysnap inspect: %s\n", e.what());
    return 1;
  }
}

}  // namespace lazysnap::cli

#include "erofs/layer_builder.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common/error.h"
#include "common/file_util.h"
#include "common/process.h"
#include "common/sha256.h"
#include "common/temp_dir.h"
#include "common/unique_fd.h"

namespace lazysnap::erofs {

namespace {

void WriteAll(int fd, const char* data, size_t len, const std::string& what) {
  while (len > 0) {
    ssize_t n = ::write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      ThrowErrno(what);
    }
    data += n;
    len -= static_cast<size_t>(n);
  }
}

// Removes a path on scope exit unless released: failed builds leave nothing behind.
struct RemoveOnFailure {
  std::string path;
  bool keep = false;
  ~RemoveOnFailure() {
    if (!keep && !path.empty()) ::unlink(path.c_str());
  }
};

}  // namespace

std::string DefaultMkfsPath() {
  return LAZYSNAP_EROFS_BIN "/mkfs.erofs";
}
std::string DefaultFsckPath() {
  return LAZYSNAP_EROFS_BIN "/fsck.erofs";
}

BuildResult BuildLayerImage(const BuildOptions& opts) {
  if (opts.output_path.empty()) throw Error(ErrorCode::kInvalidArgument, "no output path");
  const bool index = opts.mode == ImageMode::kIndexOnly;
  if (index && opts.blob_path.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "an index-only image needs a blob path");
  }
  if (index && !opts.compression.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "index-only images keep data in the tar: no -z");
  }
  if (!opts.compression.empty() && opts.compression != "lz4" && opts.compression != "lz4hc" &&
      opts.compression != "zstd") {
    throw Error(ErrorCode::kInvalidArgument, "unknown compression \"" + opts.compression + "\"");
  }
  const std::string what = "layer " + opts.layer_path;
  UniqueFd in;
  if (opts.layer_path == "-") {
    in = UniqueFd(::dup(0));
  } else {
    in = UniqueFd(::open(opts.layer_path.c_str(), O_RDONLY | O_CLOEXEC));
  }
  if (!in) ThrowErrno("opening " + what);

  std::string tmp_image = opts.output_path + ".partial";
  RemoveOnFailure rm_image{tmp_image};
  std::string tmp_blob = index ? opts.blob_path + ".partial" : "";
  RemoveOnFailure rm_blob{tmp_blob};
  UniqueFd blob;
  if (index) {
    blob = UniqueFd(::open(tmp_blob.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!blob) ThrowErrno("creating " + tmp_blob);
  }

  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) ThrowErrno("pipe");
  UniqueFd pipe_r(p[0]), pipe_w(p[1]);
  TempDir logs("mkfs");
  std::vector<std::string> argv = {opts.mkfs_path.empty() ? DefaultMkfsPath() : opts.mkfs_path,
                                   "--quiet",
                                   index ? "--tar=i" : "--tar=f",
                                   "--aufs",
                                   "--sort=none",
                                   "-T0",
                                   "--mkfs-time",  // the fixed time is the build time only
                                   "-U" + opts.uuid};
  if (!opts.compression.empty()) argv.push_back("-z" + opts.compression);
  argv.push_back(tmp_image);
  SpawnOptions so;
  so.stdin_path = "/proc/self/fd/" + std::to_string(pipe_r.get());
  so.stdout_path = logs / "mkfs.log";
  so.stderr_path = "=stdout";
  Subprocess mkfs = Subprocess::Spawn(argv, so);
  pipe_r.reset();

  BuildResult result;
  Sha256 diff;
  bool mkfs_gone = false;
  // mkfs exiting early (a tar it rejects) closes the pipe: writes fail with EPIPE, not SIGPIPE.
  struct IgnoreSigpipe {
    struct sigaction old {};
    IgnoreSigpipe() {
      struct sigaction sa {};
      sa.sa_handler = SIG_IGN;
      ::sigaction(SIGPIPE, &sa, &old);
    }
    ~IgnoreSigpipe() { ::sigaction(SIGPIPE, &old, nullptr); }
  } ignore_sigpipe;
  std::exception_ptr stream_error;
  std::string tail;
  try {
    result.stream = DecompressLayer(
        in.get(), what,
        [&](const char* data, size_t len) {
          diff.Update(data, len);
          if (index) WriteAll(blob.get(), data, len, "writing " + tmp_blob);
          if (opts.observer && !opts.observer(data, len)) return false;
          // Remember the last 1 KiB: whether the tar ends with its end-of-archive blocks.
          if (len >= 1024) {
            tail.assign(data + len - 1024, 1024);
          } else {
            tail.append(data, len);
            if (tail.size() > 1024) tail.erase(0, tail.size() - 1024);
          }
          if (!mkfs_gone) {
            try {
              WriteAll(pipe_w.get(), data, len, "feeding mkfs.erofs");
            } catch (const Error&) {
              mkfs_gone = true;  // its exit status and log say why
            }
          }
          return true;
        },
        opts.max_uncompressed);
  } catch (...) {
    stream_error = std::current_exception();
  }
  // Some image tools omit the two zero blocks that end a tar; mkfs.erofs then fails reading past
  // the end. They are added to mkfs's stream only (the blob device and diff ID stay the layer's).
  if (!stream_error && !mkfs_gone && tail.find_first_not_of('\0') != std::string::npos) {
    std::string zeros(1024, '\0');
    try {
      WriteAll(pipe_w.get(), zeros.data(), zeros.size(), "feeding mkfs.erofs");
    } catch (const Error&) {
      mkfs_gone = true;
    }
  }
  pipe_w.reset();  // end of the tar stream
  int rc = stream_error ? mkfs.Stop(std::chrono::seconds(5)) : *mkfs.Wait();
  if (stream_error) std::rethrow_exception(stream_error);
  if (rc != 0) {
    std::string log = PathExists(logs / "mkfs.log") ? ReadFile(logs / "mkfs.log") : "";
    if (log.size() > 2000) log = log.substr(0, 2000) + "...";
    throw Error(ErrorCode::kInvalidArgument,
                what + ": mkfs.erofs failed (exit " + std::to_string(rc) + "): " + log);
  }
  if (index) {
    if (::fsync(blob.get()) != 0) ThrowErrno("syncing " + tmp_blob);
    blob.reset();
    if (::rename(tmp_blob.c_str(), opts.blob_path.c_str()) != 0) ThrowErrno("renaming blob");
    rm_blob.keep = true;
    result.blob_bytes = result.stream.uncompressed_bytes;
  }
  if (::rename(tmp_image.c_str(), opts.output_path.c_str()) != 0) ThrowErrno("renaming image");
  rm_image.keep = true;
  struct stat st {};
  if (::stat(opts.output_path.c_str(), &st) == 0) result.image_bytes = st.st_size;
  result.diff_id = diff.FinishDigest();
  return result;
}

}  // namespace lazysnap::erofs

#include "common/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "common/error.h"
#include "common/unique_fd.h"

namespace lazysnap {

std::string ReadFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) ThrowErrno("open " + path);
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      ThrowErrno("read " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

void WriteFileAtomic(const std::string& path, std::string_view data, unsigned mode) {
  // A unique temp name: two threads (or processes) writing one path must not share a temp file.
  std::string tmp = path + ".tmp.XXXXXX";
  {
    UniqueFd fd(::mkostemp(tmp.data(), O_CLOEXEC));
    if (!fd) ThrowErrno("create " + tmp);
    if (::fchmod(fd.get(), mode) != 0) {
      int e = errno;
      ::unlink(tmp.c_str());
      ThrowErrno("chmod " + tmp, e);
    }
    const char* p = data.data();
    size_t left = data.size();
    while (left > 0) {
      ssize_t n = ::write(fd.get(), p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        int e = errno;
        ::unlink(tmp.c_str());
        ThrowErrno("write " + tmp, e);
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
    if (::fsync(fd.get()) != 0) {
      int e = errno;
      ::unlink(tmp.c_str());
      ThrowErrno("fsync " + tmp, e);
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    ThrowErrno("rename " + tmp + " -> " + path, e);
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  UniqueFd dfd(::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd) ::fsync(dfd.get());
}

void MakeDirs(const std::string& path, unsigned mode) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) throw Error(ErrorCode::kInternal, "mkdir -p " + path + ": " + ec.message());
  ::chmod(path.c_str(), mode);
}

bool PathExists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

bool WriteKernelAttribute(const std::string& path, std::string_view value) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return false;
  ssize_t n;
  do {
    n = ::write(fd.get(), value.data(), value.size());
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(value.size());
}

UnlinkOnExit::~UnlinkOnExit() {
  ::unlink(path_.c_str());
}

}  // namespace lazysnap

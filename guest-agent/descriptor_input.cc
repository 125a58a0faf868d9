#include "guest-agent/descriptor_input.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "common/error.h"
#include "common/unique_fd.h"

namespace lazysnap::guest {
namespace {

constexpr size_t kMaxInput = 4 << 20;

std::string_view Trim(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

labels::ProxyDescriptor ParseDescriptorInput(std::string_view text) {
  std::string_view t = Trim(text);
  if (t.empty()) throw Error(ErrorCode::kInvalidArgument, "descriptor: empty input");
  if (t.size() > kMaxInput) throw Error(ErrorCode::kInvalidArgument, "descriptor: over 4 MiB");
  std::string_view prefix = labels::kKataVolumeOptionPrefix;
  if (auto pos = t.find(prefix); pos != std::string_view::npos) {
    std::string_view v = t.substr(pos + prefix.size());
    v = v.substr(0, v.find_first_of(", \t\r\n\"'"));
    if (v.empty()) {
      throw Error(ErrorCode::kInvalidArgument,
                  std::string("descriptor: ") + labels::kKataVolumeOptionPrefix + " has no value");
    }
    return labels::DecodeKataVolume(v);
  }
  if (t.front() == '{') return labels::DecodeKataVolumeJson(t);
  if (t.find_first_of(" \t\r\n,") != std::string_view::npos) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string("descriptor: neither KataVirtualVolume JSON, nor base64, nor a mount "
                            "option string with ") +
                    labels::kKataVolumeOptionPrefix);
  }
  return labels::DecodeKataVolume(t);
}

std::string ReadDescriptorSource(const std::string& path) {
  UniqueFd owned;
  int fd = 0;
  if (path != "-") {
    owned.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!owned) ThrowErrno("descriptor: open " + path);
    fd = owned.get();
  }
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) ThrowErrno("descriptor: read " + path);
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxInput)
      throw Error(ErrorCode::kInvalidArgument, "descriptor: " + path + " is over 4 MiB");
  }
  return out;
}

}  // namespace lazysnap::guest

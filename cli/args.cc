#include "cli/args.h"

#include <cstdlib>

#include "common/error.h"

namespace lazysnap::cli {

ArgParser& RegistryFlags(ArgParser& p, fetcher::RegistryOptions* opts) {
  return p.Value("--hosts-dir", &opts->hosts_dir)
      .Switch("--plain-http", &opts->plain_http)
      .Value("--docker-config", &opts->docker_config)
      .Then([opts] {
        if (!opts->docker_config.empty()) return;
        if (const char* home = std::getenv("HOME"))
          opts->docker_config = std::string(home) + "/.docker/config.json";
      });
}

uint64_t ParseSize(const std::string& s) {
  if (s.empty() || s[0] < '0' || s[0] > '9')
    throw Error(ErrorCode::kInvalidArgument, "not a size: \"" + s + "\"");
  size_t pos = 0;
  uint64_t n = 0;
  try {
    n = std::stoull(s, &pos);
  } catch (const std::exception&) {
    throw Error(ErrorCode::kInvalidArgument, "not a size: \"" + s + "\"");
  }
  std::string unit = s.substr(pos);
  int shift = 0;
  if (unit == "K" || unit == "KiB")
    shift = 10;
  else if (unit == "M" || unit == "MiB")
    shift = 20;
  else if (unit == "G" || unit == "GiB")
    shift = 30;
  else if (unit == "T" || unit == "TiB")
    shift = 40;
  else if (!unit.empty())
    throw Error(ErrorCode::kInvalidArgument, "not a size: \"" + s + "\"");
  if (shift && n > (UINT64_MAX >> shift)) {
    throw Error(ErrorCode::kInvalidArgument, "size too large: \"" + s + "\"");
  }
  return n << shift;
}

}  // namespace lazysnap::cli

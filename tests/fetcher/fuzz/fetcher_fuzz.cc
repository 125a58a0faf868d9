// libFuzzer entry for fetcher/ parsers of untrusted registry input: WWW-Authenticate headers,
// manifests and indexes, hosts.toml. Byte 0 selects the parser. Each must parse or throw
// lazysnap::Error, nothing else.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/error.h"
#include "fetcher/manifest.h"
#include "fetcher/registry_hosts.h"
#include "fetcher/www_authenticate.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string in(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    switch (data[0] % 4) {
      case 0:
        lazysnap::fetcher::ParseWwwAuthenticate(in);
        break;
      case 1:
        lazysnap::fetcher::ParseManifest(in);
        break;
      case 2: {
        auto idx = lazysnap::fetcher::ParseIndex(in);
        lazysnap::fetcher::SelectPlatform(idx, "linux", "amd64");
        break;
      }
      default:
        lazysnap::fetcher::ParseHostsToml(in, "127.0.0.1:5000", true, "fuzz");
        break;
    }
  } catch (const lazysnap::Error&) {
  }
  return 0;
}

// libFuzzer entries for labels/ parsers (untrusted: labels arrive from containerd's callers,
// descriptors from the host into the guest). Each must parse or throw lazysnap::Error, nothing
// else.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/error.h"
#include "labels/cri_labels.h"
#include "labels/descriptor.h"
#include "labels/mode.h"
#include "labels/reference.h"

namespace {

// First byte selects the parser; the rest is its input. Label maps are encoded as
// "key\0value\0key\0value...".
int Run(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string in(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    switch (data[0] % 3) {
      case 0: {
        auto r = lazysnap::labels::ParseReference(in);
        lazysnap::labels::ParseReference(r.Canonical());  // canonical output must re-parse
        break;
      }
      case 1: {
        lazysnap::labels::LabelMap m;
        size_t pos = 0;
        while (pos < in.size()) {
          size_t k = in.find('\0', pos);
          std::string key = in.substr(pos, k == std::string::npos ? std::string::npos : k - pos);
          if (k == std::string::npos) break;
          size_t v = in.find('\0', k + 1);
          m[key] = in.substr(k + 1, v == std::string::npos ? std::string::npos : v - k - 1);
          pos = v == std::string::npos ? in.size() : v + 1;
        }
        lazysnap::labels::ProxyPolicy p{.enable = true};
        lazysnap::labels::DecideLayerMode(p, "k8s.io/1/extract-1 sha256:x", m, std::nullopt);
        break;
      }
      default: {
        auto d = lazysnap::labels::DecodeKataVolume(in);
        if (!(lazysnap::labels::DecodeKataVolume(lazysnap::labels::EncodeKataVolume(d)) == d))
          __builtin_trap();
        break;
      }
    }
  } catch (const lazysnap::Error&) {
  }
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return Run(data, size);
}

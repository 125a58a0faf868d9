// libFuzzer entry for containerd filter strings (untrusted: they arrive in List requests).
// Parsing must either succeed or throw lazysnap::Error; matching must never crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/error.h"
#include "snapshotter/filter.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lazysnap::snapshotter;
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    Filter f = Filter::Parse(text);
    Info info;
    info.name = "k8s.io/1/sha256:abc";
    info.parent = "";
    info.kind = Kind::kCommitted;
    info.labels = {{"containerd.io/snapshot.ref", "sha256:abc"}, {"a.b", "c"}};
    f.Match(info);
  } catch (const lazysnap::Error&) {
  }
  return 0;
}

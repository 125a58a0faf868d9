// libFuzzer entry for the HTTP request-head parser (common/http_server.h): whatever connects to
// a metrics endpoint is untrusted. ParseHttpRequestHead must return (never throw or crash); what
// it accepts has a token method and a path that starts with '/' and holds only visible ASCII.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/http_server.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto r = lazysnap::ParseHttpRequestHead(in);
  if (!r) return 0;
  if (in.size() > lazysnap::kMaxHttpHead || r->method.empty() || r->path.empty() ||
      r->path.front() != '/')
    __builtin_trap();
  for (char c : r->path) {
    if (c <= 0x20 || c >= 0x7f || c == '?') __builtin_trap();
  }
  for (char c : r->method) {
    if (c <= 0x20 || c >= 0x7f) __builtin_trap();
  }
  return 0;
}

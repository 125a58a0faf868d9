#include "labels/digest.h"

#include "common/error.h"

namespace lazysnap::labels {
namespace {

[[noreturn]] void Bad(std::string_view what, std::string_view text, const std::string& why) {
  std::string shown(text.substr(0, 200));
  throw Error(ErrorCode::kInvalidArgument,
              std::string(what) + ": \"" + shown + "\" is not a valid digest: " + why);
}

}  // namespace

Digest ParseDigest(std::string_view text, std::string_view what) {
  auto colon = text.find(':');
  if (colon == std::string_view::npos) Bad(what, text, "want algorithm:hex, e.g. sha256:<64 hex>");
  std::string_view alg = text.substr(0, colon);
  std::string_view hex = text.substr(colon + 1);
  size_t want;
  if (alg == "sha256") {
    want = 64;
  } else if (alg == "sha512") {
    want = 128;
  } else {
    Bad(what, text,
        "unsupported algorithm \"" + std::string(alg.substr(0, 32)) + "\" (sha256 or sha512)");
  }
  if (hex.size() != want) {
    Bad(what, text,
        std::string(alg) + " needs " + std::to_string(want) + " hex digits, got " +
            std::to_string(hex.size()));
  }
  for (char c : hex) {
    bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    if (!ok) Bad(what, text, "encoded part must be lowercase hex");
  }
  return Digest{std::string(alg), std::string(hex)};
}

bool IsValidDigest(std::string_view text) {
  try {
    ParseDigest(text);
    return true;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace lazysnap::labels

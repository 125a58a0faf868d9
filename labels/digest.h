// OCI content digests ("algorithm:encoded"), validated per the OCI image spec for the algorithms
// registered there: sha256 (64 lowercase hex) and sha512 (128 lowercase hex).
#pragma once

#include <string>
#include <string_view>

namespace lazysnap::labels {

struct Digest {
  std::string algorithm;  // "sha256" | "sha512"
  std::string hex;        // lowercase hex of the registered length
  std::string str() const { return algorithm + ":" + hex; }
  bool operator==(const Digest&) const = default;
};

// Throws Error(kInvalidArgument) saying what is wrong; `what` names the value in the message
// (a label key, a JSON field).
Digest ParseDigest(std::string_view text, std::string_view what = "digest");
bool IsValidDigest(std::string_view text);

}  // namespace lazysnap::labels

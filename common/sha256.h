// SHA-256 (OpenSSL EVP) for OCI digests: incremental hashing and "sha256:<hex>" formatting.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace lazysnap {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;

  void Update(const void* data, size_t len);
  void Update(std::string_view s) { Update(s.data(), s.size()); }
  std::array<uint8_t, 32> Finish();  // the object is reset afterwards
  std::string FinishHex();           // 64 lowercase hex chars
  std::string FinishDigest();        // "sha256:<hex>"

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

std::string Sha256Hex(std::string_view data);
std::string Sha256Digest(std::string_view data);  // "sha256:<hex>"
std::string HexEncode(const uint8_t* data, size_t len);

}  // namespace lazysnap

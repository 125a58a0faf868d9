// Errors that cross module boundaries: an exception carrying a category that the gRPC layer,
// the CLI and the FUSE server each map to their own codes (status, exit code, errno).
#pragma once

#include <stdexcept>
#include <string>

namespace lazysnap {

enum class ErrorCode {
  kInvalidArgument,     // the caller sent something malformed
  kNotFound,            // the named thing does not exist
  kAlreadyExists,       // the named thing exists already
  kFailedPrecondition,  // the request is well-formed but the state forbids it
  kUnavailable,         // a peer (registry, disk) is unreachable right now; retrying may help
  kDataLoss,            // bytes failed verification or stored state is corrupt
  kResourceExhausted,   // disk full, too many open things
  kInternal,            // a bug or an unexpected system failure
};

const char* ErrorCodeName(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

// Throws Error(kInternal or a code derived from errno) with "what: strerror(errno)".
[[noreturn]] void ThrowErrno(const std::string& what, int err);
[[noreturn]] void ThrowErrno(const std::string& what);

}  // namespace lazysnap

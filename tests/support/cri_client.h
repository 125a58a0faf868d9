// A small CRI image client (runtime.v1 over containerd's gRPC socket) for tests and benchmarks.
#pragma once

#include <memory>
#include <string>

namespace lazysnap::testing {

class CriImageClient {
 public:
  explicit CriImageClient(const std::string& containerd_socket);
  ~CriImageClient();
  // PullImage; returns the image ref (config digest) containerd reports. Throws on failure
  // with the gRPC status message.
  std::string Pull(const std::string& image);
  void Remove(const std::string& image);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lazysnap::testing

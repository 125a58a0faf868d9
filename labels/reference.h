// Image references with docker/distribution's grammar and normalisation:
//   [domain[:port]/]path[:tag][@digest]
// A first component without '.' or ':' (and not "localhost") is part of the path and the domain
// defaults to docker.io; single-component docker.io paths get "library/"; a reference with
// neither tag nor digest gets tag "latest".
#pragma once

#include <string>
#include <string_view>

namespace lazysnap::labels {

struct Reference {
  std::string domain;  // "docker.io", "127.0.0.1:5000", "localhost", "[::1]:5000"
  std::string path;    // "library/busybox", "demo/app"
  std::string tag;     // may be empty when a digest is given
  std::string digest;  // "sha256:..." or empty

  std::string Name() const { return domain + "/" + path; }  // "docker.io/library/busybox"
  // Fully qualified: "docker.io/library/busybox:latest", "host/app@sha256:..",
  // "host/app:v1@sha256:.."
  std::string Canonical() const;
  // The host to send registry API requests to: docker.io is served by registry-1.docker.io.
  std::string RegistryHost() const {
    return domain == "docker.io" ? "registry-1.docker.io" : domain;
  }
  bool operator==(const Reference&) const = default;
};

// Throws Error(kInvalidArgument) naming `what` and the problem.
Reference ParseReference(std::string_view text, std::string_view what = "image reference");

}  // namespace lazysnap::labels

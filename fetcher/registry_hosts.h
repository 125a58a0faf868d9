// Where to reach a registry: containerd's hosts.toml (certs.d) format. For registry host H,
// <hosts_dir>/H/hosts.toml (or <hosts_dir>/_default/hosts.toml) lists mirrors tried in order, then
// `server`; without a file the registry itself is used (https, or http with plain_http).
//
//   server = "https://registry.example"
//   [host."http://127.0.0.1:5001"]
//     capabilities = ["pull", "resolve"]
//     skip_verify = false
//     ca = "/etc/certs/mirror-ca.pem"      # or a list
//     override_path = false                # true: the URL path replaces /v2
//     [host."http://127.0.0.1:5001".header]
//       x-team = "storage"
#pragma once

#include <string>
#include <vector>

#include "fetcher/http_client.h"

namespace lazysnap::fetcher {

struct RegistryEndpoint {
  std::string url;       // "https://host[:port]" (+ path with override_path)
  std::string api_root;  // URL prefix of API calls: url + "/v2", or url itself with override_path
  bool pull = true;      // may serve blobs
  bool resolve = true;   // may resolve tags to manifests
  TlsOptions tls;
  std::vector<std::string> headers;  // "Name: value"
  bool is_mirror = false;
};

// Parses hosts.toml text; `origin` names the file in errors (Error(kInvalidArgument)).
std::vector<RegistryEndpoint> ParseHostsToml(const std::string& text,
                                             const std::string& registry_host, bool plain_http,
                                             const std::string& origin);
// Endpoints for `registry_host` ("127.0.0.1:5000", "registry-1.docker.io"): from hosts_dir when a
// hosts.toml exists for it, else the registry itself.
std::vector<RegistryEndpoint> ResolveEndpoints(const std::string& hosts_dir,
                                               const std::string& registry_host, bool plain_http);

}  // namespace lazysnap::fetcher

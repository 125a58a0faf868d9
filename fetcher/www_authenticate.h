// Parser for WWW-Authenticate challenges (RFC 7235) as registries send them:
//   Bearer
//   realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull" Basic
//   realm="Registry"
// Untrusted input (any server can send it): bounded, and fuzzed.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace lazysnap::fetcher {

struct AuthChallenge {
  std::string scheme;                         // lowercased: "bearer", "basic"
  std::map<std::string, std::string> params;  // names lowercased
};

// Parses one header value, which may hold several challenges. Throws Error(kInvalidArgument)
// on malformed input.
std::vector<AuthChallenge> ParseWwwAuthenticate(std::string_view header);

}  // namespace lazysnap::fetcher

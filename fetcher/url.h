// URL helpers the registry client and the range fetcher share.
#pragma once

#include <string>

namespace lazysnap::fetcher {

// "host[:port]" of an absolute URL.
std::string HostOf(const std::string& url);
// An absolute URL for a Location header relative to `base`.
std::string ResolveLocation(const std::string& base, const std::string& location);
// Percent-encoding of everything but RFC 3986 unreserved characters.
std::string UrlEncode(const std::string& s);
// Statuses worth another attempt: rate limits and server errors.
inline bool RetryableStatus(long status) {
  return status == 429 || status >= 500;
}

}  // namespace lazysnap::fetcher

#include "fetcher/url.h"

#include <cctype>

namespace lazysnap::fetcher {

std::string HostOf(const std::string& url) {
  auto start = url.find("://");
  start = start == std::string::npos ? 0 : start + 3;
  auto end = url.find('/', start);
  return url.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

std::string ResolveLocation(const std::string& base, const std::string& location) {
  if (location.starts_with("http://") || location.starts_with("https://")) return location;
  auto scheme_end = base.find("://");
  auto path_start = base.find('/', scheme_end + 3);
  std::string origin = base.substr(0, path_start);
  if (location.starts_with("/")) return origin + location;
  auto last = base.rfind('/');
  return base.substr(0, last + 1) + location;
}

std::string UrlEncode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 15]);
    }
  }
  return out;
}

}  // namespace lazysnap::fetcher

#include "labels/reference.h"

#include <cctype>
#include <vector>

#include "common/error.h"
#include "labels/digest.h"

namespace lazysnap::labels {
namespace {

constexpr size_t kMaxNameLength = 255;

[[noreturn]] void Bad(std::string_view what, std::string_view text, const std::string& why) {
  throw Error(ErrorCode::kInvalidArgument,
              std::string(what) + " \"" + std::string(text.substr(0, 300)) + "\": " + why);
}

bool IsLowerAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool IsAlnum(char c) {
  return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z');
}
bool IsWord(char c) {
  return IsAlnum(c) || c == '_';
}

// path-component := [a-z0-9]+ (separator [a-z0-9]+)*, separator := [_.] | __ | [-]+
bool ValidPathComponent(std::string_view s) {
  if (s.empty() || !IsLowerAlnum(s.front()) || !IsLowerAlnum(s.back())) return false;
  size_t i = 0;
  while (i < s.size()) {
    if (IsLowerAlnum(s[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < s.size() && !IsLowerAlnum(s[j])) ++j;
    std::string_view sep = s.substr(i, j - i);
    bool dashes = sep.find_first_not_of('-') == std::string_view::npos;
    if (!(sep == "." || sep == "_" || sep == "__" || dashes)) return false;
    i = j;
  }
  return true;
}

// domain-component := [a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?
bool ValidDomainComponent(std::string_view s) {
  if (s.empty() || !IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  for (char c : s) {
    if (!IsAlnum(c) && c != '-') return false;
  }
  return true;
}

bool ValidPort(std::string_view p) {
  if (p.empty() || p.size() > 5) return false;
  for (char c : p) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// domain := host [":" port], host := domain-component ("." domain-component)* | "[" ipv6 "]"
bool ValidDomain(std::string_view d) {
  std::string_view host = d;
  if (!d.empty() && d.front() == '[') {
    auto close = d.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (char c : d.substr(1, close - 1)) {
      if (!(std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.')) return false;
    }
    std::string_view rest = d.substr(close + 1);
    return rest.empty() || (rest.front() == ':' && ValidPort(rest.substr(1)));
  }
  auto colon = d.rfind(':');
  if (colon != std::string_view::npos) {
    if (!ValidPort(d.substr(colon + 1))) return false;
    host = d.substr(0, colon);
  }
  size_t start = 0;
  while (true) {
    auto dot = host.find('.', start);
    if (!ValidDomainComponent(
            host.substr(start, dot == std::string_view::npos ? host.npos : dot - start))) {
      return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

bool ValidTag(std::string_view t) {
  if (t.empty() || t.size() > 128 || !IsWord(t.front())) return false;
  for (char c : t) {
    if (!IsWord(c) && c != '.' && c != '-') return false;
  }
  return true;
}

}  // namespace

std::string Reference::Canonical() const {
  std::string s = Name();
  if (!tag.empty()) s += ":" + tag;
  if (!digest.empty()) s += "@" + digest;
  return s;
}

Reference ParseReference(std::string_view text, std::string_view what) {
  if (text.empty()) Bad(what, text, "is empty");
  if (text.size() > 4096) Bad(what, text.substr(0, 64), "is longer than 4096 bytes");
  if (text.size() == 64 && text.find_first_not_of("0123456789abcdef") == std::string_view::npos) {
    Bad(what, text, "a 64-hex-digit string is an image ID, not a reference");
  }
  Reference ref;
  std::string_view rest = text;
  auto at = rest.find('@');
  if (at != std::string_view::npos) {
    ref.digest = ParseDigest(rest.substr(at + 1), std::string(what) + " digest").str();
    rest = rest.substr(0, at);
  }
  // The tag is after the last ':' that follows the last '/', so a port is never taken for a tag.
  auto slash = rest.rfind('/');
  auto colon = rest.rfind(':');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
    std::string_view tag = rest.substr(colon + 1);
    if (!ValidTag(tag)) Bad(what, text, "invalid tag \"" + std::string(tag.substr(0, 200)) + "\"");
    ref.tag = std::string(tag);
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) Bad(what, text, "has no repository name");
  auto first_slash = rest.find('/');
  std::string_view first = rest.substr(0, first_slash);
  bool has_domain =
      first_slash != std::string_view::npos &&
      (first.find('.') != std::string_view::npos || first.find(':') != std::string_view::npos ||
       first == "localhost" || first.front() == '[');
  std::string_view path;
  if (has_domain) {
    if (!ValidDomain(first))
      Bad(what, text, "invalid registry host \"" + std::string(first) + "\"");
    ref.domain = std::string(first);
    path = rest.substr(first_slash + 1);
  } else {
    ref.domain = "docker.io";
    path = rest;
  }
  if (ref.domain == "index.docker.io") ref.domain = "docker.io";
  ref.path = std::string(path);
  if (ref.domain == "docker.io" && ref.path.find('/') == std::string::npos)
    ref.path = "library/" + ref.path;
  size_t start = 0;
  while (true) {
    auto s = ref.path.find('/', start);
    std::string_view comp = std::string_view(ref.path).substr(
        start, s == std::string::npos ? std::string::npos : s - start);
    if (!ValidPathComponent(comp)) {
      bool upper = false;
      for (char c : comp) upper = upper || (c >= 'A' && c <= 'Z');
      Bad(what, text,
          upper ? "repository name must be lowercase"
                : "invalid repository path component \"" + std::string(comp.substr(0, 200)) + "\"");
    }
    if (s == std::string::npos) break;
    start = s + 1;
  }
  if (ref.Name().size() > kMaxNameLength)
    Bad(what, text, "repository name longer than 255 characters");
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

}  // namespace lazysnap::labels

#include "fetcher/www_authenticate.h"

#include <cctype>

#include "common/error.h"

namespace lazysnap::fetcher {
namespace {

constexpr size_t kMaxHeader = 16384;

bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}
  void SkipSpace() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t')) ++i_;
  }
  bool AtEnd() {
    SkipSpace();
    return i_ >= s_.size();
  }
  char Peek() { return AtEnd() ? '\0' : s_[i_]; }
  void Expect(char c) {
    if (Peek() != c) Fail(std::string("expected '") + c + "'");
    ++i_;
  }
  std::string Token() {
    SkipSpace();
    size_t start = i_;
    while (i_ < s_.size() && (IsTokenChar(s_[i_]) || s_[i_] == '/')) ++i_;
    if (i_ == start) Fail("expected a token");
    return std::string(s_.substr(start, i_ - start));
  }
  // An unquoted parameter value: everything up to ',' or white space.
  std::string Bare() {
    SkipSpace();
    size_t start = i_;
    while (i_ < s_.size() && s_[i_] != ',' && s_[i_] != ' ' && s_[i_] != '\t' && s_[i_] != '"')
      ++i_;
    if (i_ == start) Fail("expected a value");
    return std::string(s_.substr(start, i_ - start));
  }
  std::string Quoted() {
    Expect('"');
    std::string out;
    while (true) {
      if (i_ >= s_.size()) Fail("unterminated quoted string");
      char c = s_[i_++];
      if (c == '"') return out;
      if (c == '\\') {
        if (i_ >= s_.size()) Fail("unterminated escape");
        c = s_[i_++];
      }
      out.push_back(c);
    }
  }
  // Looks ahead: is the next thing `name =` (a parameter) rather than a new challenge's scheme?
  bool NextIsParam() {
    size_t save = i_;
    SkipSpace();
    size_t j = i_;
    while (j < s_.size() && IsTokenChar(s_[j])) ++j;
    bool param = j > i_;
    while (j < s_.size() && (s_[j] == ' ' || s_[j] == '\t')) ++j;
    param = param && j < s_.size() && s_[j] == '=';
    i_ = save;
    return param;
  }
  [[noreturn]] void Fail(const std::string& why) {
    throw Error(ErrorCode::kInvalidArgument, "WWW-Authenticate \"" +
                                                 std::string(s_.substr(0, 200)) + "\": " + why +
                                                 " at offset " + std::to_string(i_));
  }
  size_t i_ = 0;
  std::string_view s_;
};

}  // namespace

std::vector<AuthChallenge> ParseWwwAuthenticate(std::string_view header) {
  if (header.size() > kMaxHeader) {
    throw Error(ErrorCode::kInvalidArgument, "WWW-Authenticate header longer than 16 KiB");
  }
  Scanner s(header);
  std::vector<AuthChallenge> out;
  while (!s.AtEnd()) {
    if (s.Peek() == ',') {  // empty list elements are allowed
      ++s.i_;
      continue;
    }
    AuthChallenge ch;
    ch.scheme = Lower(s.Token());
    // Parameters follow the scheme, comma-separated, until a token that starts the next challenge.
    if (s.NextIsParam()) {
      while (true) {
        std::string name = Lower(s.Token());
        s.Expect('=');
        std::string value = s.Peek() == '"' ? s.Quoted() : s.Bare();
        ch.params[name] = value;
        if (ch.params.size() > 64) s.Fail("more than 64 parameters");
        if (s.AtEnd()) break;
        if (s.Peek() != ',') s.Fail("expected ',' between parameters");
        size_t comma = s.i_;
        ++s.i_;
        if (!s.NextIsParam()) {
          s.i_ = comma;  // the comma separates challenges
          break;
        }
      }
    }
    out.push_back(std::move(ch));
    if (out.size() > 16) s.Fail("more than 16 challenges");
    if (!s.AtEnd() && s.Peek() != ',') s.Fail("unexpected input");
  }
  return out;
}

}  // namespace lazysnap::fetcher

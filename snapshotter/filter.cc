#include "snapshotter/filter.h"

#include <cctype>

#include "common/error.h"

namespace lazysnap::snapshotter {
namespace {

// Regexes from callers are compiled with std::regex, whose matcher recurses per character;
// bounding the pattern keeps a hostile filter from exhausting the stack at compile time.
constexpr size_t kMaxRegexLength = 1024;

bool IsFieldChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
}
bool IsQuote(char c) {
  return c == '"' || c == '/' || c == '|';
}
bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

class Parser {
 public:
  explicit Parser(std::string_view in) : in_(in) {}

  [[noreturn]] void Fail(const std::string& msg) const {
    throw Error(ErrorCode::kInvalidArgument, "filter \"" + std::string(in_) + "\": " + msg +
                                                 " at offset " + std::to_string(pos_));
  }

  void SkipSpace() {
    while (pos_ < in_.size() && IsSpace(in_[pos_])) ++pos_;
  }
  bool AtEnd() {
    SkipSpace();
    return pos_ >= in_.size();
  }
  char Peek() { return AtEnd() ? '\0' : in_[pos_]; }

  std::string Quoted() {
    char quote = in_[pos_++];
    std::string out;
    while (true) {
      if (pos_ >= in_.size() || in_[pos_] == '\n') Fail("quoted literal not terminated");
      char c = in_[pos_++];
      if (c == quote) return out;
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (pos_ >= in_.size()) Fail("quoted literal not terminated");
      char e = in_[pos_++];
      switch (e) {
        case 'a':
          out.push_back('\a');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'v':
          out.push_back('\v');
          break;
        case '\\':
          out.push_back('\\');
          break;
        case 'x':
          out += Codepoint(16, 2);
          break;
        case 'u':
          out += Codepoint(16, 4);
          break;
        case 'U':
          out += Codepoint(16, 8);
          break;
        default:
          if (e == quote) {
            out.push_back(e);
          } else if (e >= '0' && e <= '7') {
            --pos_;
            out += Codepoint(8, 3);
          } else {
            Fail("illegal escape sequence");
          }
      }
    }
  }

  // Reads `digits` digits of `base`; returns the UTF-8 (or, for \x and octal, the raw byte).
  std::string Codepoint(int base, int digits) {
    uint32_t v = 0;
    for (int i = 0; i < digits; ++i) {
      if (pos_ >= in_.size()) Fail("illegal numeric escape sequence");
      char c = static_cast<char>(std::tolower(static_cast<unsigned char>(in_[pos_])));
      int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : 99;
      if (d >= base) Fail("illegal numeric escape sequence");
      v = v * static_cast<uint32_t>(base) + static_cast<uint32_t>(d);
      ++pos_;
    }
    if (digits <= 3) {
      if (v > 255) Fail("octal escape value > 255");
      return std::string(1, static_cast<char>(v));
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) Fail("escape is not a valid code point");
    std::string s;
    if (v < 0x80) {
      s.push_back(static_cast<char>(v));
    } else if (v < 0x800) {
      s.push_back(static_cast<char>(0xC0 | (v >> 6)));
      s.push_back(static_cast<char>(0x80 | (v & 0x3F)));
    } else if (v < 0x10000) {
      s.push_back(static_cast<char>(0xE0 | (v >> 12)));
      s.push_back(static_cast<char>(0x80 | ((v >> 6) & 0x3F)));
      s.push_back(static_cast<char>(0x80 | (v & 0x3F)));
    } else {
      s.push_back(static_cast<char>(0xF0 | (v >> 18)));
      s.push_back(static_cast<char>(0x80 | ((v >> 12) & 0x3F)));
      s.push_back(static_cast<char>(0x80 | ((v >> 6) & 0x3F)));
      s.push_back(static_cast<char>(0x80 | (v & 0x3F)));
    }
    return s;
  }

  std::string Field() {
    char c = Peek();
    if (IsQuote(c)) return Quoted();
    size_t start = pos_;
    while (pos_ < in_.size() && IsFieldChar(in_[pos_])) ++pos_;
    if (pos_ == start) Fail("expected field or quoted");
    return std::string(in_.substr(start, pos_ - start));
  }

  std::string Value() {
    char c = Peek();
    if (c == '\0') Fail("expected value or quoted after operator");
    if (IsQuote(c)) return Quoted();
    if (c == ',' || c == '.') Fail("expected value or quoted");
    size_t start = pos_;
    while (pos_ < in_.size() && in_[pos_] != ',' && !IsSpace(in_[pos_]) && in_[pos_] != '\0')
      ++pos_;
    return std::string(in_.substr(start, pos_ - start));
  }

  size_t pos_ = 0;
  std::string_view in_;
};

bool FieldValue(const Info& info, const std::vector<std::string>& path, std::string* value) {
  const std::string& head = path.front();
  if (head == "name") {
    *value = info.name;
    return path.size() == 1;
  }
  if (head == "parent") {
    *value = info.parent;
    return path.size() == 1;
  }
  if (head == "kind") {
    *value = KindName(info.kind);
    return path.size() == 1;
  }
  if (head == "labels") {
    if (path.size() < 2) return false;
    std::string key = path[1];
    for (size_t i = 2; i < path.size(); ++i) key += "." + path[i];
    auto it = info.labels.find(key);
    if (it == info.labels.end()) return false;
    *value = it->second;
    return true;
  }
  return false;
}

}  // namespace

Filter Filter::Parse(std::string_view text) {
  Filter f;
  Parser p(text);
  if (p.AtEnd()) return f;  // "" matches everything, as in containerd
  if (text.find('\0') != std::string_view::npos) p.Fail("unexpected NUL");
  while (true) {
    Selector s;
    s.fieldpath.push_back(p.Field());
    while (p.Peek() == '.') {
      ++p.pos_;
      s.fieldpath.push_back(p.Field());
    }
    char c = p.Peek();
    if (c == '=' || c == '!' || c == '~') {
      size_t start = p.pos_;
      while (p.pos_ < text.size() &&
             (text[p.pos_] == '=' || text[p.pos_] == '!' || text[p.pos_] == '~')) {
        ++p.pos_;
      }
      std::string_view op = text.substr(start, p.pos_ - start);
      if (op == "==") {
        s.op = Op::kEqual;
      } else if (op == "!=") {
        s.op = Op::kNotEqual;
      } else if (op == "~=") {
        s.op = Op::kMatches;
      } else {
        p.pos_ = start;
        p.Fail("unsupported operator \"" + std::string(op) + "\"");
      }
      s.value = p.Value();
      if (s.op == Op::kMatches) {
        if (s.value.size() > kMaxRegexLength) p.Fail("regular expression longer than 1024 bytes");
        try {
          s.re = std::make_shared<const std::regex>(s.value, std::regex::ECMAScript);
        } catch (const std::regex_error& e) {
          p.Fail(std::string("invalid regular expression: ") + e.what());
        }
      }
    } else if (c != ',' && c != '\0') {
      p.Fail(std::string("unexpected input '") + c + "'");
    }
    f.selectors_.push_back(std::move(s));
    if (p.AtEnd()) break;
    if (p.Peek() != ',') p.Fail(std::string("unexpected input '") + p.Peek() + "'");
    ++p.pos_;
  }
  return f;
}

bool Filter::Match(const Info& info) const {
  for (const auto& s : selectors_) {
    std::string value;
    bool present = FieldValue(info, s.fieldpath, &value);
    bool ok = false;
    switch (s.op) {
      case Op::kPresent:
        ok = present;
        break;
      case Op::kEqual:
        ok = present && value == s.value;
        break;
      case Op::kNotEqual:
        ok = value != s.value;
        break;
      case Op::kMatches:
        try {
          ok = std::regex_search(value, *s.re);
        } catch (const std::regex_error&) {
          ok = false;  // e.g. complexity limits: treat as no match, as containerd does on errors
        }
        break;
    }
    if (!ok) return false;
  }
  return true;
}

FilterSet FilterSet::Parse(const std::vector<std::string>& filters) {
  FilterSet set;
  for (const auto& f : filters) set.any_.push_back(Filter::Parse(f));
  return set;
}

bool FilterSet::Match(const Info& info) const {
  if (any_.empty()) return true;
  for (const auto& f : any_) {
    if (f.Match(info)) return true;
  }
  return false;
}

}  // namespace lazysnap::snapshotter

#include "common/arg_parser.h"

#include <cstdio>
#include <sstream>

namespace lazysnap {
namespace {

std::vector<std::string> Split(const std::string& names) {
  std::vector<std::string> out;
  std::istringstream in(names);
  for (std::string n; std::getline(in, n, '|');) out.push_back(n);
  return out;
}

}  // namespace

ArgParser::ArgParser(std::string name, std::string usage)
    : name_(std::move(name)), usage_(std::move(usage)) {}

ArgParser& ArgParser::Value(const std::string& names, std::string* out) {
  flags_.push_back({Split(names), [out](const std::string& v) { *out = v; }});
  return *this;
}

ArgParser& ArgParser::Values(const std::string& names, std::vector<std::string>* out) {
  flags_.push_back({Split(names), [out](const std::string& v) { out->push_back(v); }});
  return *this;
}

ArgParser& ArgParser::Switch(const std::string& names, bool* out) {
  flags_.push_back({Split(names), nullptr, out});
  return *this;
}

ArgParser& ArgParser::Positional(std::string* out) {
  positionals_.push_back(out);
  return *this;
}

ArgParser& ArgParser::Then(std::function<void()> fn) {
  then_.push_back(std::move(fn));
  return *this;
}

const ArgParser::Flag* ArgParser::Find(const std::string& arg) const {
  for (const auto& f : flags_) {
    for (const auto& n : f.names) {
      if (n == arg) return &f;
    }
  }
  return nullptr;
}

std::optional<int> ArgParser::Parse(const std::vector<std::string>& args, size_t first) {
  size_t next_positional = 0;
  for (size_t i = first; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      std::fputs(usage_.c_str(), stdout);
      return 0;
    }
    if (const Flag* f = Find(a)) {
      if (!f->set) {
        *f->on = true;
      } else if (i + 1 >= args.size()) {
        return UsageError(a + " needs a value");
      } else {
        f->set(args[++i]);
      }
    } else if (!a.starts_with("-") && next_positional < positionals_.size()) {
      *positionals_[next_positional++] = a;
    } else {
      return UsageError("unexpected argument \"" + a + "\"");
    }
  }
  for (const auto& fn : then_) fn();
  return std::nullopt;
}

std::optional<int> ArgParser::Parse(int argc, char** argv) {
  return Parse(std::vector<std::string>(argv, argv + argc), 1);
}

int ArgParser::UsageError(const std::string& message) const {
  if (!message.empty()) std::fprintf(stderr, "%s: %s\n", name_.c_str(), message.c_str());
  std::fputs(usage_.c_str(), stderr);
  return 2;
}

}  // namespace lazysnap

#include "cli/args.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "common/error.h"

namespace lazysnap::cli {
namespace {

std::vector<std::string> Split(const std::string& names) {
  std::vector<std::string> out;
  std::istringstream in(names);
  for (std::string n; std::getline(in, n, '|');) out.push_back(n);
  return out;
}

}  // namespace

ArgParser::ArgParser(std::string command, std::string usage)
    : command_(std::move(command)), usage_(std::move(usage)) {}

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

ArgParser& ArgParser::Registry(fetcher::RegistryOptions* opts) {
  registry_ = opts;
  Value("--hosts-dir", &opts->hosts_dir);
  Switch("--plain-http", &opts->plain_http);
  return Value("--docker-config", &opts->docker_config);
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
  if (registry_ && registry_->docker_config.empty()) {
    if (const char* home = std::getenv("HOME"))
      registry_->docker_config = std::string(home) + "/.docker/config.json";
  }
  return std::nullopt;
}

int ArgParser::UsageError(const std::string& message) const {
  if (!message.empty())
    std::fprintf(stderr, "lazysnap %s: %s\n", command_.c_str(), message.c_str());
  std::fputs(usage_.c_str(), stderr);
  return 2;
}

uint64_t ParseSize(const std::string& s) {
  if (s.empty() || s[0] < '0' || s[0] > '9')
    throw Error(ErrorCode::kInvalidArgument, "not a size: \"" + s + "\"");
  size_t pos = 0;
  uint64_t n = 0;
  try {
    n = std::stoull(s, &pos);
  } catch (const std::exception&) {
    throw Error(ErrorCode::kInvalidArgument, "not a size: \"" + s + "\"");
  }
  std::string unit = s.substr(pos);
  int shift = 0;
  if (unit == "K" || unit == "KiB")
    shift = 10;
  else if (unit == "M" || unit == "MiB")
    shift = 20;
  else if (unit == "G" || unit == "GiB")
    shift = 30;
  else if (unit == "T" || unit == "TiB")
    shift = 40;
  else if (!unit.empty())
    throw Error(ErrorCode::kInvalidArgument, "not a size: \"" + s + "\"");
  if (shift && n > (UINT64_MAX >> shift)) {
    throw Error(ErrorCode::kInvalidArgument, "size too large: \"" + s + "\"");
  }
  return n << shift;
}

}  // namespace lazysnap::cli

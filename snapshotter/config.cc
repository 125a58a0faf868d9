#include "snapshotter/config.h"

#include <toml++/toml.h>
#include <set>

#include "common/error.h"
#include "common/file_util.h"

namespace lazysnap::snapshotter {
namespace {

[[noreturn]] void Fail(const std::string& origin, const std::string& msg) {
  throw Error(ErrorCode::kInvalidArgument, "config " + origin + ": " + msg);
}

std::string GetString(const toml::table& t, const std::string& key, const std::string& origin,
                      const std::string& fallback) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return fallback;
  auto v = n->value<std::string>();
  if (!n->is_string() || !v) Fail(origin, "\"" + key + "\" must be a string");
  return *v;
}

void RejectUnknown(const toml::table& t, const std::set<std::string>& known,
                   const std::string& where, const std::string& origin) {
  for (const auto& [k, v] : t) {
    std::string key(k.str());
    if (!known.count(key)) {
      Fail(
          origin, "unknown key \"" + where + key + "\" (known: " + [&] {
            std::string s;
            for (const auto& x : known) s += (s.empty() ? "" : ", ") + x;
            return s;
          }() + ")");
    }
  }
}

}  // namespace

DaemonConfig ParseDaemonConfig(const std::string& text, const std::string& origin) {
  toml::table t;
  try {
    t = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    Fail(origin,
         std::string(e.description()) + " at line " + std::to_string(e.source().begin.line));
  }
  RejectUnknown(t, {"root", "address", "log_level"}, "", origin);
  DaemonConfig c;
  c.root = GetString(t, "root", origin, c.root);
  c.address = GetString(t, "address", origin, c.address);
  std::string level = GetString(t, "log_level", origin, "info");
  try {
    c.log_level = ParseLogLevel(level);
  } catch (const Error& e) {
    Fail(origin, e.what());
  }
  if (c.root.empty() || c.root.front() != '/') Fail(origin, "\"root\" must be an absolute path");
  if (c.address.empty() || c.address.front() != '/')
    Fail(origin, "\"address\" must be an absolute socket path");
  return c;
}

DaemonConfig LoadDaemonConfig(const std::string& path, bool must_exist) {
  if (!PathExists(path)) {
    if (must_exist) throw Error(ErrorCode::kNotFound, "config file " + path + " does not exist");
    return DaemonConfig{};
  }
  return ParseDaemonConfig(ReadFile(path), path);
}

}  // namespace lazysnap::snapshotter

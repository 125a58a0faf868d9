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

bool GetBool(const toml::table& t, const std::string& key, const std::string& where,
             const std::string& origin, bool fallback) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return fallback;
  if (!n->is_boolean()) Fail(origin, "\"" + where + key + "\" must be true or false");
  return *n->value<bool>();
}

std::string OneOf(const std::string& value, const std::set<std::string>& allowed,
                  const std::string& key, const std::string& origin) {
  if (!allowed.count(value)) {
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : " | ") + ("\"" + a + "\"");
    Fail(origin, "\"" + key + "\" is \"" + value + "\", want " + list);
  }
  return value;
}

int64_t GetInt(const toml::table& t, const std::string& key, const std::string& where,
               const std::string& origin, int64_t fallback, int64_t min) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return fallback;
  if (!n->is_integer()) Fail(origin, "\"" + where + key + "\" must be an integer");
  int64_t v = *n->value<int64_t>();
  if (v < min) Fail(origin, "\"" + where + key + "\" must be at least " + std::to_string(min));
  return v;
}

std::vector<std::string> GetStrings(const toml::table& t, const std::string& key,
                                    const std::string& where, const std::string& origin) {
  std::vector<std::string> out;
  const toml::node* n = t.get(key);
  if (n == nullptr) return out;
  const toml::array* a = n->as_array();
  if (a == nullptr) Fail(origin, "\"" + where + key + "\" must be an array of strings");
  for (const auto& el : *a) {
    auto v = el.value<std::string>();
    if (!el.is_string() || !v) Fail(origin, "\"" + where + key + "\" must be an array of strings");
    out.push_back(*v);
  }
  return out;
}

LazySettings ParseLazy(const toml::table& t, const std::string& origin) {
  RejectUnknown(t,
                {"enable",
                 "socket",
                 "root",
                 "cache_dir",
                 "cache_max_mb",
                 "hosts_dir",
                 "docker_config",
                 "plain_http",
                 "read_timeout_s",
                 "fuse_threads",
                 "span_cache_mb",
                 "span_store_mb",
                 "readahead_spans",
                 "readahead_threads",
                 "read_ahead_kb",
                 "splice_reads",
                 "kernel_erofs",
                 "erofs_directio",
                 "erofs_read_ahead_kb",
                 "background_fetch",
                 "background_fetch_delay_s",
                 "background_fetch_mb_per_s",
                 "prefetch",
                 "prefetch_record_s",
                 "keep_connections",
                 "keep_connections_s",
                 "metrics_address"},
                "lazy.", origin);
  LazySettings l;
  l.enable = GetBool(t, "enable", "lazy.", origin, l.enable);
  l.socket = GetString(t, "socket", origin, l.socket);
  l.root = GetString(t, "root", origin, l.root);
  l.cache_dir = GetString(t, "cache_dir", origin, l.cache_dir);
  l.cache_max_mb = GetInt(t, "cache_max_mb", "lazy.", origin, l.cache_max_mb, 64);
  l.hosts_dir = GetString(t, "hosts_dir", origin, l.hosts_dir);
  l.docker_config = GetString(t, "docker_config", origin, l.docker_config);
  l.plain_http = GetStrings(t, "plain_http", "lazy.", origin);
  l.read_timeout_s = GetInt(t, "read_timeout_s", "lazy.", origin, l.read_timeout_s, 1);
  l.fuse_threads = GetInt(t, "fuse_threads", "lazy.", origin, l.fuse_threads, 1);
  l.span_cache_mb = GetInt(t, "span_cache_mb", "lazy.", origin, l.span_cache_mb, 8);
  l.span_store_mb = GetInt(t, "span_store_mb", "lazy.", origin, l.span_store_mb, 0);
  l.readahead_spans = GetInt(t, "readahead_spans", "lazy.", origin, l.readahead_spans, 0);
  l.readahead_threads = GetInt(t, "readahead_threads", "lazy.", origin, l.readahead_threads, 1);
  l.read_ahead_kb = GetInt(t, "read_ahead_kb", "lazy.", origin, l.read_ahead_kb, 0);
  l.splice_reads = GetBool(t, "splice_reads", "lazy.", origin, l.splice_reads);
  l.kernel_erofs = GetBool(t, "kernel_erofs", "lazy.", origin, l.kernel_erofs);
  l.erofs_directio = GetBool(t, "erofs_directio", "lazy.", origin, l.erofs_directio);
  l.erofs_read_ahead_kb =
      GetInt(t, "erofs_read_ahead_kb", "lazy.", origin, l.erofs_read_ahead_kb, 0);
  l.background_fetch = GetBool(t, "background_fetch", "lazy.", origin, l.background_fetch);
  l.background_fetch_delay_s =
      GetInt(t, "background_fetch_delay_s", "lazy.", origin, l.background_fetch_delay_s, 0);
  l.background_fetch_mb_per_s =
      GetInt(t, "background_fetch_mb_per_s", "lazy.", origin, l.background_fetch_mb_per_s, 0);
  l.prefetch = GetBool(t, "prefetch", "lazy.", origin, l.prefetch);
  l.prefetch_record_s = GetInt(t, "prefetch_record_s", "lazy.", origin, l.prefetch_record_s, 0);
  l.keep_connections = GetBool(t, "keep_connections", "lazy.", origin, l.keep_connections);
  l.keep_connections_s = GetInt(t, "keep_connections_s", "lazy.", origin, l.keep_connections_s, 0);
  l.metrics_address = GetString(t, "metrics_address", origin, l.metrics_address);
  for (const std::string* p : {&l.socket, &l.root, &l.cache_dir}) {
    if (p->empty() || p->front() != '/')
      Fail(origin, "lazy paths (socket, root, cache_dir) must be absolute, got \"" + *p + "\"");
  }
  return l;
}

ProxySettings ParseProxy(const toml::table& t, const std::string& origin) {
  RejectUnknown(t, {"enable", "fallback", "mount_type", "override"}, "proxy.", origin);
  ProxySettings p;
  p.enable = GetBool(t, "enable", "proxy.", origin, p.enable);
  p.fallback = OneOf(GetString(t, "fallback", origin, p.fallback), {"native", "error"},
                     "proxy.fallback", origin);
  p.mount_type = GetString(t, "mount_type", origin, p.mount_type);
  if (p.mount_type.empty()) Fail(origin, "\"proxy.mount_type\" must not be empty");
  if (const toml::node* o = t.get("override")) {
    const toml::array* arr = o->as_array();
    if (arr == nullptr)
      Fail(origin, "\"proxy.override\" must be an array of tables ([[proxy.override]])");
    for (const auto& el : *arr) {
      const toml::table* ot = el.as_table();
      if (ot == nullptr) Fail(origin, "\"proxy.override\" entries must be tables");
      RejectUnknown(*ot, {"image", "mode"}, "proxy.override.", origin);
      ProxySettings::Override ov;
      ov.image = GetString(*ot, "image", origin, "");
      if (ov.image.empty()) Fail(origin, "\"proxy.override.image\" is required");
      ov.mode = OneOf(GetString(*ot, "mode", origin, ""), {"native", "proxy"},
                      "proxy.override.mode", origin);
      p.overrides.push_back(ov);
    }
  }
  return p;
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
  RejectUnknown(t, {"root", "address", "log_level", "metrics_address", "proxy", "lazy"}, "",
                origin);
  DaemonConfig c;
  c.root = GetString(t, "root", origin, c.root);
  c.address = GetString(t, "address", origin, c.address);
  c.metrics_address = GetString(t, "metrics_address", origin, c.metrics_address);
  std::string level = GetString(t, "log_level", origin, "info");
  try {
    c.log_level = ParseLogLevel(level);
  } catch (const Error& e) {
    Fail(origin, e.what());
  }
  if (const toml::node* p = t.get("proxy")) {
    if (!p->is_table()) Fail(origin, "\"proxy\" must be a table ([proxy])");
    c.proxy = ParseProxy(*p->as_table(), origin);
  }
  if (const toml::node* p = t.get("lazy")) {
    if (!p->is_table()) Fail(origin, "\"lazy\" must be a table ([lazy])");
    c.lazy = ParseLazy(*p->as_table(), origin);
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

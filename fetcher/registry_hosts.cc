#include "fetcher/registry_hosts.h"

#include <toml++/toml.h>

#include "common/error.h"
#include "common/file_util.h"

namespace lazysnap::fetcher {
namespace {

[[noreturn]] void Bad(const std::string& origin, const std::string& why) {
  throw Error(ErrorCode::kInvalidArgument, "hosts config " + origin + ": " + why);
}

RegistryEndpoint Endpoint(std::string url, bool override_path) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  RegistryEndpoint e;
  e.url = url;
  e.api_root = override_path ? url : url + "/v2";
  return e;
}

RegistryEndpoint Default(const std::string& host, bool plain_http) {
  return Endpoint((plain_http ? "http://" : "https://") + host, false);
}

void CheckUrl(const std::string& url, const std::string& origin) {
  if (!url.starts_with("http://") && !url.starts_with("https://")) {
    Bad(origin, "\"" + url + "\" must start with http:// or https://");
  }
}

}  // namespace

std::vector<RegistryEndpoint> ParseHostsToml(const std::string& text,
                                             const std::string& registry_host, bool plain_http,
                                             const std::string& origin) {
  toml::table t;
  try {
    t = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    Bad(origin, std::string(e.description()) + " at line " + std::to_string(e.source().begin.line));
  }
  std::vector<RegistryEndpoint> out;
  for (const auto& [k, v] : t) {
    if (k.str() != "server" && k.str() != "host")
      Bad(origin, "unknown key \"" + std::string(k.str()) + "\"");
  }
  if (const toml::table* hosts = t["host"].as_table()) {
    // toml++ keeps insertion order, which is the file's order: mirrors are tried as written.
    for (const auto& [url_key, node] : *hosts) {
      std::string url(url_key.str());
      CheckUrl(url, origin);
      const toml::table* h = node.as_table();
      if (!h) Bad(origin, "host \"" + url + "\" must be a table");
      bool override_path = (*h)["override_path"].value_or(false);
      RegistryEndpoint e = Endpoint(url, override_path);
      e.is_mirror = true;
      if (const toml::array* caps = (*h)["capabilities"].as_array()) {
        e.pull = e.resolve = false;
        for (const auto& c : *caps) {
          auto s = c.value<std::string>();
          if (!s) Bad(origin, "capabilities of \"" + url + "\" must be strings");
          if (*s == "pull")
            e.pull = true;
          else if (*s == "resolve")
            e.resolve = true;
          else if (*s != "push")
            Bad(origin, "unknown capability \"" + *s + "\" for \"" + url + "\"");
        }
      }
      e.tls.skip_verify = (*h)["skip_verify"].value_or(false);
      if (auto ca = (*h)["ca"].value<std::string>()) {
        e.tls.ca_file = *ca;
      } else if (const toml::array* cas = (*h)["ca"].as_array()) {
        // libcurl takes one bundle; the first CA file is used (several are rare for mirrors).
        if (!cas->empty()) e.tls.ca_file = cas->front().value_or(std::string());
      }
      if (const toml::table* hdr = (*h)["header"].as_table()) {
        for (const auto& [name, value] : *hdr) {
          auto s = value.value<std::string>();
          if (!s) Bad(origin, "header \"" + std::string(name.str()) + "\" must be a string");
          e.headers.push_back(std::string(name.str()) + ": " + *s);
        }
      }
      for (const auto& [hk, hv] : *h) {
        std::string key(hk.str());
        if (key != "capabilities" && key != "skip_verify" && key != "ca" &&
            key != "override_path" && key != "header" && key != "client") {
          Bad(origin, "unknown key \"" + key + "\" in host \"" + url + "\"");
        }
      }
      out.push_back(std::move(e));
    }
  }
  if (auto server = t["server"].value<std::string>()) {
    CheckUrl(*server, origin);
    out.push_back(Endpoint(*server, false));
  } else {
    out.push_back(Default(registry_host, plain_http));
  }
  return out;
}

std::vector<RegistryEndpoint> ResolveEndpoints(const std::string& hosts_dir,
                                               const std::string& registry_host, bool plain_http) {
  if (!hosts_dir.empty()) {
    for (const std::string& dir : {registry_host, std::string("_default")}) {
      std::string path = hosts_dir + "/" + dir + "/hosts.toml";
      if (PathExists(path)) return ParseHostsToml(ReadFile(path), registry_host, plain_http, path);
    }
  }
  return {Default(registry_host, plain_http)};
}

}  // namespace lazysnap::fetcher

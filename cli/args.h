// The command line of a `lazysnap` subcommand: flags with a value, switches and positionals, one
// parser for all of them (the same errors, -h/--help and registry flags everywhere).
//
//   std::string out, ref;
//   ArgParser p("fetch", kUsage);
//   p.Value("-o|--output", &out).Registry(&opts).Positional(&ref);
//   if (auto rc = p.Parse(args)) return *rc;
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "fetcher/registry_client.h"

namespace lazysnap::cli {

class ArgParser {
 public:
  ArgParser(std::string command, std::string usage);

  // `names`: alternatives separated by '|', e.g. "-o|--output".
  ArgParser& Value(const std::string& names, std::string* out);
  ArgParser& Values(const std::string& names, std::vector<std::string>* out);  // repeatable
  ArgParser& Switch(const std::string& names, bool* out);
  // Filled in order by the arguments that are not flags; more of them is a usage error.
  ArgParser& Positional(std::string* out);
  // --hosts-dir DIR, --plain-http, --docker-config FILE (default ~/.docker/config.json).
  ArgParser& Registry(fetcher::RegistryOptions* opts);

  // nullopt: parsed, go on. Otherwise the exit code to return: 0 after -h/--help (usage on
  // stdout), 2 after a usage error (what was wrong and the usage on stderr).
  std::optional<int> Parse(const std::vector<std::string>& args, size_t first = 0);
  // Prints `message` (if any) and the usage to stderr; returns 2, the usage-error exit code.
  int UsageError(const std::string& message = "") const;

 private:
  struct Flag {
    std::vector<std::string> names;
    std::function<void(const std::string&)> set;  // null: a switch
    bool* on = nullptr;
  };
  const Flag* Find(const std::string& arg) const;

  std::string command_, usage_;
  std::vector<Flag> flags_;
  std::vector<std::string*> positionals_;
  fetcher::RegistryOptions* registry_ = nullptr;
};

// "512M" -> bytes: a count, optionally with K/M/G/T (or KiB/MiB/GiB/TiB: powers of 1024).
// Throws Error(kInvalidArgument) on anything else or on overflow.
uint64_t ParseSize(const std::string& s);

}  // namespace lazysnap::cli

// The command line of a program or a subcommand: flags with a value, switches and positionals,
// one parser for all of them (the same errors and -h/--help everywhere: the `lazysnap`
// subcommands and the daemons).
//
//   std::string out, ref;
//   ArgParser p("lazysnap fetch", kUsage);
//   p.Value("-o|--output", &out).Positional(&ref);
//   if (auto rc = p.Parse(args)) return *rc;
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace lazysnap {

class ArgParser {
 public:
  // `name` starts every usage error ("lazysnap fetch: ...", "lazysnapd: ...").
  ArgParser(std::string name, std::string usage);

  // `names`: alternatives separated by '|', e.g. "-o|--output".
  ArgParser& Value(const std::string& names, std::string* out);
  ArgParser& Values(const std::string& names, std::vector<std::string>* out);  // repeatable
  ArgParser& Switch(const std::string& names, bool* out);
  // Filled in order by the arguments that are not flags; more of them is a usage error.
  ArgParser& Positional(std::string* out);
  // Runs after a successful Parse, in the order added: defaults that depend on what was given.
  ArgParser& Then(std::function<void()> fn);

  // nullopt: parsed, go on. Otherwise the exit code to return: 0 after -h/--help (usage on
  // stdout), 2 after a usage error (what was wrong and the usage on stderr).
  std::optional<int> Parse(const std::vector<std::string>& args, size_t first = 0);
  std::optional<int> Parse(int argc, char** argv);  // argv[1..]
  // Prints `message` (if any) and the usage to stderr; returns 2, the usage-error exit code.
  int UsageError(const std::string& message = "") const;

 private:
  struct Flag {
    std::vector<std::string> names;
    std::function<void(const std::string&)> set;  // null: a switch
    bool* on = nullptr;
  };
  const Flag* Find(const std::string& arg) const;

  std::string name_, usage_;
  std::vector<Flag> flags_;
  std::vector<std::string*> positionals_;
  std::vector<std::function<void()>> then_;
};

}  // namespace lazysnap

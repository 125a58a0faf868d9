// Entry points of `lazysnap` subcommands; each returns the process exit code
// (0 ok, 1 failure, 2 usage error).
#pragma once

#include <string>
#include <vector>

namespace lazysnap::cli {

int RunBuild(const std::vector<std::string>& args);
int RunCache(const std::vector<std::string>& args);
int RunFetch(const std::vector<std::string>& args);
int RunIndex(const std::vector<std::string>& args);
int RunInspect(const std::vector<std::string>& args);
int RunMount(const std::vector<std::string>& args);
int RunPrefetch(const std::vector<std::string>& args);
int RunUmount(const std::vector<std::string>& args);
int RunStatus(const std::vector<std::string>& args);
int RunVersion(const std::vector<std::string>& args);

}  // namespace lazysnap::cli

#include "tests/support/containerd.h"

#include <unistd.h>

#include <set>
#include <sstream>

#include "common/error.h"
#include "common/file_util.h"
#include "tests/support/registry.h"

namespace lazysnap::testing {

Containerd::Containerd(const ContainerdOptions& opts)
    : address_(dir_ / "containerd.sock"), ns_("lazysnap-test-" + std::to_string(::getpid())) {
  std::ostringstream cfg;
  cfg << "version = 2\n"
      << "root = \"" << (dir_ / "root") << "\"\n"
      << "state = \"" << (dir_ / "state") << "\"\n";
  if (!opts.cri) cfg << "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n";
  cfg << "[grpc]\n  address = \"" << address_ << "\"\n"
      << "[ttrpc]\n  address = \"" << address_ << ".ttrpc\"\n"
      << "[debug]\n  address = \"" << (dir_ / "debug.sock") << "\"\n"
      << "[metrics]\n  address = \"\"\n"
      << "[proxy_plugins.lazysnap]\n  type = \"snapshot\"\n  address = \""
      << opts.snapshotter_socket << "\"\n";
  if (opts.cri) {
    cfg << "[plugins.\"io.containerd.grpc.v1.cri\"]\n"
        << "  restrict_oom_score_adj = true\n"
        << "  sandbox_image = \"" << opts.sandbox_image << "\"\n"
        << "  [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n"
        << "    snapshotter = \"" << opts.cri_snapshotter << "\"\n"
        << "    disable_snapshot_annotations = "
        << (opts.cri_snapshot_annotations ? "false" : "true") << "\n"
        << "  [plugins.\"io.containerd.grpc.v1.cri\".cni]\n"
        << "    bin_dir = \"" << (dir_ / "cni-bin") << "\"\n    conf_dir = \""
        << (dir_ / "cni-conf") << "\"\n";
    if (!opts.mirror_host.empty()) {
      cfg << "  [plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"" << opts.mirror_host
          << "\"]\n"
          << "    endpoint = [\"http://" << opts.mirror_host << "\"]\n";
    }
  }
  WriteFileAtomic(dir_ / "config.toml", cfg.str());
  SpawnOptions so;
  so.stdout_path = log_path();
  so.stderr_path = "=stdout";
  so.die_with_parent = true;
  proc_ = Subprocess::Spawn({"containerd", "--config", dir_ / "config.toml"}, so);
  WaitForUnixSocket(address_, 30000);
}

Containerd::~Containerd() {
  // Containers started by tests are --rm; anything left is killed with containerd's shims.
  proc_.Stop(std::chrono::seconds(10));
  RunCommand({"sh", "-c", "pkill -9 -f 'containerd-shim.*-namespace " + ns_ + " ' || true"},
             std::chrono::seconds(10));
}

CommandResult Containerd::Ctr(const std::vector<std::string>& args, int timeout_s,
                              const std::string& ns) const {
  std::vector<std::string> argv = {"ctr", "-a", address_, "-n", ns.empty() ? ns_ : ns};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv, std::chrono::seconds(timeout_s));
}

std::string Containerd::CtrOrThrow(const std::vector<std::string>& args, int timeout_s,
                                   const std::string& ns) const {
  auto r = Ctr(args, timeout_s, ns);
  if (r.exit_code != 0) {
    std::string cmd;
    for (const auto& a : args) cmd += " " + a;
    std::string log = PathExists(log_path()) ? ReadFile(log_path()) : "";
    if (log.size() > 4000) log = log.substr(log.size() - 4000);
    throw Error(ErrorCode::kInternal, "ctr" + cmd + " failed (exit " + std::to_string(r.exit_code) +
                                          "):\n" + r.output + "\n--- containerd log tail ---\n" +
                                          log);
  }
  return r.output;
}

std::string Containerd::TopCommittedSnapshot(const std::string& snapshotter,
                                             const std::string& ns) const {
  std::istringstream in(CtrOrThrow({"snapshots", "--snapshotter", snapshotter, "ls"}, 60, ns));
  std::string line;
  std::set<std::string> names, parents;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string key, parent, kind;
    f >> key >> parent >> kind;
    if (kind != "Committed") continue;
    names.insert(key);
    parents.insert(parent);
  }
  for (const auto& n : names)
    if (!parents.count(n)) return n;
  throw Error(ErrorCode::kNotFound, "no committed snapshot in " + snapshotter);
}

}  // namespace lazysnap::testing

// lazysnap-guest: mounts a container rootfs inside a (Kata) guest from the proxy descriptor that
// lazysnapd hands to the runtime. See guest-agent/README.md.
//
//   lazysnap-guest mount  --descriptor FILE|- --target DIR [--socket PATH] [options]
//   lazysnap-guest serve  --socket PATH [options]
//   lazysnap-guest umount --socket PATH --target DIR
//   lazysnap-guest status --socket PATH
//   lazysnap-guest call   --socket PATH JSON
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/log.h"
#include "guest-agent/agent.h"
#include "guest-agent/descriptor_input.h"
#include "lazy/control.h"

namespace lazysnap::guest {
namespace {

constexpr const char* kUsage =
    "usage:\n"
    "  lazysnap-guest mount --descriptor FILE|- --target DIR [--socket PATH] [options]\n"
    "      mount the rootfs, print a readiness JSON line, serve lazy layers until SIGTERM/SIGINT\n"
    "      or an umount request on --socket; then unmount everything and exit\n"
    "  lazysnap-guest serve --socket PATH [options]\n"
    "      answer mount/umount/status requests (one JSON line per connection) until SIGTERM\n"
    "  lazysnap-guest umount --socket PATH --target DIR\n"
    "  lazysnap-guest status --socket PATH\n"
    "  lazysnap-guest call --socket PATH JSON        send one raw request, print the reply\n"
    "options:\n"
    "  --state DIR            state: indexes, EROFS images, layer mounts, upper dirs\n"
    "                         (default /var/lib/lazysnap-guest)\n"
    "  --cache-dir DIR        chunk cache of lazily read bytes (default STATE/cache)\n"
    "  --cache-max-mb N       chunk cache size limit (default 10240)\n"
    "  --plain-http HOST      reach registry HOST (host[:port]) over http; repeatable\n"
    "  --hosts-dir DIR        containerd-style certs.d dir (mirrors, TLS, headers)\n"
    "  --docker-config FILE   registry credentials (docker config.json \"auths\")\n"
    "  --read-timeout S       a lazy read waits this long for the registry, then EIO (60)\n"
    "  --erofs-backend B      auto|file|loop: how un-indexed layers' EROFS images are mounted\n"
    "  --mkfs PATH            mkfs.erofs to build EROFS images with\n"
    "  --parallel-layers N    un-indexed layers fetched and built at once (default 3)\n"
    "  --full-images          un-indexed layers as full EROFS images (data copied in) instead\n"
    "                         of index-only images + their tars (which need Linux >= 5.16)\n"
    "  --filesystems-file F   kernel filesystem list to check (default /proc/filesystems)\n"
    "  --log-level L          debug|info|warn|error (default info); logs go to stderr\n";

struct Args {
  std::string verb;
  std::string descriptor, target, socket;
  std::vector<std::string> positional;
  std::string log_level = "info";
  AgentOptions agent;
};

Args Parse(int argc, char** argv) {
  Args a;
  if (argc < 2) throw Error(ErrorCode::kInvalidArgument, "missing verb");
  a.verb = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string f = argv[i];
    auto need = [&]() -> std::string {
      if (i + 1 >= argc) throw Error(ErrorCode::kInvalidArgument, f + " needs a value");
      return argv[++i];
    };
    auto number = [&](const std::string& v) -> long {
      char* end = nullptr;
      long n = std::strtol(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n < 0)
        throw Error(ErrorCode::kInvalidArgument, f + " wants a number, not \"" + v + "\"");
      return n;
    };
    if (f == "--descriptor") {
      a.descriptor = need();
    } else if (f == "--target") {
      a.target = need();
    } else if (f == "--socket") {
      a.socket = need();
    } else if (f == "--state") {
      a.agent.state_dir = need();
    } else if (f == "--cache-dir") {
      a.agent.cache_dir = need();
    } else if (f == "--cache-max-mb") {
      a.agent.cache_max_bytes = static_cast<uint64_t>(number(need())) << 20;
    } else if (f == "--plain-http") {
      a.agent.plain_http.push_back(need());
    } else if (f == "--hosts-dir") {
      a.agent.hosts_dir = need();
    } else if (f == "--docker-config") {
      a.agent.docker_config = need();
    } else if (f == "--read-timeout") {
      a.agent.read_timeout = std::chrono::seconds(number(need()));
    } else if (f == "--erofs-backend") {
      a.agent.erofs_backend = ParseErofsBackend(need());
    } else if (f == "--mkfs") {
      a.agent.mkfs_path = need();
    } else if (f == "--full-images") {
      a.agent.full_images = true;
    } else if (f == "--parallel-layers") {
      a.agent.parallel_layers = static_cast<unsigned>(std::max(1L, number(need())));
    } else if (f == "--filesystems-file") {
      a.agent.filesystems_path = need();
    } else if (f == "--log-level") {
      a.log_level = need();
    } else if (f == "-h" || f == "--help") {
      a.verb = "help";
    } else if (!f.starts_with("--")) {
      a.positional.push_back(f);
    } else {
      throw Error(ErrorCode::kInvalidArgument, "unknown option " + f);
    }
  }
  return a;
}

void Require(const std::string& value, const char* flag, const std::string& verb) {
  if (value.empty()) throw Error(ErrorCode::kInvalidArgument, verb + " needs " + std::string(flag));
}

void PrintLine(const nlohmann::json& j) {
  std::string s = j.dump() + "\n";
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

// The client side of the socket protocol; errors read as ours, not lazysnap-fused's (whose
// protocol this is).
nlohmann::json Call(const std::string& socket, const nlohmann::json& req) {
  try {
    return lazy::CallControl(socket, req, std::chrono::minutes(30));
  } catch (const Error& e) {
    std::string m = e.what();
    for (size_t p; (p = m.find("lazysnap-fused")) != std::string::npos;)
      m.replace(p, 14, "lazysnap-guest");
    throw Error(e.code(), m);
  }
}

// Blocks the stop signals in every thread (call before any thread starts) and returns them.
sigset_t BlockStopSignals() {
  sigset_t s;
  sigemptyset(&s);
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&s, sig);
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return s;
}

const char* SignalName(int sig) {
  switch (sig) {
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    case SIGHUP:
      return "SIGHUP";
    case SIGUSR1:
      return "umount request";
  }
  return "signal";
}

// Serves until a stop signal, or (when `exit_when_empty`) until the last rootfs is unmounted.
// `announce` is printed once the socket (if any) accepts requests.
void ServeUntilStopped(GuestAgent& agent, const std::string& socket, const sigset_t& stop,
                       bool exit_when_empty, const nlohmann::json& announce, const Logger& log) {
  std::unique_ptr<lazy::ControlServer> server;
  if (!socket.empty()) {
    server = std::make_unique<lazy::ControlServer>(
        socket,
        [&agent, exit_when_empty](const nlohmann::json& req) {
          nlohmann::json reply = agent.Handle(req);
          std::string op = req.value("op", "");
          if (exit_when_empty && (op == "umount" || op == "unmount") && agent.mounted() == 0)
            ::kill(::getpid(), SIGUSR1);  // the reply is still sent: the server joins first
          return reply;
        },
        log);
    log.Info("serving", {{"socket", socket}});
  }
  PrintLine(announce);
  int sig = 0;
  sigwait(&stop, &sig);
  log.Info("stopping", {{"cause", SignalName(sig)}});
  server.reset();
  agent.UnmountAll();
}

int Run(int argc, char** argv) {
  Args a = Parse(argc, argv);
  if (a.verb == "help" || a.verb == "-h" || a.verb == "--help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (a.verb == "umount" || a.verb == "unmount") {
    Require(a.socket, "--socket", a.verb);
    Require(a.target, "--target", a.verb);
    Call(a.socket, {{"op", "umount"}, {"target", a.target}});
    return 0;
  }
  if (a.verb == "status") {
    Require(a.socket, "--socket", a.verb);
    nlohmann::json st = Call(a.socket, {{"op", "status"}});
    st.erase("ok");
    std::printf("%s\n", st.dump(2).c_str());
    return 0;
  }
  if (a.verb == "call") {
    Require(a.socket, "--socket", a.verb);
    if (a.positional.size() != 1)
      throw Error(ErrorCode::kInvalidArgument, "call wants one JSON request");
    auto req = nlohmann::json::parse(a.positional[0], nullptr, false);
    if (!req.is_object()) throw Error(ErrorCode::kInvalidArgument, "call: not a JSON object");
    PrintLine(Call(a.socket, req));
    return 0;
  }
  if (!a.positional.empty())
    throw Error(ErrorCode::kInvalidArgument, "unexpected argument " + a.positional[0]);
  Logger log(ParseLogLevel(a.log_level));
  if (a.verb == "mount") {
    Require(a.descriptor, "--descriptor", a.verb);
    Require(a.target, "--target", a.verb);
    // A bad descriptor fails before anything is touched.
    labels::ProxyDescriptor desc = ParseDescriptorInput(ReadDescriptorSource(a.descriptor));
    sigset_t stop = BlockStopSignals();
    a.agent.single_mount = true;
    std::unique_ptr<GuestAgent> agent;
    nlohmann::json report;
    try {
      agent = std::make_unique<GuestAgent>(a.agent, log);
      report = agent->Mount(desc, a.target);
    } catch (const Error& e) {
      PrintLine({{"ready", false}, {"error", e.what()}, {"code", ErrorCodeName(e.code())}});
      throw;
    }
    ServeUntilStopped(*agent, a.socket, stop, true, report, log);
    return 0;
  }
  if (a.verb == "serve") {
    Require(a.socket, "--socket", a.verb);
    sigset_t stop = BlockStopSignals();
    GuestAgent agent(a.agent, log);
    ServeUntilStopped(agent, a.socket, stop, false, {{"serving", a.socket}}, log);
    return 0;
  }
  throw Error(ErrorCode::kInvalidArgument, "unknown verb \"" + a.verb + "\"");
}

}  // namespace
}  // namespace lazysnap::guest

int main(int argc, char** argv) {
  try {
    return lazysnap::guest::Run(argc, argv);
  } catch (const lazysnap::Error& e) {
    std::fprintf(stderr, "lazysnap-guest: %s\n", e.what());
    if (e.code() == lazysnap::ErrorCode::kInvalidArgument && argc < 2)
      std::fputs(lazysnap::guest::kUsage, stderr);
    return e.code() == lazysnap::ErrorCode::kInvalidArgument ? 2 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lazysnap-guest: %s\n", e.what());
    return 1;
  }
}

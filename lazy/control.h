// The control protocol between lazysnapd (and `lazysnap status`) and lazysnap-fused: one JSON
// request per connection on a unix stream socket, one newline-terminated JSON object each way.
// Replies carry {"ok": true, ...} or {"ok": false, "code": "<error code>", "error": "<message>"}.
// Deliberately tiny: both ends are ours, the socket is root-only (0600), and a line of JSON is
// easy to drive by hand (`socat - UNIX:/run/lazysnap/fused.sock`) when troubleshooting.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "common/log.h"

namespace lazysnap::lazy {

// Sends `request` and returns the reply; an {"ok": false} reply is rethrown as the Error it
// names. Throws Error(kUnavailable) when nothing listens on `socket_path` or on timeout.
nlohmann::json CallControl(const std::string& socket_path, const nlohmann::json& request,
                           std::chrono::milliseconds timeout = std::chrono::minutes(5));

using ControlHandler = std::function<nlohmann::json(const nlohmann::json& request)>;

// Serves the socket until destroyed: one thread per connection, so a slow request (a layer
// index download) never holds up a status query. Handler exceptions become error replies.
class ControlServer {
 public:
  ControlServer(const std::string& socket_path, ControlHandler handler, const Logger& log);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lazysnap::lazy

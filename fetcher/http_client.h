// One HTTP exchange over libcurl with what a registry client needs: TLS trust settings, range
// requests, streaming bodies to a sink, timeouts, and no automatic redirects (the registry client
// follows them itself so credentials are never forwarded to another host).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace lazysnap::fetcher {

struct TlsOptions {
  std::string ca_file;       // extra CA bundle (PEM); empty: the system's
  bool skip_verify = false;  // accept any certificate (hosts.toml skip_verify)
};

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  // Sent as the request body when non-empty, and always for PUT and POST (an empty one then goes
  // out with Content-Length: 0). Must outlive the exchange (libcurl reads it in place).
  std::string body;
  TlsOptions tls;
  long connect_timeout_ms = 10000;
  long low_speed_time_s = 30;  // abort when below 1 KiB/s for this long (a stalled peer)
  long timeout_ms = 0;         // whole exchange; 0: none (large blobs)
};

struct HttpResponse {
  long status = 0;
  std::multimap<std::string, std::string> headers;  // names lowercased
  std::string body;                                 // when no sink was given
  bool aborted_by_sink = false;                     // the sink returned false: the body is partial
  std::string Header(const std::string& lower_name) const;
};

// Receives the bytes of a 2xx body as they arrive, with the status (200 vs 206 matters to range
// readers); return false to stop the transfer (the response then has aborted_by_sink set).
using BodySink = std::function<bool(long status, const char* data, size_t len)>;

class HttpClient {
 public:
  HttpClient();
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Performs the exchange. Transport failures (connect, TLS, timeout, reset) throw
  // Error(kUnavailable) naming the URL; HTTP error statuses are returned, not thrown.
  // With `sink`, the body of a 2xx answer streams to it; other bodies are kept (they are small).
  HttpResponse Perform(const HttpRequest& req, const BodySink& sink = nullptr);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;  // a curl handle reused across calls: keep-alive connections
};

}  // namespace lazysnap::fetcher

// Many HTTP exchanges at once on libcurl's multi interface: one event-loop thread drives every
// transfer of the process component, connections are kept alive and shared, HTTP/2 streams are
// multiplexed where the server offers it, and the number of connections per host is bounded.
#pragma once

#include <exception>
#include <memory>
#include <vector>

#include "fetcher/http_client.h"

namespace lazysnap::fetcher {

struct MultiResult {
  HttpResponse response;
  std::exception_ptr error;  // Error(kUnavailable) for a transport failure; response unset then
};

class MultiHttp {
 public:
  explicit MultiHttp(long max_connections_per_host = 8);
  ~MultiHttp();  // waits for transfers in flight
  MultiHttp(const MultiHttp&) = delete;
  MultiHttp& operator=(const MultiHttp&) = delete;

  // Runs all requests concurrently with the other callers' and returns when every one finished,
  // results in request order. `sinks` is empty or one per request; sinks run on the event-loop
  // thread and must not block.
  std::vector<MultiResult> PerformAll(const std::vector<HttpRequest>& requests,
                                      const std::vector<BodySink>& sinks = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lazysnap::fetcher

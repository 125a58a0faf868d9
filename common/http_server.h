// A small HTTP/1.x server for scrape endpoints (Prometheus' /metrics): GET and HEAD only, one
// request per connection (Connection: close), answered by a few threads of its own, so a client
// that connects and says nothing holds up one of them, not every scrape. A request head over
// 8 KiB, malformed, or slower than 5 s is refused or dropped; the handler only ever sees a
// well-formed path, and may be called from several threads at once.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/log.h"
#include "common/unique_fd.h"

namespace lazysnap {

struct HttpRequestLine {
  std::string method;  // e.g. "GET"
  std::string path;    // the target without its query, e.g. "/metrics"
};

constexpr size_t kMaxHttpHead = 8192;

// Parses a request head: the request line and the header lines, each ending in CRLF, then an
// empty line (the head must end exactly there). nullopt for anything malformed or longer than
// kMaxHttpHead. Headers are checked for form and otherwise ignored.
std::optional<HttpRequestLine> ParseHttpRequestHead(std::string_view head);

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class HttpServer {
 public:
  // Called with the request's path, possibly concurrently; throwing answers 500.
  using Handler = std::function<HttpResponse(const std::string& path)>;

  // Listens on `address`, "HOST:PORT" with a numeric IPv4 host or "[IPv6]:PORT"; port 0 takes a
  // free one. Throws Error(kInvalidArgument) for a malformed address, Error(kUnavailable) when it
  // cannot listen there.
  HttpServer(const std::string& address, Handler handler, const Logger& log);
  ~HttpServer();  // stops listening; a request being answered is finished first
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  const std::string& address() const { return bound_; }  // with the port actually bound

 private:
  void Loop();
  void Serve(int conn);

  Handler handler_;
  const Logger& log_;
  std::string bound_;
  UniqueFd listen_, stop_read_, stop_write_;
  std::vector<std::thread> threads_;
};

}  // namespace lazysnap

// Internal to fetcher/: how one HttpRequest becomes a configured curl easy handle, shared by the
// blocking HttpClient and the concurrent MultiHttp so both speak HTTP the same way.
#pragma once

#include <curl/curl.h>

#include "fetcher/http_client.h"

namespace lazysnap::fetcher::detail {

// curl_global_init is not thread-safe; this runs it once per process before any handle exists.
void CurlGlobalInit();

// State of one exchange; lives as long as the easy handle is in flight.
struct CurlTransfer {
  HttpResponse* resp = nullptr;
  const BodySink* sink = nullptr;
  bool aborted_by_sink = false;
  curl_slist* headers = nullptr;
  char errbuf[CURL_ERROR_SIZE] = {0};

  CurlTransfer() = default;
  CurlTransfer(const CurlTransfer&) = delete;
  CurlTransfer& operator=(const CurlTransfer&) = delete;
  ~CurlTransfer() { curl_slist_free_all(headers); }
};

// Sets every option for `req` on `c` (reset first), with `t` as header/body state.
void ConfigureEasy(CURL* c, const HttpRequest& req, CurlTransfer* t);

// Turns curl's result into the response's final fields, or throws Error(kUnavailable) naming
// the method and URL for a transport failure.
void FinishEasy(CURL* c, CURLcode rc, const HttpRequest& req, CurlTransfer* t);

}  // namespace lazysnap::fetcher::detail

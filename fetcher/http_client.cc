#include "fetcher/http_client.h"

#include <curl/curl.h>
#include <strings.h>

#include <algorithm>
#include <cctype>
#include <mutex>

#include "common/error.h"
#include "fetcher/curl_transfer.h"

namespace lazysnap::fetcher {
namespace detail {

void CurlGlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

namespace {

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<CurlTransfer*>(user);
  std::string line(data, size * n);
  if (line.starts_with("HTTP/")) {
    // A new response (after 100-continue or a proxy CONNECT). The status must be known before
    // the first body byte decides where bytes go.
    t->resp->headers.clear();
    auto sp = line.find(' ');
    if (sp != std::string::npos) t->resp->status = std::strtol(line.c_str() + sp + 1, nullptr, 10);
    return size * n;
  }
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    std::string value = line.substr(colon + 1);
    auto b = value.find_first_not_of(" \t");
    auto e = value.find_last_not_of(" \t\r\n");
    value = b == std::string::npos ? "" : value.substr(b, e - b + 1);
    t->resp->headers.emplace(name, value);
  }
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<CurlTransfer*>(user);
  size_t len = size * n;
  if (t->sink && *t->sink && t->resp->status >= 200 && t->resp->status < 300) {
    if (!(*t->sink)(t->resp->status, data, len)) {
      t->aborted_by_sink = true;
      return 0;
    }
    return len;
  }
  if (t->resp->body.size() + len > (64u << 20)) return 0;  // error bodies and manifests are small
  t->resp->body.append(data, len);
  return len;
}

}  // namespace

void ConfigureEasy(CURL* c, const HttpRequest& req, CurlTransfer* t) {
  curl_easy_reset(c);  // keeps the connection cache: keep-alive across requests
  for (const auto& h : req.headers) t->headers = curl_slist_append(t->headers, h.c_str());
  bool has_body = !req.body.empty() || req.method == "PUT" || req.method == "POST";
  if (has_body && std::none_of(req.headers.begin(), req.headers.end(), [](const std::string& h) {
        return h.size() >= 13 && strncasecmp(h.c_str(), "content-type:", 13) == 0;
      })) {
    // Without this, curl labels a body application/x-www-form-urlencoded.
    t->headers = curl_slist_append(t->headers, "Content-Type:");
  }
  curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, t->errbuf);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, t->headers);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);  // HTTP/2 where TLS offers it
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, req.connect_timeout_ms);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, req.timeout_ms);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, req.low_speed_time_s);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  // libcurl's default 16 KiB receive buffer costs a callback and a recv per 16 KiB: blob and range
  // bodies run several times faster with 512 KiB (curl's maximum).
  curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L * 1024);
  if (has_body) {
    // POSTFIELDS makes curl send the body (for PUT too: CUSTOMREQUEST below names the method).
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, req.body.data());
  }
  if (req.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (req.method != "GET" && !(has_body && req.method == "POST")) {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }
  if (!req.tls.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, req.tls.ca_file.c_str());
  if (req.tls.skip_verify) {
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  }
}

void FinishEasy(CURL* c, CURLcode rc, const HttpRequest& req, CurlTransfer* t) {
  if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && t->aborted_by_sink)) {
    std::string msg = t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc);
    throw Error(ErrorCode::kUnavailable, req.method + " " + req.url + ": " + msg);
  }
  t->resp->aborted_by_sink = t->aborted_by_sink;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &t->resp->status);
}

}  // namespace detail

std::string HttpResponse::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

struct HttpClient::Impl {
  CURL* curl = nullptr;
};

HttpClient::HttpClient() : impl_(std::make_unique<Impl>()) {
  detail::CurlGlobalInit();
  impl_->curl = curl_easy_init();
  if (impl_->curl == nullptr) throw Error(ErrorCode::kInternal, "curl_easy_init failed");
}

HttpClient::~HttpClient() {
  curl_easy_cleanup(impl_->curl);
}

HttpResponse HttpClient::Perform(const HttpRequest& req, const BodySink& sink) {
  HttpResponse resp;
  detail::CurlTransfer t;
  t.resp = &resp;
  t.sink = &sink;
  detail::ConfigureEasy(impl_->curl, req, &t);
  CURLcode rc = curl_easy_perform(impl_->curl);
  detail::FinishEasy(impl_->curl, rc, req, &t);
  return resp;
}

}  // namespace lazysnap::fetcher

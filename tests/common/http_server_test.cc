// common/http_server.h: the request-head parser on good and bad heads, and the server on a real
// TCP socket (200/404/405/400/500, HEAD without a body, an oversized head, a client that says
// nothing does not stop the next one).
#include "common/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <stdexcept>

#include "common/error.h"
#include "tests/support/http_client.h"

namespace lazysnap {
namespace {

using testing::HttpExchange;
using testing::HttpGet;

TEST(HttpRequestHead, AcceptsWellFormedHeads) {
  auto r = ParseHttpRequestHead("GET /metrics HTTP/1.1\r\nHost: x:1\r\nAccept: */*\r\n\r\n");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->method, "GET");
  EXPECT_EQ(r->path, "/metrics");
  r = ParseHttpRequestHead("HEAD /a/b?x=1&y HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->method, "HEAD");
  EXPECT_EQ(r->path, "/a/b");
  EXPECT_TRUE(ParseHttpRequestHead("GET / HTTP/1.1\r\nX-Empty:\r\nTab: a\tb\r\n\r\n"));
}

TEST(HttpRequestHead, RefusesMalformedHeads) {
  for (const char* bad : {
           "", "\r\n\r\n",
           "GET /metrics HTTP/1.1\r\n",                 // no empty line
           "GET /metrics HTTP/1.1\r\n\r\nbody",         // bytes after the head
           "GET /metrics HTTP/1.1\r\n\r\n\r\n",         // ... even CRLFs
           "GET /metrics\r\n\r\n",                      // no version
           "GET /metrics HTTP/2\r\n\r\n",               // not 1.x
           "GET metrics HTTP/1.1\r\n\r\n",              // not origin-form
           "GET  /metrics HTTP/1.1\r\n\r\n",            // two spaces
           "G(T /metrics HTTP/1.1\r\n\r\n",             // method not a token
           "GET /met rics HTTP/1.1\r\n\r\n",            // space in the target
           "GET /metrics HTTP/1.1\r\nNoColon\r\n\r\n",  // header without ':'
           "GET /metrics HTTP/1.1\r\nBad Name: v\r\n\r\n", "GET /metrics HTTP/1.1\r\n: v\r\n\r\n",
           "GET /metrics HTTP/1.1\r\nX: a\x01b\r\n\r\n",  // control character in a value
           "GET /metrics HTTP/1.1\nHost: x\n\n",          // bare LF
       }) {
    EXPECT_FALSE(ParseHttpRequestHead(bad).has_value()) << bad;
  }
  std::string big = "GET /" + std::string(kMaxHttpHead, 'a') + " HTTP/1.1\r\n\r\n";
  EXPECT_FALSE(ParseHttpRequestHead(big).has_value());
  std::string nul("GET /a\0b HTTP/1.1\r\n\r\n", 22);
  EXPECT_FALSE(ParseHttpRequestHead(nul).has_value());
}

class HttpServerTest : public ::testing::Test {
 protected:
  HttpServerTest()
      : server_(
            "127.0.0.1:0",
            [](const std::string& path) -> HttpResponse {
              if (path == "/metrics") return {200, "text/plain", "m 1\n"};
              if (path == "/throw") throw std::runtime_error("boom");
              return {404, "text/plain", "not found\n"};
            },
            log_) {}
  Logger log_{LogLevel::kError};
  HttpServer server_;
};

TEST_F(HttpServerTest, AnswersGetHeadAndErrors) {
  EXPECT_TRUE(server_.address().starts_with("127.0.0.1:"));
  EXPECT_NE(server_.address(), "127.0.0.1:0");
  EXPECT_EQ(HttpGet(server_.address(), "/metrics"), "m 1\n");
  EXPECT_EQ(HttpGet(server_.address(), "/metrics?x=1"), "m 1\n");
  std::string r = HttpExchange(server_.address(), "HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 200 OK\r\n")) << r;
  EXPECT_NE(r.find("Content-Length: 4\r\n"), std::string::npos) << r;
  EXPECT_TRUE(r.ends_with("\r\n\r\n")) << r;  // no body
  EXPECT_TRUE(
      HttpExchange(server_.address(), "GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
  EXPECT_TRUE(HttpExchange(server_.address(), "POST /metrics HTTP/1.1\r\n\r\n")
                  .starts_with("HTTP/1.1 405 "));
  EXPECT_TRUE(
      HttpExchange(server_.address(), "GET /throw HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 500 "));
  EXPECT_TRUE(HttpExchange(server_.address(), "garbage\r\n\r\n").starts_with("HTTP/1.1 400 "));
  std::string huge = "GET /metrics HTTP/1.1\r\nX: " + std::string(3 * kMaxHttpHead, 'a');
  EXPECT_TRUE(HttpExchange(server_.address(), huge).starts_with("HTTP/1.1 400 "));
}

TEST_F(HttpServerTest, AConnectionThatSaysNothingDoesNotHoldUpOtherScrapes) {
  // A client connects and sends nothing: the next scrapes are answered while it is still
  // connected (the server drops it only after 5 s), and then it is dropped.
  std::string addr = server_.address();
  UniqueFd silent = testing::HttpConnect(addr);
  UniqueFd silent2 = testing::HttpConnect(addr);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(HttpGet(addr, "/metrics"), "m 1\n");
  char c;
  errno = 0;
  EXPECT_EQ(::recv(silent.get(), &c, 1, MSG_DONTWAIT), -1) << "the silent client was dropped";
  EXPECT_EQ(errno, EAGAIN);
  pollfd pfd{silent.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 15000), 1) << "the silent client is never dropped";
  EXPECT_EQ(::recv(silent.get(), &c, 1, 0), 0);
}

TEST(HttpServer, RefusesBadAddresses) {
  Logger log(LogLevel::kError);
  auto h = [](const std::string&) { return HttpResponse{}; };
  for (const char* bad : {"", "127.0.0.1", ":80", "127.0.0.1:", "127.0.0.1:99999", "localhost:80",
                          "127.0.0.1:8x", "[::1:80", "[zz]:80"}) {
    try {
      HttpServer s(bad, h, log);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << bad << ": " << e.what();
    }
  }
  HttpServer taken("127.0.0.1:0", h, log);
  try {
    HttpServer again(taken.address(), h, log);
    ADD_FAILURE() << "two servers on " << taken.address();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable) << e.what();
  }
}

}  // namespace
}  // namespace lazysnap

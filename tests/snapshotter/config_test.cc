#include "snapshotter/config.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace lazysnap::snapshotter {
namespace {

TEST(DaemonConfig, Defaults) {
  auto c = ParseDaemonConfig("", "t.toml");
  EXPECT_EQ(c.root, "/var/lib/lazysnap");
  EXPECT_EQ(c.address, "/run/lazysnap/lazysnap.sock");
  EXPECT_EQ(c.log_level, LogLevel::kInfo);
}

TEST(DaemonConfig, Values) {
  auto c = ParseDaemonConfig(
      "root = \"/srv/ls\"\naddress = \"/run/x.sock\"\nlog_level = \"debug\"\n"
      "metrics_address = \"127.0.0.1:9101\"\n",
      "t.toml");
  EXPECT_EQ(c.metrics_address, "127.0.0.1:9101");
  EXPECT_EQ(c.root, "/srv/ls");
  EXPECT_EQ(c.address, "/run/x.sock");
  EXPECT_EQ(c.log_level, LogLevel::kDebug);
}

void ExpectError(const std::string& text, const std::string& needle) {
  try {
    ParseDaemonConfig(text, "t.toml");
    ADD_FAILURE() << "accepted: " << text;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("t.toml"), std::string::npos) << e.what();
  }
}

TEST(DaemonConfig, Errors) {
  ExpectError("rot = \"/x\"", "unknown key \"rot\"");
  ExpectError("root = 5", "\"root\" must be a string");
  ExpectError("metrics_address = 9101", "\"metrics_address\" must be a string");
  ExpectError("root = \"relative\"", "absolute");
  ExpectError("log_level = \"loud\"", "loud");
  ExpectError("root = ", "line 1");
}

TEST(DaemonConfig, TheSampleConfigLoadsWithTheDefaults) {
  // contrib/config.toml documents every key with its default: it must load and say the same.
  DaemonConfig c = LoadDaemonConfig(LAZYSNAP_SOURCE_DIR "/contrib/config.toml", true);
  DaemonConfig d;
  EXPECT_EQ(c.metrics_address, d.metrics_address);
  EXPECT_EQ(c.lazy.keep_connections_s, d.lazy.keep_connections_s);
  EXPECT_EQ(c.lazy.erofs_directio, d.lazy.erofs_directio);
  EXPECT_EQ(c.lazy.erofs_read_ahead_kb, d.lazy.erofs_read_ahead_kb);
  EXPECT_EQ(c.lazy.metrics_address, d.lazy.metrics_address);
  EXPECT_EQ(c.lazy.prefetch_record_s, d.lazy.prefetch_record_s);
  EXPECT_EQ(c.lazy.read_timeout_s, d.lazy.read_timeout_s);
}

TEST(DaemonConfig, MissingFile) {
  EXPECT_EQ(LoadDaemonConfig("/nonexistent/c.toml", false).root, "/var/lib/lazysnap");
  EXPECT_THROW(LoadDaemonConfig("/nonexistent/c.toml", true), Error);
}

}  // namespace
}  // namespace lazysnap::snapshotter

namespace lazysnap::snapshotter {
namespace {

TEST(DaemonConfig, ProxySection) {
  auto c = ParseDaemonConfig(R"(
[proxy]
enable = true
fallback = "error"
mount_type = "fuse.custom"
[[proxy.override]]
image = "registry.local/big/*"
mode = "native"
[[proxy.override]]
image = "docker.io/library/busybox:latest"
mode = "proxy"
)",
                             "t.toml");
  EXPECT_TRUE(c.proxy.enable);
  EXPECT_EQ(c.proxy.fallback, "error");
  EXPECT_EQ(c.proxy.mount_type, "fuse.custom");
  ASSERT_EQ(c.proxy.overrides.size(), 2u);
  EXPECT_EQ(c.proxy.overrides[0].image, "registry.local/big/*");
  EXPECT_EQ(c.proxy.overrides[1].mode, "proxy");
  auto d = ParseDaemonConfig("", "t.toml");
  EXPECT_FALSE(d.proxy.enable);
  EXPECT_EQ(d.proxy.fallback, "native");
  EXPECT_EQ(d.proxy.mount_type, "fuse.nydus-overlayfs");
}

TEST(DaemonConfig, ProxyErrors) {
  ExpectError("[proxy]\nenable = \"yes\"\n", "proxy.enable");
  ExpectError("[proxy]\nfallback = \"maybe\"\n", "\"native\"");
  ExpectError("[proxy]\nfalback = \"native\"\n", "unknown key \"proxy.falback\"");
  ExpectError("[[proxy.override]]\nmode = \"proxy\"\n", "proxy.override.image");
  ExpectError("[[proxy.override]]\nimage = \"x\"\nmode = \"lazy\"\n", "proxy.override.mode");
  ExpectError("proxy = 3\n", "must be a table");
}

TEST(DaemonConfig, LazySection) {
  auto d = ParseDaemonConfig("", "t.toml");
  EXPECT_FALSE(d.lazy.enable);
  EXPECT_EQ(d.lazy.socket, "/run/lazysnap/fused.sock");
  EXPECT_EQ(d.lazy.read_timeout_s, 60);
  EXPECT_EQ(d.lazy.span_store_mb, 2048);
  EXPECT_EQ(d.lazy.readahead_spans, 8);
  EXPECT_EQ(d.lazy.readahead_threads, 3);
  EXPECT_EQ(d.lazy.read_ahead_kb, 4096);
  EXPECT_TRUE(d.lazy.splice_reads);
  EXPECT_TRUE(d.lazy.background_fetch);
  EXPECT_EQ(d.lazy.background_fetch_delay_s, 10);
  EXPECT_EQ(d.lazy.background_fetch_mb_per_s, 64);
  EXPECT_TRUE(d.lazy.prefetch);
  EXPECT_EQ(d.lazy.prefetch_record_s, 30);
  EXPECT_TRUE(d.lazy.keep_connections);
  EXPECT_EQ(d.lazy.keep_connections_s, 300);
  EXPECT_EQ(d.lazy.metrics_address, "");
  EXPECT_FALSE(d.lazy.erofs_directio);
  EXPECT_EQ(d.lazy.erofs_read_ahead_kb, 512);
  auto c = ParseDaemonConfig(
      "[lazy]\nenable = true\nsocket = \"/run/f.sock\"\nroot = \"/srv/lazy\"\n"
      "cache_dir = \"/srv/cache\"\ncache_max_mb = 512\nplain_http = [\"127.0.0.1:5000\", "
      "\"reg:80\"]\nread_timeout_s = 5\nfuse_threads = 2\nspan_cache_mb = 16\n"
      "span_store_mb = 0\nreadahead_spans = 0\nreadahead_threads = 1\nread_ahead_kb = 128\n"
      "splice_reads = false\nbackground_fetch = false\nbackground_fetch_delay_s = 0\n"
      "background_fetch_mb_per_s = 0\nprefetch = false\nprefetch_record_s = 0\n"
      "keep_connections = false\nkeep_connections_s = 0\nmetrics_address = \"127.0.0.1:9199\"\n"
      "erofs_directio = true\nerofs_read_ahead_kb = 0\n",
      "t.toml");
  EXPECT_TRUE(c.lazy.enable);
  EXPECT_EQ(c.lazy.socket, "/run/f.sock");
  EXPECT_EQ(c.lazy.root, "/srv/lazy");
  EXPECT_EQ(c.lazy.cache_dir, "/srv/cache");
  EXPECT_EQ(c.lazy.cache_max_mb, 512);
  EXPECT_EQ(c.lazy.plain_http, (std::vector<std::string>{"127.0.0.1:5000", "reg:80"}));
  EXPECT_EQ(c.lazy.read_timeout_s, 5);
  EXPECT_EQ(c.lazy.fuse_threads, 2);
  EXPECT_EQ(c.lazy.span_cache_mb, 16);
  EXPECT_EQ(c.lazy.span_store_mb, 0);
  EXPECT_EQ(c.lazy.readahead_spans, 0);
  EXPECT_EQ(c.lazy.readahead_threads, 1);
  EXPECT_EQ(c.lazy.read_ahead_kb, 128);
  EXPECT_FALSE(c.lazy.splice_reads);
  EXPECT_FALSE(c.lazy.background_fetch);
  EXPECT_EQ(c.lazy.background_fetch_delay_s, 0);
  EXPECT_EQ(c.lazy.background_fetch_mb_per_s, 0);
  EXPECT_FALSE(c.lazy.prefetch);
  EXPECT_EQ(c.lazy.prefetch_record_s, 0);
  EXPECT_FALSE(c.lazy.keep_connections);
  EXPECT_EQ(c.lazy.keep_connections_s, 0);
  EXPECT_EQ(c.lazy.metrics_address, "127.0.0.1:9199");
  EXPECT_TRUE(c.lazy.erofs_directio);
  EXPECT_EQ(c.lazy.erofs_read_ahead_kb, 0);
}

TEST(DaemonConfig, LazyErrors) {
  ExpectError("[lazy]\nenabel = true\n", "unknown key \"lazy.enabel\"");
  ExpectError("[lazy]\nread_timeout_s = \"5\"\n", "must be an integer");
  ExpectError("[lazy]\nread_timeout_s = 0\n", "at least 1");
  ExpectError("[lazy]\nreadahead_threads = 0\n", "at least 1");
  ExpectError("[lazy]\nspan_store_mb = -1\n", "at least 0");
  ExpectError("[lazy]\nplain_http = \"127.0.0.1\"\n", "array of strings");
  ExpectError("[lazy]\nplain_http = [1]\n", "array of strings");
  ExpectError("[lazy]\nsocket = \"rel.sock\"\n", "absolute");
  ExpectError("lazy = 1\n", "must be a table");
}

}  // namespace
}  // namespace lazysnap::snapshotter

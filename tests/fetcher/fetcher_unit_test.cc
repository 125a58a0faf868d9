#include <gtest/gtest.h>

#include "common/error.h"
#include "fetcher/manifest.h"
#include "fetcher/registry_hosts.h"
#include "fetcher/www_authenticate.h"

namespace lazysnap::fetcher {
namespace {

TEST(WwwAuthenticate, BearerAndBasic) {
  auto c = ParseWwwAuthenticate(
      R"(Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull")");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].scheme, "bearer");
  EXPECT_EQ(c[0].params.at("realm"), "https://auth.example/token");
  EXPECT_EQ(c[0].params.at("scope"), "repository:a/b:pull");
  c = ParseWwwAuthenticate(R"(Basic realm="Registry Realm")");
  EXPECT_EQ(c[0].scheme, "basic");
  EXPECT_EQ(c[0].params.at("realm"), "Registry Realm");
  c = ParseWwwAuthenticate(R"(Basic realm="x", Bearer realm="y",service=z, error="invalid_token")");
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[1].params.at("service"), "z");
  EXPECT_EQ(c[1].params.at("error"), "invalid_token");
  c = ParseWwwAuthenticate(R"(Bearer realm="a\"b")");
  EXPECT_EQ(c[0].params.at("realm"), "a\"b");
}

TEST(WwwAuthenticate, Malformed) {
  for (const char* bad :
       {R"(Bearer realm="unterminated)", "Bearer realm=", "=x", R"(Bearer realm="a" junk)"}) {
    EXPECT_THROW(ParseWwwAuthenticate(bad), Error) << bad;
  }
  EXPECT_THROW(ParseWwwAuthenticate(std::string(20000, 'a')), Error);
}

TEST(Manifest, ParsesAndRejects) {
  std::string d = "sha256:" + std::string(64, 'a');
  auto m = ParseManifest(
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
      R"("config":{"mediaType":"c","digest":")" +
      d + R"(","size":5},"layers":[{"mediaType":"l","digest":")" + d + R"(","size":7}]})");
  EXPECT_EQ(m.layers.at(0).size, 7u);
  for (
      const std::string& bad :
      {std::string("[]"), std::string(R"({"schemaVersion":1})"),
       std::string(R"({"schemaVersion":2,"config":{}})"),
       R"({"schemaVersion":2,"config":{"mediaType":"c","digest":")" + d +
           R"(","size":-1},"layers":[]})",
       std::string(
           R"({"schemaVersion":2,"config":{"mediaType":"c","digest":"sha256:zz","size":1},"layers":[]})")}) {
    EXPECT_THROW(ParseManifest(bad), Error) << bad;
  }
}

TEST(Manifest, SelectPlatform) {
  Index idx;
  idx.manifests.push_back({"m", "sha256:1", 1, "linux", "arm64", "v8"});
  idx.manifests.push_back({"m", "sha256:2", 1, "linux", "amd64", ""});
  EXPECT_EQ(SelectPlatform(idx, "linux", "amd64").digest, "sha256:2");
  EXPECT_EQ(SelectPlatform(idx, "linux", "arm64").digest, "sha256:1");
  try {
    SelectPlatform(idx, "linux", "s390x");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("linux/arm64/v8"), std::string::npos);
  }
}

TEST(HostsToml, MirrorsInOrderThenServer) {
  auto eps = ParseHostsToml(R"(
server = "https://registry.example"
[host."http://m1:5000"]
  capabilities = ["pull"]
[host."https://m2/custom/v2"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
  ca = "/ca.pem"
  override_path = true
  [host."https://m2/custom/v2".header]
    x-team = "storage"
)",
                            "registry.example", false, "t.toml");
  ASSERT_EQ(eps.size(), 3u);
  EXPECT_EQ(eps[0].url, "http://m1:5000");
  EXPECT_TRUE(eps[0].pull);
  EXPECT_FALSE(eps[0].resolve);
  EXPECT_EQ(eps[1].api_root, "https://m2/custom/v2");
  EXPECT_TRUE(eps[1].tls.skip_verify);
  EXPECT_EQ(eps[1].tls.ca_file, "/ca.pem");
  EXPECT_EQ(eps[1].headers.at(0), "x-team: storage");
  EXPECT_EQ(eps[2].api_root, "https://registry.example/v2");
  EXPECT_THROW(ParseHostsToml("[host.\"ftp://x\"]\n", "h", false, "t.toml"), Error);
  EXPECT_THROW(
      ParseHostsToml("[host.\"http://x\"]\ncapabilities=[\"fly\"]\n", "h", false, "t.toml"), Error);
  EXPECT_THROW(ParseHostsToml("mirrors = 1\n", "h", false, "t.toml"), Error);
  EXPECT_EQ(ParseHostsToml("", "127.0.0.1:5000", true, "t.toml").at(0).api_root,
            "http://127.0.0.1:5000/v2");
}

}  // namespace
}  // namespace lazysnap::fetcher

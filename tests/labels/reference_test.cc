#include "labels/reference.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "labels/digest.h"

namespace lazysnap::labels {
namespace {

const std::string kHex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct Case {
  const char* in;
  const char* domain;
  const char* path;
  const char* tag;
  const char* canonical;
};

TEST(ParseReference, Normalisation) {
  const Case cases[] = {
      {"busybox", "docker.io", "library/busybox", "latest", "docker.io/library/busybox:latest"},
      {"busybox:1.36", "docker.io", "library/busybox", "1.36", "docker.io/library/busybox:1.36"},
      {"library/busybox", "docker.io", "library/busybox", "latest",
       "docker.io/library/busybox:latest"},
      {"docker.io/busybox", "docker.io", "library/busybox", "latest",
       "docker.io/library/busybox:latest"},
      {"index.docker.io/library/busybox", "docker.io", "library/busybox", "latest",
       "docker.io/library/busybox:latest"},
      {"user/app:v1", "docker.io", "user/app", "v1", "docker.io/user/app:v1"},
      {"127.0.0.1:5000/demo/app:v1", "127.0.0.1:5000", "demo/app", "v1",
       "127.0.0.1:5000/demo/app:v1"},
      {"localhost/app", "localhost", "app", "latest", "localhost/app:latest"},
      {"localhost:5000/app", "localhost:5000", "app", "latest", "localhost:5000/app:latest"},
      {"registry.k8s.io/pause:3.9", "registry.k8s.io", "pause", "3.9", "registry.k8s.io/pause:3.9"},
      {"ghcr.io/a/b/c/d:x_y.z-1", "ghcr.io", "a/b/c/d", "x_y.z-1", "ghcr.io/a/b/c/d:x_y.z-1"},
      {"[::1]:5000/app:v1", "[::1]:5000", "app", "v1", "[::1]:5000/app:v1"},
      {"a.b/c__d/e--f/g.h", "a.b", "c__d/e--f/g.h", "latest", "a.b/c__d/e--f/g.h:latest"},
  };
  for (const auto& c : cases) {
    Reference r = ParseReference(c.in);
    EXPECT_EQ(r.domain, c.domain) << c.in;
    EXPECT_EQ(r.path, c.path) << c.in;
    EXPECT_EQ(r.tag, c.tag) << c.in;
    EXPECT_EQ(r.Canonical(), c.canonical) << c.in;
    EXPECT_EQ(ParseReference(r.Canonical()), r) << c.in;  // canonical form is a fixed point
  }
}

TEST(ParseReference, Digests) {
  Reference r = ParseReference("127.0.0.1:5000/app@sha256:" + kHex);
  EXPECT_EQ(r.tag, "");
  EXPECT_EQ(r.digest, "sha256:" + kHex);
  EXPECT_EQ(r.Canonical(), "127.0.0.1:5000/app@sha256:" + kHex);
  r = ParseReference("app:v2@sha256:" + kHex);
  EXPECT_EQ(r.tag, "v2");
  EXPECT_EQ(r.Canonical(), "docker.io/library/app:v2@sha256:" + kHex);
}

TEST(ParseReference, RegistryHost) {
  EXPECT_EQ(ParseReference("busybox").RegistryHost(), "registry-1.docker.io");
  EXPECT_EQ(ParseReference("127.0.0.1:5000/x").RegistryHost(), "127.0.0.1:5000");
}

TEST(ParseReference, Rejects) {
  const std::string bad[] = {
      "",
      "Busybox",
      "user/App",
      "app:",
      "app:-bad",
      ":tag",
      "app@sha256:abc",
      "app@md5:" + kHex,
      "app@sha256:" + kHex.substr(0, 63) + "G",
      "a//b",
      "a/b/",
      "/a",
      "a_-b",
      "-host.com/a",
      "host.com:99999999/a",
      "host.com:/a",
      kHex,
      "app:" + std::string(129, 't'),
      "a.com/" + std::string(250, 'n'),
      "app with space",
      "[::1/app",
  };
  for (const auto& b : bad) {
    try {
      ParseReference(b, "label x");
      ADD_FAILURE() << "accepted: " << b;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find("label x"), std::string::npos) << e.what();
    }
  }
}

TEST(ParseReference, UppercaseMessage) {
  try {
    ParseReference("docker.io/User/app");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("lowercase"), std::string::npos);
  }
}

TEST(ParseDigest, Rules) {
  EXPECT_EQ(ParseDigest("sha256:" + kHex).hex, kHex);
  EXPECT_EQ(ParseDigest("sha512:" + kHex + kHex).algorithm, "sha512");
  for (const std::string& bad :
       {"sha256:" + kHex.substr(1), "sha256:" + std::string(64, 'A'), "sha256" + kHex,
        "SHA256:" + kHex, "sha512:" + kHex, "sha1:" + kHex.substr(0, 40), std::string()}) {
    EXPECT_THROW(ParseDigest(bad), Error) << bad;
    EXPECT_FALSE(IsValidDigest(bad));
  }
}

}  // namespace
}  // namespace lazysnap::labels

#include "snapshotter/filter.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace lazysnap::snapshotter {
namespace {

Info MakeInfo() {
  Info i;
  i.name = "k8s.io/4/sha256:abc";
  i.parent = "k8s.io/3/sha256:def";
  i.kind = Kind::kCommitted;
  i.labels = {{"containerd.io/snapshot.ref", "sha256:abc"}, {"a.b", "x y"}, {"empty", ""}};
  return i;
}

bool M(const std::string& f) {
  return Filter::Parse(f).Match(MakeInfo());
}

TEST(Filter, EmptyMatchesAll) {
  EXPECT_TRUE(M(""));
}

TEST(Filter, FieldsEqual) {
  EXPECT_TRUE(M("name==k8s.io/4/sha256:abc"));
  EXPECT_FALSE(M("name==k8s.io/4/sha256:abd"));
  EXPECT_TRUE(M("parent==k8s.io/3/sha256:def"));
  EXPECT_TRUE(M("kind==committed"));
  EXPECT_FALSE(M("kind==active"));
}

TEST(Filter, QuotedLabelKeyAsContainerdSendsIt) {
  EXPECT_TRUE(M(R"(labels."containerd.io/snapshot.ref"==sha256:abc,parent==k8s.io/3/sha256:def)"));
  EXPECT_FALSE(M(R"(labels."containerd.io/snapshot.ref"==sha256:abc,parent==)"
                 R"("")"));
}

TEST(Filter, DottedLabelPathJoins) {
  EXPECT_TRUE(M(R"(labels.a.b=="x y")"));
  EXPECT_TRUE(M("labels.a.b"));
  EXPECT_FALSE(M("labels.a.c"));
}

TEST(Filter, Presence) {
  EXPECT_TRUE(M(R"(labels."containerd.io/snapshot.ref")"));
  EXPECT_TRUE(M("labels.empty"));
  EXPECT_FALSE(M("labels.nothere"));
  EXPECT_FALSE(M("labels"));
}

TEST(Filter, NotEqualAndRegex) {
  EXPECT_TRUE(M("kind!=active"));
  EXPECT_TRUE(M("labels.nothere!=x"));  // absent compares as ""
  EXPECT_TRUE(M("name~=^k8s\\.io/"));
  EXPECT_TRUE(M("name~=/sha256:[a-f]+$/"));
  EXPECT_FALSE(M("name~=^moby"));
}

TEST(Filter, AndOfSelectors) {
  EXPECT_TRUE(M("kind==committed,labels.a.b"));
  EXPECT_FALSE(M("kind==committed,labels.zz"));
}

TEST(Filter, QuotedEscapes) {
  Info i = MakeInfo();
  i.labels["q"] = "a\"b\n\xc3\xa9";
  EXPECT_TRUE(Filter::Parse(R"(labels.q=="a\"b\n\u00e9")").Match(i));
  EXPECT_TRUE(Filter::Parse(R"(labels.q=="a\"b\n\xc3\251")").Match(i));
}

TEST(Filter, WhitespaceAroundTokens) {
  EXPECT_TRUE(M(" kind == committed , name "));
}

TEST(Filter, SyntaxErrorsAreInvalidArgument) {
  for (const char* bad : {"kind===x", "kind==", ",", "kind==a,", "labels.\"unterminated", "a b",
                          "kind=>x", "\"bad\\q\"", "name~=(", "labels..x", "kind==\"a\"x"}) {
    try {
      Filter::Parse(bad);
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << bad;
      EXPECT_NE(std::string(e.what()).find("filter"), std::string::npos);
    }
  }
}

TEST(FilterSet, AnyOf) {
  auto s = FilterSet::Parse({"kind==active", "kind==committed"});
  EXPECT_TRUE(s.Match(MakeInfo()));
  EXPECT_FALSE(FilterSet::Parse({"kind==active", "kind==view"}).Match(MakeInfo()));
  EXPECT_TRUE(FilterSet::Parse({}).Match(MakeInfo()));
}

}  // namespace
}  // namespace lazysnap::snapshotter

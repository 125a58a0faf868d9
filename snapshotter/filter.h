// containerd's filter language (github.com/containerd/containerd/filters) for List:
//   selectors := selector ("," selector)*        -- all must match
//   selector  := fieldpath [ ("==" | "!=" | "~=") value ]   -- no operator: field is present
//   fieldpath := field ("." field)*,  field := quoted | [A-Za-z0-9_-]+
//   value     := quoted | run of non-space, non-comma characters
//   quoted    := "..." or /.../ or |...| with Go escapes
// Several filter strings in one request match when any of them matches. Snapshot fields:
// name, parent, kind (active|view|committed), labels.<key> (the rest of the path joined by ".").
#pragma once

#include <memory>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "snapshotter/types.h"

namespace lazysnap::snapshotter {

class Filter {
 public:
  // Parses one filter string; throws Error(kInvalidArgument) with the position on bad syntax.
  static Filter Parse(std::string_view text);
  bool Match(const Info& info) const;

 private:
  enum class Op { kPresent, kEqual, kNotEqual, kMatches };
  struct Selector {
    std::vector<std::string> fieldpath;
    Op op = Op::kPresent;
    std::string value;
    std::shared_ptr<const std::regex> re;
  };
  std::vector<Selector> selectors_;  // empty: matches everything
};

// Any-of a list of filters; an empty list matches everything.
class FilterSet {
 public:
  static FilterSet Parse(const std::vector<std::string>& filters);
  bool Match(const Info& info) const;

 private:
  std::vector<Filter> any_;
};

}  // namespace lazysnap::snapshotter

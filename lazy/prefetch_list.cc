#include "lazy/prefetch_list.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "labels/digest.h"

namespace lazysnap::lazy {
namespace {

[[noreturn]] void Bad(const std::string& why) {
  throw Error(ErrorCode::kInvalidArgument, "prefetch list: " + why);
}

}  // namespace

std::string EncodePrefetchList(const PrefetchList& list) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& [digest, ranges] : list) {
    nlohmann::json r = nlohmann::json::array();
    for (const TarRange& t : ranges) r.push_back({t.offset, t.length});
    layers.push_back({{"digest", digest}, {"ranges", r}});
  }
  return nlohmann::json{{"mediaType", kPrefetchListMediaType}, {"layers", layers}}.dump();
}

PrefetchList ParsePrefetchList(std::string_view json) {
  if (json.size() > kMaxPrefetchListBytes) {
    Bad(std::to_string(json.size()) + " bytes, more than " + std::to_string(kMaxPrefetchListBytes));
  }
  auto j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) Bad("not a JSON object");
  auto mt = j.find("mediaType");
  if (mt == j.end() || !mt->is_string() || mt->get<std::string>() != kPrefetchListMediaType)
    Bad(std::string("mediaType is not ") + kPrefetchListMediaType);
  auto layers = j.find("layers");
  if (layers == j.end() || !layers->is_array()) Bad("no layers array");
  PrefetchList out;
  for (const auto& l : *layers) {
    if (!l.is_object()) Bad("a layer is not an object");
    auto dg = l.find("digest");
    if (dg == l.end() || !dg->is_string()) Bad("a layer has no digest");
    std::string digest;
    try {
      digest = labels::ParseDigest(dg->get<std::string>(), "layer digest").str();
    } catch (const Error& e) {
      Bad(e.what());
    }
    auto rs = l.find("ranges");
    if (rs == l.end() || !rs->is_array()) Bad("layer " + digest + " has no ranges array");
    if (rs->size() > kMaxPrefetchRanges) {
      Bad("layer " + digest + " has " + std::to_string(rs->size()) + " ranges, more than " +
          std::to_string(kMaxPrefetchRanges));
    }
    std::vector<TarRange> ranges;
    ranges.reserve(rs->size());
    for (const auto& r : *rs) {
      if (!r.is_array() || r.size() != 2 || !r[0].is_number_unsigned() ||
          !r[1].is_number_unsigned())
        Bad("layer " + digest + ": a range is not [offset, length]");
      TarRange t{r[0].get<uint64_t>(), r[1].get<uint64_t>()};
      if (t.length == 0 || t.offset + t.length < t.offset)
        Bad("layer " + digest + ": range [" + std::to_string(t.offset) + ", " +
            std::to_string(t.length) + "] is empty or overflows");
      ranges.push_back(t);
    }
    if (!out.emplace(digest, std::move(ranges)).second) Bad("layer " + digest + " listed twice");
  }
  return out;
}

}  // namespace lazysnap::lazy

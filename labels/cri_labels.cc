#include "labels/cri_labels.h"

#include "common/error.h"

namespace lazysnap::labels {
namespace {

const char* const kCriKeys[] = {kCriImageRef, kCriManifestDigest, kCriLayerDigest, kCriImageLayers};

const std::string* Find(const LabelMap& labels, const char* key) {
  auto it = labels.find(key);
  return it == labels.end() ? nullptr : &it->second;
}

// cri.image-layers is "d1,d2,...", cut by containerd at the label size limit, possibly mid-digest.
// Every complete entry must be a digest; an incomplete last entry marks the list truncated.
void ParseImageLayers(const std::string& value, LayerTarget* t) {
  if (value.empty()) {
    throw Error(ErrorCode::kInvalidArgument, std::string("label ") + kCriImageLayers + " is empty");
  }
  size_t start = 0;
  while (start <= value.size()) {
    size_t comma = value.find(',', start);
    std::string entry =
        value.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    bool last = comma == std::string::npos;
    if (IsValidDigest(entry)) {
      t->image_layers.push_back(ParseDigest(entry));
    } else if (last && std::string(kCriImageLayers).size() + value.size() >= kMaxLabelSize - 80) {
      // A cut-off tail can only appear when the value was filled up to the size limit.
      t->image_layers_truncated = true;
    } else {
      ParseDigest(entry,
                  std::string("label ") + kCriImageLayers + " entry");  // throws with the reason
    }
    if (last) break;
    start = comma + 1;
  }
  // A list that exactly fills the limit may also have lost whole entries.
  if (std::string(kCriImageLayers).size() + value.size() >= kMaxLabelSize - 72)
    t->image_layers_truncated = true;
  if (t->image_layers.empty() || !(t->image_layers.front() == t->layer)) {
    throw Error(ErrorCode::kInvalidArgument, std::string("label ") + kCriImageLayers +
                                                 " must start with this layer's digest (" +
                                                 t->layer.str() + ")");
  }
}

}  // namespace

void ValidateLabelSizes(const LabelMap& labels) {
  for (const auto& [k, v] : labels) {
    if (k.empty()) throw Error(ErrorCode::kInvalidArgument, "label key must not be empty");
    if (k.size() + v.size() > kMaxLabelSize) {
      throw Error(
          ErrorCode::kInvalidArgument,
          "label key and value greater than maximum size (4096 bytes), key: " + k.substr(0, 256));
    }
  }
}

ParsedLabels ParseLayerLabels(const LabelMap& labels) {
  ParsedLabels out;
  const std::string* ref = Find(labels, kSnapshotRef);
  std::vector<std::string> present;
  for (const char* k : kCriKeys) {
    if (Find(labels, k)) {
      present.push_back(k);
    } else {
      out.missing.push_back(k);
    }
  }
  if (ref == nullptr) {
    if (!present.empty()) {
      throw Error(ErrorCode::kInvalidArgument,
                  "label " + present.front() + " is set but " + kSnapshotRef + " is missing");
    }
    return out;
  }
  out.chain_id = ParseDigest(*ref, std::string("label ") + kSnapshotRef);
  if (present.empty()) {
    out.presence = LabelPresence::kRefOnly;
    return out;
  }
  if (!out.missing.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                "label " + out.missing.front() + " is missing while " + present.front() +
                    " is set (containerd sets all CRI labels or none)");
  }
  LayerTarget t;
  t.chain_id = *out.chain_id;
  t.image_ref = *Find(labels, kCriImageRef);
  t.image = ParseReference(t.image_ref, std::string("label ") + kCriImageRef);
  t.manifest =
      ParseDigest(*Find(labels, kCriManifestDigest), std::string("label ") + kCriManifestDigest);
  t.layer = ParseDigest(*Find(labels, kCriLayerDigest), std::string("label ") + kCriLayerDigest);
  ParseImageLayers(*Find(labels, kCriImageLayers), &t);
  out.presence = LabelPresence::kComplete;
  out.target = std::move(t);
  return out;
}

}  // namespace lazysnap::labels

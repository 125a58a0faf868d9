#include "snapshotter/types.h"

namespace lazysnap::snapshotter {

const char* KindName(Kind kind) {
  switch (kind) {
    case Kind::kView:
      return "view";
    case Kind::kActive:
      return "active";
    case Kind::kCommitted:
      return "committed";
    case Kind::kUnknown:
      break;
  }
  return "unknown";
}

const char* LayerModeName(LayerMode mode) {
  switch (mode) {
    case LayerMode::kNative:
      return "native";
    case LayerMode::kProxy:
      return "proxy";
    case LayerMode::kLazy:
      return "lazy";
  }
  return "unknown";
}

}  // namespace lazysnap::snapshotter

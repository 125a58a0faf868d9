#include "labels/chain_id.h"

#include "common/sha256.h"
#include "labels/digest.h"

namespace lazysnap::labels {

std::vector<std::string> ChainIds(const std::vector<std::string>& diff_ids) {
  std::vector<std::string> out;
  for (const auto& d : diff_ids) {
    ParseDigest(d, "diffID");
    out.push_back(out.empty() ? d : Sha256Digest(out.back() + " " + d));
  }
  return out;
}

}  // namespace lazysnap::labels

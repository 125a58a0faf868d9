// OCI chainIDs: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
// containerd names committed layer snapshots by them and sends them as snapshot.ref.
#pragma once

#include <string>
#include <vector>

namespace lazysnap::labels {

// diff_ids: uncompressed layer digests, bottom first. Returns one chainID per layer.
std::vector<std::string> ChainIds(const std::vector<std::string>& diff_ids);

}  // namespace lazysnap::labels

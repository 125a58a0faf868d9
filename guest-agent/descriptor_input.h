// What a guest is handed to describe an image: the KataVirtualVolume of labels/descriptor.h in any
// of the forms it travels in, so an operator can paste whichever one they have.
#pragma once

#include <string>
#include <string_view>

#include "labels/descriptor.h"

namespace lazysnap::guest {

// Accepts, after trimming whitespace:
//  - the raw KataVirtualVolume JSON ("{...}");
//  - its base64 form (what io.katacontainers.volume= carries);
//  - any text holding "io.katacontainers.volume=<base64>": the mount option itself, a comma
//    separated option list, or a whole `ctr snapshots mounts` line.
// Error(kInvalidArgument) naming what is wrong ("descriptor: ...") otherwise.
labels::ProxyDescriptor ParseDescriptorInput(std::string_view text);

// Reads FILE, or standard input for "-", capped at 4 MiB; Error naming the path on failure.
std::string ReadDescriptorSource(const std::string& path);

}  // namespace lazysnap::guest

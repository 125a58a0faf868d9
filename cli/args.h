// What the `lazysnap` subcommands add to common/arg_parser.h: the registry flags they share and
// sizes with units.
#pragma once

#include <cstdint>
#include <string>

#include "common/arg_parser.h"
#include "fetcher/registry_client.h"

namespace lazysnap::cli {

// --hosts-dir DIR, --plain-http, --docker-config FILE (default ~/.docker/config.json).
ArgParser& RegistryFlags(ArgParser& p, fetcher::RegistryOptions* opts);

// "512M" -> bytes: a count, optionally with K/M/G/T (or KiB/MiB/GiB/TiB: powers of 1024).
// Throws Error(kInvalidArgument) on anything else or on overflow.
uint64_t ParseSize(const std::string& s);

}  // namespace lazysnap::cli

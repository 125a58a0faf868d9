// Feeds a libFuzzer entry point its seed corpus plus deterministic mutations of every seed, so the
// normal test suite exercises each fuzz target without libFuzzer (which needs a clang build).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace lazysnap::testing {

using FuzzEntry = int (*)(const uint8_t* data, size_t size);

// Returns how many inputs were run. `keep_first_byte` leaves byte 0 (a selector) untouched.
int ReplayCorpus(const std::string& dir, FuzzEntry entry, int mutations_per_seed = 300,
                 bool keep_first_byte = false);

}  // namespace lazysnap::testing

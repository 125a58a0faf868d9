// A raw HTTP exchange for tests of our HTTP endpoints: sends `request` bytes as they are (so
// malformed requests can be sent too) and returns everything the server wrote until it closed.
#pragma once

#include <string>

#include "common/unique_fd.h"

namespace lazysnap::testing {

// A TCP connection to `address` ("HOST:PORT", numeric IPv4). Throws Error when it cannot connect.
UniqueFd HttpConnect(const std::string& address);

// `address`: "HOST:PORT", numeric IPv4. Throws Error when it cannot connect.
std::string HttpExchange(const std::string& address, const std::string& request);

// GET `path`: the response body when the status is 200; throws Error naming the status line
// otherwise.
std::string HttpGet(const std::string& address, const std::string& path);

}  // namespace lazysnap::testing

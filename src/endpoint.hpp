// Endpoint validation for zchan::server and zchan::dial: an address libzmq
// would misread (a tcp port past 65535 wraps; a dial to it waits for the
// connect timeout) is refused at once with a message that says what is wrong.
//
// Checked: the transport is tcp, ipc or inproc (others go to libzmq as they
// are); a tcp address is HOST:PORT with a non-empty host and a decimal port
// 1..65535, or "*" / 0 (any free port) when binding. Everything else
// (resolving the host, whether the port is free) is libzmq's.
#pragma once

#include <string>
#include <string_view>

#include "zchan/errors.hpp"

namespace zchan::detail {

/// Why `endpoint` is not valid, or "" if it is. `bind`: for a server.
inline std::string endpoint_problem(std::string_view endpoint, bool bind) {
    const auto sep = endpoint.find("://");
    if (sep == std::string_view::npos || sep == 0) {
        return "expected TRANSPORT://ADDRESS, e.g. tcp://127.0.0.1:5555";
    }
    const std::string_view transport = endpoint.substr(0, sep);
    const std::string_view address = endpoint.substr(sep + 3);
    if (address.empty()) return "the address after " + std::string(transport) + ":// is empty";
    if (transport != "tcp") return {};
    const auto colon = address.rfind(':');
    if (colon == std::string_view::npos) return "expected tcp://HOST:PORT";
    std::string_view host = address.substr(0, colon);
    if (auto semi = host.find(';'); semi != std::string_view::npos) host = host.substr(semi + 1);
    const std::string_view port = address.substr(colon + 1);
    if (host.empty()) return "the host is empty (tcp://HOST:PORT)";
    if (port == "*") {
        return bind ? std::string() : "a dial needs a port number, not \"*\"";
    }
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != port.npos) {
        return "the port \"" + std::string(port) + "\" is not a number from 1 to 65535";
    }
    const unsigned long n = std::stoul(std::string(port));
    if (n > 65535) return "the port " + std::string(port) + " is out of range (1 to 65535)";
    if (n == 0 && !bind) return "a dial needs a port from 1 to 65535, not 0";
    return {};
}

/// Throws connect_error naming `endpoint` and the problem, if there is one.
inline void validate_endpoint(const std::string& endpoint, bool bind) {
    if (auto why = endpoint_problem(endpoint, bind); !why.empty()) {
        throw connect_error("zchan: invalid endpoint \"" + endpoint + "\": " + why);
    }
}

}  // namespace zchan::detail

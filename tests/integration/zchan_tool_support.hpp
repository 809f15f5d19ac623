// Helpers for the tests that drive the real `zchan` command-line tool
// (zchan_tool_test.cpp and the zchan_tool_*_test.cpp files beside it).
#pragma once

#include <cctype>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <zchan/zchan.hpp>
#include "child_process.hpp"
#include "zchan_test_support.hpp"

namespace zchan_tool_test {

using namespace std::chrono_literals;
using zchan_test::child_process;
using zchan_test::deadline_after;
using zchan_test::generous;

inline const std::string tool = std::string(ZCHAN_BINARY_DIR) + "/tools/zchan/zchan";

// Values through the pipeline test: a round trip per send, so sanitized builds get fewer.
inline constexpr int pipeline_values = zchan_test::sanitized ? 2000 : 20000;

/// A hub child process and its endpoint.
struct hub_process {
    explicit hub_process(std::vector<std::string> extra) : proc(make_argv(std::move(extra))) {
        if (auto rest = proc.wait_for_text("tcp://127.0.0.1:")) {
            std::string port;
            for (char c : *rest) {
                if (std::isdigit(static_cast<unsigned char>(c)) == 0) break;
                port += c;
            }
            if (!port.empty()) endpoint = "tcp://127.0.0.1:" + port;
        }
    }
    static std::vector<std::string> make_argv(std::vector<std::string> extra) {
        std::vector<std::string> a{tool, "hub", "tcp://127.0.0.1:*"};
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    }
    child_process proc;
    std::string endpoint;
};

inline std::string shell_quote(const std::string& s) { return "'" + s + "'"; }

/// Runs `script` under bash (pipefail: a failing zchan fails the pipeline).
inline std::vector<std::string> bash(const std::string& script) {
    return {"/bin/bash", "-c", "set -o pipefail; " + script};
}

/// The stats row of channel `name` once `pred` holds for it; nullopt if it did not by the
/// deadline.
template <class Pred>
inline std::optional<zchan::channel_stats> stat_until(const std::string& ep,
                                                      const std::string& name, Pred pred) {
    std::optional<zchan::channel_stats> row;
    const bool ok = zchan_test::wait_until(
        [&] {
            for (auto& c : zchan::stats(ep).channels) {
                if (c.name == name) row = c;
            }
            return row && pred(*row);
        },
        deadline_after(generous));
    return ok ? row : std::nullopt;
}

inline bool contains(const child_process& p, const std::string& text) {
    return p.output().find(text) != std::string::npos;
}

inline std::vector<long> numbers(const child_process& p) {
    std::vector<long> out;
    for (const auto& l : p.lines()) out.push_back(std::stol(l));
    return out;
}

/// The endpoint a hub started as `p` printed ("tcp://127.0.0.1:PORT"), or "".
inline std::string endpoint_of(child_process& p) {
    std::string port;
    if (auto rest = p.wait_for_text("tcp://127.0.0.1:")) {
        for (char c : *rest) {
            if (std::isdigit(static_cast<unsigned char>(c)) == 0) break;
            port += c;
        }
    }
    return port.empty() ? "" : "tcp://127.0.0.1:" + port;
}

}  // namespace zchan_tool_test

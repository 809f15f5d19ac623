// Helpers for the fault tests (tests/integration/fault_*_test.cpp): a child
// process that is the test binary itself in another role (optionally inside
// a network namespace), which the test can signal (SIGKILL, SIGSTOP,
// SIGCONT), feed commands on stdin and read line by line (a self_child of
// child_process.hpp); and the checks the fault tests share (values per
// sender, peak RSS).
//
// Roles are chosen by the environment variable ZCHAN_FAULT_ROLE; each test
// binary's main() dispatches on it before starting GoogleTest.
//
// Thread safety: as child_process (a fault_child belongs to the test thread
// that made it); the free functions may be called from any thread.
#pragma once

#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "child_process.hpp"
#include "zchan_test_support.hpp"

namespace zchan_test {

/// This process's peak resident set size in KiB (VmHWM), or -1.
[[nodiscard]] inline long peak_rss_kib() { return status_kb("VmHWM"); }

/// This test binary in the fault role `role` (ZCHAN_FAULT_ROLE), with the
/// extra environment `vars`, behind `prefix` (e.g. netns_lab::exec_prefix(i)).
class fault_child : public child_process {
public:
    fault_child(const std::string& role, std::map<std::string, std::string> vars,
                std::vector<std::string> prefix = {})
        : child_process(behind(std::move(prefix)),
                        self_child_options(with_role(role, std::move(vars)))) {}

private:
    static std::vector<std::string> behind(std::vector<std::string> prefix) {
        prefix.push_back(self_exe());
        return prefix;
    }
    static std::map<std::string, std::string> with_role(const std::string& role,
                                                        std::map<std::string, std::string> vars) {
        vars["ZCHAN_FAULT_ROLE"] = role;
        return vars;
    }
};

/// Values are sender * value_base + i: which sender, which position.
inline constexpr long value_base = 1'000'000;

/// Counts, per receiver sequence, values of one sender that arrive below an
/// earlier value of the same sender (order broken). Redelivered values (a
/// killed receiver's deliveries go back to the head of the channel) are the
/// only expected source.
[[nodiscard]] inline std::size_t out_of_order(const std::vector<long>& seq) {
    std::map<long, long> last;
    std::size_t n = 0;
    for (long v : seq) {
        auto [it, fresh] = last.try_emplace(v / value_base, v);
        if (fresh) continue;
        if (v < it->second) {
            ++n;
        } else {
            it->second = v;
        }
    }
    return n;
}

}  // namespace zchan_test

namespace zchan_test {

/// A value of the fault tests: "<n>:" followed by `size` bytes of a pattern
/// derived from n, so that a receiver can tell a whole value from a torn,
/// mixed-up or invented one.
[[nodiscard]] inline std::string make_value(long n, std::size_t size = 0) {
    std::string s = std::to_string(n) + ":";
    s.append(size, static_cast<char>('a' + n % 26));
    return s;
}

/// The n of a value made by make_value, or nullopt if it is not one (wrong
/// pattern, or a size other than `size`).
[[nodiscard]] inline std::optional<long> parse_value(const std::string& s, std::size_t size = 0) {
    const auto colon = s.find(':');
    if (colon == std::string::npos || colon == 0) return std::nullopt;
    char* end = nullptr;
    const long n = std::strtol(s.c_str(), &end, 10);
    if (end != s.c_str() + colon || s.size() - colon - 1 != size) return std::nullopt;
    const char c = static_cast<char>('a' + n % 26);
    for (std::size_t i = colon + 1; i < s.size(); ++i) {
        if (s[i] != c) return std::nullopt;
    }
    return n;
}

}  // namespace zchan_test

// Helpers shared by the network integration tests: fresh endpoints per
// transport, heartbeat settings, and the "select over a remote and a local
// channel" check.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <unistd.h>

#include "zchan/channel.hpp"
#include "zchan/net.hpp"
#include "zchan/select.hpp"

namespace zchan_test {

/// A fresh endpoint of the given transport ("inproc", "ipc" or "tcp"); tcp
/// lets the server pick a free port on loopback.
inline std::string make_endpoint(const std::string& transport) {
    static std::atomic<int> counter{0};
    const int n = counter.fetch_add(1);
    if (transport == "inproc") return "inproc://zchan-net-test-" + std::to_string(n);
    if (transport == "ipc") {
        return "ipc:///tmp/zchan-net-test-" + std::to_string(::getpid()) + "-" + std::to_string(n);
    }
    return "tcp://127.0.0.1:*";
}

/// Options with the given heartbeat interval and timeout (a test's own: fast
/// loss detection, or slack for sanitized runs) and connect timeout.
[[nodiscard]] inline zchan::net_options heartbeat_options(
    std::chrono::milliseconds heartbeat, std::chrono::milliseconds timeout,
    std::chrono::milliseconds connect = zchan::net_options{}.connect_timeout) {
    zchan::net_options o;
    o.connect_timeout = connect;
    o.heartbeat = heartbeat;
    o.heartbeat_timeout = timeout;
    return o;
}

/// Feeds 0..n-1 into `home` (served, reached through `remote`) and n..2n-1
/// into a local channel, closes both, and selects over `remote` and the
/// local channel until both are drained: every value must arrive exactly once.
inline void expect_select_over_remote_and_local_exactly_once(const zchan::channel<int>& home,
                                                             const zchan::channel<int>& remote,
                                                             int n) {
    zchan::channel<int> local(16);
    std::thread feed_home([&] {
        for (int i = 0; i < n; ++i) home.send(i);
        home.close();
    });
    std::thread feed_local([&] {
        for (int i = 0; i < n; ++i) local.send(n + i);
        local.close();
    });
    std::multiset<int> got;
    bool home_open = true;
    bool local_open = true;
    // A closed case is replaced by a nil channel, whose case never fires (Go's idiom).
    auto collect = [&](bool& open) {
        return [&](std::optional<int> v) {
            if (v) {
                got.insert(*v);
            } else {
                open = false;
            }
        };
    };
    // NOLINTNEXTLINE(bugprone-infinite-loop): collect() clears them through references
    while (home_open || local_open) {
        auto r = home_open ? remote : zchan::channel<int>::nil();
        auto l = local_open ? local : zchan::channel<int>::nil();
        zchan::select(zchan::recv_case(r, collect(home_open)),
                      zchan::recv_case(l, collect(local_open)));
    }
    feed_home.join();
    feed_local.join();
    ASSERT_EQ(got.size(), static_cast<std::size_t>(2 * n));
    int expect = 0;
    for (int v : got) EXPECT_EQ(v, expect++);
}

}  // namespace zchan_test

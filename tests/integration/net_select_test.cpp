// zchan::select with a remote *send* case (docs/protocol.md §8.6): the case
// watches the home (WATCH_SEND/READY) and sends only with an atomic TRY SEND
// once the select chose it, so exactly one case runs, as in Go. Home and
// dialer share this process, over inproc://, ipc:// and tcp://127.0.0.1:*.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <unistd.h>

#include "net_test_support.hpp"
#include "zchan/channel.hpp"
#include "zchan/net.hpp"
#include "zchan/select.hpp"
#include "zchan_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using zchan_test::background_call;
using zchan_test::blocks_until;

using zchan_test::make_endpoint;

// A long timeout: sanitized runs are slow; loss is not tested here.
zchan::net_options fast() { return zchan_test::heartbeat_options(100ms, 2000ms, 2000ms); }

class NetSelectIntegration : public ::testing::TestWithParam<std::string> {};

/// select {send_case(remote, v), recv_case(local)} against a local feeder and
/// a home-side drainer, `n` times. Every select must run exactly one case;
/// every value a send case reported must reach the drainer exactly once and
/// nothing else may; every fed value is received exactly once.
void race(const std::string& transport, std::size_t home_cap, int n) {
    zchan::channel<int> home(home_cap);
    zchan::server srv(make_endpoint(transport), fast());
    srv.serve("race", home);
    auto remote = zchan::dial<int>(srv.endpoint(), "race", fast());
    zchan::channel<int> local;  // unbuffered: ready only while the feeder waits

    constexpr int fed_base = 1'000'000;
    std::thread feeder([&] {
        for (int i = 0; i < n; ++i) local.send(fed_base + i);
        local.close();
    });
    std::multiset<int> drained;
    std::thread drainer([&] {
        for (int v : home) drained.insert(v);
    });

    std::multiset<int> sent;
    std::multiset<int> fed_by_select;
    int bad = 0;
    // An exception (peer_lost on a starved machine) must not skip the joins
    // below: a joinable std::thread's destructor would terminate the run and
    // hide what went wrong.
    std::string error;
    try {
        for (int i = 0; i < n; ++i) {
            int ran = 0;
            const std::size_t k = zchan::select(zchan::send_case(remote, i,
                                                                 [&] {
                                                                     ++ran;
                                                                     sent.insert(i);
                                                                 }),
                                                zchan::recv_case(local, [&](std::optional<int> v) {
                                                    ++ran;
                                                    if (v) fed_by_select.insert(*v);
                                                }));
            if (ran != 1 || k > 1) ++bad;
        }
    } catch (const std::exception& e) {
        error = e.what();
    }
    EXPECT_EQ(error, "") << "select threw";
    EXPECT_EQ(bad, 0) << "selects that ran other than exactly one case";

    // The rest of the feed, then the home's contents.
    std::multiset<int> fed = fed_by_select;
    for (int v : local) fed.insert(v);
    feeder.join();
    home.close();
    drainer.join();

    EXPECT_EQ(drained, sent) << "a value sent by a select that ran another case, or lost";
    ASSERT_EQ(fed.size(), static_cast<std::size_t>(n));
    int expect = fed_base;
    for (int v : fed) EXPECT_EQ(v, expect++);
    // Both cases did win sometimes (otherwise the race was not exercised).
    EXPECT_GT(sent.size(), 0u);
    EXPECT_GT(fed_by_select.size(), 0u);
}

TEST_P(NetSelectIntegration, RemoteSendCaseRacingALocalCaseRunsExactlyOneUnbuffered) {
    race(GetParam(), 0, static_cast<int>(zchan_test::scale(1500)));
}

TEST_P(NetSelectIntegration, RemoteSendCaseRacingALocalCaseRunsExactlyOneBuffered) {
    race(GetParam(), 2, static_cast<int>(zchan_test::scale(1500)));
}

TEST_P(NetSelectIntegration, BufferedHomeFullThenSpaceFrees) {
    zchan::channel<int> home(1);
    zchan::channel<int> never;
    zchan::server srv(make_endpoint(GetParam()), fast());
    srv.serve("b", home);
    auto remote = zchan::dial<int>(srv.endpoint(), "b", fast());
    home.send(1);
    std::size_t k = 99;
    EXPECT_TRUE(blocks_until(
        [&] { k = zchan::select(zchan::recv_case(never), zchan::send_case(remote, 2)); },
        [&] { EXPECT_EQ(*home.recv(), 1); }));
    EXPECT_EQ(k, 1u);
    EXPECT_EQ(home.len(), 1u);
    EXPECT_EQ(*home.recv(), 2);
}

TEST_P(NetSelectIntegration, UnbufferedHomeLocalReceiverArrivesLater) {
    zchan::channel<int> home;
    zchan::channel<int> never;
    zchan::server srv(make_endpoint(GetParam()), fast());
    srv.serve("u", home);
    auto remote = zchan::dial<int>(srv.endpoint(), "u", fast());
    for (int round = 0; round < 20; ++round) {
        std::size_t k = 99;
        background_call sel(
            [&] { k = zchan::select(zchan::send_case(remote, round), zchan::recv_case(never)); });
        if (round == 0) {
            EXPECT_TRUE(sel.still_blocked_after());
        }
        EXPECT_EQ(*home.recv(), round);
        ASSERT_TRUE(sel.wait_done());
        EXPECT_EQ(k, 0u);
    }
}

TEST_P(NetSelectIntegration, UnbufferedHomeRemoteReceiverArrivesLater) {
    zchan::channel<int> home;
    zchan::channel<int> never;
    zchan::server srv(make_endpoint(GetParam()), fast());
    srv.serve("u", home);
    auto sender = zchan::dial<int>(srv.endpoint(), "u", fast());
    auto receiver = zchan::dial<int>(srv.endpoint(), "u", fast());
    for (int round = 0; round < 20; ++round) {
        std::size_t k = 99;
        background_call sel(
            [&] { k = zchan::select(zchan::recv_case(never), zchan::send_case(sender, round)); });
        if (round == 0) {
            EXPECT_TRUE(sel.still_blocked_after());
        }
        EXPECT_EQ(*receiver.recv(), round);
        ASSERT_TRUE(sel.wait_done());
        EXPECT_EQ(k, 1u);
    }
    // A remote receiver in a select, too.
    std::optional<int> got;
    background_call sel([&] {
        zchan::select(zchan::recv_case(receiver, [&](std::optional<int> v) { got = v; }),
                      zchan::recv_case(never));
    });
    zchan::select(zchan::send_case(sender, 77), zchan::recv_case(never));
    ASSERT_TRUE(sel.wait_done());
    EXPECT_EQ(got, 77);
}

TEST_P(NetSelectIntegration, TimeoutSendsNothing) {
    for (std::size_t cap : {0u, 1u}) {
        zchan::channel<int> home(cap);
        zchan::server srv(make_endpoint(GetParam()), fast());
        srv.serve("t", home);
        auto remote = zchan::dial<int>(srv.endpoint(), "t", fast());
        if (cap == 1) home.send(-1);  // full
        bool sent = false;
        bool timed_out = false;
        const auto k = zchan::select(zchan::send_case(remote, 5, [&] { sent = true; }),
                                     zchan::timeout_case(50ms, [&] { timed_out = true; }));
        EXPECT_EQ(k, 1u);
        EXPECT_TRUE(timed_out);
        EXPECT_FALSE(sent);
        // A default case likewise.
        EXPECT_EQ(zchan::select(zchan::send_case(remote, 6), zchan::default_case()), 1u);
        // Nothing was sent then, and nothing is sent later when the channel
        // becomes ready (the watch is gone).
        if (cap == 1) {
            EXPECT_EQ(*home.recv(), -1);
        }
        EXPECT_EQ(home.recv_for(100ms).status, zchan::recv_status::timeout) << "cap " << cap;
        EXPECT_EQ(home.len(), 0u);
    }
}

TEST_P(NetSelectIntegration, ClosedHomeChannelThrowsFromTheSendCase) {
    for (std::size_t cap : {0u, 1u}) {
        zchan::channel<int> home(cap);
        zchan::channel<int> never;
        zchan::server srv(make_endpoint(GetParam()), fast());
        srv.serve("c", home);
        auto remote = zchan::dial<int>(srv.endpoint(), "c", fast());
        if (cap == 1) home.send(-1);
        // Closed while the select waits on the watch.
        background_call sel(
            [&] { zchan::select(zchan::send_case(remote, 5), zchan::recv_case(never)); });
        EXPECT_TRUE(sel.still_blocked_after());
        home.close();
        ASSERT_TRUE(sel.wait_done());
        EXPECT_TRUE(zchan_test::throws<zchan::channel_closed>([&] { sel.rethrow(); }));
        // Closed before the select starts.
        EXPECT_TRUE(zchan_test::throws<zchan::channel_closed>(
            [&] { zchan::select(zchan::send_case(remote, 6), zchan::recv_case(never)); }));
        if (cap == 1) {
            EXPECT_EQ(*home.recv(), -1);
        }
        EXPECT_FALSE(home.recv().has_value());
    }
}

INSTANTIATE_TEST_SUITE_P(Transports, NetSelectIntegration,
                         ::testing::Values("inproc", "ipc", "tcp"));

}  // namespace

// Remote channels with the home and the dialer in one process, over
// inproc://, ipc:// and tcp://127.0.0.1:* (ports read back from the server;
// never fixed). The multi-process versions are in net_process_test.cpp.
#include "zchan/net.hpp"

#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <unistd.h>

#include "zchan/channel.hpp"
#include "zchan/select.hpp"
#include "zchan_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using zchan_test::background_call;
using zchan_test::blocks_until;

std::atomic<int> endpoint_counter{0};

/// A fresh endpoint of the given transport (tcp picks a free port).
std::string make_endpoint(const std::string& transport) {
    const int n = endpoint_counter.fetch_add(1);
    if (transport == "inproc") return "inproc://net-test-" + std::to_string(n);
    if (transport == "ipc") {
        return "ipc:///tmp/zchan-net-test-" + std::to_string(::getpid()) + "-" + std::to_string(n);
    }
    return "tcp://127.0.0.1:*";
}

zchan::net_options fast() {
    zchan::net_options o;
    o.connect_timeout = 2000ms;
    o.heartbeat = 100ms;
    o.heartbeat_timeout = 400ms;
    return o;
}

class NetIntegration : public ::testing::TestWithParam<std::string> {};

TEST_P(NetIntegration, RemoteSendAndRecvReachTheHomeChannel) {
    zchan::channel<std::string> ch(4);
    zchan::server srv(make_endpoint(GetParam()), fast());
    srv.serve("words", ch);
    auto remote = zchan::dial<std::string>(srv.endpoint(), "words", fast());
    EXPECT_EQ(remote.cap(), 4u);
    remote.send("hello");
    remote << "world";
    EXPECT_EQ(ch.len(), 2u);
    EXPECT_EQ(remote.len(), 2u);
    EXPECT_EQ(*ch.recv(), "hello");
    EXPECT_EQ(*remote.recv(), "world");
    ch.send("local");
    std::string v;
    ASSERT_TRUE(remote >> v);
    EXPECT_EQ(v, "local");
}

TEST_P(NetIntegration, CapacityIsExactForRemoteSenders) {
    zchan::channel<int> ch(2);
    zchan::server srv(make_endpoint(GetParam()), fast());
    srv.serve("c", ch);
    auto remote = zchan::dial<int>(srv.endpoint(), "c", fast());
    remote.send(1);
    remote.send(2);
    EXPECT_EQ(remote.try_send(3), zchan::send_status::full);
    EXPECT_TRUE(blocks_until([&] { remote.send(3); }, [&] { EXPECT_EQ(*ch.recv(), 1); }));
    EXPECT_EQ(*ch.recv(), 2);
    EXPECT_EQ(*ch.recv(), 3);
}

TEST_P(NetIntegration, UnbufferedRemoteSendIsARendezvous) {
    zchan::channel<int> ch;
    zchan::server srv(make_endpoint(GetParam()), fast());
    srv.serve("u", ch);
    auto remote = zchan::dial<int>(srv.endpoint(), "u", fast());
    EXPECT_TRUE(blocks_until([&] { remote.send(7); }, [&] { EXPECT_EQ(*ch.recv(), 7); }));
    // And a remote receiver takes from a local sender.
    background_call sender([&] { ch.send(8); });
    EXPECT_EQ(*remote.recv(), 8);
    EXPECT_TRUE(sender.wait_done());
}

TEST_P(NetIntegration, CloseFromRemoteDrainsThenEnds) {
    zchan::channel<int> ch(8);
    zchan::server srv(make_endpoint(GetParam()), fast());
    srv.serve("c", ch);
    auto remote = zchan::dial<int>(srv.endpoint(), "c", fast());
    ch.send(1);
    remote.send(2);
    remote.close();
    EXPECT_TRUE(remote.is_closed());
    EXPECT_TRUE(zchan_test::throws<zchan::channel_closed>([&] { remote.close(); }));
    EXPECT_TRUE(zchan_test::throws<zchan::channel_closed>([&] { remote.send(3); }));
    EXPECT_TRUE(zchan_test::throws<zchan::channel_closed>([&] { ch.send(3); }));
    std::vector<int> got;
    for (int v : remote) got.push_back(v);
    EXPECT_EQ(got, (std::vector<int>{1, 2}));
    EXPECT_FALSE(ch.recv().has_value());
}

TEST_P(NetIntegration, DeadlinesWorkOnRemoteChannelsAndLoseNothing) {
    zchan::channel<int> ch(1);
    zchan::server srv(make_endpoint(GetParam()), fast());
    srv.serve("d", ch);
    auto remote = zchan::dial<int>(srv.endpoint(), "d", fast());
    EXPECT_EQ(remote.recv_for(30ms).status, zchan::recv_status::timeout);
    EXPECT_EQ(remote.try_recv().status, zchan::recv_status::empty);
    EXPECT_EQ(remote.send_for(1, 30ms), zchan::send_status::ok);
    EXPECT_EQ(remote.send_for(2, 30ms), zchan::send_status::timeout);
    EXPECT_EQ(ch.len(), 1u);
    EXPECT_EQ(*ch.recv(), 1);
    // A cancelled remote receive never swallows a later value.
    for (int i = 0; i < 20; ++i) {
        EXPECT_NE(remote.recv_for(1ms).status, zchan::recv_status::peer_lost);
        ch.send(100 + i);
        auto r = remote.recv_for(2s);
        ASSERT_TRUE(r) << i;
        EXPECT_EQ(*r.value, 100 + i);
    }
}

TEST_P(NetIntegration, SelectOverLocalAndRemoteNeverLosesOrDuplicates) {
    constexpr int n = 300;
    zchan::channel<int> home(16);
    zchan::server srv(make_endpoint(GetParam()), fast());
    srv.serve("s", home);
    auto remote = zchan::dial<int>(srv.endpoint(), "s", fast());
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
    while (home_open || local_open) {
        auto r = home_open ? remote : zchan::channel<int>::nil();
        auto l = local_open ? local : zchan::channel<int>::nil();
        zchan::select(zchan::recv_case(r,
                                       [&](std::optional<int> v) {
                                           if (v) {
                                               got.insert(*v);
                                           } else {
                                               home_open = false;
                                           }
                                       }),
                      zchan::recv_case(l, [&](std::optional<int> v) {
                          if (v) {
                              got.insert(*v);
                          } else {
                              local_open = false;
                          }
                      }));
    }
    feed_home.join();
    feed_local.join();
    ASSERT_EQ(got.size(), static_cast<std::size_t>(2 * n));
    int expect = 0;
    for (int v : got) EXPECT_EQ(v, expect++);
}

TEST_P(NetIntegration, HandshakeRejectsUnknownChannelsAndOtherTypes) {
    zchan::channel<std::string> ch(1);
    zchan::server srv(make_endpoint(GetParam()), fast());
    srv.serve("strings", ch);
    try {
        (void)zchan::dial<int>(srv.endpoint(), "strings", fast());
        FAIL() << "dial of the wrong type succeeded";
    } catch (const zchan::type_mismatch& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("string"), std::string::npos) << what;
        EXPECT_NE(what.find("i32"), std::string::npos) << what;
    }
    try {
        (void)zchan::dial<std::string>(srv.endpoint(), "nope", fast());
        FAIL() << "dial of an unknown channel succeeded";
    } catch (const zchan::connect_error& e) {
        EXPECT_EQ(e.code(), zchan::errc::unknown_channel);
        EXPECT_NE(std::string(e.what()).find("nope"), std::string::npos);
    }
}

TEST_P(NetIntegration, HomeGoneMeansPeerLostNotClosedNorTimeout) {
    zchan::channel<int> ch(1);
    auto srv = std::make_unique<zchan::server>(make_endpoint(GetParam()), fast());
    srv->serve("x", ch);
    auto remote = zchan::dial<int>(srv->endpoint(), "x", fast());
    background_call blocked(
        [&] { EXPECT_TRUE(zchan_test::throws<zchan::peer_lost>([&] { (void)remote.recv(); })); });
    EXPECT_TRUE(blocked.still_blocked_after());
    srv.reset();
    EXPECT_TRUE(blocked.wait_done());
    EXPECT_EQ(remote.try_send(1), zchan::send_status::peer_lost);
    EXPECT_EQ(remote.recv_for(10ms).status, zchan::recv_status::peer_lost);
}

INSTANTIATE_TEST_SUITE_P(Transports, NetIntegration, ::testing::Values("inproc", "ipc", "tcp"));

TEST(NetIntegrationTcp, NothingToDialIsAConnectErrorAfterTheTimeout) {
    std::string endpoint;
    {
        zchan::server srv("tcp://127.0.0.1:*");
        endpoint = srv.endpoint();  // a port that was free a moment ago
    }
    auto opts = fast();
    opts.connect_timeout = 300ms;
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_TRUE(zchan_test::throws<zchan::connect_error>(
        [&] { (void)zchan::dial<int>(endpoint, "x", opts); }));
    EXPECT_GE(std::chrono::steady_clock::now() - t0, 300ms);
}

}  // namespace

// The opt-in prefetch window (docs/protocol.md §9.2, net_options::prefetch) over tcp: values
// arrive in order and exactly once, close is seen after the queued values, select and
// deadlines work through the local queue, and values prefetched but not taken go back to the
// channel when the handle goes.
#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "zchan/channel.hpp"
#include "zchan/net.hpp"
#include "zchan/select.hpp"
#include "net_test_support.hpp"

namespace {

using namespace std::chrono_literals;

zchan::net_options with_prefetch(std::uint32_t p) {
    zchan::net_options o;
    o.connect_timeout = 2000ms;
    o.heartbeat = 100ms;
    o.heartbeat_timeout = 400ms;
    o.prefetch = p;
    return o;
}

TEST(NetPrefetch, ValuesArriveInOrderExactlyOnceThenClosed) {
    constexpr int n = 2000;
    zchan::channel<int> home(64);
    zchan::server srv("tcp://127.0.0.1:*", with_prefetch(0));
    srv.serve("p", home);
    auto remote = zchan::dial<int>(srv.endpoint(), "p", with_prefetch(32));
    std::thread producer([&] {
        for (int i = 0; i < n; ++i) home.send(i);
        home.close();
    });
    int expect = 0;
    for (int v : remote) EXPECT_EQ(v, expect++);
    EXPECT_EQ(expect, n);
    producer.join();
    EXPECT_FALSE(remote.recv().has_value());  // closed stays closed
}

TEST(NetPrefetch, TryRecvAndDeadlinesUseTheLocalQueue) {
    zchan::channel<int> home(8);
    zchan::server srv("tcp://127.0.0.1:*");
    srv.serve("p", home);
    auto remote = zchan::dial<int>(srv.endpoint(), "p", with_prefetch(4));
    EXPECT_EQ(remote.recv_for(50ms).status, zchan::recv_status::timeout);
    home.send(7);
    auto r = remote.recv_for(2s);
    ASSERT_EQ(r.status, zchan::recv_status::ok);
    EXPECT_EQ(*r.value, 7);
    EXPECT_EQ(remote.try_recv().status, zchan::recv_status::empty);
}

TEST(NetPrefetch, SelectTakesPrefetchedValuesWithoutLossOrDuplicates) {
    constexpr int n = 300;
    zchan::channel<int> home(16);
    zchan::server srv("tcp://127.0.0.1:*");
    srv.serve("p", home);
    auto remote = zchan::dial<int>(srv.endpoint(), "p", with_prefetch(8));
    zchan_test::expect_select_over_remote_and_local_exactly_once(home, remote, n);
}

TEST(NetPrefetch, ValuesNotTakenGoBackWhenTheHandleGoes) {
    zchan::channel<int> home(16);
    zchan::server srv("tcp://127.0.0.1:*");
    srv.serve("p", home);
    for (int i = 0; i < 10; ++i) home.send(i);
    {
        auto remote = zchan::dial<int>(srv.endpoint(), "p", with_prefetch(8));
        ASSERT_EQ(remote.recv(), std::optional<int>(0));
        // Values 1.. are now prefetched (out of the channel) or about to be.
    }
    // BYE: the home puts every unacknowledged delivery back at the head. BYE is handled
    // asynchronously, so values still in the channel may come first: check the set.
    std::set<int> rest;
    while (rest.size() < 9) {
        auto r = home.recv_for(2s);
        ASSERT_EQ(r.status, zchan::recv_status::ok) << "after " << rest.size() << " values";
        EXPECT_TRUE(rest.insert(*r.value).second) << "duplicate " << *r.value;
    }
    EXPECT_EQ(*rest.begin(), 1);
    EXPECT_EQ(*rest.rbegin(), 9);
    EXPECT_EQ(home.try_recv().status, zchan::recv_status::empty);
}

}  // namespace

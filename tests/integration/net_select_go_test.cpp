// Go's select rules with remote (dialed) cases, home and dialer in one
// process over inproc:// and tcp://127.0.0.1:*: a blocked select permutes its
// cases on one channel (Go's TestPseudoRandomSend), also when they are remote.
#include <array>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "net_test_support.hpp"
#include "wait_probe.hpp"
#include "zchan/channel.hpp"
#include "zchan/net.hpp"
#include "zchan/select.hpp"
#include "zchan_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using zchan_test::background_call;
using zchan_test::make_endpoint;
using zchan_test::receiver_registered;

// A long heartbeat timeout: sanitized runs are slow; loss is not tested here.
zchan::net_options fast() { return zchan_test::heartbeat_options(100ms, 2000ms, 2000ms); }

class NetSelectGo : public ::testing::TestWithParam<std::string> {};

// select {remote <- 1, remote <- 0, <-probe}, blocked before the home's
// receiver arrives: the watch registered first is answered first, so the
// registration order decides which value is sent, and it must be random.
TEST_P(NetSelectGo, BlockedSelectPermutesRemoteSendCasesOnTheSameChannel) {
    constexpr int n = 100;  // not scaled: the bound needs the count
    zchan::channel<int> home;
    zchan::server srv(make_endpoint(GetParam()), fast());
    srv.serve("u", home);
    auto remote = zchan::dial<int>(srv.endpoint(), "u", fast());
    zchan::channel<int> probe;  // never ready; its registration shows the select blocked
    std::vector<int> got;
    background_call receiver([&] {
        for (int i = 0; i < n; ++i) {
            // The select registers after its poll (two TRY SENDs that found
            // no receiver): once its probe case is registered, whatever
            // watches it has registered were sent before any receiver.
            while (!receiver_registered(probe)) std::this_thread::yield();
            got.push_back(*home.recv());
        }
    });
    for (int i = 0; i < n; ++i) {
        const std::size_t k = zchan::select(zchan::send_case(remote, 1),
                                            zchan::send_case(remote, 0), zchan::recv_case(probe));
        ASSERT_LT(k, 2u);
    }
    ASSERT_TRUE(receiver.wait_done());
    receiver.rethrow();
    std::array<int, 2> hits{};
    for (int v : got) hits.at(static_cast<std::size_t>(v))++;
    // Go wants more than n/10 of each.
    EXPECT_GT(hits[0], n / 10) << hits[0] << " zeros, " << hits[1] << " ones";
    EXPECT_GT(hits[1], n / 10) << hits[0] << " zeros, " << hits[1] << " ones";
}

// The same with receive cases: two RECVs on one remote channel; a home-side
// sender that arrives later completes the one registered first.
TEST_P(NetSelectGo, BlockedSelectPermutesRemoteRecvCasesOnTheSameChannel) {
    constexpr int n = 100;  // not scaled: the bound needs the count
    zchan::channel<int> home;
    zchan::server srv(make_endpoint(GetParam()), fast());
    srv.serve("u", home);
    auto remote = zchan::dial<int>(srv.endpoint(), "u", fast());
    zchan::channel<int> probe;
    background_call sender([&] {
        for (int i = 0; i < n; ++i) {
            while (!receiver_registered(probe)) std::this_thread::yield();
            home.send(i);
        }
    });
    std::array<int, 2> hits{};
    for (int i = 0; i < n; ++i) {
        const std::size_t k = zchan::select(zchan::recv_case(remote), zchan::recv_case(remote),
                                            zchan::recv_case(probe));
        ASSERT_LT(k, 2u);
        hits.at(k)++;
    }
    ASSERT_TRUE(sender.wait_done());
    sender.rethrow();
    EXPECT_GT(hits[0], n / 10) << hits[0] << " vs " << hits[1];
    EXPECT_GT(hits[1], n / 10) << hits[0] << " vs " << hits[1];
}

INSTANTIATE_TEST_SUITE_P(Transports, NetSelectGo, ::testing::Values("inproc", "tcp"));

}  // namespace

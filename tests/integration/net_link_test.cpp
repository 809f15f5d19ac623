// Several threads share one dialed handle (src/peer_connection.cpp's leader/followers: one waiting
// thread polls the socket, the others park and are handed their answers): every value
// arrives exactly once and nobody stalls, with and without the prefetch window
// (docs/protocol.md §9.2, §15).
#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "zchan/channel.hpp"
#include "zchan/net.hpp"

namespace {

using namespace std::chrono_literals;

class NetLink : public ::testing::TestWithParam<std::uint32_t> {};

TEST_P(NetLink, ThreadsSharingHandlesLoseNothingAndNeverStall) {
    constexpr int senders = 3;
    constexpr int receivers = 3;
    constexpr int per_sender = 400;
    zchan::net_options opts;
    opts.heartbeat = 100ms;
    opts.heartbeat_timeout = 2000ms;
    zchan::channel<int> home(4);  // small: remote senders block and wait for answers too
    zchan::server srv("tcp://127.0.0.1:*", opts);
    srv.serve("c", home);
    auto out = zchan::dial<int>(srv.endpoint(), "c", opts);
    zchan::net_options in_opts = opts;
    in_opts.prefetch = GetParam();
    auto in = zchan::dial<int>(srv.endpoint(), "c", in_opts);

    std::vector<std::atomic<int>> seen(static_cast<std::size_t>(senders) * per_sender);
    std::atomic<int> received{0};
    std::atomic<bool> failed{false};
    std::vector<std::thread> threads;
    for (int s = 0; s < senders; ++s) {
        threads.emplace_back([&, s] {
            for (int i = 0; i < per_sender; ++i) {
                if (out.send_for(s * per_sender + i, 10s) != zchan::send_status::ok) {
                    failed = true;
                    return;
                }
            }
        });
    }
    for (int r = 0; r < receivers; ++r) {
        threads.emplace_back([&] {
            while (received.load() < senders * per_sender && !failed) {
                auto got = in.recv_for(200ms);
                if (got.status == zchan::recv_status::timeout) continue;
                if (got.status != zchan::recv_status::ok) {
                    failed = true;
                    return;
                }
                seen[static_cast<std::size_t>(*got.value)].fetch_add(1);
                received.fetch_add(1);
            }
        });
    }
    for (auto& t : threads) t.join();
    ASSERT_FALSE(failed);
    EXPECT_EQ(received.load(), senders * per_sender);
    for (std::size_t v = 0; v < seen.size(); ++v) {
        EXPECT_EQ(seen[v].load(), 1) << "value " << v;
    }
}

INSTANTIATE_TEST_SUITE_P(Prefetch, NetLink, ::testing::Values(0u, 1u, 16u),
                         [](const auto& param_info) {
                             return "p" + std::to_string(param_info.param);
                         });

}  // namespace

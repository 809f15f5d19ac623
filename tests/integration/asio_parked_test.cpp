// Operations that wait in the frame of the coroutine that awaits them
// (detail/asio_parked.hpp), and Go's hand-offs on a buffered channel that make
// such waits rare (buffered_chan's give_head and take_waiting_value), through
// zchan/asio.hpp. Most io_contexts here run on the test's thread, polled until
// the coroutines wait, so that "before" and "after" are exact; the last tests
// run them on several threads, where a parked operation resumes on any.
#include <cstddef>
#include <cstdint>
#include <future>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

#include <asio/bind_executor.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>
#include <gtest/gtest.h>

#include "asio_test_support.hpp"
#include "zchan/asio.hpp"
#include "zchan/channel.hpp"

namespace {

using asio::use_awaitable;

/// Spawns a coroutine that receives once from `ch` into `got`.
void spawn_recv(asio::io_context& io, const zchan::channel<int>& ch, std::optional<int>& got) {
    asio::co_spawn(
        io, [&]() -> asio::awaitable<void> { got = co_await zchan::async_recv(ch, use_awaitable); },
        asio::detached);
}

/// With a receive waiting on `ch` (capacity 1) of `io`, not yet run: a send
/// hands it 3 (give_head), so the buffer is empty before the receive has run
/// again and 4 fits; the receive then reports 3 in `got`.
void expect_the_send_hands_over_the_oldest_value(asio::io_context& io,
                                                 const zchan::channel<int>& ch,
                                                 const std::optional<int>& got) {
    io.poll();  // the receive waits
    ASSERT_FALSE(got.has_value());
    ch.send(3);
    EXPECT_EQ(ch.len(), 0u);
    EXPECT_EQ(ch.try_send(4), zchan::send_status::ok);
    io.run();
    EXPECT_EQ(got, 3);
    EXPECT_EQ(ch.recv(), 4);
}

TEST(AsioParked, ASendHandsTheOldestValueToAnAwaitedReceiveWaitingOnABufferedChannel) {
    asio::io_context io;
    zchan::channel<int> ch(1);
    std::optional<int> got;
    spawn_recv(io, ch, got);
    expect_the_send_hands_over_the_oldest_value(io, ch, got);
}

TEST(AsioParked, ASendHandsTheOldestValueToAReceiveWithAnyTokenWaitingOnABufferedChannel) {
    // The same hand-off to an operation of the general engine (async_select.hpp).
    asio::io_context io;
    zchan::channel<int> ch(1);
    std::optional<int> got;
    zchan::async_recv(ch, asio::bind_executor(io, [&got](std::error_code ec, std::optional<int> v) {
                          EXPECT_FALSE(ec);
                          got = v;
                      }));
    expect_the_send_hands_over_the_oldest_value(io, ch, got);
}

TEST(AsioParked, AnAwaitedSendWaitingOnAFullChannelCompletesWithTheSlotAReceiveFreed) {
    asio::io_context io;
    zchan::channel<int> ch(1);
    int sent = 0;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            for (int v = 1; v <= 2; ++v) {
                co_await zchan::async_send(ch, v, use_awaitable);
                sent = v;
            }
        },
        asio::detached);
    io.poll();  // 1 is in the buffer, the send of 2 waits
    EXPECT_EQ(sent, 1);
    EXPECT_EQ(ch.recv(), 1);
    EXPECT_EQ(ch.len(), 1u);  // 2 took the freed slot at once (take_waiting_value)
    EXPECT_EQ(sent, 1);       // reported on its io_context
    io.run();
    EXPECT_EQ(sent, 2);
    EXPECT_EQ(ch.recv(), 2);
}

TEST(AsioParked, CloseWakesParkedOperationsOnBothSides) {
    asio::io_context io;
    zchan::channel<int> empty(1);
    zchan::channel<int> full(1);
    full.send(0);
    std::optional<int> got = 5;
    std::optional<std::error_code> send_error;
    spawn_recv(io, empty, got);
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            try {
                co_await zchan::async_send(full, 1, use_awaitable);
                send_error = std::error_code{};
            } catch (const std::system_error& e) {
                send_error = e.code();
            }
        },
        asio::detached);
    io.poll();
    EXPECT_EQ(got, 5);
    EXPECT_FALSE(send_error.has_value());
    empty.close();
    full.close();
    io.run();
    EXPECT_EQ(got, std::nullopt);
    EXPECT_EQ(send_error, zchan::async_errc::channel_closed);
    EXPECT_EQ(full.recv(), 0);  // the failed send sent nothing
    EXPECT_EQ(full.recv(), std::nullopt);
}

/// `pairs` sender and receiver coroutines on one io_context run by
/// `threads` threads, `n` values per pair through a channel of capacity
/// `cap`: every value arrives once, in each sender's order.
void pairs_on_threads(std::size_t cap, int pairs, int n, int threads) {
    asio::io_context io(threads);
    std::vector<std::future<std::int64_t>> sums;
    for (int p = 0; p < pairs; ++p) {
        zchan::channel<int> ch(cap);
        asio::co_spawn(
            io,
            [ch, n]() -> asio::awaitable<void> {
                for (int i = 0; i < n; ++i) co_await zchan::async_send(ch, i, use_awaitable);
            },
            asio::detached);
        sums.push_back(asio::co_spawn(
            io,
            [ch, n]() -> asio::awaitable<std::int64_t> {
                std::int64_t sum = 0;
                for (int i = 0; i < n; ++i) {
                    const std::optional<int> v = co_await zchan::async_recv(ch, use_awaitable);
                    EXPECT_EQ(v, i);
                    sum += v.value_or(0);
                }
                co_return sum;
            },
            asio::use_future));
    }
    std::vector<std::thread> runners;
    for (int t = 0; t < threads; ++t) runners.emplace_back([&io] { io.run(); });
    for (auto& s : sums) {
        ASSERT_TRUE(zchan_test::completes_within(s));
        EXPECT_EQ(s.get(), std::int64_t{n} * (n - 1) / 2);
    }
    for (auto& r : runners) r.join();
}

TEST(AsioParked, ParkedOperationsResumeOnAnyThreadOfTheirIoContext) {
    const int n = static_cast<int>(zchan_test::scale(2000));
    pairs_on_threads(0, 4, n, 2);
    pairs_on_threads(1, 4, n, 2);
    pairs_on_threads(3, 4, n, 2);
}

TEST(AsioParked, CoroutinesOnTwoIoContextsPassEveryValueOnceInEachSendersOrder) {
    // Every wake-up comes from the other io_context's thread.
    const int n = static_cast<int>(zchan_test::scale(2000));
    for (std::size_t cap : {std::size_t{0}, std::size_t{1}}) {
        zchan::channel<int> ch(cap);
        asio::io_context senders(1);
        asio::io_context receiver(1);
        for (int p = 0; p < 2; ++p) {
            asio::co_spawn(
                senders,
                [ch, n, p]() -> asio::awaitable<void> {
                    for (int i = 0; i < n; ++i) {
                        co_await zchan::async_send(ch, p * n + i, use_awaitable);
                    }
                },
                asio::detached);
        }
        std::vector<int> got;
        asio::co_spawn(
            receiver,
            [&got, ch, n]() -> asio::awaitable<void> {
                for (int i = 0; i < 2 * n; ++i) {
                    got.push_back((co_await zchan::async_recv(ch, use_awaitable)).value_or(-1));
                }
            },
            asio::detached);
        std::thread s([&senders] { senders.run(); });
        receiver.run();
        s.join();
        ASSERT_EQ(got.size(), static_cast<std::size_t>(2 * n));
        std::vector<int> next = {0, n};  // each sender's next value
        for (int v : got) {
            ASSERT_TRUE(v == next[0] || v == next[1]) << v;
            ++next[v == next[0] ? 0 : 1];
        }
        EXPECT_EQ(next[0], n);
        EXPECT_EQ(next[1], 2 * n);
    }
}

}  // namespace

// Continuations readied on the thread that runs their io_context
// (detail/asio_ready.hpp): they run next inside the handler already
// running, in order, never inside the call that readied them, at most
// ready_run::budget per handler; from elsewhere they go through the queue.
// The io_contexts run on the test's thread (run_one, poll), so "inside one
// handler" is exact: run_one() runs exactly one.
#include "zchan/detail/asio_ready.hpp"

#include <cstddef>
#include <functional>
#include <stdexcept>
#include <thread>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <gtest/gtest.h>

#include "zchan/asio.hpp"
#include "zchan/channel.hpp"

namespace {

using zchan::detail::ready_link;
using zchan::detail::ready_run;

/// A continuation that records its number in `log` and then does `then`.
struct step : ready_link {
    step(int number, std::vector<int>& out) : ready_link(&resume_step), n(number), log(&out) {}
    int n;
    std::vector<int>* log;
    std::function<void()> then;

    static void resume_step(ready_link& link) {
        auto& s = static_cast<step&>(link);
        s.log->push_back(s.n);
        if (s.then) s.then();
    }
};

TEST(AsioReady, ContinuationsReadiedInsideARunRunNextInOrderInTheSameHandler) {
    asio::io_context io;
    std::vector<int> log;
    step a(1, log);
    step b(2, log);
    step c(3, log);
    step d(4, log);
    const auto ex = io.get_executor();
    a.then = [&] {
        ready_run::make_ready(ex, b);
        ready_run::make_ready(ex, c);
        log.push_back(10);  // b and c wait until a is done
    };
    b.then = [&] { ready_run::make_ready(ex, d); };
    ready_run::make_ready(ex, a);  // no run on this thread: through the queue
    EXPECT_TRUE(log.empty());
    EXPECT_EQ(io.run_one(), 1u);
    EXPECT_EQ(log, (std::vector<int>{1, 10, 2, 3, 4}));
    EXPECT_EQ(io.poll(), 0u);  // nothing was left queued
}

TEST(AsioReady, ARunYieldsToQueuedHandlersAfterItsBudget) {
    asio::io_context io;
    std::vector<int> log;
    step a(1, log);
    step b(2, log);
    const auto ex = io.get_executor();
    std::size_t resumed = 0;
    const std::size_t pairs = ready_run::budget * 3;
    // a and b ready each other for `pairs` rounds, as two coroutines that
    // hand values back and forth.
    a.then = [&] {
        if (++resumed < 2 * pairs) ready_run::make_ready(ex, b);
    };
    b.then = [&] {
        if (++resumed < 2 * pairs) ready_run::make_ready(ex, a);
    };
    ready_run::make_ready(ex, a);
    bool other_ran = false;
    asio::post(io, [&] { other_ran = true; });
    EXPECT_EQ(io.run_one(), 1u);
    EXPECT_EQ(resumed, ready_run::budget);
    EXPECT_FALSE(other_ran);
    EXPECT_EQ(io.run_one(), 1u);  // the handler queued meanwhile, before the rest
    EXPECT_TRUE(other_ran);
    EXPECT_EQ(resumed, ready_run::budget);
    io.run();
    EXPECT_EQ(resumed, 2 * pairs);
}

TEST(AsioReady, AContinuationOfAnotherIoContextGoesThroughItsQueue) {
    asio::io_context io1;
    asio::io_context io2;
    std::vector<int> log;
    step a(1, log);
    step b(2, log);
    step c(3, log);
    a.then = [&] {
        ready_run::make_ready(io2.get_executor(), b);
        // A run of io2 nested in io1's (a handler that polls another
        // io_context): io1's run collects again once it returns.
        io2.poll();
        ready_run::make_ready(io1.get_executor(), c);
    };
    ready_run::make_ready(io1.get_executor(), a);
    EXPECT_EQ(io1.run_one(), 1u);
    EXPECT_EQ(log, (std::vector<int>{1, 2, 3}));
    EXPECT_EQ(io1.poll(), 0u);
    EXPECT_EQ(io2.poll(), 0u);
}

TEST(AsioReady, AContinuationReadiedOnAnotherThreadGoesThroughTheQueue) {
    asio::io_context io;
    std::vector<int> log;
    step a(1, log);
    std::thread other([&] { ready_run::make_ready(io.get_executor(), a); });
    other.join();
    EXPECT_TRUE(log.empty());
    EXPECT_EQ(io.run_one(), 1u);
    EXPECT_EQ(log, (std::vector<int>{1}));
}

TEST(AsioReady, WhatAThrowingContinuationLeavesIsQueuedNotLost) {
    asio::io_context io;
    std::vector<int> log;
    step a(1, log);
    step b(2, log);
    const auto ex = io.get_executor();
    a.then = [&] {
        ready_run::make_ready(ex, b);
        throw std::runtime_error("a failed");
    };
    ready_run::make_ready(ex, a);
    EXPECT_THROW(io.run_one(), std::runtime_error);
    EXPECT_EQ(log, (std::vector<int>{1}));
    EXPECT_EQ(io.run_one(), 1u);
    EXPECT_EQ(log, (std::vector<int>{1, 2}));
}

TEST(AsioReady, CoroutinesThatKeepHandingOffLetAHandlerPostedMeanwhileRun) {
    // Two coroutines ping-pong over unbuffered channels: every hand-off
    // readies the other side, so without a budget they would never give the
    // io_context back. A handler posted in the middle runs within a few runs.
    asio::io_context io(1);
    zchan::channel<int> ping;
    zchan::channel<int> pong;
    int exchanges = 0;
    int exchanges_when_posted = -1;
    int exchanges_when_ran = -1;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            while (auto v = co_await zchan::async_recv(ping, asio::use_awaitable)) {
                co_await zchan::async_send(pong, *v, asio::use_awaitable);
            }
            pong.close();
        },
        asio::detached);
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            for (;;) {
                if (exchanges == 100) {
                    exchanges_when_posted = exchanges;
                    asio::post(io, [&] { exchanges_when_ran = exchanges; });
                }
                if (exchanges_when_ran >= 0) break;
                co_await zchan::async_send(ping, exchanges, asio::use_awaitable);
                const auto v = co_await zchan::async_recv(pong, asio::use_awaitable);
                EXPECT_EQ(v, exchanges);
                ++exchanges;
            }
            ping.close();
        },
        asio::detached);
    io.run();
    EXPECT_EQ(exchanges_when_posted, 100);
    ASSERT_GE(exchanges_when_ran, 100);
    // Two continuations per exchange (each side is readied once): at most
    // the rest of the run that was going on when the handler was posted.
    EXPECT_LE(exchanges_when_ran - 100, static_cast<int>(ready_run::budget / 2 + 2));
}

}  // namespace

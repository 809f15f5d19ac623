// The select rules (tests/unit/select_test.cpp) through zchan::async_select,
// as coroutines on one io_context thread, on every channel kind (in process,
// and dialed over tcp://127.0.0.1:*), mixed with in-process channels and
// blocking threads.
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <optional>
#include <set>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <gtest/gtest.h>

#include "asio_test_support.hpp"
#include "zchan/asio.hpp"
#include "zchan/channel.hpp"
#include "zchan/select.hpp"

namespace {

using namespace std::chrono_literals;
using namespace asio::experimental::awaitable_operators;
using asio::use_awaitable;
using zchan_test::completes_within;
using zchan_test::still_pending_after;

class AsioSelect : public zchan_test::asio_kind_test {};

/// async_select's (error, position) as a value.
using result = std::pair<std::error_code, std::size_t>;
template <class... Cases>
asio::awaitable<result> select_of(Cases... cases) {
    auto [ec, i] = co_await zchan::async_select(asio::experimental::as_tuple(use_awaitable),
                                                std::move(cases)...);
    co_return result{ec, i};
}

TEST_P(AsioSelect, RecvCaseReceivesFromTheReadyChannel) {
    auto [home, ch] = make();
    zchan::channel<std::string> idle;
    std::thread sender([h = home] { h.send(5); });
    auto f = ex_.spawn([ch = ch, idle]() -> asio::awaitable<std::pair<result, int>> {
        int got = -1;
        auto r = co_await select_of(zchan::recv_case(idle),
                                    zchan::recv_case(ch, [&](std::optional<int> v) { got = *v; }));
        co_return std::pair{r, got};
    });
    ASSERT_TRUE(completes_within(f));
    sender.join();
    auto [r, got] = f.get();
    EXPECT_FALSE(r.first);
    EXPECT_EQ(r.second, 1u);
    EXPECT_EQ(got, 5);
}

TEST_P(AsioSelect, SendCaseSendsWhenAReceiverArrives) {
    auto [home, ch] = make();
    zchan::channel<int> idle;
    bool ran = false;
    auto f = ex_.spawn([ch = ch, idle, &ran] {
        return select_of(zchan::recv_case(idle), zchan::send_case(ch, 9, [&ran] { ran = true; }));
    });
    if (cap() == 0) {
        EXPECT_TRUE(still_pending_after(f));
    }
    EXPECT_EQ(home.recv(), 9);
    ASSERT_TRUE(completes_within(f));
    EXPECT_EQ(f.get(), (result{{}, 1}));
    EXPECT_TRUE(ran);
}

TEST_P(AsioSelect, DefaultRunsWhenNothingIsReadyAndNeverWhenACaseIs) {
    auto [home, ch] = make();
    bool default_ran = false;
    auto f = ex_.spawn([ch = ch, &default_ran] {
        return select_of(zchan::recv_case(ch), zchan::default_case([&] { default_ran = true; }));
    });
    EXPECT_EQ(f.get(), (result{{}, 1}));
    EXPECT_TRUE(default_ran);
    if (cap() > 0) {
        home.send(1);
        auto g =
            ex_.spawn([ch = ch] { return select_of(zchan::recv_case(ch), zchan::default_case()); });
        EXPECT_EQ(g.get(), (result{{}, 0}));
    }
}

TEST_P(AsioSelect, RecvCaseOnAClosedChannelFiresWithNulloptAfterTheBufferedValues) {
    auto [home, ch] = make();
    for (std::size_t i = 0; i < cap(); ++i) home.send(static_cast<int>(i));
    home.close();
    auto f = ex_.spawn([ch = ch, n = cap()]() -> asio::awaitable<std::vector<std::optional<int>>> {
        std::vector<std::optional<int>> got;
        for (std::size_t k = 0; k <= n; ++k) {
            co_await select_of(
                zchan::recv_case(ch, [&](std::optional<int> v) { got.push_back(v); }));
        }
        co_return got;
    });
    auto got = f.get();
    ASSERT_EQ(got.size(), cap() + 1);
    for (std::size_t i = 0; i < cap(); ++i) EXPECT_EQ(got[i], static_cast<int>(i));
    EXPECT_EQ(got.back(), std::nullopt);
}

TEST_P(AsioSelect, CloseWakesAWaitingSelect) {
    auto [home, ch] = make();
    zchan::channel<int> idle;
    std::optional<int> got = 0;
    auto f = ex_.spawn([ch = ch, idle, &got] {
        return select_of(zchan::recv_case(idle),
                         zchan::recv_case(ch, [&](std::optional<int> v) { got = v; }));
    });
    EXPECT_TRUE(still_pending_after(f));
    home.close();
    ASSERT_TRUE(completes_within(f));
    EXPECT_EQ(f.get(), (result{{}, 1}));
    EXPECT_EQ(got, std::nullopt);
}

TEST_P(AsioSelect, SendCaseOnAClosedChannelFailsWithChannelClosed) {
    auto [home, ch] = make();
    for (std::size_t i = 0; i < cap(); ++i) home.send(static_cast<int>(i));
    zchan::channel<int> idle;
    auto f = ex_.spawn(
        [ch = ch, idle] { return select_of(zchan::recv_case(idle), zchan::send_case(ch, 1)); });
    EXPECT_TRUE(still_pending_after(f));
    home.close();
    ASSERT_TRUE(completes_within(f));
    const result r = f.get();
    EXPECT_EQ(r.first, zchan::async_errc::channel_closed);
    EXPECT_EQ(r.second, 1u);
}

TEST_P(AsioSelect, ExactlyOneOfTwoReadyCasesRunsAndBothAreChosen) {
    auto [home_a, a] = make();
    auto [home_b, b] = make();
    // Two blocking feeders keep both cases ready (or about to be) until the
    // channels close. A case is only chosen while it is ready, and a feeder
    // may wait for a CPU longer than many selects take (three busy threads
    // on two vCPUs): so the selects go on until both were chosen, at least
    // `rounds` of them, and at most `limit` (a select that never chose one
    // of two ready cases runs into it).
    auto feed = [](zchan::channel<int> h, int v) {
        try {
            for (;;) h.send(v);
        } catch (const zchan::channel_closed&) {
        }
    };
    std::thread fa(feed, home_a, 0);
    std::thread fb(feed, home_b, 1);
    const int rounds = static_cast<int>(zchan_test::scale(remote() ? 100 : 1000));
    const int limit = 1'000'000;
    auto f = ex_.spawn([a = a, b = b, rounds, limit]() -> asio::awaitable<std::array<int, 3>> {
        int from_a = 0, from_b = 0, bad = 0;
        for (int i = 0; i < limit && (i < rounds || from_a == 0 || from_b == 0); ++i) {
            int ran = 0;
            co_await select_of(zchan::recv_case(a,
                                                [&] {
                                                    ++ran;
                                                    ++from_a;
                                                }),
                               zchan::recv_case(b, [&] {
                                   ++ran;
                                   ++from_b;
                               }));
            if (ran != 1) ++bad;
        }
        co_return std::array<int, 3>{from_a, from_b, bad};
    });
    const bool done = completes_within(f, 6 * zchan_test::generous);
    home_a.close();  // ends the feeders
    home_b.close();
    fa.join();
    fb.join();
    ASSERT_TRUE(done);
    auto [from_a, from_b, bad] = f.get();
    EXPECT_EQ(bad, 0);
    EXPECT_GT(from_a, 0);
    EXPECT_GT(from_b, 0);
}

TEST_P(AsioSelect, ASelectNeverPairsWithItself) {
    if (remote()) GTEST_SKIP() << "a remote send case only watches (protocol.md §8.6)";
    auto [home, ch] = make();
    if (cap() > 0) GTEST_SKIP() << "unbuffered only: a buffer pairs nobody";
    auto f = ex_.spawn([ch = ch] {
        return select_of(zchan::send_case(ch, 1), zchan::recv_case(ch), zchan::default_case());
    });
    EXPECT_EQ(f.get(), (result{{}, 2}));
    auto g = ex_.spawn([ch = ch]() -> asio::awaitable<std::size_t> {
        asio::steady_timer t(co_await asio::this_coro::executor, 30ms);
        auto r = co_await (
            zchan::async_select(use_awaitable, zchan::send_case(ch, 1), zchan::recv_case(ch)) ||
            t.async_wait(use_awaitable));
        co_return r.index();
    });
    ASSERT_TRUE(completes_within(g));
    EXPECT_EQ(g.get(), 1u);  // the timer: the select found no partner but itself
}

TEST_P(AsioSelect, TwoSelectsOnOneThreadRendezvousWithEachOther) {
    auto [home_a, a] = make();
    auto [home_b, b] = make();
    if (cap() > 0) GTEST_SKIP() << "a rendezvous needs unbuffered channels";
    if (remote()) GTEST_SKIP() << "two remote send cases only watch: nobody offers a value";
    const int rounds = static_cast<int>(zchan_test::scale(500));
    auto left = ex_.spawn([a = a, b = b, rounds]() -> asio::awaitable<int> {
        int got = 0;
        for (int i = 0; i < rounds; ++i) {
            co_await select_of(zchan::send_case(a, i), zchan::recv_case(b, [&] { ++got; }));
        }
        co_return got;
    });
    auto right = ex_.spawn([a = a, b = b, rounds]() -> asio::awaitable<int> {
        int got = 0;
        for (int i = 0; i < rounds; ++i) {
            co_await select_of(zchan::recv_case(a, [&] { ++got; }), zchan::send_case(b, i));
        }
        co_return got;
    });
    ASSERT_TRUE(completes_within(left));
    ASSERT_TRUE(completes_within(right));
    EXPECT_EQ(left.get() + right.get(), rounds);
}

TEST_P(AsioSelect, ACancelledSelectRanNoCase) {
    auto [home, ch] = make();
    for (std::size_t i = 0; i < cap(); ++i) home.send(static_cast<int>(i));
    zchan::channel<int> idle;
    bool ran = false;
    auto f = ex_.spawn([ch = ch, idle, &ran]() -> asio::awaitable<std::size_t> {
        asio::steady_timer t(co_await asio::this_coro::executor, 20ms);
        auto r = co_await (zchan::async_select(use_awaitable, zchan::recv_case(idle),
                                               zchan::send_case(ch, 100, [&] { ran = true; })) ||
                           t.async_wait(use_awaitable));
        co_return r.index();
    });
    ASSERT_TRUE(completes_within(f));
    EXPECT_EQ(f.get(), 1u);
    EXPECT_FALSE(ran);
    home.close();
    std::size_t n = 0;
    for (int v : home) {
        EXPECT_NE(v, 100);
        ++n;
    }
    EXPECT_EQ(n, cap());
}

TEST_P(AsioSelect, SelectOverThisKindAndAnInProcessChannelDeliversEveryValueOnce) {
    auto [home, ch] = make();
    zchan::channel<int> local(4);
    const int n = static_cast<int>(zchan_test::scale(remote() ? 200 : 2000));
    std::thread feed_home([h = home, n] {
        for (int i = 0; i < n; ++i) h.send(i);
        h.close();
    });
    std::thread feed_local([local, n] {
        for (int i = 0; i < n; ++i) local.send(n + i);
        local.close();
    });
    auto f = ex_.spawn([ch = ch, local]() -> asio::awaitable<std::multiset<int>> {
        std::multiset<int> got;
        bool open_a = true, open_b = true;
        auto collect = [&](bool& open) {
            return [&](std::optional<int> v) {
                if (v) {
                    got.insert(*v);
                } else {
                    open = false;
                }
            };
        };
        while (open_a || open_b) {
            auto a = open_a ? ch : zchan::channel<int>::nil();
            auto b = open_b ? local : zchan::channel<int>::nil();
            co_await zchan::async_select(use_awaitable, zchan::recv_case(a, collect(open_a)),
                                         zchan::recv_case(b, collect(open_b)));
        }
        co_return got;
    });
    ASSERT_TRUE(completes_within(f));
    feed_home.join();
    feed_local.join();
    const auto got = f.get();
    ASSERT_EQ(got.size(), static_cast<std::size_t>(2 * n));
    int expect = 0;
    for (int v : got) EXPECT_EQ(v, expect++);
}

TEST_P(AsioSelect, SendCaseAgainstARecvCaseElsewhereRunsExactlyOneCaseEachTime) {
    // select {send(ch, i), recv(local)} against a local feeder and a drainer
    // of ch: every value a send case reported reaches the drainer once.
    auto [home, ch] = make();
    zchan::channel<int> local;
    const int n = static_cast<int>(zchan_test::scale(remote() ? 200 : 2000));
    constexpr int fed_base = 1'000'000;
    std::thread feeder([local, n] {
        for (int i = 0; i < n; ++i) local.send(fed_base + i);
        local.close();
    });
    std::multiset<int> drained;
    std::thread drainer([&, h = home] {
        for (int v : h) drained.insert(v);
    });
    auto f =
        ex_.spawn([ch = ch, local, n]() -> asio::awaitable<std::pair<std::multiset<int>, int>> {
            std::multiset<int> sent;
            int bad = 0, fed = 0;
            bool local_open = true;
            for (int i = 0; i < n || local_open; ++i) {
                int ran = 0;
                auto l = local_open ? local : zchan::channel<int>::nil();
                auto c = i < n ? ch : zchan::channel<int>::nil();
                co_await zchan::async_select(use_awaitable,
                                             zchan::send_case(c, i,
                                                              [&, i] {
                                                                  ++ran;
                                                                  sent.insert(i);
                                                              }),
                                             zchan::recv_case(l, [&](std::optional<int> v) {
                                                 ++ran;
                                                 if (v) {
                                                     ++fed;
                                                 } else {
                                                     local_open = false;
                                                 }
                                             }));
                if (ran != 1) ++bad;
            }
            ch.close();
            co_return std::pair{sent, bad * 1'000'000 + fed};
        });
    ASSERT_TRUE(completes_within(f));
    feeder.join();
    drainer.join();
    auto [sent, fed] = f.get();
    EXPECT_EQ(fed, n);
    EXPECT_EQ(sent, drained);
}

INSTANTIATE_TEST_SUITE_P(Kinds, AsioSelect, ::testing::ValuesIn(zchan_test::kinds),
                         zchan_test::kind_name);

}  // namespace

// The hand-off cases of zchan_bench_inproc as coroutines on one io_context thread, for
// zchan (zchan/asio.hpp) and for Asio's own asio::experimental::channel on the same executor.
// Included by inproc_bench.cpp when zchan::asio is built (ZCHAN_BENCH_ASIO).
//
//   zchan_coro/<case>    the case with zchan::async_send / async_recv and co_await
//   asio_channel/<case>  the same with asio::experimental::channel<void(error_code, int)>
//   asio_floor/<case>    the same number of co_awaits of an operation that does nothing and
//                        completes through the executor's queue: what any channel costs at
//                        best with use_awaitable on Asio 1.22, where a co_await always
//                        suspends and, without resuming inline, resumes from the queue
// for <case> in spsc_unbuffered, spsc_cap1 (one sender coroutine, one receiver coroutine,
// N values) and pingpong_unbuffered (N round trips between two coroutines). An item is one
// value received (one round trip for ping-pong), as in every other case and in bench/go.
// Timed: io_context::run() from the first step of the two coroutines to the last; one
// thread, so no cache line moves between CPUs and nothing sleeps: what is left is the cost
// of the channel and of Asio's scheduling (a post per completion), the same for both.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <system_error>

#include <asio/async_result.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/channel.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>
#include <benchmark/benchmark.h>

#include <zchan/asio.hpp>
#include <zchan/zchan.hpp>

namespace coro_bench {

using asio::use_awaitable;

// send and recv return the operation's own awaitable, co_awaited directly in
// the loops below (no wrapping coroutine per operation, as in bench/go).

/// zchan through zchan/asio.hpp.
struct zchan_coro {
    using chan = zchan::channel<int>;
    static chan make(asio::io_context& /*io*/, std::size_t cap) { return chan(cap); }
    static auto send(chan& c, int v) { return zchan::async_send(c, v, use_awaitable); }
    static auto recv(chan& c) { return zchan::async_recv(c, use_awaitable); }
    static int value(const std::optional<int>& v) { return *v; }
};

/// Asio's channel on the same executor.
struct asio_channel {
    using chan = asio::experimental::channel<void(std::error_code, int)>;
    static chan make(asio::io_context& io, std::size_t cap) { return chan(io, cap); }
    static auto send(chan& c, int v) { return c.async_send(std::error_code{}, v, use_awaitable); }
    static auto recv(chan& c) { return c.async_receive(use_awaitable); }
    static int value(int v) { return v; }
};

/// One sender coroutine, one receiver coroutine, `n` values through capacity `cap`.
template <class Impl>
void spsc(benchmark::State& state, std::int64_t n, std::size_t cap) {
    for (auto _ : state) {
        asio::io_context io(1);
        auto ch = Impl::make(io, cap);
        std::int64_t sum = 0;
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                for (std::int64_t i = 0; i < n; ++i) co_await Impl::send(ch, static_cast<int>(i));
            },
            asio::detached);
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                for (std::int64_t i = 0; i < n; ++i) sum += Impl::value(co_await Impl::recv(ch));
            },
            asio::detached);
        const auto t0 = std::chrono::steady_clock::now();
        io.run();
        const auto t1 = std::chrono::steady_clock::now();
        state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
        if (sum != n * (n - 1) / 2) {
            state.SkipWithError("wrong sum");
            break;
        }
    }
    state.SetItemsProcessed(state.iterations() * n);
}

/// `n` round trips between two coroutines over two unbuffered channels.
template <class Impl>
void pingpong(benchmark::State& state, std::int64_t n) {
    for (auto _ : state) {
        asio::io_context io(1);
        auto ping = Impl::make(io, 0);
        auto pong = Impl::make(io, 0);
        std::int64_t sum = 0;
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                for (std::int64_t i = 0; i < n; ++i) {
                    co_await Impl::send(pong, Impl::value(co_await Impl::recv(ping)));
                }
            },
            asio::detached);
        asio::co_spawn(
            io,
            [&]() -> asio::awaitable<void> {
                for (std::int64_t i = 0; i < n; ++i) {
                    co_await Impl::send(ping, static_cast<int>(i));
                    sum += Impl::value(co_await Impl::recv(pong));
                }
            },
            asio::detached);
        const auto t0 = std::chrono::steady_clock::now();
        io.run();
        const auto t1 = std::chrono::steady_clock::now();
        state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
        if (sum != n * (n - 1) / 2) {
            state.SkipWithError("wrong sum");
            break;
        }
    }
    state.SetItemsProcessed(state.iterations() * n);
}

/// Does nothing and completes through `io`'s queue, posted to the io_context's own executor
/// as zchan's operations post their completions (Asio's type-erased post costs more).
template <class Token>
auto async_nothing(asio::io_context& io, Token&& token) {
    return asio::async_initiate<Token, void()>(
        [&io](auto handler) {
            asio::post(io.get_executor(), [h = std::move(handler)]() mutable { std::move(h)(); });
        },
        token);
}

/// The floor of a case: two coroutines with `per_item` co_awaits each per item (1 for a
/// value passed one way, 2 for a round trip), of async_nothing.
inline void floor_case(benchmark::State& state, std::int64_t n, std::int64_t per_item) {
    for (auto _ : state) {
        asio::io_context io(1);
        std::int64_t done = 0;
        for (int c = 0; c < 2; ++c) {
            asio::co_spawn(
                io,
                [&]() -> asio::awaitable<void> {
                    for (std::int64_t i = 0; i < n * per_item; ++i) {
                        co_await async_nothing(io, use_awaitable);
                    }
                    ++done;
                },
                asio::detached);
        }
        const auto t0 = std::chrono::steady_clock::now();
        io.run();
        const auto t1 = std::chrono::steady_clock::now();
        state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
        if (done != 2) {
            state.SkipWithError("a coroutine did not finish");
            break;
        }
    }
    state.SetItemsProcessed(state.iterations() * n);
}

/// Registers <impl>/<case> for zchan, Asio's channel and the floor, case by case.
/// `items(kind)` is the case's N: 0 spsc_unbuffered, 1 spsc_cap1, 2 pingpong_unbuffered.
template <class Items>
void register_all(Items items) {
    const auto reg = [](const std::string& name, auto fn) {
        benchmark::RegisterBenchmark(name.c_str(), fn)
            ->UseManualTime()
            ->Unit(benchmark::kMillisecond);
    };
    reg("zchan_coro/spsc_unbuffered",
        [items](benchmark::State& s) { spsc<zchan_coro>(s, items(0), 0); });
    reg("asio_channel/spsc_unbuffered",
        [items](benchmark::State& s) { spsc<asio_channel>(s, items(0), 0); });
    reg("asio_floor/spsc_unbuffered", [items](benchmark::State& s) { floor_case(s, items(0), 1); });
    reg("zchan_coro/spsc_cap1", [items](benchmark::State& s) { spsc<zchan_coro>(s, items(1), 1); });
    reg("asio_channel/spsc_cap1",
        [items](benchmark::State& s) { spsc<asio_channel>(s, items(1), 1); });
    reg("asio_floor/spsc_cap1", [items](benchmark::State& s) { floor_case(s, items(1), 1); });
    reg("zchan_coro/pingpong_unbuffered",
        [items](benchmark::State& s) { pingpong<zchan_coro>(s, items(2)); });
    reg("asio_channel/pingpong_unbuffered",
        [items](benchmark::State& s) { pingpong<asio_channel>(s, items(2)); });
    reg("asio_floor/pingpong_unbuffered",
        [items](benchmark::State& s) { floor_case(s, items(2), 2); });
}

}  // namespace coro_bench

// Many clients through one server (issue 11's second bar): 32 producer threads
// and 32 consumer threads in one process, each with its own connection, moving
// 24-byte values through one middle over tcp loopback; and 1 -> 1 (the broker
// baseline of `seq | zchan send` into a hub, `zchan recv`).
//
//   raw/broker_32x32   a zmq::proxy PULL -> PUSH broker: producers PUSH to its
//                      frontend, consumers PULL from its backend (what a user
//                      would hand-roll).
//   zchan/server_32x32_window
//                      a zchan::server serving a channel of capacity 1024;
//                      producers dial it with send_window 256, consumers with
//                      prefetch 256; the channel is closed once every producer
//                      flushed, and each consumer ranges to the end.
//
// Both check that every value arrives exactly once and, per consumer, in each
// producer's order. Timed from the first send to the last value received
// (manual time: dialing and connecting are set-up).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <benchmark/benchmark.h>
#include <zmq.hpp>

#include "net_harness.hpp"
#include "zchan/net.hpp"
#include "zchan/zchan.hpp"

namespace zchan_bench::fanin {

inline constexpr int max_clients = 32;  // producers, and as many consumers
inline constexpr std::int64_t fanin_items = 320'000;

/// (producer, seq, payload): 24 bytes.
using item = std::tuple<std::uint64_t, std::uint64_t, std::uint64_t>;

/// What the consumers saw: counts per producer, and whether each consumer saw
/// each producer's values in order.
struct tally {
    std::vector<std::atomic<std::int64_t>> per_producer =
        std::vector<std::atomic<std::int64_t>>(max_clients);
    std::atomic<bool> out_of_order{false};
    std::atomic<std::int64_t> total{0};

    std::size_t clients = 0;

    void check(std::int64_t per) const {
        if (out_of_order.load())
            throw bench_error("a consumer saw a producer's values out of order");
        for (std::size_t p = 0; p < clients; ++p) {
            if (const std::int64_t c = per_producer[p].load(); c != per) {
                throw bench_error("a producer's values arrived " + std::to_string(c) +
                                  " times, want " + std::to_string(per));
            }
        }
    }
};

inline void raw_broker(benchmark::State& state, int clients) {
    const std::int64_t per = scaled_items(fanin_items) / clients;
    for (auto _ : state) {
        zmq::context_t ctx;
        zmq::socket_t front(ctx, zmq::socket_type::pull);
        zmq::socket_t back(ctx, zmq::socket_type::push);
        front.bind("tcp://127.0.0.1:*");
        back.bind("tcp://127.0.0.1:*");
        const std::string fe = front.get(zmq::sockopt::last_endpoint);
        const std::string be = back.get(zmq::sockopt::last_endpoint);
        std::thread broker([&] {
            try {
                zmq::proxy(front, back);
            } catch (const zmq::error_t&) {  // ETERM: the context is shut down
            }
        });
        tally t;
        t.clients = static_cast<std::size_t>(clients);
        std::atomic<int> ready{0};
        std::atomic<bool> go{false};
        std::vector<std::thread> threads;
        for (int c = 0; c < clients; ++c) {
            threads.emplace_back([&] {
                zmq::socket_t pull(ctx, zmq::socket_type::pull);
                pull.set(zmq::sockopt::rcvtimeo, 20);  // to notice the end
                pull.connect(be);
                std::vector<std::int64_t> last(static_cast<std::size_t>(clients), -1);
                ++ready;
                while (t.total.load() != per * clients) {
                    zmq::message_t m;
                    if (!pull.recv(m)) continue;
                    std::uint64_t v[3];
                    std::memcpy(v, m.data(), sizeof v);
                    const auto p = static_cast<std::size_t>(v[0]);
                    if (static_cast<std::int64_t>(v[1]) <= last[p]) t.out_of_order = true;
                    last[p] = static_cast<std::int64_t>(v[1]);
                    ++t.per_producer[p];
                    ++t.total;
                }
            });
        }
        std::vector<zmq::socket_t> pushes;
        for (int p = 0; p < clients; ++p) {
            pushes.emplace_back(ctx, zmq::socket_type::push);
            pushes.back().connect(fe);
        }
        while (ready.load() < clients) std::this_thread::yield();
        const auto t0 = std::chrono::steady_clock::now();
        for (int p = 0; p < clients; ++p) {
            threads.emplace_back([&, p] {
                while (!go.load()) std::this_thread::yield();
                for (std::int64_t i = 0; i < per; ++i) {
                    const std::uint64_t v[3] = {static_cast<std::uint64_t>(p),
                                                static_cast<std::uint64_t>(i), 42};
                    pushes[static_cast<std::size_t>(p)].send(zmq::buffer(v, sizeof v));
                }
            });
        }
        go = true;
        for (auto& th : threads) th.join();
        const auto t1 = std::chrono::steady_clock::now();
        state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
        for (auto& s : pushes) s.close();
        front.close();
        back.close();
        ctx.shutdown();
        broker.join();
        t.check(per);
    }
    state.SetItemsProcessed(state.iterations() * per * clients);
}

inline void zchan_server(benchmark::State& state, int clients) {
    const std::int64_t per = scaled_items(fanin_items) / clients;
    for (auto _ : state) {
        zchan::channel<item> ch(1024);
        zchan::server srv("tcp://127.0.0.1:*");
        srv.serve("load", ch);
        zchan::net_options po;
        po.send_window = 256;
        zchan::net_options co;
        co.prefetch = 256;
        std::vector<zchan::channel<item>> outs;
        std::vector<zchan::channel<item>> ins;
        for (int c = 0; c < clients; ++c) {
            outs.push_back(zchan::dial<item>(srv.endpoint(), "load", po));
            ins.push_back(zchan::dial<item>(srv.endpoint(), "load", co));
        }
        tally t;
        t.clients = static_cast<std::size_t>(clients);
        std::atomic<bool> go{false};
        std::atomic<int> flushed{0};
        std::vector<std::thread> threads;
        for (int c = 0; c < clients; ++c) {
            threads.emplace_back([&, c] {
                std::vector<std::int64_t> last(static_cast<std::size_t>(clients), -1);
                for (const item& v : ins[static_cast<std::size_t>(c)]) {
                    const auto p = static_cast<std::size_t>(std::get<0>(v));
                    const auto seq = static_cast<std::int64_t>(std::get<1>(v));
                    if (seq <= last[p]) t.out_of_order = true;
                    last[p] = seq;
                    ++t.per_producer[p];
                }
            });
        }
        const auto t0 = std::chrono::steady_clock::now();
        for (int p = 0; p < clients; ++p) {
            threads.emplace_back([&, p] {
                while (!go.load()) std::this_thread::yield();
                auto& out = outs[static_cast<std::size_t>(p)];
                for (std::int64_t i = 0; i < per; ++i) {
                    out << item{static_cast<std::uint64_t>(p), static_cast<std::uint64_t>(i), 42};
                }
                if (out.flush() != zchan::send_status::ok) throw bench_error("not confirmed");
                if (++flushed == clients) ch.close();  // every value is in: end the ranges
            });
        }
        go = true;
        for (auto& th : threads) th.join();
        const auto t1 = std::chrono::steady_clock::now();
        state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
        t.check(per);
    }
    state.SetItemsProcessed(state.iterations() * per * clients);
}

}  // namespace zchan_bench::fanin

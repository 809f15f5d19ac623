// Stress tests for zchan::channel and zchan::select under heavy contention.
//
// Every wait is bounded: when a deadline passes, the test closes the channels
// involved (which must wake every blocked thread), reports the failure and
// still joins its threads, so a lost wake-up fails the test instead of hanging
// it. Sizes shrink under sanitizers (zchan_test::scale).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <zchan/zchan.hpp>
#include "zchan_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using zchan::channel;
using zchan::recv_case;
using zchan::select;
using zchan::send_case;
using zchan_test::deadline_after;

// Whole-test budget for positive waits; CTest's timeout (300 s, 4x under
// sanitizers) is the backstop behind it.
constexpr auto stress_deadline = zchan_test::sanitized ? 600'000ms : 200'000ms;

// How long the traffic may make no progress at all before the test calls it a
// lost wake-up (a correct run moves thousands of values per millisecond).
constexpr auto stall_limit = zchan_test::generous;

// Waits until `done()`, failing early if `progress()` stops changing for
// stall_limit (a lost wake-up or deadlock) or if `deadline` passes.
template <class Done, class Progress>
[[nodiscard]] bool wait_progressing(Done&& done, Progress&& progress,
                                    zchan_test::clock::time_point deadline) {
    auto last = progress();
    auto last_change = zchan_test::clock::now();
    for (;;) {
        const auto step = std::min(deadline, zchan_test::clock::now() + 100ms);
        if (zchan_test::wait_until(done, step)) return true;
        const auto now = zchan_test::clock::now();
        if (now >= deadline) return false;
        const auto p = progress();
        if (p != last) {
            last = p;
            last_change = now;
        } else if (now - last_change >= stall_limit) {
            return false;
        }
    }
}

// Closes `ch` unless already closed; used to unblock threads after a failure.
template <class T>
void close_quietly(channel<T>& ch) {
    try {
        ch.close();
    } catch (const zchan::channel_closed&) {
    }
}

// Joins `threads`, failing (not hanging) if they are still running at
// `deadline`: in that case `rescue` (which closes the channels) is called
// first, and if even that does not release them the process aborts with a
// message instead of hanging until the CTest timeout.
template <class Rescue>
void join_all_by(std::vector<std::thread>& threads, const std::atomic<int>& finished,
                 zchan_test::clock::time_point deadline, Rescue&& rescue, const char* what) {
    const int n = static_cast<int>(threads.size());
    if (!zchan_test::wait_until([&] { return finished.load() == n; }, deadline)) {
        ADD_FAILURE() << what << ": only " << finished.load() << " of " << n
                      << " threads finished before the deadline (lost wake-up or deadlock)";
        rescue();
        if (!zchan_test::wait_until([&] { return finished.load() == n; },
                                    deadline_after(zchan_test::generous))) {
            std::fprintf(stderr,
                         "%s: threads still blocked after closing every channel; aborting\n", what);
            std::fflush(stderr);
            std::abort();
        }
    }
    for (auto& t : threads) t.join();
}

// --------------------------------------------------------- MPMC exactly-once

// 8 senders x 8 receivers push `total` values through a channel of capacity
// `cap`. Checks: every value received exactly once (per-value bitmap), count and
// checksum match, and at every receiver each sender's values arrive in order.
void run_mpmc(std::size_t cap) {
    constexpr int senders = 8;
    constexpr int receivers = 8;
    const std::uint32_t per_sender =
        static_cast<std::uint32_t>(zchan_test::scale(1'000'000) / senders);
    const std::uint64_t total = std::uint64_t{per_sender} * senders;

    channel<std::uint64_t> ch(cap);
    std::vector<std::atomic<std::uint8_t>> seen(total);
    std::atomic<std::uint64_t> count{0};
    std::atomic<std::uint64_t> checksum{0};
    std::atomic<int> duplicates{0};
    std::atomic<int> order_violations{0};
    std::atomic<int> out_of_range{0};
    std::atomic<int> finished{0};
    std::atomic<std::uint64_t> progress{0};  // values received, published every 256

    zchan_test::start_gate gate(senders + receivers);
    std::vector<std::thread> threads;
    for (int r = 0; r < receivers; ++r) {
        threads.emplace_back([&] {
            gate.arrive_and_wait();
            std::vector<std::int64_t> last(senders, -1);  // per-sender FIFO at this receiver
            std::uint64_t local_count = 0;
            std::uint64_t local_sum = 0;
            while (auto v = ch.recv()) {
                const std::uint64_t value = *v;
                if (value >= total) {
                    out_of_range.fetch_add(1);
                    continue;
                }
                const auto s = static_cast<std::size_t>(value / per_sender);
                const auto seq = static_cast<std::int64_t>(value % per_sender);
                if (seq <= last[s]) order_violations.fetch_add(1);
                last[s] = seq;
                if (seen[value].exchange(1) != 0) duplicates.fetch_add(1);
                if ((++local_count & 255U) == 0) progress.fetch_add(256, std::memory_order_relaxed);
                local_sum +=
                    value * 2654435761ULL;  // order-independent, sensitive to substitutions
            }
            count.fetch_add(local_count);
            checksum.fetch_add(local_sum);
            finished.fetch_add(1);
        });
    }
    std::atomic<int> senders_finished{0};
    for (int s = 0; s < senders; ++s) {
        threads.emplace_back([&, s] {
            gate.arrive_and_wait();
            try {
                const std::uint64_t base =
                    std::uint64_t{per_sender} * static_cast<std::uint64_t>(s);
                for (std::uint32_t i = 0; i < per_sender; ++i) ch.send(base + i);
            } catch (const zchan::channel_closed&) {
                // Only after a rescue close; the failure is already reported.
            }
            senders_finished.fetch_add(1);
            finished.fetch_add(1);
        });
    }
    gate.open();
    const auto deadline = deadline_after(stress_deadline);
    if (wait_progressing([&] { return senders_finished.load() == senders; },
                         [&] { return progress.load(); }, deadline)) {
        ch.close();  // receivers drain what is left and stop
    } else {
        ADD_FAILURE() << "senders did not finish (cap " << cap << "): stuck after about "
                      << progress.load() << " of " << total << " values";
    }
    join_all_by(
        threads, finished, deadline, [&] { close_quietly(ch); }, "mpmc");

    std::uint64_t expected_sum = 0;
    for (std::uint64_t v = 0; v < total; ++v) expected_sum += v * 2654435761ULL;
    std::uint64_t missing = 0;
    for (auto& b : seen) missing += b.load() == 0 ? 1 : 0;
    EXPECT_EQ(out_of_range.load(), 0) << "cap " << cap;
    EXPECT_EQ(duplicates.load(), 0) << "cap " << cap;
    EXPECT_EQ(missing, 0U) << "cap " << cap;
    EXPECT_EQ(count.load(), total) << "cap " << cap;
    EXPECT_EQ(checksum.load(), expected_sum) << "cap " << cap;
    EXPECT_EQ(order_violations.load(), 0) << "cap " << cap << ": a sender's values were reordered";
}

TEST(ChannelStress, EightByEightThroughCapacity1024DeliversEveryValueExactlyOnceInSenderOrder) {
    run_mpmc(1024);
}

TEST(ChannelStress, EightByEightThroughCapacity1DeliversEveryValueExactlyOnceInSenderOrder) {
    run_mpmc(1);
}

TEST(ChannelStress, EightByEightThroughUnbufferedDeliversEveryValueExactlyOnceInSenderOrder) {
    run_mpmc(0);
}

// ----------------------------------------------------------- close wakes all

TEST(ChannelStress, CloseWakesEveryBlockedSenderAndReceiver) {
    constexpr int per_kind = 32;
    for (int round = 0; round < 5; ++round) {
        channel<int> full(1);
        full.send(0);
        channel<int> unbuffered_send;
        channel<int> empty(4);
        channel<int> unbuffered_recv;

        std::atomic<int> about_to_block{0};
        std::atomic<int> finished{0};
        std::atomic<int> senders_threw{0};
        std::atomic<int> receivers_got_nullopt{0};
        std::vector<std::thread> threads;
        auto blocked_sender = [&](channel<int>& target) {
            return [&, ch = target]() mutable {
                about_to_block.fetch_add(1);
                try {
                    ch.send(1);
                } catch (const zchan::channel_closed&) {
                    senders_threw.fetch_add(1);
                }
                finished.fetch_add(1);
            };
        };
        auto blocked_receiver = [&](channel<int>& target) {
            return [&, ch = target]() mutable {
                about_to_block.fetch_add(1);
                if (!ch.recv()) receivers_got_nullopt.fetch_add(1);
                finished.fetch_add(1);
            };
        };
        for (int i = 0; i < per_kind; ++i) {
            threads.emplace_back(blocked_sender(full));
            threads.emplace_back(blocked_sender(unbuffered_send));
            threads.emplace_back(blocked_receiver(empty));
            threads.emplace_back(blocked_receiver(unbuffered_recv));
        }
        const int n = static_cast<int>(threads.size());
        auto close_all = [&] {
            close_quietly(full);
            close_quietly(unbuffered_send);
            close_quietly(empty);
            close_quietly(unbuffered_recv);
        };
        ASSERT_TRUE(zchan_test::wait_until([&] { return about_to_block.load() == n; },
                                           deadline_after(zchan_test::generous)));
        // Negative check: nobody gets through while the channels are open.
        EXPECT_TRUE(zchan_test::stays_false_for([&] { return finished.load() != 0; }, 100ms));
        const auto closed_at = zchan_test::clock::now();
        close_all();
        join_all_by(threads, finished, closed_at + zchan_test::generous, close_all,
                    "close wake-up");
        EXPECT_EQ(senders_threw.load(), 2 * per_kind);
        EXPECT_EQ(receivers_got_nullopt.load(), 2 * per_kind);
        EXPECT_EQ(full.recv(), 0) << "the value buffered before close was lost";
    }
}

// ---------------------------------------------- selects racing selects + close

TEST(ChannelStress, SelectsRacingEachOtherAndCloseDeliverExactlyOnce) {
    constexpr int senders = 4;
    constexpr int receivers = 4;
    const int per_sender = static_cast<int>(zchan_test::scale(50'000));
    const int rounds = 4;
    for (int round = 0; round < rounds; ++round) {
        // Mixed capacities: rendezvous, tiny and roomy buffers.
        std::vector<channel<int>> chans{channel<int>(0), channel<int>(1), channel<int>(8),
                                        channel<int>(0)};
        const int total = senders * per_sender;
        std::vector<std::atomic<std::uint8_t>> sent_ok(static_cast<std::size_t>(total));
        std::vector<std::atomic<std::uint8_t>> received(static_cast<std::size_t>(total));
        std::atomic<int> duplicates{0};
        std::atomic<int> attempts{0};  // selects the senders finished, sent or thrown
        std::atomic<int> finished{0};

        zchan_test::start_gate gate(senders + receivers);
        std::vector<std::thread> threads;
        for (int r = 0; r < receivers; ++r) {
            threads.emplace_back([&] {
                gate.arrive_and_wait();
                // Local handles; a closed-and-drained channel is swapped for nil (Go idiom).
                std::vector<channel<int>> local = chans;
                int open = static_cast<int>(local.size());
                while (open > 0) {
                    std::optional<int> got;
                    const std::size_t idx =
                        select(recv_case(local[0], [&](std::optional<int> v) { got = v; }),
                               recv_case(local[1], [&](std::optional<int> v) { got = v; }),
                               recv_case(local[2], [&](std::optional<int> v) { got = v; }),
                               recv_case(local[3], [&](std::optional<int> v) { got = v; }));
                    if (!got) {
                        local[idx] = channel<int>::nil();
                        --open;
                        continue;
                    }
                    if (received[static_cast<std::size_t>(*got)].exchange(1) != 0)
                        duplicates.fetch_add(1);
                }
                finished.fetch_add(1);
            });
        }
        for (int s = 0; s < senders; ++s) {
            threads.emplace_back([&, s] {
                gate.arrive_and_wait();
                for (int i = 0; i < per_sender; ++i) {
                    const int v = s * per_sender + i;
                    try {
                        (void)select(send_case(chans[0], v), send_case(chans[1], v),
                                     send_case(chans[2], v), send_case(chans[3], v));
                        sent_ok[static_cast<std::size_t>(v)].store(1);
                    } catch (const zchan::channel_closed&) {
                        // The chosen case's channel was closed; the value was not sent.
                    }
                    attempts.fetch_add(1, std::memory_order_relaxed);
                }
                finished.fetch_add(1);
            });
        }
        gate.open();
        // Close the channels one by one while traffic flows (earlier each round).
        const int close_from = total * (rounds - round) / (rounds + 1);
        const auto deadline = deadline_after(stress_deadline / rounds);
        for (std::size_t k = 0; k < chans.size(); ++k) {
            const int threshold = std::min(close_from + static_cast<int>(k) * total / 50, total);
            if (!wait_progressing([&] { return attempts.load() >= threshold; },
                                  [&] { return attempts.load(); }, deadline)) {
                ADD_FAILURE() << "round " << round << ": only " << attempts.load() << " of "
                              << total << " selects done before closing channel " << k;
            }
            chans[k].close();
        }
        // Every channel is closed: everybody must finish promptly.
        join_all_by(
            threads, finished, deadline_after(zchan_test::generous), [] {}, "select race");

        int lost = 0;
        int phantom = 0;
        for (std::size_t v = 0; v < sent_ok.size(); ++v) {
            if (sent_ok[v].load() != 0 && received[v].load() == 0) ++lost;
            if (sent_ok[v].load() == 0 && received[v].load() != 0) ++phantom;
        }
        EXPECT_EQ(duplicates.load(), 0) << "round " << round;
        EXPECT_EQ(lost, 0) << "round " << round << ": successfully sent values never received";
        EXPECT_EQ(phantom, 0) << "round " << round
                              << ": values received although their select threw";
    }
}

// ---------------------------------------------------------- lost wake-ups

void run_ping_pong(std::size_t cap) {
    const int round_trips = static_cast<int>(zchan_test::scale(200'000));
    channel<int> ping(cap);
    channel<int> pong(cap);
    std::atomic<int> progress{0};
    std::atomic<int> mismatches{0};
    std::atomic<int> finished{0};
    // Assigned, not emplaced: GCC 12 reports a false -Warray-bounds in
    // vector<thread>'s growth path.
    std::vector<std::thread> threads(2);
    threads[0] = std::thread([&] {
        try {
            for (int i = 0; i < round_trips; ++i) {
                ping.send(i);
                auto v = pong.recv();
                if (!v) break;  // rescue close
                if (*v != i + 1) mismatches.fetch_add(1);
                progress.store(i + 1, std::memory_order_relaxed);
            }
        } catch (const zchan::channel_closed&) {
        }
        finished.fetch_add(1);
    });
    threads[1] = std::thread([&] {
        try {
            while (auto v = ping.recv()) pong.send(*v + 1);
        } catch (const zchan::channel_closed&) {
        }
        finished.fetch_add(1);
    });
    const auto deadline = deadline_after(stress_deadline);
    if (wait_progressing([&] { return progress.load() == round_trips; },
                         [&] { return progress.load(); }, deadline)) {
        ping.close();  // lets the echo thread finish
    } else {
        ADD_FAILURE() << "ping-pong stuck after " << progress.load() << " of " << round_trips
                      << " round trips (cap " << cap << "): lost wake-up";
    }
    join_all_by(
        threads, finished, deadline_after(zchan_test::generous),
        [&] {
            close_quietly(ping);
            close_quietly(pong);
        },
        "ping-pong");
    EXPECT_EQ(mismatches.load(), 0);
}

TEST(ChannelStress, UnbufferedPingPongLosesNoWakeUps) { run_ping_pong(0); }

TEST(ChannelStress, Capacity1PingPongLosesNoWakeUps) { run_ping_pong(1); }

TEST(ChannelStress, TimedSelectsRacingSendsDeliverEveryValueExactlyOnce) {
    // Receivers select with short timeouts (and some use recv_for), so wake-ups
    // keep racing deadlines; a wake-up "hint" given to a select that then times
    // out must not strand a value that another waiter could take.
    const int per_sender = static_cast<int>(zchan_test::scale(100'000));
    constexpr int senders = 4;
    constexpr int receivers = 4;
    const int total = senders * per_sender;
    channel<int> a(2);
    channel<int> b;  // unbuffered
    std::vector<std::atomic<std::uint8_t>> seen(static_cast<std::size_t>(total));
    std::atomic<int> duplicates{0};
    std::atomic<int> received{0};
    std::atomic<int> timeouts{0};
    std::atomic<int> finished{0};
    std::atomic<int> senders_finished{0};

    zchan_test::start_gate gate(senders + receivers);
    std::vector<std::thread> threads;
    auto take = [&](int v) {
        if (seen[static_cast<std::size_t>(v)].exchange(1) != 0) duplicates.fetch_add(1);
        received.fetch_add(1, std::memory_order_relaxed);
    };
    for (int r = 0; r < receivers; ++r) {
        threads.emplace_back([&, r] {
            gate.arrive_and_wait();
            channel<int> la = a;
            channel<int> lb = b;
            int open = 2;
            unsigned spin = static_cast<unsigned>(r);
            while (open > 0) {
                spin = spin * 1103515245U + 12345U;
                const auto wait = std::chrono::microseconds((spin >> 16) % 200);
                if (r == 0) {
                    // Plain timed receives on one channel at a time.
                    channel<int>& ch =
                        (spin & 1U) != 0 && !la.is_nil() ? la : (lb.is_nil() ? la : lb);
                    auto res = ch.recv_for(wait);
                    if (res) {
                        take(*res.value);
                    } else if (res.status == zchan::recv_status::closed) {
                        ch = channel<int>::nil();
                        --open;
                    } else {
                        timeouts.fetch_add(1, std::memory_order_relaxed);
                    }
                    continue;
                }
                std::optional<int> got;
                const std::size_t idx =
                    select(recv_case(la, [&](std::optional<int> v) { got = v; }),
                           recv_case(lb, [&](std::optional<int> v) { got = v; }),
                           zchan::timeout_case(wait, [&] { timeouts.fetch_add(1); }));
                if (idx == 2) continue;
                if (got) {
                    take(*got);
                } else {
                    (idx == 0 ? la : lb) = channel<int>::nil();
                    --open;
                }
            }
            finished.fetch_add(1);
        });
    }
    for (int s = 0; s < senders; ++s) {
        threads.emplace_back([&, s] {
            gate.arrive_and_wait();
            for (int i = 0; i < per_sender; ++i) {
                const int v = s * per_sender + i;
                (((v ^ s) & 1) != 0 ? a : b).send(v);
            }
            senders_finished.fetch_add(1);
            finished.fetch_add(1);
        });
    }
    gate.open();
    const auto deadline = deadline_after(stress_deadline);
    if (wait_progressing([&] { return senders_finished.load() == senders; },
                         [&] { return received.load(); }, deadline)) {
        a.close();
        b.close();
    } else {
        ADD_FAILURE() << "senders stuck: " << received.load() << " of " << total << " received";
    }
    join_all_by(
        threads, finished, deadline_after(zchan_test::generous),
        [&] {
            close_quietly(a);
            close_quietly(b);
        },
        "timed selects");
    EXPECT_EQ(duplicates.load(), 0);
    EXPECT_EQ(received.load(), total);
    int missing = 0;
    for (auto& x : seen) missing += x.load() == 0 ? 1 : 0;
    EXPECT_EQ(missing, 0);
    RecordProperty("timeouts", timeouts.load());
}

TEST(ChannelStress, TimedOperationsRacingCloseNeverHang) {
    // recv_for / send_for with long timeouts, woken by traffic or by close.
    const int n = static_cast<int>(zchan_test::scale(100'000));
    channel<int> ch(1);
    std::atomic<int> finished{0};
    std::atomic<long long> received_sum{0};
    std::atomic<int> received_count{0};
    std::atomic<long long> sent_sum{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
        threads.emplace_back([&] {
            for (int i = 1; i <= n; ++i) {
                const auto st = ch.send_for(i, 1h);
                if (st == zchan::send_status::closed) break;
                if (st == zchan::send_status::ok) sent_sum.fetch_add(i);
            }
            finished.fetch_add(1);
        });
        threads.emplace_back([&] {
            for (;;) {
                auto r = ch.recv_for(1h);
                if (r.status == zchan::recv_status::closed) break;
                if (r) {
                    received_sum.fetch_add(*r.value);
                    received_count.fetch_add(1, std::memory_order_relaxed);
                }
            }
            finished.fetch_add(1);
        });
    }
    // Close mid-flow: after about half of the 2n values went through.
    if (!wait_progressing([&] { return received_count.load() >= n; },
                          [&] { return received_count.load(); }, deadline_after(stress_deadline))) {
        ADD_FAILURE() << "timed operations made no progress: " << received_count.load() << " of "
                      << n;
    }
    ch.close();
    join_all_by(
        threads, finished, deadline_after(stress_deadline), [] {}, "timed ops");
    EXPECT_EQ(received_sum.load(), sent_sum.load());
}

}  // namespace

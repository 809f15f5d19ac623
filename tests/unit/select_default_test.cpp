// A select with a default case decides at one instant (Go's selectgo polls
// every case under all the channels' locks): it takes the default only if at
// some instant none of its cases was ready. Go's TestNonblockSelectRace and
// TestNonblockSelectRace2, run against in-process channels, each iteration a
// race between a select and a thread that keeps one of its cases ready at
// every instant while moving readiness from one channel to the other.
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <optional>
#include <random>
#include <thread>
#include <utility>

#include <gtest/gtest.h>

#include <zchan/zchan.hpp>
#include "wait_probe.hpp"
#include "zchan_test_support.hpp"

namespace {

using zchan::channel;
using zchan::default_case;
using zchan::recv_case;
using zchan::select;
using zchan::send_case;
using zchan_test::background_call;
using zchan_test::sender_blocked;

// The dev build runs the full 100k iterations; sanitized builds a tenth. Each
// iteration waits for the worker (and the sender) to get a core, so on a
// machine whose cores other work keeps busy an iteration can take
// milliseconds instead of microseconds: past `budget` a run stops early,
// having raced at least `min_iterations` times (a timeout is not a finding).
constexpr int iterations = static_cast<int>(zchan_test::scale(100'000));
constexpr int min_iterations = 2'000;
constexpr auto budget = std::chrono::seconds(20);
// Upper bound of the worker's head start, in empty loop turns (~1 ns each).
constexpr unsigned jitter = 512;

enum class mover {
    send,   ///< c2 (capacity 1) gets a value: TestNonblockSelectRace
    close,  ///< c2 (unbuffered) is closed: TestNonblockSelectRace2
    /// c1 is unbuffered with a sender blocked on it, c2 (capacity 1) gets a
    /// value: the readiness of c1 is a waiting partner, seen under its lock.
    partner,
};

/// Channels that are never ready, polled between c1 and c2 in some orders,
/// which widens the window in which a case-by-case poll can miss both.
struct never_ready {
    channel<int> empty_a{1};
    channel<int> empty_b{4};
    channel<int> lonely_a;  // unbuffered, nobody on the other side
    channel<int> lonely_b;
    channel<int> full{1};
    never_ready() { full.send(0); }
};

/// Runs `n` iterations: c1 holds a value (or has a blocked sender); a worker
/// selects over c1, c2 (and `extra` never-ready cases) with a default, while
/// this thread makes c2 ready (send or close) and then takes c1's value. At
/// every instant c1 or c2 is ready, so the worker must never take the
/// default. Returns how often it did.
int wrong_defaults(int n, mover how, bool extra) {
    using job = std::pair<channel<int>, channel<int>>;
    channel<job> jobs;         // unbuffered: the worker starts its select as we go on
    channel<bool> results(1);  // true: a case ran
    channel<channel<int>> to_sender;
    background_call sender([&] {
        for (channel<int> c : to_sender) c.send(1);
    });
    never_ready never;
    // Bumped by the worker just before each select: the moves below then
    // overlap its poll instead of finishing before it starts.
    std::atomic<int> selecting{0};
    background_call worker([&] {
        for (job j : jobs) {
            bool took_default = false;
            selecting.fetch_add(1, std::memory_order_release);
            auto dflt = default_case([&] { took_default = true; });
            if (extra) {
                (void)select(recv_case(never.empty_a), recv_case(j.first),
                             recv_case(never.lonely_a), send_case(never.full, 1),
                             recv_case(never.empty_b), recv_case(j.second),
                             send_case(never.lonely_b, 2), dflt);
            } else {
                (void)select(recv_case(j.first), recv_case(j.second), dflt);
            }
            results.send(!took_default);
        }
    });
    std::minstd_rand rng(12345);
    int wrong = 0;
    const auto give_up = std::chrono::steady_clock::now() + budget;
    for (int i = 0; i < n; ++i) {
        if (i >= min_iterations && i % 256 == 0 && std::chrono::steady_clock::now() > give_up) {
            std::printf("stopped after %d of %d iterations: the budget was spent\n", i, n);
            break;
        }
        channel<int> c1(how == mover::partner ? 0 : 1);
        channel<int> c2(how == mover::close ? 0 : 1);
        if (how == mover::partner) {
            to_sender.send(c1);
            while (!sender_blocked(c1)) std::this_thread::yield();
        } else {
            c1.send(1);
        }
        jobs.send(job{c1, c2});
        for (int spins = 0; selecting.load(std::memory_order_acquire) == i; ++spins) {
            if (spins > 64) std::this_thread::yield();
        }
        // A varying head start for the worker's poll, so that the moves land
        // anywhere inside it (not a synchronisation: any delay is correct).
        for (unsigned k = static_cast<unsigned>(rng()) % jitter; k > 0; --k) {
            asm volatile("");  // a turn the compiler cannot drop
        }
        if (how == mover::close) {
            c2.close();
        } else {
            c2.send(1);
        }
        (void)select(recv_case(c1), default_case());
        if (!*results.recv()) ++wrong;
    }
    jobs.close();
    to_sender.close();
    EXPECT_TRUE(worker.wait_done());
    EXPECT_TRUE(sender.wait_done());
    worker.rethrow();
    sender.rethrow();
    return wrong;
}

TEST(SelectDefaultUnit, NonblockSelectRaceNeverTakesTheDefault) {
    EXPECT_EQ(wrong_defaults(iterations, mover::send, false), 0);
}

TEST(SelectDefaultUnit, NonblockSelectRaceWithNeverReadyCasesBetweenNeverTakesTheDefault) {
    EXPECT_EQ(wrong_defaults(iterations, mover::send, true), 0);
}

TEST(SelectDefaultUnit, NonblockSelectRace2WithACloseNeverTakesTheDefault) {
    EXPECT_EQ(wrong_defaults(iterations, mover::close, false), 0);
}

TEST(SelectDefaultUnit, NonblockSelectRace2WithNeverReadyCasesBetweenNeverTakesTheDefault) {
    EXPECT_EQ(wrong_defaults(iterations, mover::close, true), 0);
}

TEST(SelectDefaultUnit, NonblockSelectRaceWithABlockedSenderNeverTakesTheDefault) {
    EXPECT_EQ(wrong_defaults(iterations, mover::partner, false), 0);
}

TEST(SelectDefaultUnit, NonblockSelectRaceWithABlockedSenderAndCasesBetweenNeverTakesTheDefault) {
    EXPECT_EQ(wrong_defaults(iterations, mover::partner, true), 0);
}

}  // namespace

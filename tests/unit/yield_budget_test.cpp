// The adaptive yield phase of a blocked thread (detail/sync.hpp,
// context::wait_until): how many yielding polls a thread makes before it
// parks follows where its recent waits ended, and a thread whose yields give
// its core to another task stops yielding.
#include <atomic>
#include <chrono>
#include <optional>
#include <thread>

#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include "zchan/channel.hpp"
#include "zchan/detail/sync.hpp"
#include "zchan_test_support.hpp"

namespace {

using zchan::detail::context;
using phase = context::wait_phase;

/// Pins the calling thread to `cpu`; false if the system does not let it.
bool pin_to(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
}

/// A CPU-bound task on one CPU (an oversubscribed core: another process's
/// busy thread), from construction until destruction.
class busy_task {
public:
    explicit busy_task(int cpu)
        : thread_([this, cpu] {
              pinned_ = pin_to(cpu);
              running_.store(true);
              while (!stop_.load(std::memory_order_relaxed)) zchan::detail::cpu_relax();
          }) {
        while (!running_.load()) std::this_thread::yield();
    }
    busy_task(const busy_task&) = delete;
    busy_task& operator=(const busy_task&) = delete;
    ~busy_task() {
        stop_.store(true);
        thread_.join();
    }
    [[nodiscard]] bool pinned() const { return pinned_; }

private:
    std::atomic<bool> stop_{false};
    std::atomic<bool> running_{false};
    bool pinned_ = false;  // written before running_
    std::thread thread_;
};

TEST(YieldBudget, PausingLeavesItYieldingDoublesItParkingHalvesIt) {
    EXPECT_EQ(context::next_yields(16, phase::pausing), 16u);
    EXPECT_EQ(context::next_yields(16, phase::yielding), 32u);
    EXPECT_EQ(context::next_yields(16, phase::parked), 8u);
}

TEST(YieldBudget, StaysWithinItsBounds) {
    EXPECT_EQ(context::next_yields(context::max_yields, phase::yielding), context::max_yields);
    EXPECT_EQ(context::next_yields(context::min_yields, phase::parked), context::min_yields);
    unsigned y = context::max_yields;
    for (int i = 0; i < 20; ++i) y = context::next_yields(y, phase::parked);
    EXPECT_EQ(y, context::min_yields);
    for (int i = 0; i < 20; ++i) y = context::next_yields(y, phase::yielding);
    EXPECT_EQ(y, context::max_yields);
}

// Real waits on a fresh thread: the budget starts at the ceiling, each wait
// that runs out to its deadline has parked (halving it), and a wait that was
// decided before it began ends while pausing (leaving it).
TEST(YieldBudget, AThreadWhoseWaitsTimeOutParksSoonerAndSooner) {
    std::thread t([] {
        EXPECT_EQ(context::yields_before_park(), context::max_yields);
        unsigned expected = context::max_yields;
        for (int i = 0; i < 8; ++i) {
            context cx;
            EXPECT_EQ(cx.wait_until(std::chrono::steady_clock::now()), zchan::detail::sel_aborted);
            expected = context::next_yields(expected, phase::parked);
            EXPECT_EQ(context::yields_before_park(), expected);
        }
        EXPECT_EQ(context::yields_before_park(), context::min_yields);
        context decided;
        ASSERT_TRUE(decided.try_select(zchan::detail::sel_closed));
        EXPECT_EQ(decided.wait_until(std::chrono::steady_clock::now()), zchan::detail::sel_closed);
        EXPECT_EQ(context::yields_before_park(), context::min_yields);
    });
    t.join();
    // Another thread's budget is its own.
    std::thread fresh([] { EXPECT_EQ(context::yields_before_park(), context::max_yields); });
    fresh.join();
}

// A thread whose yields hand its core to a CPU-bound task (which then runs a
// time slice of milliseconds before the yielder runs again) ends its yield
// phase and is left a budget of 0: its next waits park right after pausing.
// Before, such a thread went on yielding: every wait cost time slices.
TEST(YieldBudget, AThreadWhoseYieldsGiveItsCoreAwayStopsYielding) {
    std::thread t([] {
        const int cpu = sched_getcpu();
        if (cpu < 0 || !pin_to(cpu)) GTEST_SKIP() << "cannot pin threads here";
        busy_task busy(cpu);
        if (!busy.pinned()) GTEST_SKIP() << "cannot pin threads here";
        ASSERT_EQ(context::yields_before_park(), context::max_yields);
        // A yield goes to the busy task once the scheduler finds it due;
        // within a few waits of up to 128 yields each, one does.
        for (int i = 0; i < 50 && context::yields_before_park() != 0; ++i) {
            context cx;
            EXPECT_EQ(
                cx.wait_until(std::chrono::steady_clock::now() + std::chrono::milliseconds(20)),
                zchan::detail::sel_aborted);
        }
        EXPECT_EQ(context::yields_before_park(), 0u);
    });
    t.join();
}

// The behaviour that matters: two threads handing values to each other on a
// core that a CPU-bound task shares. Parked, a thread is woken and run at
// once (the scheduler favours a waking thread): 10,000 round trips in about
// 0.6 s on the development VM. Yielding, it waited for the busy task's time
// slice at every hand-off: 7,115 of them in 10 s, and under a loaded CI
// machine's other work a select test with feeders timed out the same way.
TEST(YieldBudget, HandOffsOnACoreABusyTaskSharesDoNotWaitForItsTimeSlices) {
    const int cpu = sched_getcpu();
    ASSERT_GE(cpu, 0);
    std::optional<busy_task> busy;
    busy.emplace(cpu);
    if (!busy->pinned()) GTEST_SKIP() << "cannot pin threads here";
    const int rounds = static_cast<int>(zchan_test::scale(10'000));
    zchan::channel<int> ping;
    zchan::channel<int> pong;
    std::atomic<int> done{0};
    zchan_test::background_call echo([&] {
        if (!pin_to(cpu)) return;
        for (int i = 0; i < rounds; ++i) pong.send(ping.recv().value() + 1);
    });
    zchan_test::background_call caller([&] {
        if (!pin_to(cpu)) return;
        for (int i = 0; i < rounds; ++i) {
            ping.send(i);
            if (pong.recv().value() != i + 1) return;
            done.fetch_add(1);
        }
    });
    const auto start = std::chrono::steady_clock::now();
    const bool finished = caller.wait_done() && echo.wait_done();
    const auto took = std::chrono::steady_clock::now() - start;
    busy.reset();
    if (!finished) {  // unblock both, so that the failure is reported
        ping.close();
        pong.close();
    }
    ASSERT_TRUE(finished) << done.load() << " of " << rounds << " round trips in "
                          << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                          << " ms";
    EXPECT_EQ(done.load(), rounds);
}

}  // namespace

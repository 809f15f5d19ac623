// The adaptive yield phase of a blocked thread (detail/sync.hpp,
// context::wait_until): how many yielding polls a thread makes before it
// parks follows where its recent waits ended.
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "zchan/detail/sync.hpp"

namespace {

using zchan::detail::context;
using phase = context::wait_phase;

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

}  // namespace

// The peer's prefetch window without a socket (src/prefetch_queue.hpp,
// protocol.md §9.2, §8.8, §12.2): answers fed in by hand, as the session
// would after decoding them.
#include "../../src/prefetch_queue.hpp"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace {

using zchan::detail::prefetch_queue;

TEST(PrefetchQueue, AsksForTheWholeWindowThenRefillsAtHalf) {
    prefetch_queue q;
    std::uint64_t next_id = 5;
    const auto first = q.refill(8, next_id);
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(*first, std::make_pair(std::uint64_t{5}, std::uint32_t{8}));
    EXPECT_EQ(next_id, 13u);
    EXPECT_EQ(q.outstanding(), 8u);
    EXPECT_FALSE(q.refill(8, next_id).has_value());  // full
    EXPECT_FALSE(q.wants_refill(8));
    // Four answered and taken: half the window is free.
    for (std::uint64_t id = 5; id < 9; ++id) {
        ASSERT_TRUE(q.take(id));
        q.saw_delivery(id - 4);
        q.queue("v", id - 4);
    }
    for (int i = 0; i < 4; ++i) {
        ASSERT_TRUE(q.head_ready());
        q.pop();
    }
    EXPECT_TRUE(q.wants_refill(8));
    const auto more = q.refill(8, next_id);
    ASSERT_TRUE(more.has_value());
    EXPECT_EQ(*more, std::make_pair(std::uint64_t{13}, std::uint32_t{4}));
    EXPECT_FALSE(q.take(5));  // answered already: not outstanding
}

// §12.2: after a resume, a VALUE lost with the old connection comes again
// only when its request is re-sent, after values the home sent later. It
// takes its place in delivery order, and nothing after it is handed out
// before it.
TEST(PrefetchQueue, AValueLateAfterAResumeKeepsItsPlace) {
    prefetch_queue q;
    std::uint64_t next_id = 1;
    ASSERT_TRUE(q.refill(4, next_id).has_value());
    // Deliveries 1, 3, 4 arrive; 2 was lost with the connection.
    for (const std::uint64_t d : {1, 3, 4}) {
        ASSERT_TRUE(q.take(d));
        q.saw_delivery(d);
        // Appended, not "v" + std::to_string(d): GCC 12's false -Wrestrict.
        q.queue(std::string("v").append(std::to_string(d)), d);
    }
    ASSERT_TRUE(q.head_ready());
    EXPECT_EQ(q.head().payload, "v1");
    q.pop();
    EXPECT_FALSE(q.head_ready()) << "delivery 3 handed out while 2 is still to come";
    ASSERT_TRUE(q.take(2));  // the re-sent request's answer
    q.saw_delivery(2);
    q.queue("v2", 2);
    std::vector<std::string> order;
    while (q.head_ready()) {
        order.push_back(q.head().payload);
        q.pop();
    }
    EXPECT_EQ(order, (std::vector<std::string>{"v2", "v3", "v4"}));
}

// §9.2: closed and drained only when a RECV was answered CLOSED, nothing is
// queued and no request is outstanding (a value given back after the close
// can still answer one).
TEST(PrefetchQueue, DrainedOnlyWhenClosedEmptyAndNothingOutstanding) {
    prefetch_queue q;
    std::uint64_t next_id = 1;
    ASSERT_TRUE(q.refill(3, next_id).has_value());
    ASSERT_TRUE(q.take(1));
    q.close();  // request 1 answered CLOSED
    EXPECT_FALSE(q.drained()) << "requests 2 and 3 still outstanding";
    EXPECT_FALSE(q.refill(3, next_id).has_value()) << "no refill after CLOSED";
    ASSERT_TRUE(q.take(2));  // a value given back after the close answers request 2
    q.saw_delivery(1);
    q.queue("late", 1);
    ASSERT_TRUE(q.take(3));  // CLOSED
    EXPECT_FALSE(q.drained()) << "a value is still queued";
    ASSERT_TRUE(q.head_ready());
    q.pop();
    EXPECT_TRUE(q.drained());
}

TEST(PrefetchQueue, ShutdownGivesBackNewestFirstAndLossForgetsRequests) {
    prefetch_queue q;
    std::uint64_t next_id = 1;
    ASSERT_TRUE(q.refill(4, next_id).has_value());
    for (const std::uint64_t d : {1, 2, 3}) {
        ASSERT_TRUE(q.take(d));
        q.saw_delivery(d);
        q.queue("v", d);
    }
    std::vector<std::uint64_t> given;
    q.give_back_all([&](std::uint64_t d) { given.push_back(d); });
    EXPECT_EQ(given, (std::vector<std::uint64_t>{3, 2, 1}));
    EXPECT_EQ(q.queued(), 0u);
    EXPECT_EQ(q.outstanding(), 1u);
    std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
    q.for_each_range(
        [&](std::uint64_t first, std::uint64_t count) { ranges.emplace_back(first, count); });
    EXPECT_EQ(ranges, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{4, 1}}));
    q.forget_outstanding();
    EXPECT_EQ(q.outstanding(), 0u);
}

}  // namespace

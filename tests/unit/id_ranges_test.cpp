// zchan/detail/id_ranges.hpp: the request-id set behind RECV_MANY (protocol.md §8.8).
#include "zchan/detail/id_ranges.hpp"

#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

namespace {

using zchan::detail::id_ranges;

std::vector<std::uint64_t> ids(const id_ranges& r) {
    std::vector<std::uint64_t> out;
    r.for_each([&](std::uint64_t id) { out.push_back(id); });
    return out;
}

TEST(IdRangesUnit, ContiguousRunsMergeAndComeOutInOrder) {
    id_ranges r;
    EXPECT_TRUE(r.empty());
    r.push_back(5, 3);
    r.push_back(8, 2);   // contiguous: merged
    r.push_back(20, 1);  // a gap (another request in between)
    EXPECT_EQ(ids(r), (std::vector<std::uint64_t>{5, 6, 7, 8, 9, 20}));
    EXPECT_EQ(r.front(), 5u);
    r.pop_front();
    r.pop_front();
    EXPECT_EQ(r.front(), 7u);
}

TEST(IdRangesUnit, TakeRemovesFrontBackAndMiddleIdsOnlyOnce) {
    id_ranges r;
    r.push_back(1, 5);
    EXPECT_TRUE(r.take(1));  // front
    EXPECT_TRUE(r.take(5));  // back
    EXPECT_TRUE(r.take(3));  // middle: splits
    EXPECT_EQ(ids(r), (std::vector<std::uint64_t>{2, 4}));
    EXPECT_FALSE(r.take(3));  // already gone
    EXPECT_FALSE(r.take(6));  // never held
    EXPECT_FALSE(r.take(0));
    EXPECT_TRUE(r.take(2));
    EXPECT_TRUE(r.take(4));
    EXPECT_TRUE(r.empty());
    r.push_back(10, 1);
    r.clear();
    EXPECT_TRUE(r.empty());
}

TEST(IdRangesUnit, ContainsRunsAndPopFrontRunSeeWholeRuns) {
    id_ranges r;
    r.push_back(3, 2);   // 3, 4
    r.push_back(10, 3);  // 10, 11, 12
    EXPECT_EQ(r.runs(), 2u);
    EXPECT_TRUE(r.contains(4));
    EXPECT_TRUE(r.contains(12));
    EXPECT_FALSE(r.contains(5));
    EXPECT_FALSE(r.contains(13));
    std::vector<std::pair<std::uint64_t, std::uint64_t>> runs;
    r.for_each_range(
        [&](std::uint64_t first, std::uint64_t count) { runs.emplace_back(first, count); });
    EXPECT_EQ(runs, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{3, 2}, {10, 3}}));
    EXPECT_EQ(r.pop_front_run(), 5u);  // the id after 3..4
    EXPECT_EQ(r.runs(), 1u);
    EXPECT_FALSE(r.contains(3));
    // A re-sent lower id after higher ones (protocol.md §12.3): still held and taken.
    r.push_back(7, 1);
    EXPECT_TRUE(r.contains(7));
    EXPECT_TRUE(r.take(7));
    EXPECT_EQ(ids(r), (std::vector<std::uint64_t>{10, 11, 12}));
}

}  // namespace

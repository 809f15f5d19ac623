// detail/async_select.hpp without Asio: the select engine driven by hand, its wake-up
// callback recorded, against in-process channels and blocking threads. Checks the rules the
// Asio layer relies on: a wake-up comes exactly once per wait and never while a step runs;
// cancellation decides against a partner by one CAS, so a cancelled send did not send and a
// cancelled receive left its value; a receive cancelled after its hand-off gives the value back.
#include "zchan/detail/async_select.hpp"

#include <atomic>
#include <cstddef>
#include <optional>
#include <thread>

#include <gtest/gtest.h>

#include "zchan/channel.hpp"
#include "zchan/select.hpp"
#include "zchan_test_support.hpp"

namespace {

using zchan::detail::async_select;
using zchan_test::deadline_after;
using zchan_test::generous;

/// Counts wake-ups; the test thread plays the executor and calls resume() after one.
struct wake_counter {
    std::atomic<int> wakes{0};
    static void wake(void* self) noexcept {
        static_cast<wake_counter*>(self)->wakes.fetch_add(1, std::memory_order_release);
    }
    [[nodiscard]] bool wait_for(int n) const {
        return zchan_test::wait_until([&] { return wakes.load(std::memory_order_acquire) >= n; },
                                      deadline_after(generous));
    }
};

TEST(AsyncSelectUnit, ACaseReadyAtTheStartFinishesWithoutAWakeUp) {
    zchan::channel<int> ch(1);
    ch.send(4);
    std::optional<int> got;
    auto c = zchan::recv_case(ch, [&](std::optional<int> v) { got = v; });
    wake_counter w;
    async_select<1> sel({&c}, false, &wake_counter::wake, &w);
    ASSERT_TRUE(sel.start());
    EXPECT_EQ(sel.result().index, 0u);
    c.run();
    EXPECT_EQ(got, 4);
    EXPECT_EQ(w.wakes.load(), 0);
}

TEST(AsyncSelectUnit, AWaitingReceiveIsWokenOnceByABlockingSenderAndHasItsValue) {
    zchan::channel<int> ch;  // unbuffered: a hand-off into the case's packet
    std::optional<int> got;
    auto c = zchan::recv_case(ch, [&](std::optional<int> v) { got = v; });
    wake_counter w;
    async_select<1> sel({&c}, false, &wake_counter::wake, &w);
    ASSERT_FALSE(sel.start());
    std::thread sender([&] { ch.send(9); });
    ASSERT_TRUE(w.wait_for(1));
    sender.join();  // the send completed: the value is in the packet, not in the channel
    ASSERT_TRUE(sel.resume());
    EXPECT_EQ(w.wakes.load(), 1);
    EXPECT_EQ(sel.result().index, 0u);
    c.run();
    EXPECT_EQ(got, 9);
}

TEST(AsyncSelectUnit, CancelBeforeAPartnerComesMeansTheSendDidNotSend) {
    zchan::channel<int> ch;
    auto c = zchan::send_case(ch, 5);
    wake_counter w;
    async_select<1> sel({&c}, false, &wake_counter::wake, &w);
    ASSERT_FALSE(sel.start());
    sel.cancel();
    ASSERT_TRUE(w.wait_for(1));
    ASSERT_TRUE(sel.resume());
    EXPECT_EQ(sel.result().index, async_select<1>::cancelled_index);
    EXPECT_EQ(ch.try_recv().status, zchan::recv_status::empty);  // nobody offers a value now
}

TEST(AsyncSelectUnit, AReceiveCancelledAfterItsHandOffGivesTheValueBack) {
    zchan::channel<int> ch;
    auto c = zchan::recv_case(ch);
    wake_counter w;
    async_select<1> sel({&c}, false, &wake_counter::wake, &w);
    ASSERT_FALSE(sel.start());
    std::thread sender([&] { ch.send(7); });
    ASSERT_TRUE(w.wait_for(1));
    sender.join();
    sel.cancel();  // too late to decide: the sender did; the value is in the packet
    ASSERT_TRUE(sel.resume());
    EXPECT_EQ(sel.result().index, async_select<1>::cancelled_index);
    EXPECT_EQ(w.wakes.load(), 1);
    auto back = ch.try_recv();  // at the head of the channel again
    ASSERT_TRUE(back);
    EXPECT_EQ(*back.value, 7);
}

TEST(AsyncSelectUnit, ASendCancelledAfterItsHandOffReportsTheSend) {
    zchan::channel<int> ch;
    auto c = zchan::send_case(ch, 3);
    wake_counter w;
    async_select<1> sel({&c}, false, &wake_counter::wake, &w);
    ASSERT_FALSE(sel.start());
    std::optional<int> got;
    std::thread receiver([&] { got = ch.recv(); });
    ASSERT_TRUE(w.wait_for(1));
    receiver.join();
    sel.cancel();
    ASSERT_TRUE(sel.resume());
    EXPECT_EQ(sel.result().index, 0u);  // it sent; a cancellation cannot undo that
    EXPECT_EQ(got, 3);
}

TEST(AsyncSelectUnit, ASelectDoesNotPairWithItselfButTwoSelectsOnOneThreadDo) {
    zchan::channel<int> ch;
    auto s1 = zchan::send_case(ch, 1);
    auto r1 = zchan::recv_case(ch);
    wake_counter w1;
    async_select<2> self({&s1, &r1}, false, &wake_counter::wake, &w1);
    ASSERT_FALSE(self.start());  // its own send and receive are no partners
    EXPECT_EQ(w1.wakes.load(), 0);

    std::optional<int> got;
    auto r2 = zchan::recv_case(ch, [&](std::optional<int> v) { got = v; });
    wake_counter w2;
    async_select<1> other({&r2}, false, &wake_counter::wake, &w2);
    ASSERT_TRUE(other.start());  // same thread, another operation: pairs with s1
    EXPECT_EQ(other.result().index, 0u);
    r2.run();
    EXPECT_EQ(got, 1);
    ASSERT_TRUE(w1.wait_for(1));
    ASSERT_TRUE(self.resume());
    EXPECT_EQ(self.result().index, 0u);  // the send case ran
}

TEST(AsyncSelectUnit, RacingCancelsAndHandOffsWakeExactlyOnceAndLoseNothing) {
    zchan::channel<int> ch;
    const int n = static_cast<int>(zchan_test::scale(500));
    std::atomic<int> received{0};
    std::thread sender([&] {
        for (int i = 0; i < n; ++i) ch.send(i);
        ch.close();
    });
    for (int round = 0;; ++round) {
        std::optional<int> got;
        bool closed = false;
        auto c = zchan::recv_case(ch, [&](std::optional<int> v) {
            got = v;
            closed = !v;
        });
        wake_counter w;
        async_select<1> sel({&c}, false, &wake_counter::wake, &w);
        bool done = sel.start();
        if (!done) {
            if (round % 2 == 0) sel.cancel();  // races the sender's hand-off
            ASSERT_TRUE(w.wait_for(1));
            done = sel.resume();
            ASSERT_TRUE(done);
            EXPECT_EQ(w.wakes.load(), 1);
        }
        if (sel.result().index == 0) {
            c.run();
            if (closed) break;
            ASSERT_TRUE(got);
            EXPECT_EQ(*got, received.load());  // in order: a value given back comes next
            received.fetch_add(1);
        }
    }
    sender.join();
    EXPECT_EQ(received.load(), n);
}

}  // namespace

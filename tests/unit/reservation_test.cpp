// Reservations of the buffered channel (servable::reserve, protocol.md §9.1):
// the slots a server keeps for a remote sender's send window count against
// the capacity, are written without waiting, survive a close, and hold the
// close's "drained" back until each is used or released.
#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "zchan/detail/buffered_chan.hpp"
#include "zchan/detail/unbuffered_chan.hpp"

namespace {

using zchan::recv_status;
using zchan::send_status;
using zchan::detail::buffered_chan;
using namespace std::chrono_literals;

/// A receiver on its own thread: appends to `got` until the channel is
/// closed and drained (join the thread, then read `got`).
std::thread receive_until_closed(buffered_chan<int>& ch, std::vector<int>& got) {
    return std::thread([&ch, &got] {
        for (;;) {
            std::optional<int> out;
            if (ch.recv(out, zchan::detail::no_deadline) != recv_status::ok) return;
            got.push_back(*out);
        }
    });
}

TEST(Reservation, ReservedSlotsCountAgainstTheCapacity) {
    buffered_chan<int> ch(4);
    EXPECT_EQ(ch.reserve(3), 3U);
    int v = 1;
    EXPECT_EQ(ch.try_send(v), send_status::ok);
    int w = 2;
    EXPECT_EQ(ch.try_send(w), send_status::full) << "4 slots: 1 value and 3 reserved";
    EXPECT_EQ(ch.len(), 1U);
    EXPECT_EQ(ch.reserve(5), 0U) << "nothing free to reserve";
}

TEST(Reservation, ReserveGrantsOnlyWhatIsFree) {
    buffered_chan<int> ch(4);
    for (int i = 0; i < 3; ++i) {
        int v = i;
        ASSERT_EQ(ch.try_send(v), send_status::ok);
    }
    EXPECT_EQ(ch.reserve(10), 1U);
    EXPECT_EQ(ch.reserve(10), 0U);
    std::optional<int> out;
    ASSERT_EQ(ch.try_recv(out), recv_status::ok);
    EXPECT_EQ(ch.reserve(10), 1U);
}

TEST(Reservation, ReservedValuesQueueInOrderWithOthers) {
    buffered_chan<int> ch(8);
    int a = 1;
    ASSERT_EQ(ch.try_send(a), send_status::ok);
    ASSERT_EQ(ch.reserve(2), 2U);
    ch.send_reserved(2);
    int c = 3;
    ASSERT_EQ(ch.try_send(c), send_status::ok);
    ch.send_reserved(4);
    EXPECT_EQ(ch.len(), 4U);
    for (int want = 1; want <= 4; ++want) {
        std::optional<int> out;
        ASSERT_EQ(ch.try_recv(out), recv_status::ok);
        EXPECT_EQ(*out, want);
    }
}

TEST(Reservation, WrapsAroundTheRingManyTimes) {
    buffered_chan<int> ch(3);
    int next_in = 0;
    int next_out = 0;
    for (int round = 0; round < 1000; ++round) {
        const std::size_t k = ch.reserve(2);
        ASSERT_GE(k, 1U);
        for (std::size_t i = 0; i < k; ++i) ch.send_reserved(next_in++);
        int v = next_in;
        if (ch.try_send(v) == send_status::ok) ++next_in;
        std::optional<int> out;
        while (ch.try_recv(out) == recv_status::ok) {
            ASSERT_EQ(*out, next_out++);
            out.reset();
        }
    }
    EXPECT_EQ(next_in, next_out);
}

TEST(Reservation, ReleaseFreesTheSlotsAndWakesABlockedSender) {
    buffered_chan<int> ch(2);
    ASSERT_EQ(ch.reserve(2), 2U);
    std::atomic<bool> sent{false};
    std::thread t([&] {
        int v = 7;
        EXPECT_EQ(ch.send(v, zchan::detail::no_deadline), send_status::ok);
        sent = true;
    });
    // The sender cannot complete while both slots are reserved.
    EXPECT_FALSE(sent.load());
    ch.release(2);
    t.join();
    EXPECT_TRUE(sent.load());
    EXPECT_EQ(ch.len(), 1U);
}

TEST(Reservation, ABatchOfReservedValuesQueuesInOrderAcrossTheRingsEnd) {
    buffered_chan<int> ch(5);
    for (int i = 0; i < 3; ++i) {  // moves the head to slot 3, so the batch wraps
        int v = i;
        ASSERT_EQ(ch.try_send(v), send_status::ok);
        std::optional<int> out;
        ASSERT_EQ(ch.try_recv(out), recv_status::ok);
    }
    int first = 1;
    ASSERT_EQ(ch.try_send(first), send_status::ok);
    ASSERT_EQ(ch.reserve(4), 4U);
    std::vector<int> batch{2, 3, 4};
    ch.send_reserved_n(batch.data(), batch.size());
    int last = 6;
    EXPECT_EQ(ch.try_send(last), send_status::full) << "4 values and 1 reservation left";
    ch.send_reserved(5);
    EXPECT_EQ(ch.len(), 5U);
    for (int want = 1; want <= 5; ++want) {
        std::optional<int> out;
        ASSERT_EQ(ch.try_recv(out), recv_status::ok);
        EXPECT_EQ(*out, want);
    }
}

// A batch wakes as many waiting receivers as it has values, not one. The
// receivers are wait entries whose contexts have identities of their own (as
// an asynchronous operation's), so each counts as a waiter that takes a
// wake-up for itself (sync_waker::notify) and none is this thread.
TEST(Reservation, ABatchWakesAWaitingReceiverForEachOfItsValues) {
    buffered_chan<int> ch(8);
    ASSERT_EQ(ch.reserve(3), 3U);
    std::atomic<int> woken{0};
    const auto count = [](zchan::detail::context& /*cx*/, void* n) noexcept {
        static_cast<std::atomic<int>*>(n)->fetch_add(1);
    };
    std::vector<int> identities(4);
    std::vector<std::unique_ptr<zchan::detail::context>> cxs;
    std::vector<zchan::detail::wait_entry> entries(4);
    for (std::size_t i = 0; i < entries.size(); ++i) {
        cxs.push_back(std::make_unique<zchan::detail::context>(count, &woken, &identities[i]));
        entries[i] =
            zchan::detail::wait_entry{cxs.back().get(), zchan::detail::sel_first_op, nullptr};
        ASSERT_FALSE(ch.register_recv(entries[i])) << "nothing to receive yet";
    }
    std::vector<int> batch{7, 8, 9};
    ch.send_reserved_n(batch.data(), batch.size());
    EXPECT_EQ(woken.load(), 3) << "one receiver per value; the fourth still waits";
    for (auto& e : entries) ch.unregister_recv(e);
}

TEST(Reservation, TheLastReservedBatchEndsTheDrainOfAClosedChannel) {
    buffered_chan<int> ch(4);
    ASSERT_EQ(ch.reserve(3), 3U);
    ch.close();
    std::vector<int> got;
    std::thread t = receive_until_closed(ch, got);
    std::vector<int> batch{1, 2, 3};
    ch.send_reserved_n(batch.data(), batch.size());
    t.join();  // ends only once closed and drained
    EXPECT_EQ(got, (std::vector<int>{1, 2, 3}));
}

TEST(Reservation, AClosedChannelIsNotDrainedWhileAReservationIsOutstanding) {
    buffered_chan<int> ch(4);
    ASSERT_EQ(ch.reserve(2), 2U);
    ch.close();
    EXPECT_TRUE(ch.is_closed());
    EXPECT_EQ(ch.reserve(1), 0U) << "no reservations after close";
    std::optional<int> out;
    EXPECT_EQ(ch.try_recv(out), recv_status::empty) << "a reserved value may still arrive";
    ch.send_reserved(5);  // sent before the close: accepted
    ASSERT_EQ(ch.try_recv(out), recv_status::ok);
    EXPECT_EQ(*out, 5);
    out.reset();
    EXPECT_EQ(ch.try_recv(out), recv_status::empty);
    ch.release(1);
    EXPECT_EQ(ch.try_recv(out), recv_status::closed);
    int v = 1;
    EXPECT_EQ(ch.try_send(v), send_status::closed);
}

TEST(Reservation, AReceiverBlockedOnTheCloseSeesTheLastReservedValueThenClosed) {
    buffered_chan<int> ch(4);
    ASSERT_EQ(ch.reserve(1), 1U);
    ch.close();
    std::vector<int> got;
    std::thread t = receive_until_closed(ch, got);
    ch.send_reserved(9);
    t.join();  // ends only once closed and drained
    EXPECT_EQ(got, std::vector<int>{9});
}

TEST(Reservation, AReceiverBlockedOnTheCloseEndsWhenTheReservationIsReleased) {
    buffered_chan<int> ch(4);
    ASSERT_EQ(ch.reserve(3), 3U);
    ch.close();
    std::atomic<bool> ended{false};
    std::thread t([&] {
        std::optional<int> out;
        EXPECT_EQ(ch.recv(out, zchan::detail::no_deadline), recv_status::closed);
        ended = true;
    });
    ch.release(1);
    ch.release(2);
    t.join();
    EXPECT_TRUE(ended.load());
}

TEST(Reservation, CloseWakesACloseWatcher) {
    buffered_chan<int> ch(4);
    zchan::detail::context cx;
    zchan::detail::wait_entry e{&cx, zchan::detail::sel_first_op, nullptr};
    EXPECT_FALSE(ch.watch_close(e));
    ch.close();
    EXPECT_NE(cx.selected(), zchan::detail::sel_waiting);
    ch.unwatch_close(e);
    zchan::detail::context cx2;
    zchan::detail::wait_entry e2{&cx2, zchan::detail::sel_first_op, nullptr};
    EXPECT_TRUE(ch.watch_close(e2));
    ch.unwatch_close(e2);
}

TEST(Reservation, UnbufferedChannelsReserveNothing) {
    zchan::detail::unbuffered_chan<int> ch;
    EXPECT_EQ(ch.reserve(4), 0U);
}

TEST(Reservation, HugeChannelsReserveNothing) {
    buffered_chan<char> ch((std::size_t{1} << 22) + 1);
    EXPECT_EQ(ch.reserve(4), 0U);
    char c = 'x';
    EXPECT_EQ(ch.try_send(c), send_status::ok);
}

// Local senders and a reserving "server" race for the slots of a small
// channel while a receiver drains it: the channel never holds more than its
// capacity plus nothing, every value arrives once, and each sender's values
// (the reserver's included) stay in order.
TEST(Reservation, ConcurrentSendersAndReservationsKeepTheCapacityExact) {
    constexpr std::size_t cap = 3;
    constexpr int per_sender = 20000;
    buffered_chan<long> ch(cap);
    std::atomic<bool> over{false};
    std::vector<std::thread> senders;
    for (long s = 0; s < 2; ++s) {
        senders.emplace_back([&, s] {
            for (long i = 0; i < per_sender; ++i) {
                long v = s * 1'000'000 + i;
                ASSERT_EQ(ch.send(v, zchan::detail::no_deadline), send_status::ok);
            }
        });
    }
    senders.emplace_back([&] {
        long i = 0;
        while (i < per_sender) {
            std::size_t k = ch.reserve(2);
            // Values in the channel plus the reservations still unused never
            // exceed the capacity (receivers only lower len meanwhile).
            if (ch.len() + k > cap) over = true;
            if (k == 0) std::this_thread::yield();
            for (; k != 0; --k) {
                if (i < per_sender) {
                    ch.send_reserved(2'000'000 + i++);
                } else {
                    ch.release(1);
                }
                if (ch.len() + k - 1 > cap) over = true;
            }
        }
    });
    std::vector<long> last(3, -1);
    long received = 0;
    while (received < 3L * per_sender) {
        std::optional<long> out;
        ASSERT_EQ(ch.recv(out, zchan::detail::no_deadline), recv_status::ok);
        const auto who = static_cast<std::size_t>(*out / 1'000'000);
        const long n = *out % 1'000'000;
        ASSERT_EQ(n, last[who] + 1) << "sender " << who;
        last[who] = n;
        ++received;
    }
    for (auto& t : senders) t.join();
    EXPECT_FALSE(over.load());
    std::optional<long> out;
    EXPECT_EQ(ch.try_recv(out), recv_status::empty);
}

}  // namespace

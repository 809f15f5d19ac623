// The first try of an operation that waits if it cannot complete now
// (chan_base::send_step / recv_step, asio_await_now.hpp's try_now), and the
// wait list it registers with next (waker.hpp's sync_waker).
//
// A step may answer "full" / "empty" for less than a precise answer costs,
// but never loses or invents a value: in a quiescent channel it answers as
// try_send / try_recv, a value it takes is the one try_recv would take, and
// the registration after a "not ready" still reports a channel that became
// ready (so the waiter retries instead of sleeping).
#include <atomic>
#include <optional>
#include <vector>

#include <gtest/gtest.h>

#include "zchan/detail/buffered_chan.hpp"
#include "zchan/detail/unbuffered_chan.hpp"
#include "zchan/detail/waker.hpp"
#include "zchan/status.hpp"

namespace {

namespace zd = zchan::detail;
using zchan::recv_status;
using zchan::send_status;

/// A waiter woken through a hook (an asynchronous operation's context): it
/// counts its wake-ups, and has an identity of its own, so this thread may
/// be its partner.
struct async_waiter {
    static void on_notify(zd::context& /*cx*/, void* arg) noexcept {
        static_cast<std::atomic<int>*>(arg)->fetch_add(1);
    }
    std::atomic<int> woken{0};
    int identity = 0;
    zd::context cx{&on_notify, &woken, &identity};
};

TEST(BufferedStep, AnswersAsTheTriesInAQuiescentChannel) {
    zd::buffered_chan<int> ch(2);
    std::optional<int> out;
    EXPECT_EQ(ch.recv_step(out), recv_status::empty);
    EXPECT_FALSE(out.has_value());
    int a = 1;
    int b = 2;
    int c = 3;
    EXPECT_EQ(ch.send_step(a), send_status::ok);
    EXPECT_EQ(ch.send_step(b), send_status::ok);
    EXPECT_EQ(ch.send_step(c), send_status::full);
    EXPECT_EQ(c, 3) << "a step that did not send keeps the value";
    EXPECT_EQ(ch.recv_step(out), recv_status::ok);
    EXPECT_EQ(out, 1);
    EXPECT_EQ(ch.send_step(c), send_status::ok) << "the freed slot is seen at once";
    EXPECT_EQ(ch.recv_step(out), recv_status::ok);
    EXPECT_EQ(out, 2);
    EXPECT_EQ(ch.recv_step(out), recv_status::ok);
    EXPECT_EQ(out, 3);
    EXPECT_EQ(ch.recv_step(out), recv_status::empty);
}

TEST(BufferedStep, DrainsAClosedChannelThenReportsItClosed) {
    zd::buffered_chan<int> ch(2);
    int v = 7;
    ASSERT_EQ(ch.send_step(v), send_status::ok);
    ch.close();
    int w = 8;
    EXPECT_EQ(ch.send_step(w), send_status::closed);
    std::optional<int> out;
    EXPECT_EQ(ch.recv_step(out), recv_status::ok);
    EXPECT_EQ(out, 7);
    out.reset();
    EXPECT_EQ(ch.recv_step(out), recv_status::closed);
    EXPECT_FALSE(out.has_value());
}

TEST(BufferedStep, TakesAValueGivenBackBeforeTheRing) {
    zd::buffered_chan<int> ch(2);
    int v = 1;
    ASSERT_EQ(ch.send_step(v), send_status::ok);
    ch.requeue_front(0);
    std::optional<int> out;
    EXPECT_EQ(ch.recv_step(out), recv_status::ok);
    EXPECT_EQ(out, 0);
    EXPECT_EQ(ch.recv_step(out), recv_status::ok);
    EXPECT_EQ(out, 1);
}

// The registration after a "not ready" is what makes a stale answer safe:
// it must report a channel that is ready by then.
TEST(BufferedStep, TheRegistrationAfterANotReadySeesAChannelThatBecameReady) {
    zd::buffered_chan<int> ch(1);
    std::optional<int> out;
    ASSERT_EQ(ch.recv_step(out), recv_status::empty);
    int v = 5;
    ASSERT_EQ(ch.try_send(v), send_status::ok);  // a sender came in between
    async_waiter r;
    zd::wait_entry e{&r.cx, zd::sel_first_op, nullptr};
    EXPECT_TRUE(ch.register_recv(e)) << "ready: the receiver must retry, not sleep";
    ch.unregister_recv(e);

    int w = 6;
    ASSERT_EQ(ch.send_step(w), send_status::full);
    ASSERT_EQ(ch.try_recv(out), recv_status::ok);  // a receiver came in between
    async_waiter s;
    zd::wait_entry f{&s.cx, zd::sel_first_op, nullptr};
    EXPECT_TRUE(ch.register_send(f)) << "ready: the sender must retry, not sleep";
    ch.unregister_send(f);
}

TEST(UnbufferedStep, IsNotReadyWithoutAPartnerAndHandsOverToOne) {
    zd::unbuffered_chan<int> ch;
    int v = 9;
    EXPECT_EQ(ch.send_step(v), send_status::full);
    std::optional<int> out;
    EXPECT_EQ(ch.recv_step(out), recv_status::empty);

    async_waiter r;
    zd::recv_packet<int> packet;
    zd::wait_entry e{&r.cx, zd::sel_first_op, &packet};
    ASSERT_FALSE(ch.register_recv(e));
    EXPECT_EQ(ch.send_step(v), send_status::ok);
    EXPECT_EQ(r.woken.load(), 1);
    EXPECT_TRUE(packet.done);
    EXPECT_EQ(packet.value, 9);
    ch.unregister_selected_recv(e);

    ch.close();
    EXPECT_EQ(ch.send_step(v), send_status::closed);
    EXPECT_EQ(ch.recv_step(out), recv_status::closed);
}

/// A receiver waiting with a packet, as a select's receive case or an
/// awaited async_recv: a sender may complete it through the packet.
struct packet_receiver {
    async_waiter r;
    zd::recv_packet<int> packet;
    zd::wait_entry e{&r.cx, zd::sel_first_op, &packet};
};

// A send that finds a receiver waiting with a packet and the ring empty
// hands it the value directly (buffered_chan's hand_to_receiver, Go's send
// to a waiting receiver), skipping waiters that carry no packet.
TEST(BufferedHandOver, ASendHandsItsValueToAWaitingReceiverPastOneWithoutAPacket) {
    zd::buffered_chan<int> ch(2);
    async_waiter hint;
    zd::wait_entry h{&hint.cx, zd::sel_first_op, nullptr};
    ASSERT_FALSE(ch.register_recv(h));
    packet_receiver pr;
    ASSERT_FALSE(ch.register_recv(pr.e));
    int v = 3;
    EXPECT_EQ(ch.send_step(v), send_status::ok);
    EXPECT_EQ(pr.r.woken.load(), 1);
    EXPECT_TRUE(pr.packet.done);
    EXPECT_EQ(pr.packet.value, 3);
    EXPECT_EQ(hint.woken.load(), 0) << "no value entered the ring: nothing to hint at";
    EXPECT_EQ(ch.len(), 0u);
    ch.unregister_selected_recv(pr.e);
    ch.unregister_recv(h);
}

// The hand-over must not overtake a value already in the ring: the waiting
// receiver gets the oldest value (give_head) and the new one queues.
TEST(BufferedHandOver, AValueInTheRingGoesFirst) {
    zd::buffered_chan<int> ch(2);
    int v = 1;
    ASSERT_EQ(ch.try_send(v), send_status::ok);
    packet_receiver pr;
    ASSERT_TRUE(ch.register_recv(pr.e));  // ready; it stays registered
    int w = 2;
    EXPECT_EQ(ch.send_step(w), send_status::ok);
    EXPECT_TRUE(pr.packet.done);
    EXPECT_EQ(pr.packet.value, 1);
    ch.unregister_selected_recv(pr.e);
    std::optional<int> out;
    EXPECT_EQ(ch.try_recv(out), recv_status::ok);
    EXPECT_EQ(out, 2);
}

// Nor a value given back (requeue_front), which is received before the ring.
TEST(BufferedHandOver, AValueGivenBackGoesFirst) {
    zd::buffered_chan<int> ch(2);
    ch.requeue_front(7);
    packet_receiver pr;
    ASSERT_TRUE(ch.register_recv(pr.e));
    int v = 8;
    EXPECT_EQ(ch.send_step(v), send_status::ok);
    EXPECT_FALSE(pr.packet.done) << "woken to retry, with no value";
    EXPECT_EQ(pr.r.woken.load(), 1);
    ch.unregister_selected_recv(pr.e);
    std::optional<int> out;
    ASSERT_EQ(ch.try_recv(out), recv_status::ok);
    EXPECT_EQ(out, 7);
    ASSERT_EQ(ch.try_recv(out), recv_status::ok);
    EXPECT_EQ(out, 8);
}

// Slots reserved for a remote sender's window count as full: a send waits
// even though a receiver waits too (protocol.md §9.1).
TEST(BufferedHandOver, AFullReservationHoldsTheSendBack) {
    zd::buffered_chan<int> ch(1);
    packet_receiver pr;
    ASSERT_FALSE(ch.register_recv(pr.e));
    ASSERT_EQ(ch.reserve(1), 1u);
    int v = 5;
    EXPECT_EQ(ch.send_step(v), send_status::full);
    EXPECT_EQ(ch.try_send(v), send_status::full);
    EXPECT_FALSE(pr.packet.done);
    ch.send_reserved(6);  // wakes the receiver to retry
    EXPECT_EQ(pr.r.woken.load(), 1);
    EXPECT_FALSE(pr.packet.done);
    ch.unregister_selected_recv(pr.e);
    std::optional<int> out;
    ASSERT_EQ(ch.try_recv(out), recv_status::ok);
    EXPECT_EQ(out, 6);
}

// A send on a closed channel fails, even with a receiver registered after
// the close.
TEST(BufferedHandOver, NothingIsHandedOverOnAClosedChannel) {
    zd::buffered_chan<int> ch(1);
    ch.close();
    packet_receiver pr;
    ASSERT_TRUE(ch.register_recv(pr.e));
    int v = 5;
    EXPECT_EQ(ch.send_step(v), send_status::closed);
    EXPECT_EQ(ch.try_send(v), send_status::closed);
    EXPECT_FALSE(pr.packet.done);
    ch.unregister_recv(pr.e);
}

/// Registers one entry per waiter with `w`, in order. The entries are
/// linked into `w`'s list: the vector must not grow while they wait.
std::vector<zd::wait_entry> register_all(zd::sync_waker& w, std::vector<async_waiter>& waiters) {
    std::vector<zd::wait_entry> entries(waiters.size());
    for (std::size_t i = 0; i < waiters.size(); ++i) {
        entries[i] = zd::wait_entry{&waiters[i].cx, zd::sel_first_op, nullptr};
    }
    for (auto& e : entries) w.register_entry(e);
    return entries;
}

// sync_waker keeps its lock and its "anyone waiting?" flag in one word: a
// notify() must find every registered waiter, one per call (a thread's, or
// an asynchronous operation's), and nothing once the list is empty again.
TEST(SyncWaker, NotifyWakesRegisteredWaitersOneAtATimeAndNothingOnceTheyAreGone) {
    zd::sync_waker w;
    w.notify();  // nobody: nothing to do
    std::vector<async_waiter> waiters(3);
    std::vector<zd::wait_entry> entries = register_all(w, waiters);
    w.notify();
    EXPECT_EQ(waiters[0].woken.load(), 1) << "first come, first woken";
    EXPECT_EQ(waiters[1].woken.load(), 0);
    w.unregister_entry(entries[1]);  // gave up meanwhile
    w.notify();
    EXPECT_EQ(waiters[1].woken.load(), 0);
    EXPECT_EQ(waiters[2].woken.load(), 1);
    w.notify();  // the list is empty again
    for (const auto& x : waiters) EXPECT_LE(x.woken.load(), 1);

    async_waiter late;
    zd::wait_entry e{&late.cx, zd::sel_first_op, nullptr};
    w.register_entry(e);
    w.notify();
    EXPECT_EQ(late.woken.load(), 1) << "a registration after the list emptied is seen";
}

TEST(SyncWaker, CloseAllWakesEveryWaiterWithClosed) {
    zd::sync_waker w;
    std::vector<async_waiter> waiters(2);
    std::vector<zd::wait_entry> entries = register_all(w, waiters);
    w.close_all();
    for (std::size_t i = 0; i < waiters.size(); ++i) {
        EXPECT_EQ(waiters[i].woken.load(), 1);
        EXPECT_EQ(waiters[i].cx.selected(), zd::sel_closed);
        w.unregister_entry(entries[i]);
    }
}

}  // namespace

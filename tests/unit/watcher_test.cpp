// Watchers in the in-process channels (detail/unbuffered_chan.hpp,
// detail/waker.hpp): a wait entry without a packet, which the transport's home
// registers for a remote select's send case (docs/protocol.md §8.6). It must
// be woken by a receiver, never receive a value, never count as a partner, and
// a TRY send right after its wake-up must find the receiver that woke it.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <thread>

#include <gtest/gtest.h>

#include "zchan/detail/buffered_chan.hpp"
#include "zchan/detail/unbuffered_chan.hpp"
#include "zchan_test_support.hpp"

namespace {

using namespace std::chrono_literals;
namespace zd = zchan::detail;
using zchan_test::background_call;
using zchan_test::deadline_after;
using zchan_test::generous;

/// An event-loop watcher, as the home's server registers it.
struct watcher {
    static void on_notify(zd::context& /*cx*/, void* arg) noexcept {
        static_cast<std::atomic<int>*>(arg)->fetch_add(1);
    }
    std::atomic<int> notified{0};
    zd::context cx{&on_notify, &notified};
    zd::wait_entry entry{&cx, zd::sel_first_op, nullptr};

    [[nodiscard]] bool woken_within(std::chrono::milliseconds ms) const {
        return zchan_test::wait_until([&] { return notified.load() > 0; }, deadline_after(ms));
    }
};

TEST(WatcherUnit, ReceiverWakesTheWatcherAndATrySendThenSucceeds) {
    zd::unbuffered_chan<int> ch;
    watcher w;
    EXPECT_FALSE(ch.register_send(w.entry));  // nobody there: no false "ready"
    std::optional<int> got;
    background_call receiver(
        [&] { EXPECT_EQ(ch.recv(got, zd::no_deadline), zchan::recv_status::ok); });
    ASSERT_TRUE(w.woken_within(generous));
    EXPECT_EQ(w.cx.selected(), zd::sel_first_op);
    ch.unregister_send(w.entry);
    // The receiver registered after waking the watcher (same lock hold): it
    // is waiting now, so the atomic TRY send finds it.
    int v = 42;
    ASSERT_EQ(ch.try_send(v), zchan::send_status::ok);
    ASSERT_TRUE(receiver.wait_done());
    EXPECT_EQ(got, 42);
    EXPECT_EQ(w.notified.load(), 1);  // one-shot
}

TEST(WatcherUnit, TryRecvWakesAWatcherButFindsNothing) {
    zd::unbuffered_chan<int> ch;
    watcher w;
    EXPECT_FALSE(ch.register_send(w.entry));
    std::optional<int> out;
    EXPECT_EQ(ch.try_recv(out), zchan::recv_status::empty);
    EXPECT_FALSE(out.has_value());
    EXPECT_EQ(w.notified.load(), 1);
    ch.unregister_send(w.entry);
}

TEST(WatcherUnit, WatcherNeverReceivesAValueAndDoesNotHideARealSender) {
    zd::unbuffered_chan<int> ch;
    watcher w;
    EXPECT_FALSE(ch.register_send(w.entry));  // first in the senders list
    std::atomic<bool> sent{false};
    background_call sender([&] {
        int v = 7;
        EXPECT_EQ(ch.send(v, zd::no_deadline), zchan::send_status::ok);
        sent = true;
    });
    // The receive skips the watcher (waking it) and takes the real sender's
    // value; it never reads the watcher's (null) packet.
    std::optional<int> out;
    ASSERT_TRUE(zchan_test::wait_until([&] { return ch.try_recv(out) == zchan::recv_status::ok; },
                                       deadline_after(generous)));
    EXPECT_EQ(out, 7);
    ASSERT_TRUE(sender.wait_done());
    EXPECT_TRUE(sent.load());
    EXPECT_TRUE(w.woken_within(generous));
    ch.unregister_send(w.entry);
}

TEST(WatcherUnit, WatchersAreNotPartners) {
    zd::unbuffered_chan<int> ch;
    watcher w;
    EXPECT_FALSE(ch.register_send(w.entry));
    // A select's receive entry must not report "ready" because of a watcher
    // (it would spin); registering it wakes the watcher instead.
    std::optional<zd::context> cx;  // owned by thread t: a select never pairs with itself
    zd::recv_packet<int> p;
    zd::wait_entry e{nullptr, zd::sel_first_op, &p};
    std::atomic<bool> registered{false};
    std::atomic<bool> ready{true};
    std::thread t([&] {
        cx.emplace();
        e.cx = &*cx;
        ready = ch.register_recv(e);
        registered = true;
    });
    t.join();
    EXPECT_TRUE(registered.load());
    EXPECT_FALSE(ready.load());
    EXPECT_TRUE(w.woken_within(generous));
    // A second watcher registered while that receiver waits is ready at once.
    watcher w2;
    EXPECT_TRUE(ch.register_send(w2.entry));
    ch.unregister_send(w2.entry);
    ch.unregister_recv(e);
    ch.unregister_send(w.entry);
    EXPECT_FALSE(p.done);
}

TEST(WatcherUnit, CloseWakesAWatcherWithClosed) {
    zd::unbuffered_chan<int> ch;
    watcher w;
    EXPECT_FALSE(ch.register_send(w.entry));
    ch.close();
    EXPECT_EQ(w.cx.selected(), zd::sel_closed);
    EXPECT_EQ(w.notified.load(), 1);
    ch.unregister_send(w.entry);
    watcher late;
    EXPECT_TRUE(ch.register_send(late.entry));  // closed: ready (the TRY send learns closed)
    ch.unregister_send(late.entry);
}

TEST(WatcherUnit, BufferedNotifyDoesNotStopAtAnEventLoopWaiter) {
    // A full buffered channel with a watcher (event loop) queued before a
    // blocked local sender: one freed slot must wake the local sender too,
    // since the watcher's remote select may no longer want the hint.
    zd::buffered_chan<int> ch(1);
    int one = 1;
    ASSERT_EQ(ch.try_send(one), zchan::send_status::ok);
    watcher w;
    EXPECT_FALSE(ch.register_send(w.entry));
    background_call sender([&] {
        int two = 2;
        EXPECT_EQ(ch.send(two, zd::no_deadline), zchan::send_status::ok);
    });
    ASSERT_TRUE(sender.still_blocked_after());
    std::optional<int> out;
    ASSERT_EQ(ch.try_recv(out), zchan::recv_status::ok);
    EXPECT_EQ(out, 1);
    ch.unregister_send(w.entry);  // the watcher ignores its hint
    EXPECT_TRUE(sender.wait_done());
    out.reset();
    ASSERT_EQ(ch.try_recv(out), zchan::recv_status::ok);
    EXPECT_EQ(out, 2);
}

// The lock-free hints (unbuffered_chan::may_send_now / may_recv_now) may say
// "certainly nothing to do" only while nobody waits on the other side, no
// value was given back and the channel is open.
TEST(WaiterHint, TryingIsCalledPointlessOnlyWhileNothingCouldComeOfIt) {
    zd::unbuffered_chan<int> ch;
    EXPECT_FALSE(ch.may_send_now());
    EXPECT_FALSE(ch.may_recv_now());

    zd::context cx;
    zd::recv_packet<int> packet;
    zd::wait_entry e{&cx, zd::sel_first_op, &packet};
    EXPECT_FALSE(ch.register_recv(e));
    EXPECT_TRUE(ch.may_send_now());
    EXPECT_FALSE(ch.may_recv_now());
    ch.unregister_recv(e);
    EXPECT_FALSE(ch.may_send_now());

    watcher w;  // a watcher waits too: unsure is "may"
    EXPECT_FALSE(ch.register_send(w.entry));
    EXPECT_TRUE(ch.may_recv_now());
    ch.unregister_send(w.entry);
    EXPECT_FALSE(ch.may_recv_now());

    ch.requeue_front(5);
    EXPECT_TRUE(ch.may_recv_now());
    std::optional<int> got;
    EXPECT_EQ(ch.try_recv(got), zchan::recv_status::ok);
    EXPECT_EQ(got, 5);
    EXPECT_FALSE(ch.may_recv_now());

    ch.close();
    EXPECT_TRUE(ch.may_send_now());
    EXPECT_TRUE(ch.may_recv_now());
}

}  // namespace

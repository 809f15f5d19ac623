// The in-process unbuffered channel: Go's rendezvous. A send completes only
// by handing its value to a receiver, directly from the sender's packet into
// the receiver's (no intermediate buffer).
//
// Invariants (all under lock_):
//   * senders_ holds blocked senders whose send_packet points at the value;
//     receivers_ holds blocked receivers with an empty recv_packet.
//   * Whoever arrives second selects a waiter of the other kind (CAS on its
//     context), removes its entry, moves the value across, sets packet.done
//     and unparks it, all before releasing lock_. The woken side sees
//     sel_first_op (nothing else selects a plain send or receive with it),
//     waits until unpark() has released its context and returns without
//     taking lock_: its entry is already gone, and the release/acquire on
//     the context makes the handoff visible. Any other outcome (closed, its
//     own timeout) takes lock_ to unregister, as the waker may still be
//     walking the list.
//   * After close no operation registers: blocked senders are woken with
//     sel_closed and report closed; receivers report closed.
//   * Watchers: an entry with packet == nullptr (the transport's WATCH_SEND,
//     docs/protocol.md §8.6) carries no value. An operation that selects one
//     while looking for a partner wakes it (a hint) and keeps looking; it
//     never touches its packet. Watchers never count as partners in
//     register_*'s "ready" answer, and an operation about to wait (blocking
//     recv/send, register_*) has woken every watcher on the other list first,
//     so a watcher registered before it cannot sleep through it, and one
//     registered after it sees it via can_select_partner.
//
// Thread safety: safe for any number of concurrent senders, receivers,
// closers and selects.
#pragma once

#include <atomic>
#include <deque>
#include <mutex>
#include <optional>
#include <utility>

#include "zchan/detail/chan_base.hpp"
#include "zchan/errors.hpp"

namespace zchan::detail {

template <class T>
class unbuffered_chan final : public chan_base<T>, public servable<T> {
public:
    send_status try_send(T& v) override {
        std::lock_guard<spin_lock> g(lock_);
        if (closed_.load(std::memory_order_relaxed)) return send_status::closed;
        return hand_to_receiver(v) ? send_status::ok : send_status::full;
    }

    send_status send(T& v, deadline_t deadline) override {
        // Built up front, before the lock, although a send that finds a
        // receiver never uses it: building it only once it has to wait, under
        // the lock, measured 10-15% slower in a ping-pong, since the misses
        // on these lines (written by the previous partner) then no longer
        // overlap the miss on lock_.
        blocked_op<send_packet<T>> w(&v, false);
        {
            std::lock_guard<spin_lock> g(lock_);
            if (closed_.load(std::memory_order_relaxed)) return send_status::closed;
            if (hand_to_receiver(v)) return send_status::ok;
            senders_.push(w.entry);
        }
        std::uintptr_t sel = w.cx.wait_until(deadline);
        if (sel == sel_first_op) {
            // A receiver took the value (the only way to select this op): it
            // removed our entry under lock_ before unparking us, so there is
            // nothing to unregister and no need to take lock_ back from it.
            w.cx.wait_released();
            return send_status::ok;
        }
        std::lock_guard<spin_lock> g(lock_);
        senders_.remove(w.entry);
        if (w.packet.done) return send_status::ok;
        return sel == sel_closed ? send_status::closed : send_status::timeout;
    }

    recv_status try_recv(std::optional<T>& out) override {
        std::lock_guard<spin_lock> g(lock_);
        if (take_requeued(out) || take_from_sender(out)) return recv_status::ok;
        return closed_.load(std::memory_order_relaxed) ? recv_status::closed : recv_status::empty;
    }

    recv_status recv(std::optional<T>& out, deadline_t deadline) override {
        blocked_op<recv_packet<T>> w;  // built up front (see send)
        {
            std::lock_guard<spin_lock> g(lock_);
            if (take_requeued(out) || take_from_sender(out)) return recv_status::ok;
            if (closed_.load(std::memory_order_relaxed)) return recv_status::closed;
            receivers_.push(w.entry);
        }
        std::uintptr_t sel = w.cx.wait_until(deadline);
        if (sel == sel_first_op) {
            // A sender handed its value over (see send).
            w.cx.wait_released();
            out = std::move(w.packet.value);
            return recv_status::ok;
        }
        std::lock_guard<spin_lock> g(lock_);
        receivers_.remove(w.entry);
        if (w.packet.done) {
            out = std::move(w.packet.value);
            return recv_status::ok;
        }
        return sel == sel_closed ? recv_status::closed : recv_status::timeout;
    }

    void close() override {
        std::lock_guard<spin_lock> g(lock_);
        if (closed_.load(std::memory_order_relaxed)) {
            throw channel_closed("zchan: close of closed channel");
        }
        closed_.store(true, std::memory_order_release);
        senders_.close_all();
        receivers_.close_all();
    }

    bool is_closed() const override { return closed_.load(std::memory_order_acquire); }
    /// 0, except while values given back by the transport wait (requeue_front).
    std::size_t len() const override {
        std::lock_guard<spin_lock> g(lock_);
        return requeued_.size();
    }

    void requeue_front(T&& v) override {
        std::lock_guard<spin_lock> g(lock_);
        if (!hand_to_receiver(v)) requeued_.push_front(std::move(v));
    }
    std::size_t cap() const override { return 0; }

    bool register_send(wait_entry& e) override {
        std::lock_guard<spin_lock> g(lock_);
        senders_.push(e);
        if (e.packet != nullptr) receivers_.wake_watchers();
        return closed_.load(std::memory_order_relaxed) || receivers_.can_select_partner();
    }
    void unregister_send(wait_entry& e) override {
        std::lock_guard<spin_lock> g(lock_);
        senders_.remove(e);
    }
    bool register_recv(wait_entry& e) override {
        std::lock_guard<spin_lock> g(lock_);
        receivers_.push(e);
        if (e.packet != nullptr) senders_.wake_watchers();
        return closed_.load(std::memory_order_relaxed) || senders_.can_select_partner() ||
               !requeued_.empty();
    }
    void unregister_recv(wait_entry& e) override {
        std::lock_guard<spin_lock> g(lock_);
        receivers_.remove(e);
    }

    // Atomic poll: everything readiness depends on is written under lock_,
    // except a waiter's context, which can only go from undecided to decided
    // (not ready) meanwhile; a new waiter needs lock_.
    [[nodiscard]] poll_mode poll_kind() const noexcept override { return poll_mode::locked; }
    [[nodiscard]] spin_lock* poll_lock() const noexcept override { return &lock_; }
    /// Requires lock_. As try_send: a receiver to hand to, or closed.
    [[nodiscard]] bool send_ready(poll_stamp& /*stamp*/) const override {
        return closed_.load(std::memory_order_relaxed) || receivers_.can_select_partner();
    }
    /// Requires lock_. As try_recv: a requeued value, a sender, or closed.
    [[nodiscard]] bool recv_ready(poll_stamp& /*stamp*/) const override {
        return !requeued_.empty() || senders_.can_select_partner() ||
               closed_.load(std::memory_order_relaxed);
    }

private:
    /// Requires lock_. Selects a waiter of `list` that can take part in a
    /// handoff, waking (as a hint) every watcher it meets on the way; nullptr
    /// if there is none. On return no undecided watcher is left before the
    /// partner, so a caller that finds none and then waits has woken them all.
    static wait_entry* select_partner(waker& list) noexcept {
        for (;;) {
            wait_entry* w = list.try_select();
            if (w == nullptr || w->packet != nullptr) return w;
            w->cx->unpark();  // a watcher: no value to move, just the hint
        }
    }

    /// Requires lock_. Moves `v` into a waiting receiver, if there is one.
    bool hand_to_receiver(T& v) {
        wait_entry* r = select_partner(receivers_);
        if (r == nullptr) return false;
        auto* p = static_cast<recv_packet<T>*>(r->packet);
        p->value.emplace(std::move(v));
        p->done = true;
        r->cx->unpark();
        return true;
    }

    /// Requires lock_. Takes a requeued value, if there is one.
    bool take_requeued(std::optional<T>& out) {
        if (requeued_.empty()) return false;
        out.emplace(std::move(requeued_.front()));
        requeued_.pop_front();
        return true;
    }

    /// Requires lock_. Takes the value of a waiting sender, if there is one.
    bool take_from_sender(std::optional<T>& out) {
        wait_entry* s = select_partner(senders_);
        if (s == nullptr) return false;
        auto* p = static_cast<send_packet<T>*>(s->packet);
        out.emplace(std::move(*p->value));
        p->done = true;
        s->cx->unpark();
        return true;
    }

    mutable spin_lock lock_;
    waker senders_;                    // guarded by lock_
    waker receivers_;                  // guarded by lock_
    std::atomic<bool> closed_{false};  // written under lock_; read anywhere
    std::deque<T> requeued_;           // guarded by lock_; see requeue_front
};

}  // namespace zchan::detail

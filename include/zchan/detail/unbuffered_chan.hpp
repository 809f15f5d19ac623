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
//   * Claims (docs/protocol.md §8.3, claim_word): a *claiming* receiver is a
//     transport's stand-in for a remote receiver (recv_packet::claiming). A
//     sender does not complete by handing it a value: the sender's context
//     is decided, its value moved into the receiver's packet and its claim
//     armed, all under lock_, and it waits until the transport settles the
//     claim (settle_claim: taken, or given back into the sender's variable,
//     after which the sender offers it again). The transport claims a
//     waiting sender the same way (try_recv_claim). A claimed sender is on
//     no list. A claiming receiver waits on this channel only, so its
//     context is decided only under lock_: a sender decides its own context
//     first and then the receiver's, which cannot fail meanwhile.
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
    unbuffered_chan() noexcept : chan_base<T>(poll_mode::locked) {}

    send_status try_send(T& v) override {
        // A thread may wait for a claim (a round trip); a step of an
        // asynchronous operation must not block its executor: it claims
        // through its registration instead (register_send).
        const bool may_wait = lent_identity() == nullptr;
        std::unique_lock<spin_lock> g(lock_);
        if (closed_.load(std::memory_order_relaxed)) return send_status::closed;
        wait_entry* r = select_receiver(may_wait);
        if (r == nullptr) return send_status::full;
        if (!claiming(*r)) {
            hand_over(*r, v);
            return send_status::ok;
        }
        blocked_op<send_packet<T>> w(&v, false);
        (void)w.cx.try_select(sel_first_op);
        claim_receiver(*r, w.entry, v);
        g.unlock();
        await_handoff(w.cx, w.packet);
        return w.packet.done ? send_status::ok : send_status::full;
    }

    send_status try_send_nowait(T& v) override {
        std::lock_guard<spin_lock> g(lock_);
        if (closed_.load(std::memory_order_relaxed)) return send_status::closed;
        wait_entry* r = select_receiver(false);
        if (r == nullptr) return send_status::full;
        hand_over(*r, v);
        return send_status::ok;
    }

    send_status send(T& v, deadline_t deadline) override {
        for (;;) {
            // Built up front, before the lock, although a send that finds a
            // receiver never uses it: building it only once it has to wait,
            // under the lock, measured 10-15% slower in a ping-pong, since
            // the misses on these lines (written by the previous partner)
            // then no longer overlap the miss on lock_.
            blocked_op<send_packet<T>> w(&v, false);
            {
                std::lock_guard<spin_lock> g(lock_);
                if (closed_.load(std::memory_order_relaxed)) return send_status::closed;
                wait_entry* r = select_receiver(true);
                if (r != nullptr && !claiming(*r)) {
                    hand_over(*r, v);
                    return send_status::ok;
                }
                if (r != nullptr) {
                    (void)w.cx.try_select(sel_first_op);  // our own, fresh: cannot fail
                    claim_receiver(*r, w.entry, v);
                } else {
                    senders_.push(w.entry);
                }
            }
            std::uintptr_t sel = w.cx.wait_until(deadline);
            if (sel == sel_first_op) {
                // A receiver took the value, or claimed it (the only ways to
                // select this op): it removed our entry under lock_, so there
                // is nothing to unregister. A claim is given back only if the
                // remote receiver did not take the value: offer it again.
                await_handoff(w.cx, w.packet);
                if (w.packet.done) return send_status::ok;
                if (deadline != no_deadline && clock::now() >= deadline) {
                    return send_status::timeout;
                }
                continue;
            }
            std::lock_guard<spin_lock> g(lock_);
            senders_.remove(w.entry);
            if (w.packet.done) return send_status::ok;
            return sel == sel_closed ? send_status::closed : send_status::timeout;
        }
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
        // A value from no sender: a claiming receiver takes it plainly.
        if (wait_entry* r = select_receiver(true)) {
            hand_over(*r, v);
        } else {
            requeued_.push_front(std::move(v));
            requeued_any_.store(true, std::memory_order_relaxed);
        }
    }

    /// A capacity-0 channel holds no value for a stream: as try_recv (the
    /// sender is released), and nothing is counted as lent (see servable).
    recv_status try_recv_lent(std::optional<T>& out) override { return try_recv(out); }

    recv_status try_recv_claim(std::optional<T>& out, wait_entry*& claimed) override {
        std::lock_guard<spin_lock> g(lock_);
        claimed = nullptr;
        if (take_requeued(out)) return recv_status::ok;
        if (wait_entry* s = select_partner(senders_)) {
            auto* p = static_cast<send_packet<T>*>(s->packet);
            out.emplace(std::move(*p->value));
            p->claim.arm();  // no unpark: the sender waits for settle_claim
            claimed = s;
            return recv_status::ok;
        }
        return closed_.load(std::memory_order_relaxed) ? recv_status::closed : recv_status::empty;
    }

    void settle_claim(wait_entry& claimed, bool taken, std::optional<T>& v) override {
        std::lock_guard<spin_lock> g(lock_);
        auto* p = static_cast<send_packet<T>*>(claimed.packet);
        if (taken) {
            p->done = true;
        } else {
            *p->value = std::move(*v);
            p->done = false;
        }
        v.reset();
        p->claim.settle();
        claimed.cx->unpark();
    }

    bool offer_to_claiming(wait_entry& e) override {
        std::lock_guard<spin_lock> g(lock_);
        if (closed_.load(std::memory_order_relaxed)) return false;
        wait_entry* r = receivers_.pick_first([](wait_entry& x) {
            return x.packet != nullptr && claiming(x) && x.cx->selected() == sel_waiting
                       ? waker::pick::reserve
                       : waker::pick::skip;
        });
        if (r == nullptr || !e.cx->try_select(e.oper)) return false;
        claim_receiver(*r, e, *static_cast<send_packet<T>*>(e.packet)->value);
        return true;
    }
    std::size_t cap() const override { return 0; }

    bool register_send(wait_entry& e) override {
        std::lock_guard<spin_lock> g(lock_);
        if (e.packet != nullptr && !closed_.load(std::memory_order_relaxed)) {
            // Only claiming receivers wait (else try_send would hand over:
            // "ready"): claim one on e's behalf now, as a blocking send does;
            // e's waiter then sees its context decided and waits for the
            // settlement. If e's select was decided elsewhere, it is awake.
            bool plain = false;
            wait_entry* r = receivers_.pick_first([&plain](wait_entry& x) {
                if (x.packet == nullptr || x.cx->selected() != sel_waiting) {
                    return waker::pick::skip;
                }
                if (!claiming(x)) plain = true;
                return waker::pick::reserve;
            });
            if (r != nullptr && !plain) {
                if (!e.cx->try_select(e.oper)) return true;
                claim_receiver(*r, e, *static_cast<send_packet<T>*>(e.packet)->value);
                return false;
            }
        }
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
    // Selecting an entry unlinks it (waker::try_select, pick_first).
    void unregister_selected_send(wait_entry& e) override {
        if (e.linked) unregister_send(e);
    }
    void unregister_selected_recv(wait_entry& e) override {
        if (e.linked) unregister_recv(e);
    }
    // A lock-free hint first: without a partner or a close, trying only
    // takes the lock for nothing.
    send_status send_step(T& v) override {
        return may_send_now() ? try_send(v) : send_status::full;
    }
    recv_status recv_step(std::optional<T>& out) override {
        return may_recv_now() ? try_recv(out) : recv_status::empty;
    }
    /// Hints, read without a lock: false if try_send / try_recv would
    /// certainly find nothing to do now (nobody waits on the other side,
    /// nothing given back, not closed). True whenever unsure.
    [[nodiscard]] bool may_send_now() const noexcept {
        return receivers_.maybe_waiting() || closed_.load(std::memory_order_relaxed);
    }
    [[nodiscard]] bool may_recv_now() const noexcept {
        return senders_.maybe_waiting() || requeued_any_.load(std::memory_order_relaxed) ||
               closed_.load(std::memory_order_relaxed);
    }

    // Atomic poll: everything readiness depends on is written under lock_,
    // except a waiter's context, which can only go from undecided to decided
    // (not ready) meanwhile; a new waiter needs lock_.
    [[nodiscard]] spin_lock* poll_lock() const noexcept override { return &lock_; }
    /// Requires lock_. As try_send: a receiver to hand to, or closed. A
    /// claiming receiver counts only for a thread (see try_send).
    [[nodiscard]] bool send_ready(poll_stamp& /*stamp*/) const override {
        if (closed_.load(std::memory_order_relaxed)) return true;
        if (lent_identity() == nullptr) return receivers_.can_select_partner();
        return receivers_.any_of([](const wait_entry& x) {
            return x.packet != nullptr && !claiming(x) && x.cx->selected() == sel_waiting;
        });
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

    static bool claiming(const wait_entry& r) noexcept {
        return static_cast<const recv_packet<T>*>(r.packet)->claiming;
    }

    /// Requires lock_. The first receiver that can take a value, waking the
    /// watchers met on the way: a plain one selected and removed; a claiming
    /// one (only if `claims`) returned undecided and still linked.
    wait_entry* select_receiver(bool claims) noexcept {
        return receivers_.pick_first([claims](wait_entry& x) {
            if (x.packet == nullptr) return waker::pick::wake;
            if (!claiming(x)) return waker::pick::select;
            return claims && x.cx->selected() == sel_waiting ? waker::pick::reserve
                                                             : waker::pick::skip;
        });
    }

    /// Requires lock_. Moves `v` into receiver `r` from select_receiver
    /// (a claiming one is decided here) and wakes it; no sender is claimed.
    void hand_over(wait_entry& r, T& v) {
        if (r.linked) {  // reserved: a claiming receiver, undecided
            (void)r.cx->try_select(r.oper);
            receivers_.remove(r);
        }
        auto* p = static_cast<recv_packet<T>*>(r.packet);
        p->value.emplace(std::move(v));
        p->done = true;
        p->claimed = nullptr;
        r.cx->unpark();
    }

    /// Requires lock_, a claiming receiver `r` (undecided) and a sender
    /// entry `s` whose context is decided for it, holding the value `v`.
    /// Moves the value into r, arms s's claim and wakes r (the transport).
    void claim_receiver(wait_entry& r, wait_entry& s, T& v) {
        (void)r.cx->try_select(r.oper);  // cannot fail: see the top
        receivers_.remove(r);
        auto* p = static_cast<recv_packet<T>*>(r.packet);
        p->value.emplace(std::move(v));
        p->done = true;
        p->claimed = &s;
        static_cast<send_packet<T>*>(s.packet)->claim.arm();
        r.cx->unpark();
    }

    /// Requires lock_. Takes a requeued value, if there is one.
    bool take_requeued(std::optional<T>& out) {
        if (requeued_.empty()) return false;
        out.emplace(std::move(requeued_.front()));
        requeued_.pop_front();
        requeued_any_.store(!requeued_.empty(), std::memory_order_relaxed);
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
    waker senders_;                          // guarded by lock_
    waker receivers_;                        // guarded by lock_
    std::atomic<bool> closed_{false};        // written under lock_; read anywhere
    std::deque<T> requeued_;                 // guarded by lock_; see requeue_front
    std::atomic<bool> requeued_any_{false};  // !requeued_.empty(), for may_recv_now()
};

}  // namespace zchan::detail

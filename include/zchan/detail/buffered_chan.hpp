// The in-process buffered channel: a bounded lock-free ring of slots with
// per-slot stamps (Dmitry Vyukov's bounded MPMC queue, in the form
// crossbeam-channel's array flavour uses), plus wait lists for blocked
// senders and receivers.
//
// Invariants:
//   * head_ and tail_ hold {lap, index}; tail_ also carries mark_bit_, set
//     once by close(). A send can only succeed by CAS on tail_ without the
//     mark, so no value enters after close and close() never races a
//     half-finished send into oblivion: a receiver that sees head == tail
//     with the mark set knows the channel is closed *and* drained.
//   * slot.stamp == tail  : the slot is free for the send that claims `tail`;
//     slot.stamp == head+1: the slot holds the value for the receive that
//     claims `head`. The release store of the stamp publishes the value.
//   * Blocking is layered on top: a blocked operation registers in
//     senders_/receivers_ and re-checks full/empty after registering
//     (seq_cst on both sides), and every successful operation calls notify()
//     on the opposite list, so a wake-up cannot be lost. A wake-up is a hint:
//     the woken operation retries, unless the waker completed it through its
//     packet, as Go's hand-offs do (give_head, take_waiting_value,
//     hand_to_receiver): the value then went from the ring, or into it, or
//     past it while it was empty, under the list's lock.
//   * Reservations (servable::reserve, protocol.md §9.1): tail_ also holds
//     R, the slots reserved for a remote sender's window, in a field between
//     the mark and the lap (tail_ = lap | R | mark | index; head_ and the
//     stamps hold positions, lap | index, with R and the mark zero). Keeping
//     R in tail_'s word makes "count + R <= capacity" one CAS: a send claims
//     a slot only if the slot R positions further on is free too, and
//     reserve/release/send_reserved change R by CAS on the same word, so no
//     send can slip between a reservation's check and its claim. With R == 0
//     (no window) every path is the plain ring. A closed channel with R > 0
//     is not drained: a reserved value was sent before the close.
//   * Lent values (servable, protocol.md §10 item 3): lent_ counts values
//     the transport took for remote receivers that may still come back. A
//     closed channel with lent_ > 0 is not drained for local receivers. The
//     transport raises lent_ *before* it takes a value, so a receiver that
//     sees the value gone also sees it lent; it gives a value back
//     (requeue_front) *before* lowering lent_, so a receiver that sees
//     lent_ == 0 also sees the requeued value (it looks again after the
//     verdict "closed"). Every change of lent_ on a closed channel also
//     advances requeued_total_, for the atomic poll (poll_unchanged).
//   * Atomic poll (chan_base.hpp): a stamped channel. head_ and tail_ only
//     grow (the lap sits above the index and the mark), so re-reading the
//     same values proves they held still in between. The requeued values
//     are a count that goes up and down; requeued_total_ counts every
//     requeue_front and never repeats, and the proof for the pair is at
//     poll_unchanged.
//
// Thread safety: safe for any number of concurrent senders, receivers,
// closers and selects.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <utility>

#include "zchan/detail/chan_base.hpp"
#include "zchan/errors.hpp"

namespace zchan::detail {

template <class T>
class buffered_chan final : public chan_base<T>, public servable<T> {
public:
    explicit buffered_chan(std::size_t capacity)
        : chan_base<T>(poll_mode::stamped),
          cap_(capacity),
          mark_bit_(std::bit_ceil(capacity + 1)),
          r_shift_(static_cast<unsigned>(std::countr_zero(mark_bit_)) + 1),
          // R takes as many bits as the index (R <= capacity). Beyond 2^22
          // slots that would leave too few lap bits: no reservations there.
          r_mask_(capacity <= max_reservable ? (mark_bit_ - 1) << r_shift_ : 0),
          one_lap_(r_mask_ != 0 ? mark_bit_ << r_shift_ : mark_bit_ * 2),
          pos_mask_(~(r_mask_ | mark_bit_)),
          slots_(new slot[capacity]) {
        for (std::size_t i = 0; i < cap_; ++i) slots_[i].stamp.store(i, std::memory_order_relaxed);
    }

    ~buffered_chan() override {
        // Destroy the values still buffered: every slot from head to tail.
        std::size_t head = head_.load(std::memory_order_relaxed);
        std::size_t tail = pos(tail_.load(std::memory_order_relaxed));
        std::size_t n = count(head, tail);
        std::size_t index = head & (mark_bit_ - 1);
        for (std::size_t i = 0; i < n; ++i) {
            slots_[index].value()->~T();
            index = index + 1 < cap_ ? index + 1 : 0;
        }
    }

    // A buffered channel has no rendezvous: nothing is ever claimed.
    recv_status try_recv_claim(std::optional<T>& out, wait_entry*& claimed) override {
        claimed = nullptr;
        return try_recv_lent(out);
    }

    recv_status try_recv_lent(std::optional<T>& out) override {
        lent_.fetch_add(1, std::memory_order_seq_cst);  // before the take: see the top
        if (take_requeued(out)) return recv_status::ok;
        token t;
        if (start_recv<true, true>(t)) {
            if (t.where != nullptr) {
                read(t, out);
                return recv_status::ok;
            }
            unlend();
            return recv_status::closed;
        }
        unlend();
        return recv_status::empty;
    }

    void return_lent(T&& v) override {
        requeue_front(std::move(v));  // before unlend(): see the top
        unlend();
    }

    void settle_lent() override { unlend(); }

    void lend() override { lent_.fetch_add(1, std::memory_order_seq_cst); }

    void return_lent_back(T&& v) override {
        {
            std::lock_guard<spin_lock> g(requeued_lock_);
            requeued_.push_back(std::move(v));
            requeued_count_.fetch_add(1, std::memory_order_seq_cst);  // as requeue_front
            requeued_total_.fetch_add(1, std::memory_order_seq_cst);
        }
        receivers_.notify();
        unlend();  // after the value is there: see the top
    }

    bool watch_room(wait_entry& e) override {
        senders_.register_entry(e);  // every receive wakes it (read)
        return is_closed() ? is_empty() : !is_full();
    }
    send_status try_send_nowait(T& v) override { return try_send(v); }

    send_status try_send(T& v) override { return send_once<true>(v); }
    // "Full" without the look at head_ and its fence (start_send).
    send_status send_step(T& v) override { return send_once<false>(v); }

    send_status send(T& v, deadline_t deadline) override {
        for (;;) {
            backoff b;
            for (;;) {
                token t;
                if (start_send<false>(t)) {
                    if (t.where == nullptr) return send_status::closed;
                    write(t, v);
                    return send_status::ok;
                }
                if (b.is_completed()) break;
                // Full: watch only the slot that must free up (the one we
                // would write next, or R further on) until its receiver
                // frees it. Re-running start_send would also read head_,
                // stealing that cache line from the receiver.
                const std::size_t tail = tail_.load(std::memory_order_relaxed);
                const std::size_t q = advance(pos(tail), std::min(reserved(tail), cap_ - 1));
                const slot& s = slots_[q & (mark_bit_ - 1)];
                do {
                    b.snooze();
                } while (!b.is_completed() && s.stamp.load(std::memory_order_relaxed) != q);
            }
            if (deadline != no_deadline && clock::now() >= deadline) return send_status::timeout;
            context cx;
            wait_entry e{&cx, sel_first_op, nullptr};
            if (register_send(e)) cx.try_select(sel_aborted);
            cx.wait_until(deadline);
            senders_.unregister_entry(e);
        }
    }

    recv_status try_recv(std::optional<T>& out) override { return recv_once<true>(out); }
    // "Empty" without the look at tail_ and its fence (start_recv).
    recv_status recv_step(std::optional<T>& out) override { return recv_once<false>(out); }

    recv_status recv(std::optional<T>& out, deadline_t deadline) override {
        for (;;) {
            backoff b;
            for (;;) {
                if (take_requeued(out)) return recv_status::ok;
                token t;
                if (start_recv<false>(t)) {
                    if (t.where == nullptr) return closed_or_given_back(out);
                    read(t, out);
                    return recv_status::ok;
                }
                if (b.is_completed()) break;
                // Empty: watch only the slot we would read next (see send).
                // Not tail_ (for a close): the sender writes it on every
                // value, so polling it would pull its line over on every
                // value too. A close ends this spin at the latest when the
                // backoff completes (a few microseconds); a parked receiver
                // is woken by close() itself.
                std::size_t head = head_.load(std::memory_order_relaxed);
                const slot& s = slots_[head & (mark_bit_ - 1)];
                do {
                    b.snooze();
                } while (!b.is_completed() && s.stamp.load(std::memory_order_relaxed) != head + 1);
            }
            if (deadline != no_deadline && clock::now() >= deadline) return recv_status::timeout;
            context cx;
            wait_entry e{&cx, sel_first_op, nullptr};
            if (register_recv(e)) cx.try_select(sel_aborted);
            cx.wait_until(deadline);
            receivers_.unregister_entry(e);
        }
    }

    void close() override {
        std::size_t tail = tail_.fetch_or(mark_bit_, std::memory_order_seq_cst);
        if ((tail & mark_bit_) != 0) throw channel_closed("zchan: close of closed channel");
        closed_.store(true, std::memory_order_seq_cst);
        senders_.close_all();
        receivers_.close_all();
        closers_.close_all();
    }

    [[nodiscard]] bool is_closed() const override {
        return (tail_.load(std::memory_order_seq_cst) & mark_bit_) != 0;
    }

    [[nodiscard]] std::size_t len() const override {
        for (;;) {
            std::size_t tail = tail_.load(std::memory_order_seq_cst);
            std::size_t head = head_.load(std::memory_order_seq_cst);
            // A consistent pair: tail did not move while we read head.
            if (tail_.load(std::memory_order_seq_cst) == tail) {
                return count(head, pos(tail)) + requeued_count_.load(std::memory_order_seq_cst);
            }
        }
    }

    [[nodiscard]] std::size_t cap() const override { return cap_; }

    bool register_send(wait_entry& e) override {
        senders_.register_entry(e);
        return !is_full() || is_closed();
    }
    void unregister_send(wait_entry& e) override { senders_.unregister_entry(e); }
    bool register_recv(wait_entry& e) override {
        receivers_.register_entry(e);
        return !is_empty() || is_drained_closed() ||
               requeued_count_.load(std::memory_order_seq_cst) != 0;
    }

    void requeue_front(T&& v) override {
        {
            std::lock_guard<spin_lock> g(requeued_lock_);
            requeued_.push_front(std::move(v));
            // The count first, then the total: poll_unchanged relies on it.
            requeued_count_.fetch_add(1, std::memory_order_seq_cst);
            requeued_total_.fetch_add(1, std::memory_order_seq_cst);
        }
        receivers_.notify();
    }
    void unregister_recv(wait_entry& e) override { receivers_.unregister_entry(e); }
    // Selecting an entry unlinks it (waker::try_select, pick_first).
    void unregister_selected_send(wait_entry& e) override {
        if (e.linked) unregister_send(e);
    }
    void unregister_selected_recv(wait_entry& e) override {
        if (e.linked) unregister_recv(e);
    }

    [[nodiscard]] bool can_reserve() const noexcept override { return r_mask_ != 0; }

    // Reservations for a remote sender's window (protocol.md §9.1; see the
    // top): buffered_chan_reserve.hpp.
    std::size_t reserve(std::size_t n) override;
    void release(std::size_t n) override;
    void send_reserved(T&& v) override { send_reserved_n(&v, 1); }
    /// The positions are claimed with one CAS and the receivers woken once
    /// the batch is in (see buffered_chan_reserve.hpp).
    void send_reserved_n(T* values, std::size_t n) override;

    bool watch_close(wait_entry& e) override {
        closers_.register_entry(e);
        return is_closed();
    }
    void unwatch_close(wait_entry& e) override { closers_.unregister_entry(e); }

    /// As try_send: a free slot, or closed.
    [[nodiscard]] bool send_ready(poll_stamp& stamp) const override {
        read_stamp(stamp, false);
        const std::size_t head = stamp.words[1];
        const std::size_t tail = stamp.words[2];
        return (tail & mark_bit_) != 0 || count(head, pos(tail)) + reserved(tail) < cap_;
    }
    /// As try_recv: a requeued value, a value in the ring, or closed.
    [[nodiscard]] bool recv_ready(poll_stamp& stamp) const override {
        read_stamp(stamp, true);
        const std::size_t head = stamp.words[1];
        const std::size_t tail = stamp.words[2];
        return requeued_count_.load(std::memory_order_seq_cst) != 0 || pos(tail) != head ||
               ((tail & mark_bit_) != 0 && reserved(tail) == 0 &&
                lent_.load(std::memory_order_seq_cst) == 0);
    }
    /// Called after recv_ready (or send_ready) read `stamp` and found nothing.
    /// head_ and tail_ equal to their stamp held still in between (they only
    /// grow). For a receive, requeued values must have been absent at every
    /// instant X between the two calls too. Proof: recv_ready read total t1,
    /// then count c1 == 0; this reads count c2, then total t2. Suppose
    /// c2 == 0, t2 == t1, and a value was requeued at X. Its requeue_front
    /// raised the count at some p in (c1, X) and then, still under
    /// requeued_lock_, the total at q > p > t1; t2 == t1 puts q after t2,
    /// hence after c2. So requeued_lock_ was held over [p, c2], no take
    /// could lower the count, and c2 >= 1: a contradiction. (All of these
    /// are seq_cst, so "at" and "after" refer to their single total order.)
    /// Lent values, on a closed channel: recv_ready saw lent_ l1 != 0; this
    /// reads l2 != 0 before t2. Had lent_ been 0 at X, the unlend() that took
    /// it there advanced the total after X, and before the lend that raised
    /// it again before l2 (one thread lends and unlends: servable), so
    /// before t2: t2 != t1. An open channel's stamp sees the close.
    [[nodiscard]] bool poll_unchanged(const poll_stamp& stamp) const override {
        if (stamp.recv && requeued_count_.load(std::memory_order_seq_cst) != 0) return false;
        if (stamp.recv && (stamp.words[2] & mark_bit_) != 0 &&
            lent_.load(std::memory_order_seq_cst) == 0) {
            return false;
        }
        poll_stamp now;
        read_stamp(now, stamp.recv);
        return now.words == stamp.words;
    }

private:
    /// Reads requeued_total_ (first: see poll_unchanged), head_ and tail_.
    void read_stamp(poll_stamp& stamp, bool recv) const noexcept {
        stamp.recv = recv;
        stamp.words[0] = requeued_total_.load(std::memory_order_seq_cst);
        stamp.words[1] = head_.load(std::memory_order_seq_cst);
        stamp.words[2] = tail_.load(std::memory_order_seq_cst);
    }

    /// A receive found the channel closed and drained, lent values
    /// included; one given back before its unlend is here (see the top).
    recv_status closed_or_given_back(std::optional<T>& out) {
        return take_requeued(out) ? recv_status::ok : recv_status::closed;
    }

    /// One lent value fewer (servable: the transport's thread only).
    void unlend() noexcept {
        const std::size_t left = lent_.fetch_sub(1, std::memory_order_seq_cst) - 1;
        const std::size_t tail = tail_.load(std::memory_order_seq_cst);
        if ((tail & mark_bit_) == 0) return;
        requeued_total_.fetch_add(1, std::memory_order_seq_cst);       // see poll_unchanged
        if (left == 0 && reserved(tail) == 0) receivers_.close_all();  // the drain can end
    }

    /// Takes a requeued value, if any. The common case (none) costs one
    /// load of a line nobody writes.
    bool take_requeued(std::optional<T>& out) {
        if (requeued_count_.load(std::memory_order_acquire) == 0) return false;
        std::lock_guard<spin_lock> g(requeued_lock_);
        if (requeued_.empty()) return false;
        out.emplace(std::move(requeued_.front()));
        requeued_.pop_front();
        requeued_count_.fetch_sub(1, std::memory_order_seq_cst);
        return true;
    }

    struct slot {
        std::atomic<std::size_t> stamp;
        // NOLINTNEXTLINE(modernize-avoid-c-arrays): raw storage a T is built in
        alignas(T) unsigned char storage[sizeof(T)];
        T* value() noexcept { return std::launder(reinterpret_cast<T*>(storage)); }
    };

    /// A claimed slot, or slot == nullptr for "closed".
    struct token {
        slot* where = nullptr;
        std::size_t stamp = 0;
    };

    /// tail_'s position (lap | index), without R and the mark.
    [[nodiscard]] std::size_t pos(std::size_t tail) const noexcept { return tail & pos_mask_; }
    /// tail_'s R field: slots reserved (see the top).
    [[nodiscard]] std::size_t reserved(std::size_t tail) const noexcept {
        return (tail & r_mask_) >> r_shift_;
    }
    [[nodiscard]] std::size_t r_unit() const noexcept { return std::size_t{1} << r_shift_; }
    /// Position `p` moved on by n <= capacity slots.
    [[nodiscard]] std::size_t advance(std::size_t p, std::size_t n) const noexcept {
        const std::size_t index = p & (mark_bit_ - 1);
        if (index + n < cap_) return p + n;
        return (p & ~(one_lap_ - 1)) + one_lap_ + (index + n - cap_);
    }

    [[nodiscard]] std::size_t count(std::size_t head, std::size_t tail) const noexcept {
        std::size_t hix = head & (mark_bit_ - 1);
        std::size_t tix = tail & (mark_bit_ - 1);
        if (hix < tix) return tix - hix;
        if (hix > tix) return cap_ - hix + tix;
        return tail == head ? 0 : cap_;
    }

    [[nodiscard]] bool is_full() const noexcept {
        std::size_t tail = tail_.load(std::memory_order_seq_cst);
        std::size_t head = head_.load(std::memory_order_seq_cst);
        return count(head, pos(tail)) + reserved(tail) >= cap_;
    }

    [[nodiscard]] bool is_empty() const noexcept {
        std::size_t head = head_.load(std::memory_order_seq_cst);
        std::size_t tail = tail_.load(std::memory_order_seq_cst);
        return pos(tail) == head;
    }

    /// Closed, and no reserved or lent value can still arrive (see the top).
    [[nodiscard]] bool is_drained_closed() const noexcept {
        const std::size_t tail = tail_.load(std::memory_order_seq_cst);
        return (tail & mark_bit_) != 0 && reserved(tail) == 0 &&
               lent_.load(std::memory_order_seq_cst) == 0;
    }

    /// try_send (Precise) or send_step.
    template <bool Precise>
    send_status send_once(T& v) {
        if (hand_to_receiver(v)) return send_status::ok;
        token t;
        if (!start_send<Precise>(t)) return send_status::full;
        if (t.where == nullptr) return send_status::closed;
        write(t, v);
        return send_status::ok;
    }

    /// try_recv (Precise) or recv_step.
    template <bool Precise>
    recv_status recv_once(std::optional<T>& out) {
        if (take_requeued(out)) return recv_status::ok;
        token t;
        if (!start_recv<Precise>(t)) return recv_status::empty;
        if (t.where == nullptr) return closed_or_given_back(out);
        read(t, out);
        return recv_status::ok;
    }

    /// Claims a slot to write. false: full. true with slot == nullptr: closed.
    ///
    /// Precise (try_send): "full" means full at some instant, which takes a
    /// look at head_. A blocking send only needs "cannot write yet", and waits
    /// on the slot either way, so it skips that look: head_ is written by
    /// every receive, and reading it on every send that finds the ring full
    /// (every send, with capacity 1) would pull its line across cores and
    /// back on every value. register_send() does the precise check before a
    /// sender parks.
    template <bool Precise = true>
    bool start_send(token& t) noexcept {
        backoff b;
        std::size_t tail = tail_.load(std::memory_order_relaxed);
        for (;;) {
            if ((tail & mark_bit_) != 0) {
                t.where = nullptr;
                return true;
            }
            const std::size_t p = pos(tail);
            const std::size_t r = reserved(tail);
            slot& s = slots_[p & (mark_bit_ - 1)];
            // With R slots reserved, the slot R positions on must be free too
            // (see the top); R == capacity leaves no slot at all.
            const std::size_t q = r == 0 ? p : advance(p, std::min(r, cap_ - 1));
            const slot& f = r == 0 ? s : slots_[q & (mark_bit_ - 1)];
            std::size_t stamp = f.stamp.load(std::memory_order_acquire);
            if (r < cap_ && stamp == q &&
                (r == 0 || s.stamp.load(std::memory_order_acquire) == p)) {
                const std::size_t next = advance(p, 1) | (tail & ~pos_mask_);
                if (tail_.compare_exchange_weak(tail, next, std::memory_order_seq_cst,
                                                std::memory_order_relaxed)) {
                    t.where = &s;
                    t.stamp = p + 1;
                    return true;
                }
                b.spin();
            } else if (r >= cap_ || stamp + one_lap_ == q + 1) {
                // The slot still holds last lap's value: full, unless a
                // receiver is between its CAS and its stamp store.
                if constexpr (!Precise) return false;
                std::atomic_thread_fence(std::memory_order_seq_cst);
                std::size_t head = head_.load(std::memory_order_relaxed);
                if (head <= p && count(head, p) + r >= cap_) return false;
                b.spin();
                tail = tail_.load(std::memory_order_relaxed);
            } else {
                // Another sender claimed this slot and has not moved tail on
                // (or a receiver is finishing the slot R on).
                b.snooze();
                tail = tail_.load(std::memory_order_relaxed);
            }
        }
    }

    /// Publishes `v` in the claimed slot and wakes a receiver, handing it
    /// the head of the ring if it can take it (give_head). Give: false
    /// under senders_'s lock (take_waiting_value), where a slot freed by a
    /// hand-off could not wake a sender; the receiver is woken to retry.
    template <bool Give = true>
    void write(token& t, T& v) {
        ::new (static_cast<void*>(t.where->storage)) T(std::move(v));
        t.where->stamp.store(t.stamp, std::memory_order_release);
        if constexpr (Give && std::is_nothrow_move_constructible_v<T>) {
            bool freed = false;
            receivers_.notify_with(
                [this, &freed](wait_entry& e) noexcept { freed = give_head(e); });
            // The hand-off freed a slot, as a receive does: a blocked sender
            // may take it. After receivers_'s lock: see take_waiting_value.
            if (freed) {
                senders_.notify_with([this](wait_entry& e) noexcept { take_waiting_value(e); });
            }
        } else {
            receivers_.notify();
        }
    }

    /// Claims a slot to read. false: empty. true with slot == nullptr: closed and drained.
    ///
    /// Not Precise (blocking receives): an empty slot of an open channel
    /// means "nothing to read yet" without a look at tail_, which every send
    /// writes (see start_send). closed_ is read instead: it is written once,
    /// by close(), so its line stays shared. Once it is set the precise check
    /// runs, so "closed and drained" is still exact; a receive that misses a
    /// close in progress waits on the slot, and register_recv() checks
    /// tail_'s mark before it parks.
    ///
    /// Transport: the transport's own receive, for which lent values do not
    /// hold the verdict "closed" back (see servable).
    template <bool Precise = true, bool Transport = false>
    bool start_recv(token& t) noexcept {
        backoff b;
        std::size_t head = head_.load(std::memory_order_relaxed);
        for (;;) {
            std::size_t index = head & (mark_bit_ - 1);
            std::size_t lap = head & ~(one_lap_ - 1);
            slot& s = slots_[index];
            std::size_t stamp = s.stamp.load(std::memory_order_acquire);
            if (head + 1 == stamp) {
                std::size_t next = index + 1 < cap_ ? head + 1 : lap + one_lap_;
                if (head_.compare_exchange_weak(head, next, std::memory_order_seq_cst,
                                                std::memory_order_relaxed)) {
                    t.where = &s;
                    t.stamp = head + one_lap_;
                    return true;
                }
                b.spin();
            } else if (stamp == head) {
                if constexpr (!Precise) {
                    if (!closed_.load(std::memory_order_relaxed)) return false;
                }
                std::atomic_thread_fence(std::memory_order_seq_cst);
                std::size_t tail = tail_.load(std::memory_order_relaxed);
                if (pos(tail) == head) {
                    // Closed and drained, unless a reserved or lent value
                    // may still arrive (see the top).
                    if ((tail & mark_bit_) != 0 && reserved(tail) == 0 &&
                        (Transport || lent_.load(std::memory_order_seq_cst) == 0)) {
                        t.where = nullptr;
                        return true;
                    }
                    return false;
                }
                b.spin();
                head = head_.load(std::memory_order_relaxed);
            } else {
                b.snooze();
                head = head_.load(std::memory_order_relaxed);
            }
        }
    }

    void read(token& t, std::optional<T>& out) {
        move_out(t, out);
        senders_.notify_with([this](wait_entry& e) noexcept { take_waiting_value(e); });
    }

    /// Moves the claimed slot's value to `out` and frees the slot.
    void move_out(token& t, std::optional<T>& out) {
        T* p = t.where->value();
        out.emplace(std::move(*p));
        p->~T();
        t.where->stamp.store(t.stamp, std::memory_order_release);
    }

    /// The receive packet a sender may complete `e` through (give_head,
    /// hand_to_receiver), or nullptr: `e` has none, is a transport's
    /// claiming stand-in, or values given back must be received first.
    [[nodiscard]] recv_packet<T>* packet_to_fill(const wait_entry& e) const noexcept {
        if (e.packet == nullptr) return nullptr;
        auto* p = static_cast<recv_packet<T>*>(e.packet);
        if (p->claiming || requeued_count_.load(std::memory_order_seq_cst) != 0) return nullptr;
        return p;
    }

    /// Go's hand-off to a blocked receiver (runtime/chan.go, chansend to a
    /// waiting receiver), on a ring: the send that wakes a receiver moves
    /// the head of the ring, the oldest value, into the receiver's packet,
    /// so that it completes without a retry. Taking the head keeps each
    /// sender's order, as if the receiver had taken it itself. Only a
    /// waiter with a receive packet (a select's receive case, blocking or
    /// asynchronous) and not a transport's claiming stand-in (whose values
    /// are lent under the protocol, protocol.md §10) is completed so; the
    /// others are woken to retry, and so is every receiver while values
    /// given back wait before the ring, or if another receiver emptied it
    /// meanwhile. Under receivers_'s lock. True if a slot was freed.
    bool give_head(wait_entry& e) noexcept {
        recv_packet<T>* p = packet_to_fill(e);
        if (p == nullptr) return false;
        token t;
        if (!start_recv(t) || t.where == nullptr) return false;
        move_out(t, p->value);
        p->done = true;
        return true;
    }

    /// Go's send to a waiting receiver (runtime/chan.go, chansend's
    /// recvq): with the ring empty, the value goes straight into the packet
    /// of the first receiver that waits with one, without a slot, as
    /// give_head would after the value had taken one. Only with the ring
    /// empty (read under receivers_'s lock, after every earlier send of this
    /// sender finished), nothing given back, no reservation and the channel
    /// open, so that this sender's order and the receive order of values
    /// already in the channel are kept. The eligible waiters are those
    /// notify_with fills with give_head.
    bool hand_to_receiver(T& v) noexcept {
        if constexpr (std::is_nothrow_move_constructible_v<T>) {
            return receivers_.hand_over(
                [this](const wait_entry& e) noexcept {
                    // An event loop's waiter (the transport's) only takes
                    // hints, as in sync_waker::notify_with.
                    if (e.cx->thread_id() == nullptr || packet_to_fill(e) == nullptr) return false;
                    const std::size_t tail = tail_.load(std::memory_order_seq_cst);
                    return (tail & (mark_bit_ | r_mask_)) == 0 &&
                           head_.load(std::memory_order_seq_cst) == pos(tail);
                },
                [&v](wait_entry& e) noexcept {
                    auto* p = static_cast<recv_packet<T>*>(e.packet);
                    p->value.emplace(std::move(v));
                    p->done = true;
                });
        } else {
            return false;
        }
    }

    /// Go's hand-off from a blocked sender (runtime/chan.go, chanrecv on a
    /// full buffer): the receive that freed a slot writes the value of the
    /// sender it wakes into the ring, so that the sender completes without a
    /// retry (its packet done) and the value is there for the next receive.
    /// Only a waiter with a send packet (a select's send case, blocking or
    /// asynchronous) can be completed so; the others are woken to retry as
    /// before. If the ring is full again (another sender took the slot) or
    /// closed, the sender retries too. Under senders_'s lock; the write
    /// wakes a receiver under receivers_'s (the only order the two are taken
    /// in together).
    void take_waiting_value(wait_entry& e) noexcept {
        if constexpr (std::is_nothrow_move_constructible_v<T>) {
            if (e.packet == nullptr) return;
            auto* p = static_cast<send_packet<T>*>(e.packet);
            token t;
            if (!start_send(t) || t.where == nullptr) return;
            write<false>(t, *p->value);
            p->done = true;
        }
    }

    alignas(cache_line) std::atomic<std::size_t> head_{0};
    alignas(cache_line) std::atomic<std::size_t> tail_{0};
    /// Largest capacity with reservations (see the constructor).
    static constexpr std::size_t max_reservable = std::size_t{1} << 22;
    alignas(cache_line) const std::size_t cap_;
    const std::size_t mark_bit_;
    const unsigned r_shift_;      // R's lowest bit in tail_ (just above the mark)
    const std::size_t r_mask_;    // R's bits in tail_; 0: no reservations
    const std::size_t one_lap_;   // one lap in a position (above R)
    const std::size_t pos_mask_;  // a position's bits in tail_
    // NOLINTNEXTLINE(modernize-avoid-c-arrays): a slot cannot move, so no vector
    std::unique_ptr<slot[]> slots_;
    // Set by close() after tail_'s mark: a hint for blocking receives
    // (start_recv), on this read-mostly line. The mark is the truth.
    std::atomic<bool> closed_{false};
    // Wait lists change on every registration; keep them off the line of the
    // read-mostly fields above, which every operation reads.
    alignas(cache_line) sync_waker senders_;
    alignas(cache_line) sync_waker receivers_;
    // Watchers of close (watch_close): the server, to revoke reservations.
    sync_waker closers_;
    // Values given back by the transport (requeue_front), received before
    // the ring. Rare, so a lock is fine.
    alignas(cache_line) std::atomic<std::size_t> requeued_count_{0};
    std::atomic<std::size_t> requeued_total_{0};  // written under requeued_lock_
    spin_lock requeued_lock_;
    std::deque<T> requeued_;  // guarded by requeued_lock_
    // Lent values (see the top): written by the transport's thread, read by
    // receivers only once the channel is closed.
    alignas(cache_line) std::atomic<std::size_t> lent_{0};
};

}  // namespace zchan::detail

#include "zchan/detail/buffered_chan_reserve.hpp"  // IWYU pragma: export

// The interface every channel implementation provides to zchan::channel<T>
// and zchan::select: the in-process buffered and unbuffered channels, and the
// network transport's remote channel. Keeping the user-facing handle on this
// interface is what lets a remote channel be the same zchan::channel<T> type.
//
// Select protocol (one blocking select, or one blocking operation):
//   1. try the operations without blocking (try_send / try_recv);
//   2. register a wait_entry with one shared context on each channel
//      (register_send / register_recv), whose packet is a send_packet<T> or
//      recv_packet<T>; a true result means "ready now: don't sleep";
//   3. context::wait_until;
//   4. unregister every entry (this also takes each channel's lock, which is
//      the barrier that makes a handed-over value visible);
//   5. if the selected entry's packet says `done`, the operation completed by
//      handoff; otherwise the wake-up was a hint: go back to 1, trying the
//      selected case first.
// A channel may complete an operation by handoff (unbuffered, remote) or wake
// the waiter to retry (buffered). Either way it must wake at least one waiter
// per value it could now deliver or accept, and wake every waiter on close.
//
// Atomic poll (a select with a default case, after step 1 found nothing): the
// default may run only if at one instant no case was ready, as Go's selectgo
// decides with every channel of the select locked. A channel says how it
// takes part (poll_kind):
//   * locked (unbuffered): its readiness cannot change while poll_lock() is
//     held; the select holds the locks of all such channels, taken in
//     address order (so two polls cannot deadlock), across the whole poll;
//   * stamped (buffered, whose operations take no lock): send_ready /
//     recv_ready read the state into a poll_stamp, and poll_unchanged later
//     reads it again. The stamped words never repeat a value, so equal words
//     mean the state held still in between; the select validates every stamp
//     after it read them all, so they all held at one common instant;
//   * remote (a dialed channel): the state lives in another process, whose
//     home polls the select's cases it serves at one instant of its own
//     (POLL, protocol.md §8.9); see atomic_poll.hpp for how that instant
//     combines with the local channels';
//   * none: cannot take part; the select keeps its case-by-case poll.
//
// Thread safety: implementations are safe for concurrent use by any number
// of threads.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <span>
#include <utility>

#include "zchan/detail/sync.hpp"
#include "zchan/detail/waker.hpp"
#include "zchan/errors.hpp"
#include "zchan/status.hpp"

namespace zchan::detail {

/// A claim on a blocked sender's value (rendezvous with a remote receiver,
/// docs/protocol.md §8.3). On an unbuffered channel a sender completes only
/// when a receiver takes its value; a remote receiver takes it when its peer
/// ACKs the delivery, a network round trip after the home moved the value
/// out. Meanwhile the sender is *claimed*: its context is decided (nobody
/// else can pair with it, its deadline no longer applies) and it waits,
/// parked, for the claim to be settled: taken (done: the send completed) or
/// given back (the value is moved back into the sender's variable and the
/// sender offers it again, or reports its deadline).
///
/// States: none -> pending (armed by the claimant, under the channel lock)
/// -> settled (by the settler, under the channel lock, after it wrote the
/// outcome); the owner may move pending -> sleeping to park on the word.
/// settle()'s exchange is the settler's last touch of the word, so the owner
/// may leave once it saw `settled` (the futex wake-up only passes the
/// address, as in context::unpark). The settler then unparks the owner's
/// context, which the owner waits for (context::wait_released) before its
/// frame goes.
///
/// Thread safety: arm/reset by whoever owns the packet under the channel
/// lock; settle from any thread; wait by the owner only.
class claim_word {
public:
    claim_word() noexcept = default;
    // A packet is copied or moved only while no channel knows it (a select
    // case built into a tuple): the copy starts unarmed.
    claim_word(const claim_word& /*other*/) noexcept {}
    claim_word& operator=(const claim_word& /*other*/) noexcept {
        reset();
        return *this;
    }
    ~claim_word() = default;

    void reset() noexcept { state_.store(st_none, std::memory_order_relaxed); }
    void arm() noexcept { state_.store(st_pending, std::memory_order_release); }
    [[nodiscard]] bool armed() const noexcept {
        return state_.load(std::memory_order_acquire) != st_none;
    }
    /// Armed and not yet settled.
    [[nodiscard]] bool pending() const noexcept {
        const std::uint32_t s = state_.load(std::memory_order_acquire);
        return s == st_pending || s == st_sleeping;
    }
    void settle() noexcept {
        if (state_.exchange(st_settled, std::memory_order_acq_rel) == st_sleeping) {
            futex_wake_one(state_);
        }
    }
    /// Owner: returns once settled. A claim lasts a network round trip, so
    /// after a short spin this parks instead of polling.
    void wait() noexcept {
        for (unsigned i = 0; i < 64; ++i) {
            if (state_.load(std::memory_order_acquire) == st_settled) return;
            cpu_relax();
        }
        for (;;) {
            std::uint32_t s = state_.load(std::memory_order_acquire);
            if (s == st_settled) return;
            if (s == st_pending &&
                !state_.compare_exchange_strong(s, st_sleeping, std::memory_order_acq_rel)) {
                continue;  // settled meanwhile
            }
            futex_wait(state_, st_sleeping, no_deadline);
        }
    }

private:
    static constexpr std::uint32_t st_none = 0;
    static constexpr std::uint32_t st_pending = 1;
    static constexpr std::uint32_t st_sleeping = 2;
    static constexpr std::uint32_t st_settled = 3;
    std::atomic<std::uint32_t> state_{st_none};
};

/// Handoff area of a blocked sender: the value to take, and whether a
/// receiver took it.
template <class T>
struct send_packet {
    send_packet() = default;
    send_packet(T* v, bool d) noexcept : value(v), done(d) {}
    T* value = nullptr;
    bool done = false;  ///< written under the channel lock by the receiver
    claim_word claim;   ///< see claim_word; armed only on an unbuffered channel
};

/// Handoff area of a blocked receiver.
template <class T>
struct recv_packet {
    std::optional<T> value;
    bool done = false;  ///< written under the channel lock by the sender (or the transport)
    /// A transport's stand-in for a remote receiver (served_chan's RECV): a
    /// sender that hands it a value is claimed (claim_word) instead of done.
    /// Its context is decided only under the channel's lock (it waits on one
    /// channel), which lets a sender decide its own context first.
    bool claiming = false;
    /// The claimed sender whose value this is (nullptr: the value came from
    /// no sender, e.g. one given back). The transport settles it
    /// (servable::settle_claim) when the remote receiver ACKs or gives back.
    wait_entry* claimed = nullptr;
};

/// Waits, after a plain send's context was selected by someone else, until
/// that party is done with it: at once for a handoff, a round trip for a
/// claim (claim_word). Then the packet's `done` is the outcome.
template <class T>
void await_handoff(context& cx, send_packet<T>& p) noexcept {
    for (unsigned i = 0;; ++i) {
        if (cx.released()) return;
        if (p.claim.armed()) {
            p.claim.wait();
            break;
        }
        if (i < 1024) {
            cpu_relax();
        } else {
            sched_yield();
        }
    }
    cx.wait_released();
}

/// Everything a blocked plain send or receive shares with the party that
/// completes it (its context, its packet and its wait-list entry), allocated
/// together on the waiter's stack and aligned to a cache line. The completing
/// thread reads and writes all of it and the waiter then reads it back, so
/// every cache line it spans crosses between the two CPUs twice per hand-off.
/// Left to the compiler these objects spread over up to three lines at any
/// offset; together they take two (for small values), which made an
/// unbuffered ping-pong between threads on different cores 1.4-1.5x as fast
/// (measured where a line's round trip cost ~75 ns and ~450 ns). Selects
/// keep their own layout: one context serves several entries there.
///
/// Thread safety: as for its parts (see context and waker).
template <class Packet>
struct alignas(cache_line) blocked_op {
    template <class... A>
    explicit blocked_op(A&&... a) : packet{std::forward<A>(a)...} {}
    blocked_op(const blocked_op&) = delete;
    blocked_op& operator=(const blocked_op&) = delete;

    context cx;
    Packet packet;
    wait_entry entry{&cx, sel_first_op, &packet};
};

/// How a channel takes part in the atomic poll (see the top of this file).
enum class poll_mode : unsigned char { none, locked, stamped, remote };

class net_link;
class chan_poll;

/// A select's case on a remote channel, for chan_poll::remote_none_ready.
struct remote_case {
    const chan_poll* chan = nullptr;
    bool send = false;
};

/// What a stamped channel's send_ready / recv_ready read, for poll_unchanged.
struct poll_stamp {
    std::array<std::size_t, 3> words{};
    bool recv = false;  ///< read for a receive (which also depends on requeued values)
};

/// The atomic poll hooks (see the top of this file), apart from T so that a
/// select reaches them through its type-erased cases. The defaults are a
/// channel that cannot take part.
///
/// Thread safety: any thread, as the channel's other members; a locked
/// channel's send_ready / recv_ready require its poll_lock() held.
class chan_poll {
public:
    /// Stored, not virtual: every operation awaited at once and every
    /// select asks it first.
    [[nodiscard]] poll_mode poll_kind() const noexcept { return kind_; }
    /// locked: the lock that freezes readiness; nullptr otherwise.
    [[nodiscard]] virtual spin_lock* poll_lock() const noexcept { return nullptr; }
    /// Whether try_send would complete now (ok, or closed: it throws).
    /// Requires poll_lock() held (locked); fills `stamp` (stamped).
    [[nodiscard]] virtual bool send_ready(poll_stamp& /*stamp*/) const { return false; }
    /// Whether try_recv would complete now (a value, or closed). As send_ready.
    [[nodiscard]] virtual bool recv_ready(poll_stamp& /*stamp*/) const { return false; }
    /// stamped: true if nothing `stamp` depends on changed since it was read.
    [[nodiscard]] virtual bool poll_unchanged(const poll_stamp& /*stamp*/) const { return true; }
    /// remote: the session the channel was dialed through.
    [[nodiscard]] virtual net_link* poll_link() const noexcept { return nullptr; }
    /// remote: asks the homes of `cases` (every remote case of one select,
    /// this channel's among them) whether each home saw none of its cases
    /// ready at one instant (POLL, protocol.md §8.9). Blocks for the round
    /// trips; false if a case was ready, or the answer is unsure.
    [[nodiscard]] virtual bool remote_none_ready(std::span<const remote_case> /*cases*/) const {
        return true;
    }

    chan_poll(const chan_poll&) = delete;
    chan_poll& operator=(const chan_poll&) = delete;

protected:
    explicit chan_poll(poll_mode kind) noexcept : kind_(kind) {}
    ~chan_poll() = default;

private:
    const poll_mode kind_;
};

/// What serving a channel to other processes needs beyond chan_base: only
/// in-process channels have it (a dialed handle cannot be served again).
/// zchan::server finds it with dynamic_cast when a channel is served.
///
/// Thread safety: as chan_base (any thread).
template <class T>
class servable {
public:
    /// Puts a value that a transport had received on behalf of a remote
    /// receiver, which then did not take it (its select chose another case,
    /// its deadline passed, it went away), back at the head of the channel:
    /// the next receive gets it, before everything else. It ignores the
    /// capacity: the value had already been accepted once, and dropping it
    /// would lose it. Works on a closed channel too (the value was accepted
    /// before the close). See docs/protocol.md §8.4 for the redelivery rules.
    virtual void requeue_front(T&& v) = 0;

    /// Send window (docs/protocol.md §9.1): slots reserved for values a
    /// remote sender will send without waiting. Reserved slots count against
    /// the capacity: local senders see them as full, so capacity stays exact
    /// end to end. A closed channel with reservations outstanding is not yet
    /// drained: receivers wait (a reserved value was sent before the close)
    /// until each reservation is used or released. Channels that cannot
    /// reserve (unbuffered ones, on which the rendezvous needs the round
    /// trip) reserve nothing.
    ///
    /// Whether reserve() can ever grant a slot.
    [[nodiscard]] virtual bool can_reserve() const noexcept { return false; }
    /// Reserves up to `n` free slots of an open channel; returns how many.
    virtual std::size_t reserve(std::size_t /*n*/) { return 0; }
    /// Gives back `n` reserved slots unused.
    virtual void release(std::size_t /*n*/) {}
    /// Writes `v` into a reserved slot (one reservation fewer). Never waits
    /// for space; works on a closed channel too. Requires a reservation.
    virtual void send_reserved(T&& /*v*/) {}
    /// send_reserved of values[0, n), moved from, in that order (n
    /// reservations fewer); receivers see the batch once it is all in.
    virtual void send_reserved_n(T* values, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) send_reserved(std::move(values[i]));
    }
    /// Values accepted on credits backed by receivers' demand (protocol.md
    /// §9.1 rule 5) that no receiver took: the transport holds them lent
    /// (lend()) outside the channel, and moves them in as room appears.
    /// watch_room registers `e` (an entry without a packet) among the
    /// senders and returns true if there is room now: on an open channel a
    /// free slot, on a closed one an empty ring (nothing received before the
    /// held values is left). Undo with unregister_send.
    virtual bool watch_room(wait_entry& /*e*/) { return true; }
    /// A value the transport holds outside the channel is lent, as one it
    /// took from it (return_lent, settle_lent end that).
    virtual void lend() {}
    /// As return_lent, but behind the values given back before it: for a
    /// held value of a closed channel whose ring is empty (watch_room), which
    /// must come after every value accepted before it.
    virtual void return_lent_back(T&& v) { return_lent(std::move(v)); }
    /// Registers a watcher (an entry without a packet) woken when the channel
    /// is closed; returns true if it is closed already. The server revokes
    /// reservations at a close (protocol.md §9.1).
    virtual bool watch_close(wait_entry& /*e*/) { return false; }
    virtual void unwatch_close(wait_entry& /*e*/) {}

    /// Rendezvous with remote receivers (protocol.md §8.3; claim_word). A
    /// transport's receive for a remote receiver: as try_recv, but a blocked
    /// sender's value is claimed, not taken; `claimed` then names the sender,
    /// whose claim the transport settles when the remote receiver resolves
    /// the delivery. A value from no sender (buffered, given back) leaves
    /// `claimed` null and is lent (below).
    virtual recv_status try_recv_claim(std::optional<T>& out, wait_entry*& claimed) = 0;
    /// As try_recv, for a transport's stream of values to a prefetching
    /// receiver (protocol.md §8.8): the value is lent.
    virtual recv_status try_recv_lent(std::optional<T>& out) = 0;

    /// Lent values (protocol.md §10 item 3). A value the transport took for
    /// a remote receiver can come back (RETURN, a lost peer) until that
    /// receiver acknowledges it. A buffered channel counts such values, and
    /// while any is out a closed channel is not drained for its own
    /// receivers: they wait, as for a reservation, so that a value given back
    /// after the close still reaches a receiver that is ranging. The
    /// transport's own receives (try_recv_claim, try_recv_lent) report the
    /// close regardless: the transport tracks its deliveries per session and
    /// holds remote receivers back itself. Unbuffered channels count
    /// nothing: their values go back to their senders (claims).
    ///
    /// Gives a lent value back: as requeue_front, then it is no longer lent.
    virtual void return_lent(T&& v) { requeue_front(std::move(v)); }
    /// A lent value was taken by its remote receiver: no longer lent.
    virtual void settle_lent() {}
    /// Settles a claim: taken, the sender's send completes; otherwise `v`
    /// goes back to the sender, which offers it again (or reports its
    /// deadline). Requires a claim from this channel, settled once.
    virtual void settle_claim(wait_entry& /*claimed*/, bool /*taken*/, std::optional<T>& /*v*/) {}
    /// A try_send that never waits for a claim (the transport's event loop
    /// must not): a claiming receiver does not count.
    virtual send_status try_send_nowait(T& v) = 0;
    /// Hands e's value (e.packet: a send_packet) to a claiming receiver, if
    /// one waits, and claims e (its context decided here); true if so: the
    /// outcome arrives as a wake-up of e's context once settled.
    virtual bool offer_to_claiming(wait_entry& /*e*/) { return false; }

protected:
    ~servable() = default;
};

template <class T>
class chan_base : public chan_poll {
public:
    explicit chan_base(poll_mode kind) noexcept : chan_poll(kind) {}
    chan_base(const chan_base&) = delete;
    chan_base& operator=(const chan_base&) = delete;
    virtual ~chan_base() = default;

    /// Moves from `v` only when the result is ok.
    virtual send_status try_send(T& v) = 0;
    /// Blocks until ok, closed or the deadline (timeout). Moves from `v` only on ok.
    virtual send_status send(T& v, deadline_t deadline) = 0;
    /// On ok, `out` holds the value.
    virtual recv_status try_recv(std::optional<T>& out) = 0;
    virtual recv_status recv(std::optional<T>& out, deadline_t deadline) = 0;
    /// Throws channel_closed if already closed.
    virtual void close() = 0;
    [[nodiscard]] virtual bool is_closed() const = 0;
    [[nodiscard]] virtual std::size_t len() const = 0;
    [[nodiscard]] virtual std::size_t cap() const = 0;
    /// The error a peer_lost status stands for (remote channels say why).
    [[nodiscard]] virtual peer_lost lost_error() const { return peer_lost(); }
    /// Send window (protocol.md §9.1): waits until every value this handle
    /// sent with a credit is in the channel: ok, timeout or peer_lost. Local
    /// channels and handles without a window have nothing to wait for.
    virtual send_status flush(deadline_t /*deadline*/) { return send_status::ok; }
    /// Values sent with a credit and not yet confirmed by the home.
    [[nodiscard]] virtual std::uint64_t unconfirmed_sends() const { return 0; }

    /// Select hooks; see the protocol above. The entry's packet is a
    /// send_packet<T>* / recv_packet<T>*. Returns true if the operation may
    /// be ready now.
    virtual bool register_send(wait_entry& e) = 0;
    virtual void unregister_send(wait_entry& e) = 0;
    virtual bool register_recv(wait_entry& e) = 0;
    virtual void unregister_recv(wait_entry& e) = 0;
    /// unregister_send / unregister_recv of an entry this channel selected
    /// (its context holds the entry's own operation), called once that
    /// context was released (context::wait_released). A channel that
    /// unlinks an entry when it selects it may then skip its lock: the
    /// selecting thread wrote the entry last, before unpark().
    virtual void unregister_selected_send(wait_entry& e) { unregister_send(e); }
    virtual void unregister_selected_recv(wait_entry& e) { unregister_recv(e); }
    /// The first try of an operation that waits if it cannot complete now
    /// (an awaited one, asio_await_now.hpp): as try_send / try_recv, but
    /// "full" / "empty" may be stale, and cost less than a precise answer
    /// (a lock-free hint instead of a lock, no fence). The registration
    /// that follows checks precisely (register_send / register_recv).
    virtual send_status send_step(T& v) { return try_send(v); }
    virtual recv_status recv_step(std::optional<T>& out) { return try_recv(out); }
};

}  // namespace zchan::detail

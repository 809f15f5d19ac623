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
// Thread safety: implementations are safe for concurrent use by any number
// of threads.
#pragma once

#include <cstddef>
#include <optional>
#include <utility>

#include "zchan/detail/sync.hpp"
#include "zchan/detail/waker.hpp"
#include "zchan/errors.hpp"
#include "zchan/status.hpp"

namespace zchan::detail {

/// Handoff area of a blocked sender: the value to take, and whether a
/// receiver took it.
template <class T>
struct send_packet {
    T* value = nullptr;
    bool done = false;  ///< written under the channel lock by the receiver
};

/// Handoff area of a blocked receiver.
template <class T>
struct recv_packet {
    std::optional<T> value;
    bool done = false;  ///< written under the channel lock by the sender (or the transport)
};

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

template <class T>
class chan_base {
public:
    chan_base() = default;
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
    virtual bool is_closed() const = 0;
    virtual std::size_t len() const = 0;
    virtual std::size_t cap() const = 0;
    /// The error a peer_lost status stands for (remote channels say why).
    [[nodiscard]] virtual peer_lost lost_error() const { return peer_lost(); }

    /// Puts a value that a transport had received on behalf of a remote
    /// receiver, which then did not take it (its select chose another case,
    /// its deadline passed, it went away), back at the head of the channel:
    /// the next receive gets it, before everything else. It ignores the
    /// capacity: the value had already been accepted once, and dropping it
    /// would lose it. Works on a closed channel too (the value was accepted
    /// before the close). Only in-process channels implement it; see
    /// docs/protocol.md for the redelivery rules.
    virtual void requeue_front(T&& v) = 0;

    /// Select hooks; see the protocol above. The entry's packet is a
    /// send_packet<T>* / recv_packet<T>*. Returns true if the operation may
    /// be ready now.
    virtual bool register_send(wait_entry& e) = 0;
    virtual void unregister_send(wait_entry& e) = 0;
    virtual bool register_recv(wait_entry& e) = 0;
    virtual void unregister_recv(wait_entry& e) = 0;
};

}  // namespace zchan::detail

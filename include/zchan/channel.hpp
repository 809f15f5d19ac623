// zchan::channel<T>: a Go channel for C++.
//
// A channel is a handle: copies refer to the same channel, as in Go, and the
// channel lives until its last handle goes. The implementation behind the
// handle is an in-process buffered or unbuffered channel, or a remote
// channel of the network transport (zchan::dial); all of them obey the same
// rules, listed in README.md ("Go's rules and zchan's").
//
// Thread safety: a channel is safe for any number of threads sending,
// receiving, closing and selecting at once. A single handle object may be
// used from several threads concurrently only through its const members
// (all operations are const: they act on the shared channel, not on the
// handle); assigning to a handle while another thread uses it is a data
// race, as with std::shared_ptr.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "zchan/detail/buffered_chan.hpp"
#include "zchan/detail/chan_base.hpp"
#include "zchan/detail/sync.hpp"
#include "zchan/detail/unbuffered_chan.hpp"
#include "zchan/errors.hpp"
#include "zchan/status.hpp"

namespace zchan {

namespace detail {

/// Converts a timeout to an absolute steady-clock deadline, saturating
/// instead of overflowing for huge timeouts.
template <class Rep, class Period>
deadline_t deadline_after(std::chrono::duration<Rep, Period> d) {
    auto now = clock::now();
    if (d <= d.zero()) return now;
    auto rest = std::chrono::duration_cast<std::chrono::duration<double>>(no_deadline - now);
    if (std::chrono::duration_cast<std::chrono::duration<double>>(d) >= rest) return no_deadline;
    return now + std::chrono::ceil<clock::duration>(d);
}

/// Converts a time point of any clock to a steady-clock deadline.
template <class Clock, class Duration>
deadline_t to_deadline(std::chrono::time_point<Clock, Duration> t) {
    if constexpr (std::is_same_v<Clock, clock>) {
        return std::chrono::time_point_cast<clock::duration>(t);
    } else {
        return deadline_after(t - Clock::now());
    }
}

/// Blocks the calling thread until `deadline`: what a nil channel does.
/// Cold and out of line: inlined, its spin-then-park loop made every
/// send/recv wrapper too big for the compiler to inline into a caller's
/// loop, which cost range over a buffered channel 40% (10 ns per value).
[[gnu::cold, gnu::noinline]] inline void wait_forever_or_until(deadline_t deadline) {
    context cx;
    cx.wait_until(deadline);  // nobody else knows cx, so only the deadline ends it
}

template <class T>
struct channel_access;

}  // namespace detail

/// What a channel's value type must be: a non-reference type with a
/// noexcept move constructor (see the static_assert in channel).
template <class T>
concept channel_value = !std::is_reference_v<T> && std::is_nothrow_move_constructible_v<T>;

/// A typed Go channel. See the file comment for sharing and thread safety.
///
/// Example:
///   zchan::channel<int> ch(2);
///   std::jthread producer([ch] { for (int i = 0; i < 5; ++i) ch << i; ch.close(); });
///   for (int v : ch) std::cout << v << '\n';
template <class T>
class channel {
    // A value is moved into a claimed slot or a partner's packet after the
    // point of no return (the slot is claimed, the partner is selected), so a
    // throwing move would wedge the channel. Like folly::MPMCQueue, zchan
    // requires a non-throwing move; wrap other types in std::unique_ptr.
    static_assert(std::is_nothrow_move_constructible_v<T>,
                  "zchan::channel<T> needs a T with a noexcept move constructor "
                  "(wrap the value in std::unique_ptr<T> if its move may throw)");
    static_assert(!std::is_reference_v<T>, "zchan::channel<T&> is not supported; send a pointer");

public:
    using value_type = T;

    /// An unbuffered channel: each send waits for a receiver (rendezvous).
    channel() : impl_(std::make_shared<detail::unbuffered_chan<T>>()) {}

    /// A channel with room for `capacity` values; capacity 0 is unbuffered.
    explicit channel(std::size_t capacity)
        : impl_(capacity == 0 ? std::shared_ptr<detail::chan_base<T>>(
                                    std::make_shared<detail::unbuffered_chan<T>>())
                              : std::make_shared<detail::buffered_chan<T>>(capacity)) {}

    /// Wraps a channel implementation (used by the network transport).
    explicit channel(std::shared_ptr<detail::chan_base<T>> impl) noexcept
        : impl_(std::move(impl)) {}

    /// The nil channel: sends and receives block forever (or until their
    /// deadline), its select cases are never ready, close() throws.
    static channel nil() noexcept { return channel(std::shared_ptr<detail::chan_base<T>>()); }

    [[nodiscard]] bool is_nil() const noexcept { return impl_ == nullptr; }

    // --- send -------------------------------------------------------------

    /// Sends `v`, blocking while the buffer is full (or, unbuffered, until a
    /// receiver has taken it). Throws channel_closed if the channel is or
    /// becomes closed before the value is accepted.
    void send(T&& v) const { send_impl(v); }
    void send(const T& v) const requires std::is_copy_constructible_v<T> {
        T copy(v);
        send_impl(copy);
    }

    /// `ch << v`: send; throws channel_closed on a closed channel.
    const channel& operator<<(T&& v) const {
        send_impl(v);
        return *this;
    }
    const channel& operator<<(const T& v) const requires std::is_copy_constructible_v<T> {
        send(v);
        return *this;
    }

    /// Sends without blocking. `v` is moved from only when the result is ok.
    [[nodiscard]] send_status try_send(T&& v) const {
        if (!impl_) return send_status::full;
        return impl_->try_send(v);
    }
    [[nodiscard]] send_status try_send(const T& v) const requires std::is_copy_constructible_v<T> {
        T copy(v);
        return try_send(std::move(copy));
    }

    /// Sends, giving up at the deadline: ok, closed or timeout. `v` is moved
    /// from only when the result is ok.
    template <class Rep, class Period>
    [[nodiscard]] send_status send_for(T&& v, std::chrono::duration<Rep, Period> d) const {
        return send_deadline(v, detail::deadline_after(d));
    }
    template <class Rep, class Period>
    [[nodiscard]] send_status send_for(const T& v, std::chrono::duration<Rep, Period> d)
        const requires std::is_copy_constructible_v<T> {
        T copy(v);
        return send_deadline(copy, detail::deadline_after(d));
    }
    template <class Clock, class Duration>
    [[nodiscard]] send_status send_until(T&& v, std::chrono::time_point<Clock, Duration> t) const {
        return send_deadline(v, detail::to_deadline(t));
    }
    template <class Clock, class Duration>
    [[nodiscard]] send_status send_until(const T& v, std::chrono::time_point<Clock, Duration> t)
        const requires std::is_copy_constructible_v<T> {
        T copy(v);
        return send_deadline(copy, detail::to_deadline(t));
    }

    /// Send window (net_options::send_window, protocol.md §9.1): blocks until
    /// the home has confirmed every value this handle sent with a credit,
    /// i.e. each is in the channel (or already received). Returns ok, or
    /// peer_lost: then unconfirmed_sends() values may be lost. Local channels
    /// and handles without a window return ok at once.
    ///
    /// Example:
    ///   for (auto& line : lines) jobs << line;   // returns without a round trip
    ///   if (jobs.flush() != zchan::send_status::ok) report(jobs.unconfirmed_sends());
    [[nodiscard]] send_status flush() const {
        return impl_ ? impl_->flush(detail::no_deadline) : send_status::ok;
    }
    /// flush(), giving up at the deadline (timeout; the values are still on their way).
    template <class Rep, class Period>
    [[nodiscard]] send_status flush_for(std::chrono::duration<Rep, Period> d) const {
        return impl_ ? impl_->flush(detail::deadline_after(d)) : send_status::ok;
    }
    /// Values sent with a credit and not yet confirmed by the home.
    [[nodiscard]] std::uint64_t unconfirmed_sends() const {
        return impl_ ? impl_->unconfirmed_sends() : 0;
    }

    // --- receive ----------------------------------------------------------

    /// Receives a value, blocking until one is there. Empty once the channel
    /// is closed and drained (Go's `v, ok := <-ch` with ok == false).
    [[nodiscard]] std::optional<T> recv() const {
        std::optional<T> out;
        recv_status s = recv_deadline(out, detail::no_deadline);
        if (s == recv_status::peer_lost) throw impl_->lost_error();
        return out;
    }

    /// `ch >> v`: receives into v; false once the channel is closed and drained.
    bool operator>>(T& out) const {
        std::optional<T> v = recv();
        if (!v) return false;
        out = std::move(*v);
        return true;
    }

    [[nodiscard]] recv_result<T> try_recv() const {
        recv_result<T> r;
        r.status = impl_ ? impl_->try_recv(r.value) : recv_status::empty;
        return r;
    }
    template <class Rep, class Period>
    [[nodiscard]] recv_result<T> recv_for(std::chrono::duration<Rep, Period> d) const {
        recv_result<T> r;
        r.status = recv_deadline(r.value, detail::deadline_after(d));
        return r;
    }
    template <class Clock, class Duration>
    [[nodiscard]] recv_result<T> recv_until(std::chrono::time_point<Clock, Duration> t) const {
        recv_result<T> r;
        r.status = recv_deadline(r.value, detail::to_deadline(t));
        return r;
    }

    // --- close, introspection ---------------------------------------------

    /// Closes the channel: values already accepted are still received, then
    /// every receiver sees "closed"; blocked and later senders throw.
    /// Throws channel_closed if already closed, or on the nil channel.
    void close() const {
        if (!impl_) throw channel_closed("zchan: close of nil channel");
        impl_->close();
    }

    /// Whether close() has happened. Diagnostic only: by the time the caller
    /// looks, the answer may be stale in the "not closed" direction.
    [[nodiscard]] bool is_closed() const { return impl_ && impl_->is_closed(); }

    /// Number of values buffered now (Go's len(ch)).
    [[nodiscard]] std::size_t len() const { return impl_ ? impl_->len() : 0; }
    /// Buffer capacity (Go's cap(ch)); 0 for unbuffered and nil channels.
    [[nodiscard]] std::size_t cap() const { return impl_ ? impl_->cap() : 0; }

    friend bool operator==(const channel& a, const channel& b) noexcept {
        return a.impl_ == b.impl_;
    }

    // --- range --------------------------------------------------------------

    /// Input iterator over received values; reaches end() when the channel is
    /// closed and drained. `for (auto&& v : ch)` is Go's `for v := range ch`.
    ///
    /// It receives lazily, when first compared with end() or dereferenced,
    /// so a range adaptor that stops early (std::views::take) never receives
    /// a value it will not hand out. Advancing consumes the current value.
    class iterator {
    public:
        using iterator_category = std::input_iterator_tag;
        using value_type = T;
        using difference_type = std::ptrdiff_t;
        using pointer = T*;
        using reference = T&;

        iterator() = default;
        explicit iterator(const channel* ch) : ch_(ch) {}

        T& operator*() const {
            fetch();
            return *current_;
        }
        T* operator->() const { return &**this; }
        iterator& operator++() {
            fetch();  // a value skipped without being looked at is still consumed
            fetched_ = false;
            current_.reset();
            return *this;
        }
        void operator++(int) { ++*this; }
        friend bool operator==(const iterator& it, std::default_sentinel_t) {
            it.fetch();
            return !it.current_.has_value();
        }

    private:
        void fetch() const {
            if (fetched_) return;
            current_ = ch_->recv();
            fetched_ = true;
        }

        const channel* ch_ = nullptr;
        mutable std::optional<T> current_;
        mutable bool fetched_ = false;
    };

    [[nodiscard]] iterator begin() const { return iterator(this); }
    [[nodiscard]] std::default_sentinel_t end() const noexcept { return {}; }

private:
    friend struct detail::channel_access<T>;

    void send_impl(T& v) const {
        send_status s = send_deadline(v, detail::no_deadline);
        if (s == send_status::closed) throw channel_closed("zchan: send on closed channel");
        if (s == send_status::peer_lost) throw impl_->lost_error();
    }

    send_status send_deadline(T& v, detail::deadline_t deadline) const {
        if (!impl_) {
            detail::wait_forever_or_until(deadline);
            return send_status::timeout;
        }
        return impl_->send(v, deadline);
    }

    recv_status recv_deadline(std::optional<T>& out, detail::deadline_t deadline) const {
        if (!impl_) {
            detail::wait_forever_or_until(deadline);
            return recv_status::timeout;
        }
        return impl_->recv(out, deadline);
    }

    std::shared_ptr<detail::chan_base<T>> impl_;
};

/// `v << ch`: the arrow form of receive; false once the channel is closed
/// and drained.
template <class T>
bool operator<<(T& out, const channel<T>& ch) {
    return ch >> out;
}

namespace detail {
/// Lets select and the transport reach a handle's implementation.
template <class T>
struct channel_access {
    static chan_base<T>* get(const channel<T>& ch) noexcept { return ch.impl_.get(); }
    static const std::shared_ptr<chan_base<T>>& shared(const channel<T>& ch) noexcept {
        return ch.impl_;
    }
};
}  // namespace detail

}  // namespace zchan

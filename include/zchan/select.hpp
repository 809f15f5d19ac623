// zchan::select: Go's select statement.
//
//   std::size_t i = zchan::select(
//       zchan::recv_case(jobs, [](std::optional<job> j) { ... }),  // nullopt: closed
//       zchan::send_case(results, r, [] { ... }),
//       zchan::timeout_case(100ms, [] { ... }));                    // or default_case
//
// select blocks until one case can proceed, chooses uniformly at random among
// the ready ones, runs exactly that operation and its callback, and returns
// the case's position among the arguments. Cases on nil channels never fire.
// A receive case on a closed channel fires with std::nullopt. A send case on a
// closed channel throws channel_closed, as Go panics. A default case runs
// only if at one instant no case was ready, as in Go (the home of remote
// cases polls them at one instant, protocol.md §8.9; for a select spanning
// homes see detail/atomic_poll.hpp); a timeout case runs when none became ready by
// its deadline. Without either, a select whose cases are all nil blocks
// forever.
//
// Design: a blocking select never holds two channel locks at once. Each
// blocked select registers one wait entry per case, in the random order it
// polled them (so a partner finds same-channel cases queued in random order,
// as in Go), all sharing one context; the first channel to CAS that context
// decides the outcome, so two selects over the same channels in any order
// cannot deadlock (the protocol is described in detail/chan_base.hpp). Only
// the default's atomic poll holds several locks, taken in address order.
//
// Thread safety: a select statement is used by the thread that runs it; the
// channels it names may be used by any number of threads meanwhile.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <tuple>
#include <type_traits>
#include <utility>

#include "zchan/channel.hpp"
#include "zchan/detail/atomic_poll.hpp"

namespace zchan {

namespace detail {

struct no_callback {
    template <class... A>
    void operator()(A&&...) const noexcept {}
};

/// Builds a case that borrows the caller's handle instead of holding a copy:
/// the handle must outlive the case (zchan/asio.hpp, "Handles", says when).
struct borrow_handle_t {
    explicit borrow_handle_t() = default;
};
inline constexpr borrow_handle_t borrow_handle{};

/// A fast per-thread generator for the select's random poll order.
inline std::uint64_t select_random() noexcept {
    static thread_local std::uint64_t state = [] {
        auto seed = static_cast<std::uint64_t>(clock::now().time_since_epoch().count());
        seed ^= reinterpret_cast<std::uintptr_t>(current_thread_id());
        return seed | 1;
    }();
    // xorshift64*
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1DULL;
}

/// Type-erased view of one channel case, for the select loop.
class select_op {
public:
    [[nodiscard]] virtual bool nil() const noexcept = 0;
    /// Attempts the operation without blocking; true if it completed.
    /// Throws channel_closed for a send case on a closed channel.
    virtual bool try_fire() = 0;
    /// Registers `e` (whose packet this case fills in); true if ready now.
    virtual bool enlist(wait_entry& e) = 0;
    virtual void delist(wait_entry& e) = 0;
    /// delist() of the entry its channel selected, once the context was
    /// released (chan_base::unregister_selected_*).
    virtual void delist_selected(wait_entry& e) { delist(e); }
    /// After a wake-up for this case: true if the operation completed by
    /// handoff (the value moved through the packet).
    virtual bool handed_off() = 0;
    /// After a wake-up for this case, before handed_off(): if a transport
    /// claimed this send case's value (claim_word, protocol.md §8.3), waits
    /// until the claim is settled and `cx` released.
    virtual void await_claim(context& /*cx*/) noexcept {}
    virtual void run() = 0;
    /// After the operation completed but before run(): undoes it if that
    /// is possible, so that nothing is lost when its result cannot be
    /// delivered (an asynchronous select cancelled too late, zchan/asio.hpp).
    /// A receive case puts its value back at the head of an in-process
    /// channel (servable::requeue_front); a send case, or a receive from a
    /// remote channel, cannot: false.
    virtual bool give_back() = 0;
    /// The channel's atomic poll hooks (chan_base.hpp); nullptr if nil.
    [[nodiscard]] virtual const chan_poll* poll_channel() const noexcept = 0;
    /// The channel's send_ready or recv_ready, as the case is.
    [[nodiscard]] virtual bool poll_ready(poll_stamp& stamp) const = 0;
    /// Whether the case sends (which readiness poll_ready reads).
    [[nodiscard]] virtual bool poll_sends() const noexcept = 0;

protected:
    ~select_op() = default;
};

}  // namespace detail

template <class T, class F>
class recv_case_t final : public detail::select_op {
public:
    recv_case_t(const channel<T>& ch, F fn)
        : ch_(detail::channel_access<T>::get(ch)), keep_(ch), fn_(std::move(fn)) {}
    /// Takes over the caller's handle: no reference count changes (an
    /// asynchronous operation passes the copy it keeps, zchan/asio.hpp).
    recv_case_t(channel<T>&& ch, F fn)
        : ch_(detail::channel_access<T>::get(ch)), keep_(std::move(ch)), fn_(std::move(fn)) {}
    /// Borrows `ch`, which must outlive the case (detail::borrow_handle_t).
    recv_case_t(detail::borrow_handle_t /*tag*/, const channel<T>& ch, F fn)
        : ch_(detail::channel_access<T>::get(ch)), keep_(channel<T>::nil()), fn_(std::move(fn)) {}

    [[nodiscard]] bool nil() const noexcept override { return ch_ == nullptr; }
    bool try_fire() override {
        if (ch_ == nullptr) return false;
        recv_status s = ch_->try_recv(result_);
        if (s == recv_status::peer_lost) throw ch_->lost_error();
        return s == recv_status::ok || s == recv_status::closed;
    }
    bool enlist(detail::wait_entry& e) override {
        packet_.done = false;
        e.packet = &packet_;
        return ch_->register_recv(e);
    }
    void delist(detail::wait_entry& e) override { ch_->unregister_recv(e); }
    void delist_selected(detail::wait_entry& e) override { ch_->unregister_selected_recv(e); }
    bool handed_off() override {
        if (!packet_.done) return false;
        result_ = std::move(packet_.value);
        return true;
    }
    [[nodiscard]] const detail::chan_poll* poll_channel() const noexcept override { return ch_; }
    [[nodiscard]] bool poll_ready(detail::poll_stamp& stamp) const override {
        return ch_->recv_ready(stamp);
    }
    [[nodiscard]] bool poll_sends() const noexcept override { return false; }
    bool give_back() override {
        auto* home = dynamic_cast<detail::servable<T>*>(ch_);
        if (!result_ || home == nullptr) return false;
        home->requeue_front(std::move(*result_));
        result_.reset();
        return true;
    }
    void run() override {
        if constexpr (std::is_invocable_v<F&, std::optional<T>&&>) {
            std::invoke(fn_, std::move(result_));
        } else {
            static_assert(std::is_invocable_v<F&>,
                          "recv_case callback must take std::optional<T> or nothing");
            std::invoke(fn_);
        }
    }

private:
    detail::chan_base<T>* ch_;
    channel<T> keep_;  // keeps the channel alive for the select's duration (nil if borrowed)
    F fn_;
    std::optional<T> result_;
    detail::recv_packet<T> packet_;
};

template <class T, class F>
class send_case_t final : public detail::select_op {
public:
    template <class V>
    send_case_t(const channel<T>& ch, V&& v, F fn)
        : ch_(detail::channel_access<T>::get(ch)),
          keep_(ch),
          value_(std::forward<V>(v)),
          fn_(std::move(fn)) {}
    /// Takes over the caller's handle (see recv_case_t).
    template <class V>
    send_case_t(channel<T>&& ch, V&& v, F fn)
        : ch_(detail::channel_access<T>::get(ch)),
          keep_(std::move(ch)),
          value_(std::forward<V>(v)),
          fn_(std::move(fn)) {}
    /// Borrows `ch`, which must outlive the case (detail::borrow_handle_t).
    template <class V>
    send_case_t(detail::borrow_handle_t /*tag*/, const channel<T>& ch, V&& v, F fn)
        : ch_(detail::channel_access<T>::get(ch)),
          keep_(channel<T>::nil()),
          value_(std::forward<V>(v)),
          fn_(std::move(fn)) {}

    [[nodiscard]] bool nil() const noexcept override { return ch_ == nullptr; }
    bool try_fire() override {
        if (ch_ == nullptr) return false;
        send_status s = ch_->try_send(value_);
        if (s == send_status::closed) throw channel_closed("zchan: send on closed channel");
        if (s == send_status::peer_lost) throw ch_->lost_error();
        return s == send_status::ok;
    }
    bool enlist(detail::wait_entry& e) override {
        packet_.value = &value_;
        packet_.done = false;
        packet_.claim.reset();
        e.packet = &packet_;
        return ch_->register_send(e);
    }
    void delist(detail::wait_entry& e) override { ch_->unregister_send(e); }
    void delist_selected(detail::wait_entry& e) override { ch_->unregister_selected_send(e); }
    bool handed_off() override { return packet_.done; }
    void await_claim(detail::context& cx) noexcept override {
        if (!packet_.claim.armed()) return;
        packet_.claim.wait();
        cx.wait_released();
    }
    void run() override { std::invoke(fn_); }
    bool give_back() override { return false; }  // a receiver has the value
    [[nodiscard]] const detail::chan_poll* poll_channel() const noexcept override { return ch_; }
    [[nodiscard]] bool poll_ready(detail::poll_stamp& stamp) const override {
        return ch_->send_ready(stamp);
    }
    [[nodiscard]] bool poll_sends() const noexcept override { return true; }

private:
    detail::chan_base<T>* ch_;
    channel<T> keep_;
    T value_;
    F fn_;
    detail::send_packet<T> packet_;
};

template <class F>
struct default_case_t {
    F fn;
};

template <class F>
struct timeout_case_t {
    detail::deadline_t deadline;
    F fn;
};

/// A receive case; the callback takes std::optional<T> (nullopt: closed) or nothing.
template <class T, class F = detail::no_callback>
recv_case_t<T, F> recv_case(const channel<T>& ch, F fn = {}) {
    return recv_case_t<T, F>(ch, std::move(fn));
}

/// A send case; the value is moved into the case (and dropped with it if
/// another case runs, as Go evaluates and discards it).
template <class T, class V, class F = detail::no_callback>
send_case_t<T, F> send_case(const channel<T>& ch, V&& value, F fn = {}) {
    return send_case_t<T, F>(ch, std::forward<V>(value), std::move(fn));
}

/// Runs when no other case is ready.
template <class F = detail::no_callback>
default_case_t<F> default_case(F fn = {}) {
    return {std::move(fn)};
}

/// Runs when no other case became ready within `d`.
template <class Rep, class Period, class F = detail::no_callback>
timeout_case_t<F> timeout_case(std::chrono::duration<Rep, Period> d, F fn = {}) {
    return {detail::deadline_after(d), std::move(fn)};
}

/// Runs when no other case became ready by `t`.
template <class Clock, class Duration, class F = detail::no_callback>
timeout_case_t<F> timeout_case(std::chrono::time_point<Clock, Duration> t, F fn = {}) {
    return {detail::to_deadline(t), std::move(fn)};
}

namespace detail {

template <class C>
struct case_kind {
    static constexpr bool is_default = false, is_timeout = false, is_op = true;
};
template <class F>
struct case_kind<default_case_t<F>> {
    static constexpr bool is_default = true, is_timeout = false, is_op = false;
};
template <class F>
struct case_kind<timeout_case_t<F>> {
    static constexpr bool is_default = false, is_timeout = true, is_op = false;
};

template <class C>
using case_kind_of = case_kind<std::remove_cvref_t<C>>;

/// For a select with a default case whose poll completed no case: true if at
/// one instant none of its cases was ready, so that the default may run; false
/// if one was ready or the answer is unsure (poll again). This is Go's
/// "selectgo locks every channel, then polls" (atomic_poll.hpp). Remote cases
/// are asked about in one POLL per home (protocol.md §8.9).
template <std::size_t N>
bool none_ready_at_one_instant(const std::array<select_op*, N>& ops) {
    std::array<const chan_poll*, N> chans{};
    for (std::size_t i = 0; i < N; ++i) chans[i] = ops[i]->poll_channel();
    std::array<spin_lock*, N> locks{};
    std::array<poll_stamp, N> stamps{};
    return detail::none_ready_at_one_instant(
        chans, locks, stamps,
        [&](std::size_t i, poll_stamp& stamp) { return ops[i]->poll_ready(stamp); },
        [&] {
            std::array<remote_case, N> remote{};
            std::size_t k = 0;
            for (std::size_t i = 0; i < N; ++i) {
                if (chans[i] != nullptr && chans[i]->poll_kind() == poll_mode::remote) {
                    remote[k++] = remote_case{chans[i], ops[i]->poll_sends()};
                }
            }
            const std::span<const remote_case> cases(remote.data(), k);
            return cases[0].chan->remote_none_ready(cases);
        });
}

/// The select loop over `n` channel cases; see the protocol in chan_base.hpp.
/// Returns the position (within ops) of the case that completed, or n if the
/// deadline passed, or n + 1 if nothing was ready and there is a default.
template <std::size_t N>
std::size_t run_select(const std::array<select_op*, N>& ops, bool has_default,
                       deadline_t deadline) {
    std::array<std::size_t, N> order{};
    std::size_t preferred = N;  // the case a wake-up pointed at, tried first
    for (;;) {
        if (preferred < N && ops[preferred]->try_fire()) return preferred;
        // Poll in a random permutation (Fisher-Yates), which makes the choice
        // among ready cases uniform, as Go's select does.
        for (std::size_t i = 0; i < N; ++i) {
            const auto j = static_cast<std::size_t>(select_random() % (i + 1));
            order[i] = order[j];
            order[j] = i;
        }
        for (std::size_t k = 0; k < N; ++k) {
            if (ops[order[k]]->try_fire()) return order[k];
        }
        // Polled case by case, nothing was ready; the default needs an
        // instant at which nothing was. If there was none, some case was
        // ready after all (or became so): poll again.
        if (has_default) {
            if (none_ready_at_one_instant(ops)) return N + 1;
            continue;
        }
        if (deadline != no_deadline && clock::now() >= deadline) return N;

        // Register in the poll order too, as Go's selectgo builds its lock
        // order from the poll order: a partner takes the first entry on a
        // channel's wait list, so cases on the same channel (and whichever
        // registration a transport answers first) must be queued in a
        // uniformly random order, not in argument order.
        context cx;
        std::array<wait_entry, N> entries{};
        std::size_t registered = 0;  // order[0, registered) are enlisted
        while (registered < N) {
            const std::size_t i = order[registered++];
            select_op* op = ops[i];
            if (op->nil()) continue;
            entries[i] = wait_entry{&cx, sel_first_op + i, nullptr};
            if (op->enlist(entries[i])) {
                cx.try_select(sel_aborted);
                break;
            }
        }
        std::uintptr_t sel = cx.wait_until(deadline);
        for (std::size_t k = 0; k < registered; ++k) {
            if (!ops[order[k]]->nil()) ops[order[k]]->delist(entries[order[k]]);
        }
        preferred = N;
        if (sel >= sel_first_op) {
            std::size_t i = sel - sel_first_op;
            ops[i]->await_claim(cx);  // a claim was armed under the lock delist took
            if (ops[i]->handed_off()) return i;
            preferred = i;
        }
    }
}

template <class C>
select_op* as_op(C& c) {
    if constexpr (case_kind_of<C>::is_op) {
        return &c;
    } else {
        return nullptr;
    }
}

}  // namespace detail

/// Go's select over any mix of receive, send, default and timeout cases.
/// Returns the 0-based position of the case that ran.
template <class... Cases>
std::size_t select(Cases&&... cases) {
    constexpr std::size_t n_default =
        (std::size_t{0} + ... + detail::case_kind_of<Cases>::is_default);
    constexpr std::size_t n_timeout =
        (std::size_t{0} + ... + detail::case_kind_of<Cases>::is_timeout);
    static_assert(n_default <= 1, "zchan::select: at most one default_case");
    static_assert(n_timeout <= 1, "zchan::select: at most one timeout_case");
    static_assert(n_default + n_timeout <= 1,
                  "zchan::select: a default_case makes a timeout_case pointless; use one");
    constexpr std::size_t n_ops = sizeof...(Cases) - n_default - n_timeout;

    // Positions of channel cases among the arguments, and of default/timeout.
    std::array<detail::select_op*, n_ops> ops{};
    std::array<std::size_t, n_ops> position{};
    std::size_t special_position = 0;
    detail::deadline_t deadline = detail::no_deadline;
    std::function<void()> special;
    {
        std::size_t arg = 0, op = 0;
        auto visit = [&](auto& c) {
            using case_type = std::remove_cvref_t<decltype(c)>;
            if constexpr (detail::case_kind_of<case_type>::is_op) {
                ops[op] = &c;
                position[op] = arg;
                ++op;
            } else if constexpr (detail::case_kind_of<case_type>::is_timeout) {
                deadline = c.deadline;
                special_position = arg;
            } else {
                special_position = arg;
            }
            ++arg;
        };
        (visit(cases), ...);
    }

    std::size_t r = detail::run_select<n_ops>(ops, n_default == 1, deadline);
    if (r < n_ops) {
        ops[r]->run();
        return position[r];
    }
    // The default or timeout case ran.
    auto run_special = [&](auto& c) {
        using case_type = std::remove_cvref_t<decltype(c)>;
        if constexpr (!detail::case_kind_of<case_type>::is_op) std::invoke(c.fn);
    };
    (run_special(cases), ...);
    return special_position;
}

}  // namespace zchan

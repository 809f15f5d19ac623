// use_awaitable's operations tried when they are awaited (zchan/asio.hpp,
// "Awaiting at once"): an awaitable whose frame first tries an in-process
// channel and, if that finds nothing, waits in the same frame (parked_op,
// asio_parked.hpp) or, if something could cancel it, sets the operation up
// there as Asio's own initiation for use_awaitable does. Relies on Asio
// 1.22's use_awaitable internals (async_result<use_awaitable_t>::do_init and
// handler_type); on other versions awaits_now is false and every token takes
// the general path.
//
// Thread safety: as zchan/asio.hpp; the budget is per thread.
#pragma once

#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

#include <asio/any_io_executor.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/cancellation_state.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/defer.hpp>
#include <asio/error.hpp>
#include <asio/io_context.hpp>
#include <asio/version.hpp>
#if defined(ASIO_HAS_CO_AWAIT)
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#endif

#include "zchan/channel.hpp"
#include "zchan/detail/asio_parked.hpp"
#include "zchan/detail/chan_base.hpp"
#include "zchan/detail/sync.hpp"
#include "zchan/status.hpp"

namespace zchan::detail {

inline std::error_code aborted() noexcept {
    return make_error_code(asio::error::operation_aborted);
}

/// A handle an operation borrows (see zchan/asio.hpp, awaited_in_place).
template <class T>
struct borrowed_channel {
    const channel<T>* ch;
};

/// Plain use_awaitable on the Asio versions checked (1.22): the operation is
/// tried in the frame co_await runs, before it is set up (see try_now).
template <class Token>
struct awaits_now : std::false_type {};
#if defined(ASIO_HAS_CO_AWAIT) && ASIO_VERSION >= 102200 && ASIO_VERSION < 102300
template <class Executor>
struct awaits_now<asio::use_awaitable_t<Executor>> : std::true_type {};
#endif

/// How many operations in a row a thread may complete at once, without
/// passing through its executor's queue: after that many, the next one goes
/// through the queue (and lets the rest of the io_context run), as Go's
/// scheduler preempts a goroutine that never blocks and Tokio's budget does.
inline constexpr unsigned await_now_budget = 64;
inline unsigned& await_now_left() noexcept {
    thread_local unsigned left = await_now_budget;
    return left;
}

/// What try_now did.
enum class now : unsigned char {
    untried,  ///< not tried (a nil or remote channel): set the operation up
    later,    ///< not ready: set the operation up; it need not try first
    done,     ///< completed: the coroutine goes on at once
    queued,   ///< completed: the coroutine goes on through its executor's queue
};

/// Tries a use_awaitable operation at once, in the coroutine frame that is
/// co_awaited, on an in-process channel (a remote one needs a round trip).
/// `untried` and `later` leave no trace: nothing was sent or received.
///
/// A completed operation goes on at once, as a goroutine runs on after a
/// send or receive that did not block: a partner it completed is readied
/// (its continuation queued) and the coroutine runs until it waits itself.
/// A sender on a buffered channel thus fills the buffer and then waits,
/// cheaply (parked_op), and a receiver that frees a slot takes the waiting
/// sender's value into it, while one that finds a receiver waiting hands it
/// the oldest value (buffered_chan's give_head and take_waiting_value): as
/// in Go, three values pass per two waits with capacity 1
/// (docs/performance.md, "Coroutines").
///
/// `attempt` tries with send_step / recv_step: a stale "not ready" only
/// costs a registration, which looks again precisely. `keep_in_queue`: a
/// completion must not go on at once (see recv_now_or_later); it goes
/// through the queue instead.
template <class T, class Try>
now try_now(const channel<T>& ch, bool keep_in_queue, Try&& attempt) {
    chan_base<T>* c = channel_access<T>::get(ch);
    if (c == nullptr) return now::untried;
    if (c->poll_kind() == poll_mode::remote) return now::untried;
    unsigned& left = await_now_left();
    {
        // An unbuffered channel must not make this thread wait for a remote
        // receiver's claim (a round trip): as in an operation's step.
        const int identity = 0;
        identity_scope lend(&identity);
        if (!attempt(*c)) {
            left = await_now_budget;  // it waits, and resumes from the queue
            return now::later;
        }
    }
    if (left == 0 || keep_in_queue) {
        left = await_now_budget;
        return now::queued;
    }
    --left;
    return now::done;
}

/// Posts (defers) `f` to `ex`, a handler's executor: the coroutine's own
/// continuation, queued on this thread without a lock; an io_context's
/// executor directly (see async_op).
template <class Executor, class F>
void defer_to(const Executor& ex, F&& f) {
    if constexpr (std::is_same_v<Executor, asio::any_io_executor>) {
        if (const auto* io = ex.template target<asio::io_context::executor_type>()) {
            asio::defer(*io, std::forward<F>(f));
            return;
        }
    }
    asio::defer(ex, std::forward<F>(f));
}

/// The initiation of a send that completed in try_now: its handler runs,
/// with no error, from its executor's queue. A cancellation meanwhile is
/// too late: the value was sent.
struct sent_through_queue {
    template <class Handler>
    void operator()(Handler handler) const {
        const auto ex = asio::get_associated_executor(handler);
        defer_to(ex, [h = std::move(handler)]() mutable { std::move(h)(std::error_code{}); });
    }
};

/// Records a cancellation that arrives while a completion is queued.
struct late_cancel {
    bool requested = false;
    void operator()(asio::cancellation_type type) noexcept {
        if (type != asio::cancellation_type::none) requested = true;
    }
};

/// The initiation of a receive that completed in try_now: its handler runs
/// from its executor's queue with the value. If cancellation is asked for
/// meanwhile, the value goes back to the head of the channel and the
/// receive reports operation_aborted, as for any cancelled in-process
/// receive (async_select.hpp): a value is never handed to a handler that
/// is being cancelled (awaitable_operators' `||` drops a loser's result).
template <class T>
struct received_through_queue {
    chan_base<T>* ch;
    template <class Handler>
    void operator()(Handler handler, std::optional<T> v) const {
        late_cancel* cancel = nullptr;
        auto slot = asio::get_associated_cancellation_slot(handler);
        if (slot.is_connected()) cancel = &slot.template emplace<late_cancel>();
        const auto ex = asio::get_associated_executor(handler);
        defer_to(ex, [h = std::move(handler), v = std::move(v), cancel, c = ch]() mutable {
            if (cancel != nullptr && cancel->requested && v.has_value()) {
                if (auto* home = dynamic_cast<servable<T>*>(c)) {
                    home->requeue_front(std::move(*v));
                    std::move(h)(aborted(), std::optional<T>());
                    return;
                }
            }
            std::move(h)(std::error_code{}, std::move(v));
        });
    }
};

/// Stores the value a receive case ran with; async_recv's case callback.
template <class T>
struct store_into {
    std::optional<T>* out;
    void operator()(std::optional<T>&& v) const { *out = std::move(v); }
};

/// The io_context a waiting operation may park on (parked_op) with this
/// handler: one whose cancellation slot is not connected (nothing can cancel
/// it) and whose executor is an io_context's; else nullopt.
template <class Handler>
std::optional<asio::io_context::executor_type> parkable_on(const Handler& handler) {
    using io_executor = asio::io_context::executor_type;
    if (asio::get_associated_cancellation_slot(handler).is_connected()) return std::nullopt;
    const auto ex = asio::get_associated_executor(handler);
    using executor = std::decay_t<decltype(ex)>;
    if constexpr (std::is_same_v<executor, io_executor>) {
        return ex;
    } else if constexpr (std::is_same_v<executor, asio::any_io_executor>) {
        if (const auto* io = ex.template target<io_executor>()) return *io;
    }
    return std::nullopt;
}

/// async_recv with use_awaitable: the channel is tried at once (try_now),
/// else the operation waits in this frame (parked_op) or, if it cannot
/// park, is set up as for any token, in this same frame (as Asio's own
/// initiation does, whose handler completes this frame).
template <class Sig, class Executor, class T, class Init>
asio::awaitable<std::optional<T>, Executor> recv_now_or_later(
    const channel<T>* ch, Init init, asio::use_awaitable_t<Executor> token) {
    using result = asio::async_result<asio::use_awaitable_t<Executor>, Sig>;
    using handler_type = typename result::handler_type;
    using case_t = recv_case_t<T, store_into<T>>;
    // Completes the parked receive with the value the case ran with.
    struct received {
        handler_type handler;
        std::optional<T>* v;
        void operator()(std::error_code error, case_t& c) {
            if (!error) c.run();  // into *v
            std::move(handler)(error, std::move(*v));
        }
    };
    // A coroutine that can be cancelled (awaitable_operators' || runs each
    // side as one) must not go on at once with a value: co_spawn posts the
    // result of a coroutine that never suspended, and a cancellation before
    // that runs (the other side of || finished first) drops it. Through the
    // queue, such a cancellation gives the value back instead
    // (received_through_queue). A send has nothing to give back, so it goes
    // on at once either way (a cancellation after it sent is too late).
    const asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
    const bool cancellable = state.slot().is_connected();
    std::optional<T> v;
    const now outcome = try_now(
        *ch, cancellable, [&v](chan_base<T>& c) { return c.recv_step(v) != recv_status::empty; });
    switch (outcome) {
        case now::done:
            co_return std::move(v);
        case now::queued: {
            received_through_queue<T> complete{channel_access<T>::get(*ch)};
            co_await [&](auto* frame) { return result::do_init(frame, complete, token, v); };
            break;
        }
        case now::later: {
            std::optional<parked_op<case_t, received>> parked;
            auto wait = [&](handler_type handler) {
                if (auto io = parkable_on(handler)) {
                    parked.emplace(received{std::move(handler), &v}, *io, borrow_handle, *ch,
                                   store_into<T>{&v});
                    parked->park();
                } else {
                    init(std::move(handler), borrowed_channel<T>{ch}, true);
                }
            };
            co_await [&](auto* frame) { return result::do_init(frame, wait, token); };
            break;
        }
        case now::untried: {
            borrowed_channel<T> handle{ch};
            co_await [&](auto* frame) { return result::do_init(frame, init, token, handle); };
            break;
        }
    }
    co_return std::nullopt;  // never reached: the handler completes this frame
}

/// async_send with use_awaitable: as recv_now_or_later.
template <class Sig, class Executor, class T, class Init>
asio::awaitable<void, Executor> send_now_or_later(const channel<T>* ch, Init init,
                                                  asio::use_awaitable_t<Executor> token, T value) {
    using result = asio::async_result<asio::use_awaitable_t<Executor>, Sig>;
    using handler_type = typename result::handler_type;
    using case_t = send_case_t<T, no_callback>;
    // Completes the parked send.
    struct sent {
        handler_type handler;
        void operator()(std::error_code error, case_t& /*c*/) { std::move(handler)(error); }
    };
    const now outcome = try_now(
        *ch, false, [&value](chan_base<T>& c) { return c.send_step(value) == send_status::ok; });
    switch (outcome) {
        case now::done:
            co_return;
        case now::queued: {
            sent_through_queue complete;
            co_await [&](auto* frame) { return result::do_init(frame, complete, token); };
            break;
        }
        case now::later: {
            std::optional<parked_op<case_t, sent>> parked;
            auto wait = [&](handler_type handler) {
                if (auto io = parkable_on(handler)) {
                    parked.emplace(sent{std::move(handler)}, *io, borrow_handle, *ch,
                                   std::move(value), no_callback{});
                    parked->park();
                } else {
                    init(std::move(handler), borrowed_channel<T>{ch}, std::move(value), true);
                }
            };
            co_await [&](auto* frame) { return result::do_init(frame, wait, token); };
            break;
        }
        case now::untried: {
            borrowed_channel<T> handle{ch};
            co_await
                [&](auto* frame) { return result::do_init(frame, init, token, handle, value); };
            break;
        }
    }
}

}  // namespace zchan::detail

// zchan with Asio: channel operations and select as asynchronous
// operations that take any Asio completion token, so that a coroutine
// co_awaits a channel instead of blocking its thread.
//
//   asio::awaitable<void> consumer(zchan::channel<int> ch) {
//       while (auto v = co_await zchan::async_recv(ch, asio::use_awaitable)) use(*v);
//   }
//
// The operations and their completion signatures:
//   async_send(ch, v, token)           void(std::error_code)
//   async_recv(ch, token)              void(std::error_code, std::optional<T>)
//   async_select(token, cases...)      void(std::error_code, std::size_t)
// Results are the blocking API's: async_recv's nullopt means closed and
// drained; a send on a closed channel fails with async_errc::channel_closed
// (the blocking send throws channel_closed); a lost remote peer fails with
// errc::peer_lost; async_select reports the argument position of the case
// that ran, after running its callback, or of the failed case with the
// error. It takes recv_case, send_case and default_case (select.hpp); use a
// timer and cancellation for a timeout. Nil channels never complete.
//
// Cancellation: through the completion handler's cancellation slot (so
// asio::experimental::awaitable_operators' `||` with a timer works), every
// type (terminal, partial, total) honoured. A cancelled operation completes
// with asio::error::operation_aborted and had no effect: a cancelled send
// did not send, a cancelled receive left its value in the channel. A
// cancellation that arrives after a partner completed the operation is too
// late for a send (it sent; it completes with success) and for a receive
// from a remote channel (it completes with its value); a receive from an
// in-process channel puts the value back at the head of the channel and
// reports operation_aborted (see detail/async_select.hpp). Emit the signal
// from the operation's executor, as Asio requires of every operation.
//
// Waiting: an operation that cannot complete at once registers a
// completion-style waiter with the channel and returns; the partner that
// completes it, a blocking thread, another coroutine or the network
// transport, posts its continuation to the handler's associated executor.
// No executor thread ever blocks. A co_awaited async_recv or async_send that
// nothing can cancel (its coroutine's cancellation slot is not connected)
// waits in its coroutine's frame (detail/asio_parked.hpp); every other
// operation in the general engine (detail/async_select.hpp). A case on a
// remote (dialed) channel needs a round trip to the channel's home for
// every attempt, so an operation with such a case makes its attempts on a
// small internal thread and only completes on the handler's executor.
//
// Handles: async_recv and async_send with asio::use_awaitable (alone or in
// as_tuple or redirect_error) borrow `ch`: the handle object must outlive
// the co_await, as `co_await zchan::async_recv(ch, asio::use_awaitable)`
// ensures for any `ch`, a temporary included. An awaitable kept and awaited
// later (or given to co_spawn) needs its handle kept as long, as an Asio
// operation needs its socket. (A copy costs two atomic reference count
// updates per operation: 13-19% of a hand-off between coroutines once the
// process has started a thread.) Every other token copies the handle into
// the operation, which then keeps the channel alive; so do async_select's
// cases.
//
// Awaiting at once: with plain use_awaitable, an operation on an in-process
// channel is tried when it is co_awaited, before anything is set up. One
// that completes lets the coroutine go on at once, as a goroutine runs on
// after a send or receive that did not block; at most 64 in a row on a
// thread, then one goes through the queue, so that a coroutine that never
// waits cannot starve the rest of its io_context. A coroutine waiting in its
// frame that a partner completes on a thread running its io_context runs
// next in the handler already running there, once the partner waits, not
// from the queue (detail/asio_ready.hpp; also at most 64 per handler). A
// receive in a coroutine that can be cancelled goes through the queue
// instead, where a late cancellation can still give its value back
// (detail/asio_await_now.hpp).
//
// The completion handler runs on its associated executor (the coroutine's,
// for use_awaitable; a plain callback without one runs on Asio's system
// executor), never inside the initiating call. The operation holds outstanding
// work on that executor while it waits (a coroutine's is held by co_spawn
// already), so io_context::run() does not return under an operation that
// waits for a blocking thread.
//
// Thread safety: the functions may be called from any thread, on channels
// that any number of threads and coroutines use at once.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <memory>
#include <new>
#include <optional>
#include <system_error>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>

#include <asio/any_io_executor.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/defer.hpp>
#include <asio/error.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>
#include <asio/system_executor.hpp>
#include <asio/thread_pool.hpp>
#include <asio/version.hpp>
#if defined(ASIO_HAS_CO_AWAIT)
#include <asio/experimental/as_tuple.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#endif

#include "zchan/async_errc.hpp"
#include "zchan/channel.hpp"
#include "zchan/detail/asio_await_now.hpp"
#include "zchan/detail/async_select.hpp"
#include "zchan/select.hpp"

namespace zchan {

namespace detail {

/// Where operations with a remote case make their attempts (each may wait
/// for a round trip). One thread: attempts are short and rare next to the
/// network's latency.
inline asio::thread_pool& remote_attempts() {
    static asio::thread_pool pool(1);
    return pool;
}

/// True if `op` waits on a channel whose state lives in another process.
inline bool is_remote(select_op* op) {
    const chan_poll* ch = op->poll_channel();
    return ch != nullptr && ch->poll_kind() == poll_mode::remote;
}

/// Memory for async_op: a few blocks kept per thread for reuse. Asio's
/// recycling allocator keeps two blocks per thread for every handler, and a
/// hand-off between two coroutines has two operations and a posted
/// completion alive at once, so there every other operation missed it and
/// went to malloc. Blocks are freed on the thread that completes the
/// operation, usually the one that started it.
///
/// Thread safety: each thread has its own cache.
class op_memory {
public:
    template <class Op>
    static void* allocate() {
        constexpr std::size_t size = sizeof(Op);
        auto& c = cache();
        for (auto& b : c.blocks) {
            if (b.ptr != nullptr && b.size == size && b.align == alignof(Op)) {
                return std::exchange(b.ptr, nullptr);
            }
        }
        return ::operator new (size, std::align_val_t{alignof(Op)});
    }

    template <class Op>
    static void deallocate(void* p) noexcept {
        auto& c = cache();
        for (auto& b : c.blocks) {
            if (b.ptr == nullptr) {
                b = {p, sizeof(Op), alignof(Op)};
                return;
            }
        }
        ::operator delete (p, std::align_val_t{alignof(Op)});
    }

private:
    struct block {
        void* ptr = nullptr;
        std::size_t size = 0;
        std::size_t align = 0;
    };
    struct blocks_of_thread {
        std::array<block, 4> blocks;
        blocks_of_thread() = default;
        blocks_of_thread(const blocks_of_thread&) = delete;
        blocks_of_thread& operator=(const blocks_of_thread&) = delete;
        // NOLINTNEXTLINE(modernize-use-equals-default): it frees the blocks
        ~blocks_of_thread() {
            for (auto& b : blocks) {
                if (b.ptr != nullptr) ::operator delete (b.ptr, std::align_val_t{b.align});
            }
        }
    };
    static blocks_of_thread& cache() noexcept {
        thread_local blocks_of_thread c;
        return c;
    }
};

/// True for the handler that use_awaitable makes, on the Asio versions
/// checked (1.22): co_spawn holds work on that handler's executor for as
/// long as the coroutine lives, so an operation the coroutine waits in need
/// not hold its own (two atomic updates of the context's work count, a
/// tenth of a hand-off between coroutines). Asio's detail type: elsewhere,
/// or if it is renamed, every operation holds work as for any handler.
template <class Handler>
struct kept_alive_by_co_spawn : std::false_type {};
#if defined(ASIO_HAS_CO_AWAIT) && ASIO_VERSION >= 102200 && ASIO_VERSION < 102300
template <class Executor, class... Ts>
struct kept_alive_by_co_spawn<asio::detail::awaitable_handler<Executor, Ts...>> : std::true_type {};
#endif

/// One asynchronous select (or send, or receive: a select of one case) in
/// flight. `Finish` turns the outcome into the handler's arguments, as a
/// tuple: finish_(outcome, ops) on the handler's executor, before the op is
/// freed. Lives in memory from op_memory; destroys itself when
/// it completes.
///
/// Thread safety: the engine's steps run one at a time, on the handler's
/// executor or, with a remote case, on remote_attempts(); cancel() from the
/// handler's executor (Asio's rule for cancellation slots).
template <class Handler, class Finish, class CaseTuple>
class async_op final {
    static constexpr std::size_t n = std::tuple_size_v<CaseTuple>;
    using executor_type = asio::associated_executor_t<Handler, asio::system_executor>;
    using work_type = std::decay_t<decltype(asio::prefer(
        std::declval<const executor_type&>(), asio::execution::outstanding_work.tracked))>;
    using post_type = std::decay_t<decltype(asio::prefer(
        std::declval<const executor_type&>(), asio::execution::outstanding_work.untracked))>;
    // Every coroutine's executor: an any_io_executor around an io_context's.
    // That one is used directly (see io_), since each prefer(), copy and
    // destruction through the type erasure is an indirect call or more.
    static constexpr bool may_wrap_io = std::is_same_v<executor_type, asio::any_io_executor>;
    using io_executor = asio::io_context::executor_type;
    using io_work_type = std::decay_t<decltype(asio::prefer(
        std::declval<const io_executor&>(), asio::execution::outstanding_work.tracked))>;
    using engine = async_select<n>;

public:
    template <class H, class F, class Make>
    static void launch(H&& handler, F&& finish, Make&& make, bool has_default, bool tried = false) {
        void* mem = op_memory::allocate<async_op>();
        async_op* op = nullptr;
        try {
            op = ::new (mem) async_op(std::forward<H>(handler), std::forward<F>(finish),
                                      std::forward<Make>(make), has_default);
        } catch (...) {
            op_memory::deallocate<async_op>(mem);
            throw;
        }
        op->begin(tried);
    }

private:
    template <class H, class F, class Make>
    async_op(H&& handler, F&& finish, Make&& make, bool has_default)
        : handler_(std::forward<H>(handler)),
          finish_(std::forward<F>(finish)),
          cases_(make(finish_)),
          ops_(std::apply([](auto&... c) { return std::array<select_op*, n>{&c...}; }, cases_)),
          engine_(ops_, has_default, &on_wake, this) {
        for (select_op* op : ops_) remote_ = remote_ || is_remote(op);
        auto ex = asio::get_associated_executor(handler_, asio::system_executor());
        if constexpr (may_wrap_io) {
            if (const auto* io = ex.template target<io_executor>()) {
                io_.emplace(*io);
                if constexpr (!kept_alive_by_co_spawn<Handler>::value) {
                    io_work_.emplace(asio::prefer(*io, asio::execution::outstanding_work.tracked));
                }
                return;
            }
        }
        ex_.emplace(asio::prefer(ex, asio::execution::outstanding_work.untracked));
        if constexpr (!kept_alive_by_co_spawn<Handler>::value) {
            work_.emplace(asio::prefer(*ex_, asio::execution::outstanding_work.tracked));
        }
    }

    struct canceller {
        async_op* op;
        void operator()(asio::cancellation_type type) const noexcept {
            if (type != asio::cancellation_type::none) op->engine_.cancel();
        }
    };

    /// `tried`: the cases were just tried (try_now) and none was ready.
    void begin(bool tried) {
        auto slot = asio::get_associated_cancellation_slot(handler_);
        if (slot.is_connected()) slot.template emplace<canceller>(canceller{this});
        if (remote_) {
            asio::post(remote_attempts().get_executor(), [this] { step(true); });
        } else {
            step(true, tried);
        }
    }

    /// One engine step on the engine's thread; completes if it finished.
    void step(bool first, bool tried = false) {
        const bool finished = first ? engine_.start(tried) : engine_.resume();
        if (!finished) return;
        if (first || remote_) {
            // Not on the handler's executor yet (the initiating call, or
            // the remote attempts' thread): go there to complete.
            post_complete();
        } else {
            complete();
        }
    }

    /// Completes on the handler's executor from another thread. The
    /// handler may run, and its owner tear the executor's context down,
    /// before post() has returned here, and post() still touches that
    /// context after queueing (it unlocks and wakes its thread; copies of a
    /// tracked executor would also count down its work). So complete()
    /// first waits until post() has returned (posted_), as
    /// context::wait_released does for unpark(): a few instructions, unless
    /// this thread lost its core in between.
    void post_complete() {
        post_to_handler(false, [this] {
            for (unsigned i = 0; !posted_.load(std::memory_order_acquire); ++i) {
                if (i < 1024) {
                    cpu_relax();
                } else {
                    std::this_thread::yield();
                }
            }
            complete();
        });
        posted_.store(true, std::memory_order_release);
    }

    /// The engine's wake-up: possibly under a channel's lock, so only post.
    static void on_wake(void* self) noexcept {
        auto* op = static_cast<async_op*>(self);
        if (op->remote_) {
            asio::post(remote_attempts().get_executor(), [op] { op->step(false); });
        } else {
            // defer: from a coroutine on the same thread (the common
            // hand-off) this queues privately, with no lock and no wake-up.
            op->post_to_handler(true, [op] { op->step(false); });
        }
    }

    /// Posts (or defers) `f` to the handler's executor. Through the untracked
    /// executor: a queued function counts as work by itself, and every copy
    /// of a tracked executor would cost two atomic updates of the context's
    /// work count. An io_context's executor behind an any_io_executor (every
    /// coroutine's) is used directly: Asio's type-erased post costs several
    /// indirect calls per property.
    template <class F>
    void post_to_handler(bool continuation, F&& f) {
        if constexpr (may_wrap_io) {
            if (io_) {
                if (continuation) {
                    asio::defer(*io_, std::forward<F>(f));
                } else {
                    asio::post(*io_, std::forward<F>(f));
                }
                return;
            }
        }
        if (continuation) {
            asio::defer(*ex_, std::forward<F>(f));
        } else {
            asio::post(*ex_, std::forward<F>(f));
        }
    }

    /// On the handler's executor: frees the op, then calls the handler.
    void complete() {
        auto slot = asio::get_associated_cancellation_slot(handler_);
        if (slot.is_connected()) slot.clear();
        engine_.settle_late_cancel();
        auto args = finish_(engine_.result(), ops_);
        Handler handler(std::move(handler_));
        std::optional<work_type> work(std::move(work_));
        std::optional<io_work_type> io_work(std::move(io_work_));
        this->~async_op();
        op_memory::deallocate<async_op>(this);
        std::apply(std::move(handler), std::move(args));
        // work and io_work are released after the handler ran
    }

    Handler handler_;
    // The handler's executor, for posting, and work that keeps its context
    // running while this op waits (unless co_spawn keeps it: see
    // kept_alive_by_co_spawn): io_ and io_work_ when it wraps an io_context's
    // executor (may_wrap_io), else ex_ and work_.
    std::optional<post_type> ex_;
    std::optional<work_type> work_;
    std::optional<io_executor> io_;
    std::optional<io_work_type> io_work_;
    Finish finish_;
    CaseTuple cases_;
    std::array<select_op*, n> ops_;
    bool remote_ = false;
    std::atomic<bool> posted_{false};  // see post_complete
    engine engine_;
};

template <class T>
struct recv_finish {
    std::optional<T> value;
    template <class Outcome, class Ops>
    std::tuple<std::error_code, std::optional<T>> operator()(const Outcome& o, Ops& ops) {
        if (o.index == async_select<1>::cancelled_index) return {aborted(), std::nullopt};
        if (o.error) return {o.error, std::nullopt};
        ops[0]->run();  // moves the value into `value`
        return {std::error_code{}, std::move(value)};
    }
};

struct send_finish {
    template <class Outcome, class Ops>
    std::tuple<std::error_code> operator()(const Outcome& o, Ops& /*ops*/) const {
        if (o.index == async_select<1>::cancelled_index) return {aborted()};
        return {o.error};
    }
};

/// async_select's result: the argument position of what ran. `Default`
/// is std::tuple<> or std::tuple<F> with the default case's callback.
template <std::size_t NOps, class Default>
struct select_finish {
    std::array<std::size_t, NOps> position{};  // argument position of each channel case
    std::size_t default_position = 0;
    std::size_t n_args = 0;
    Default default_fn;
    template <class Outcome, class Ops>
    std::tuple<std::error_code, std::size_t> operator()(const Outcome& o, Ops& ops) {
        if (o.index == async_select<NOps>::cancelled_index) return {aborted(), n_args};
        if (o.error) return {o.error, position[o.index]};
        if (o.index == async_select<NOps>::default_index) {
            std::apply([](auto&... fn) { (std::invoke(fn), ...); }, default_fn);
            return {std::error_code{}, default_position};
        }
        ops[o.index]->run();
        return {std::error_code{}, position[o.index]};
    }
};

/// The channel cases of an argument list, as a tuple (0 or 1 element each).
template <class C>
auto channel_case_part(C&& c) {
    if constexpr (case_kind_of<C>::is_op) {
        return std::tuple<std::remove_cvref_t<C>>(std::forward<C>(c));
    } else {
        return std::tuple<>();
    }
}

/// Tokens that await the operation in the expression that starts it: a
/// coroutine's `co_await zchan::async_recv(ch, asio::use_awaitable)` keeps
/// `ch` (even a temporary) alive until the co_await is over, so the
/// operation borrows the handle (borrowed_channel) instead of copying it.
/// Every other token copies the handle into the operation.
template <class Token>
struct awaited_in_place : std::false_type {};
#if defined(ASIO_HAS_CO_AWAIT)
template <class Executor>
struct awaited_in_place<asio::use_awaitable_t<Executor>> : std::true_type {};
template <class Executor>
struct awaited_in_place<asio::experimental::as_tuple_t<asio::use_awaitable_t<Executor>>>
    : std::true_type {};
template <class Executor>
struct awaited_in_place<asio::redirect_error_t<asio::use_awaitable_t<Executor>>> : std::true_type {
};
#endif

/// What the initiation gets for `ch`: a borrowed handle for a token that
/// awaits in place, else the handle itself, which the initiation copies.
template <class Token, class T>
decltype(auto) initiation_handle(const channel<T>& ch) {
    if constexpr (awaited_in_place<std::decay_t<Token>>::value) {
        return borrowed_channel<T>{&ch};
    } else {
        return (ch);
    }
}

/// The operation's case from the initiation's handle: taken over if it is a
/// copy, borrowed if it is borrowed.
template <class Case, class T, class... A>
Case make_case(channel<T>&& ch, A&&... a) {
    return Case(std::move(ch), std::forward<A>(a)...);
}
template <class Case, class T, class... A>
Case make_case(borrowed_channel<T> ch, A&&... a) {
    return Case(borrow_handle, *ch.ch, std::forward<A>(a)...);
}

/// The default case's callback, as a tuple (0 or 1 element each).
template <class C>
auto default_part(C&& c) {
    if constexpr (case_kind_of<C>::is_default) {
        return std::tuple<decltype(c.fn)>(std::move(c.fn));
    } else {
        return std::tuple<>();
    }
}

}  // namespace detail

/// Receives from `ch`. Completes with the value, or nullopt once the
/// channel is closed and drained; errc::peer_lost, operation_aborted.
///
/// Example:
///   std::optional<int> v = co_await zchan::async_recv(ch, asio::use_awaitable);
template <class T, class CompletionToken>
auto async_recv(const channel<T>& ch, CompletionToken&& token) {
    using sig = void(std::error_code, std::optional<T>);
    auto init = [](auto handler, auto c, bool tried = false) {
        using case_t = recv_case_t<T, detail::store_into<T>>;
        using op_t =
            detail::async_op<decltype(handler), detail::recv_finish<T>, std::tuple<case_t>>;
        op_t::launch(
            std::move(handler), detail::recv_finish<T>{},
            [&c](detail::recv_finish<T>& f) {
                return std::tuple<case_t>(
                    detail::make_case<case_t>(std::move(c), detail::store_into<T>{&f.value}));
            },
            false, tried);
    };
    if constexpr (detail::awaits_now<std::decay_t<CompletionToken>>::value) {
        return detail::recv_now_or_later<sig>(&ch, init, token);
    } else {
        return asio::async_initiate<CompletionToken, sig>(
            init, token, detail::initiation_handle<CompletionToken>(ch));
    }
}

/// Sends `v` on `ch`; as the blocking send, the value is moved into the
/// operation (and dropped if it fails or is cancelled). Completes with no
/// error once the channel accepted the value; async_errc::channel_closed,
/// errc::peer_lost, operation_aborted.
///
/// Example:
///   co_await zchan::async_send(ch, 42, asio::use_awaitable);
template <class T, class V, class CompletionToken>
requires std::is_constructible_v<T, V&&>
auto async_send(const channel<T>& ch, V&& v, CompletionToken&& token) {
    using sig = void(std::error_code);
    auto init = [](auto handler, auto c, T value, bool tried = false) {
        using case_t = send_case_t<T, detail::no_callback>;
        using op_t = detail::async_op<decltype(handler), detail::send_finish, std::tuple<case_t>>;
        op_t::launch(
            std::move(handler), detail::send_finish{},
            [&](detail::send_finish&) {
                return std::tuple<case_t>(detail::make_case<case_t>(std::move(c), std::move(value),
                                                                    detail::no_callback{}));
            },
            false, tried);
    };
    if constexpr (detail::awaits_now<std::decay_t<CompletionToken>>::value) {
        return detail::send_now_or_later<sig>(&ch, init, token, T(std::forward<V>(v)));
    } else {
        return asio::async_initiate<CompletionToken, sig>(
            init, token, detail::initiation_handle<CompletionToken>(ch), T(std::forward<V>(v)));
    }
}

/// Go's select, asynchronously, over recv_case, send_case and at most one
/// default_case (select.hpp). Completes with the argument position of the
/// case that ran, after its callback ran on the handler's executor.
///
/// Example:
///   auto [ec, i] = co_await zchan::async_select(
///       asio::experimental::as_tuple(asio::use_awaitable),
///       zchan::recv_case(jobs, [](std::optional<job> j) { ... }),
///       zchan::send_case(results, r));
template <class CompletionToken, class... Cases>
auto async_select(CompletionToken&& token, Cases&&... cases) {
    constexpr std::size_t n_default =
        (std::size_t{0} + ... + detail::case_kind_of<Cases>::is_default);
    static_assert((std::size_t{0} + ... + detail::case_kind_of<Cases>::is_timeout) == 0,
                  "zchan::async_select: no timeout_case; cancel it with a timer instead");
    static_assert(n_default <= 1, "zchan::async_select: at most one default_case");
    constexpr std::size_t n_ops = sizeof...(Cases) - n_default;
    using default_t = decltype(std::tuple_cat(detail::default_part(std::declval<Cases>())...));
    using finish_t = detail::select_finish<n_ops, default_t>;
    using cases_t = decltype(std::tuple_cat(detail::channel_case_part(std::declval<Cases>())...));

    // The two parts move from different arguments: each case is in exactly one.
    finish_t finish{{},
                    0,
                    sizeof...(Cases),
                    std::tuple_cat(detail::default_part(std::forward<Cases>(cases))...)};
    {
        std::size_t arg = 0, op = 0;
        auto visit = [&](const auto& c) {  // looks at the types only
            if constexpr (detail::case_kind_of<decltype(c)>::is_op) {
                finish.position[op++] = arg;
            } else {
                finish.default_position = arg;
            }
            ++arg;
        };
        (visit(cases), ...);
    }
    cases_t channel_cases =
        std::tuple_cat(detail::channel_case_part(std::forward<Cases>(cases))...);
    return asio::async_initiate<CompletionToken, void(std::error_code, std::size_t)>(
        [has_default = n_default == 1](auto handler, finish_t f, cases_t cs) {
            using op_t = detail::async_op<decltype(handler), finish_t, cases_t>;
            op_t::launch(
                std::move(handler), std::move(f), [&cs](finish_t& /*f*/) { return std::move(cs); },
                has_default);
        },
        token, std::move(finish), std::move(channel_cases));
}

}  // namespace zchan

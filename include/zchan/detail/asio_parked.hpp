// One operation waiting in the frame of the coroutine that awaits it: the
// lean form of async_select<1> (detail/async_select.hpp) for a co_awaited
// async_recv or async_send that cannot complete at once (asio_await_now.hpp).
//
// Such an operation has one case, no default, cannot be cancelled (its
// handler's cancellation slot is not connected: checked before parking) and
// completes on an io_context that co_spawn keeps running. So it needs none
// of the engine's heap operation, gate or cancellation: it registers its
// case's wait entry with the channel and returns; the channel that decides
// its context calls on_unpark (under the channel's lock), which defers
// resume() to the io_context (next in the run of the thread that readied it,
// if that thread runs the io_context: asio_ready.hpp); resume() looks at the
// outcome, as the engine's take_outcome, and completes or registers again.
// The coroutine's frame is suspended meanwhile, so the memory lives as long
// as the wait.
//
// Invariants:
//   * While registered, nothing but resume() touches the object: park()
//     returns right after a registration that did not report "ready", and
//     one that did hands over to resume() through ready_run, which never
//     runs it inside park(), so that a resume() on another thread of the
//     io_context never races park().
//   * resume() runs once per registration: only after the context was
//     decided, by a channel (on_unpark) or by park() itself (sel_aborted:
//     the registration reported "ready"); a channel's decision is looked at
//     only once its unpark() released the context (wait_released).
//   * The handler is moved out before it runs: running it resumes the
//     coroutine, which destroys the frame this object lives in.
//
// Thread safety: park() and resume() run on the io_context, one at a time;
// on_unpark on any thread, under the deciding channel's lock.
#pragma once

#include <optional>
#include <system_error>
#include <utility>

#include <asio/io_context.hpp>

#include "zchan/detail/asio_ready.hpp"
#include "zchan/detail/async_select.hpp"
#include "zchan/detail/sync.hpp"
#include "zchan/detail/waker.hpp"
#include "zchan/select.hpp"

namespace zchan::detail {

/// `Case`: a recv_case_t or send_case_t. `Handler`: called as
/// handler(error, case) on the io_context once the operation finished:
/// `error` is empty if the case completed (then the case holds its
/// outcome), else the case failed (a send on a closed channel).
template <class Case, class Handler>
class parked_op : private ready_link {
public:
    using io_executor = asio::io_context::executor_type;

    template <class... CaseArgs>
    parked_op(Handler handler, io_executor io, CaseArgs&&... args)
        : ready_link(&resume_linked),
          case_(std::forward<CaseArgs>(args)...),
          handler_(std::move(handler)),
          io_(std::move(io)) {}
    parked_op(const parked_op&) = delete;
    parked_op& operator=(const parked_op&) = delete;
    ~parked_op() = default;

    /// Registers the case with its channel (the caller has just tried it)
    /// and returns. The handler runs later, from the io_context's queue.
    void park() {
        cx_.reset();
        entry_ = wait_entry{&cx_, sel_first_op, nullptr};
        bool ready = false;
        {
            identity_scope lend(this);
            ready = case_.enlist(entry_);
        }
        if (!ready) return;  // on_unpark will resume, maybe already did
        // Ready after all: try again once this call is done (as on_unpark),
        // unless a partner decided the context in between (then on_unpark
        // resumes).
        if (cx_.try_select(sel_aborted)) ready_run::make_ready(io_, *this);
    }

private:
    /// The channel decided the context, under its lock: resume once the
    /// caller is done (asio_ready.hpp; from another thread, through the
    /// io_context's queue).
    static void on_unpark(context& /*cx*/, void* self) noexcept {
        auto* op = static_cast<parked_op*>(self);
        ready_run::make_ready(op->io_, *op);
    }

    static void resume_linked(ready_link& link) { static_cast<parked_op&>(link).resume(); }

    /// On the io_context, once the context was decided: completes, or
    /// registers again (a wake-up that was only a hint, or a close).
    void resume() {
        const std::uintptr_t sel = cx_.selected();
        if (sel != sel_aborted) cx_.wait_released();
        if (sel == sel_first_op) {
            case_.delist_selected(entry_);
        } else {
            case_.delist(entry_);
        }
        std::error_code error;
        bool done = sel == sel_first_op && case_.handed_off();
        if (!done) {
            identity_scope lend(this);
            done = try_fire_or_fail(case_, error);
        }
        if (!done) {
            park();
            return;
        }
        Handler handler(std::move(handler_));
        std::move(handler)(error, case_);  // may destroy *this
    }

    Case case_;
    Handler handler_;
    const io_executor io_;
    wait_entry entry_;
    context cx_{&on_unpark, this, this};
};

}  // namespace zchan::detail

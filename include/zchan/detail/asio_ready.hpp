// Continuations of parked operations (asio_parked.hpp) readied on a thread
// that is running them for the same io_context: they run next, one after
// another, inside the io_context handler that is already running, instead of
// one handler each.
//
// A hand-off between two coroutines on one thread readies one to run while
// the other runs on until it waits. Through the io_context's queue, every
// such wake-up is a handler of its own: an operation object, the scheduler's
// mutex taken and released, a type-erased call. Here the waking side appends
// the parked operation to this thread's run list, and the handler that runs
// the list resumes it once the waking coroutine has suspended, as Go's
// scheduler runs a goroutine it readied next on the same P (runnext). In a
// steady hand-off every wake-up happens inside one handler.
//
// Invariants:
//   * A run belongs to one io_context and one thread: make_ready appends only
//     if the calling thread is inside a run for the operation's io_context;
//     otherwise (another thread, another io_context, no run) the operation
//     goes through the io_context's queue, as a new run.
//   * A continuation never runs inside the call that readied it: it runs
//     when control is back in the run's loop.
//   * A run resumes at most `budget` operations; the ones left, and the ones
//     left when a continuation throws, go back to the io_context's queue as a
//     new run, behind the handlers already queued: a pair of coroutines that
//     keep readying each other cannot starve the rest of the io_context.
//     (So io_context::stop() and run_one() see a run as one handler.)
//
// Thread safety: each thread has its own run; an operation is on at most one
// run list at a time (it is readied once per registration).
#pragma once

#include <asio/defer.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>

namespace zchan::detail {

/// A parked operation as a run list holds it. `resume` continues the
/// operation; the link is free again when it is called.
struct ready_link {
    using resume_fn = void (*)(ready_link&);
    explicit ready_link(resume_fn fn) noexcept : resume(fn) {}

    ready_link* next = nullptr;
    resume_fn resume;
};

/// The operations readied on this thread for one io_context, and the loop
/// that resumes them. Lives on the stack of the handler that runs it.
class ready_run {
public:
    using io_executor = asio::io_context::executor_type;

    /// Operations resumed by one run before it yields to the rest of the
    /// io_context (as await_now_budget, asio_await_now.hpp).
    static constexpr unsigned budget = 64;

    ready_run(const ready_run&) = delete;
    ready_run& operator=(const ready_run&) = delete;

    /// Makes `op` resume on `io`: next in this thread's run if it is running
    /// one for that io_context, else from io's queue in a run of its own.
    static void make_ready(const io_executor& io, ready_link& op) {
        op.next = nullptr;
        ready_run* const r = current();
        if (r != nullptr && r->io_ == &io.context()) {
            r->push(op);
            return;
        }
        asio::defer(io, [io, first = &op] { run(io, first, first); });
    }

private:
    ready_run(const io_executor& io, ready_link* head, ready_link* tail) noexcept
        : io_(&io.context()), head_(head), tail_(tail), outer_(current()) {
        current() = this;
    }

    /// Resumes the list head..tail and what they ready, up to the budget.
    static void run(const io_executor& io, ready_link* head, ready_link* tail) {
        ready_run r(io, head, tail);
        try {
            for (unsigned n = 0; n < budget && r.head_ != nullptr; ++n) {
                ready_link& op = r.pop();
                op.resume(op);
            }
        } catch (...) {
            r.leave(io);
            throw;
        }
        r.leave(io);
    }

    /// Stops collecting on this thread; what is left runs from io's queue.
    void leave(const io_executor& io) {
        current() = outer_;
        if (head_ != nullptr) {
            asio::post(io, [io, h = head_, t = tail_] { run(io, h, t); });
        }
    }

    void push(ready_link& op) noexcept {
        if (tail_ == nullptr) {
            head_ = &op;
        } else {
            tail_->next = &op;
        }
        tail_ = &op;
    }

    ready_link& pop() noexcept {
        ready_link& op = *head_;
        head_ = op.next;
        if (head_ == nullptr) tail_ = nullptr;
        op.next = nullptr;
        return op;
    }

    static ready_run*& current() noexcept {
        thread_local ready_run* run = nullptr;
        return run;
    }

    const asio::io_context* const io_;
    ready_link* head_;
    ready_link* tail_;
    ready_run* const outer_;
};

}  // namespace zchan::detail

// The select loop of chan_base.hpp, driven by events instead of a blocked
// thread: the engine behind zchan/asio.hpp, free of Asio itself.
//
// A blocking select polls, registers one wait entry per case, sleeps in
// context::wait_until, unregisters and looks at the outcome. An async_select
// does the same steps, but its context is woken through a callback
// (context's notify hook) and nobody sleeps: after registering, the step
// returns, and the owner (zchan/asio.hpp) runs resume() on its executor once
// told that an outcome is there. The channels cannot tell the two apart.
//
// Invariants:
//   * One round = reset the context, register, wait for the outcome, look
//     at it, unregister every entry. Entries are only registered during a
//     round, so a step's own try_* never meets its own entries, and
//     identity_scope makes a round's registration skip them as partners
//     (a select with a send and a receive case on one channel must not
//     pair with itself, however many operations share the thread).
//   * The gate: the outcome of a round is looked at only when two things
//     have happened: the round's registration is over (the step that
//     registers may still be enlisting other cases when a channel decides
//     the context), and the outcome is decided (a channel selected the
//     context and called unpark(), or cancel() decided it). Each of the two
//     decrements gate_; whoever takes it to zero calls wake_ once. So wake_
//     runs exactly once per round in which the step did not decide the
//     outcome itself, and never while the step is still running.
//   * Memory ordering: the fetch_sub on gate_ is acq_rel, so everything the
//     deciding party wrote before unpark() (a value moved into a packet)
//     and everything the step wrote while registering is visible to
//     whoever runs resume(). Freeing or reusing the context additionally
//     waits for released() (context::wait_released), because unpark()
//     touches the context once more after calling the hook.
//   * Who owns a value when a cancel races a hand-off: the context's CAS
//     decides. If cancel() wins, no channel can select the context any
//     more; the entries are unregistered under the channels' locks before
//     the outcome is reported, so a value never moved (a send did not
//     send; a receive left it in the channel). If a channel wins, the
//     operation completed: a send did send. A receive has the value; if
//     cancellation was asked for meanwhile it is given back to the head of
//     the channel (select_op::give_back) and the operation reports
//     "cancelled", so that a cancelled receive never swallows a value. A
//     remote channel cannot take a value back: that receive then reports
//     its value, late cancellation notwithstanding.
//
// Thread safety: start() and resume() are called by the owner, one at a
// time (it serialises them through its executor); cancel() may be called
// from any thread at any time; the channels may be used by any threads.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <system_error>
#include <utility>

#include "zchan/async_errc.hpp"
#include "zchan/detail/sync.hpp"
#include "zchan/detail/waker.hpp"
#include "zchan/errors.hpp"
#include "zchan/select.hpp"

namespace zchan::detail {

/// op.try_fire(), its exceptions turned into `error`: true if the case
/// completed, or failed (a send on a closed channel: async_errc::
/// channel_closed; a lost peer: its code); false if it was not ready.
inline bool try_fire_or_fail(select_op& op, std::error_code& error) {
    try {
        return op.try_fire();
    } catch (const channel_closed&) {
        error = make_error_code(async_errc::channel_closed);
    } catch (const transport_error& e) {
        error = e.code();
    }
    return true;
}

template <std::size_t N>
class async_select {
public:
    /// Called when an outcome waits for resume(): from the step itself,
    /// from a channel's unpark() under that channel's lock, or from
    /// cancel(). Must be short and must not call into channels (post).
    using wake_fn = void (*)(void* arg) noexcept;

    /// What finished the select: a case (< N), the default (N) or the
    /// cancellation (N + 1). `error` is set when a case failed: a send case
    /// on a closed channel (async_errc::channel_closed) or a lost peer
    /// (errc::peer_lost); `index` is then that case's.
    struct outcome {
        std::size_t index = 0;
        std::error_code error;
    };
    static constexpr std::size_t default_index = N;
    static constexpr std::size_t cancelled_index = N + 1;

    async_select(const std::array<select_op*, N>& ops, bool has_default, wake_fn wake,
                 void* wake_arg) noexcept
        : ops_(ops),
          has_default_(has_default),
          wake_(wake),
          wake_arg_(wake_arg),
          cx_(&on_unpark, this, this) {}
    async_select(const async_select&) = delete;
    async_select& operator=(const async_select&) = delete;

    /// Runs rounds until the select finishes (true: see result()) or waits
    /// (false: wake_ will be called, then call resume()). `tried`: the
    /// caller has just tried every case and none was ready, so the first
    /// round registers at once (a poll costs a channel's lock per case; the
    /// registration checks readiness again anyway).
    bool start(bool tried = false) {
        skip_poll_ = tried && !has_default_;
        if (skip_poll_) {
            for (std::size_t i = 0; i < N; ++i) order_[i] = i;  // poll() sets it otherwise
        }
        return drive();
    }

    /// After wake_: looks at the outcome; true if finished, false if
    /// waiting again.
    bool resume() {
        if (take_outcome()) return true;
        return drive();
    }

    /// Asks the select to finish as cancelled. Any thread, any time; more
    /// than once is harmless. If a channel has already decided the outcome,
    /// the select finishes with it (see the file comment for values).
    void cancel() noexcept {
        cancel_requested_.store(true, std::memory_order_seq_cst);
        if (cx_.try_select(sel_aborted)) open_gate();
    }

    [[nodiscard]] bool cancel_requested() const noexcept {
        return cancel_requested_.load(std::memory_order_seq_cst);
    }

    [[nodiscard]] const outcome& result() const noexcept { return result_; }

    /// Once finished, before the outcome is reported (on the owner's
    /// executor): a cancellation asked for since a case completed, which
    /// take_outcome has not seen (a case that completed in a poll, or one
    /// asked for while the completion was queued), gives a received value
    /// back as take_outcome does (see the file comment).
    void settle_late_cancel() {
        if (result_.index < N && !result_.error && cancel_requested() &&
            ops_[result_.index]->give_back()) {
            result_ = {cancelled_index, {}};
        }
    }

private:
    /// One round after another until finished (true) or waiting (false).
    bool drive() {
        for (;;) {
            if (cancel_requested()) return finish(cancelled_index, {});
            identity_scope lend(this);
            std::size_t fired = N;
            if (!std::exchange(skip_poll_, false)) {
                if (!poll(fired)) return true;  // a case failed (closed send, lost peer)
                if (fired < N) return finish(fired, {});
            }
            if (has_default_) {
                if (none_ready_at_one_instant(ops_)) return finish(default_index, {});
                continue;
            }
            cx_.reset();
            gate_.store(2, std::memory_order_relaxed);
            bool ready = false;
            registered_ = 0;
            while (registered_ < N) {
                const std::size_t i = order_[registered_++];
                if (ops_[i]->nil()) continue;
                entries_[i] = wait_entry{&cx_, sel_first_op + i, nullptr};
                if (ops_[i]->enlist(entries_[i])) {
                    ready = true;
                    break;
                }
            }
            // A cancel() that ran before reset() found nothing to decide;
            // seeing its flag here (seq_cst, after reset) closes that gap.
            if (!ready && cancel_requested()) ready = true;
            if (ready && cx_.try_select(sel_aborted)) {
                delist_all();
                continue;  // poll again (or finish as cancelled)
            }
            // Waiting, or already decided by a channel or cancel().
            if (gate_.fetch_sub(1, std::memory_order_acq_rel) != 1) return false;
            if (take_outcome()) return true;
        }
    }

    /// Tries the preferred case, then every case in a fresh random order.
    /// False if a case failed (result_ set); `fired` is the case that
    /// completed, or N.
    bool poll(std::size_t& fired) {
        const std::size_t preferred = preferred_;
        preferred_ = N;
        if (preferred < N && try_fire(preferred, fired)) return fired != failed;
        for (std::size_t i = 0; i < N; ++i) {
            const auto j = static_cast<std::size_t>(select_random() % (i + 1));
            order_[i] = order_[j];
            order_[j] = i;
        }
        for (std::size_t k = 0; k < N; ++k) {
            if (try_fire(order_[k], fired)) return fired != failed;
        }
        return true;
    }

    /// try_fire of case i, its exceptions turned into an outcome.
    bool try_fire(std::size_t i, std::size_t& fired) {
        std::error_code error;
        if (!try_fire_or_fail(*ops_[i], error)) return false;
        if (error) {
            result_ = {i, error};
            fired = failed;
        } else {
            fired = i;
        }
        return true;
    }

    /// The outcome of the current round, once the gate opened: true if the
    /// select finished, false to poll again.
    bool take_outcome() {
        const std::uintptr_t sel = cx_.selected();
        // sel_aborted is only ever set by this select (cancel or a ready
        // registration), which calls no unpark(); anything else did.
        if (sel != sel_aborted) cx_.wait_released();
        delist_all(sel);
        if (sel < sel_first_op) return false;  // closed, cancelled: poll again
        const std::size_t i = sel - sel_first_op;
        if (!ops_[i]->handed_off()) {
            preferred_ = i;  // a hint: try that case first
            return false;
        }
        if (cancel_requested() && ops_[i]->give_back()) {
            return finish(cancelled_index, {});
        }
        return finish(i, {});
    }

    /// Unregisters this round's entries; `sel`: the context's outcome, once
    /// released, or sel_aborted (its own: no channel selected anything).
    void delist_all(std::uintptr_t sel = sel_aborted) {
        for (std::size_t k = 0; k < registered_; ++k) {
            const std::size_t i = order_[k];
            if (ops_[i]->nil()) continue;
            if (sel >= sel_first_op && i == sel - sel_first_op) {
                ops_[i]->delist_selected(entries_[i]);
            } else {
                ops_[i]->delist(entries_[i]);
            }
        }
        registered_ = 0;
    }

    bool finish(std::size_t index, std::error_code error) {
        result_ = {index, error};
        return true;
    }

    void open_gate() noexcept {
        if (gate_.fetch_sub(1, std::memory_order_acq_rel) == 1) wake_(wake_arg_);
    }

    /// context's notify hook: a channel decided the outcome (under its lock).
    static void on_unpark(context& /*cx*/, void* self) noexcept {
        static_cast<async_select*>(self)->open_gate();
    }

    static constexpr std::size_t failed = N + 2;

    const std::array<select_op*, N> ops_;
    const bool has_default_;
    const wake_fn wake_;
    void* const wake_arg_;
    std::array<std::size_t, N> order_{};  // the poll order; registration follows it
    std::size_t preferred_ = N;           // the case a hint pointed at
    std::size_t registered_ = 0;          // order_[0, registered_) are enlisted
    bool skip_poll_ = false;              // see start()
    std::array<wait_entry, N> entries_{};
    std::atomic<int> gate_{2};
    std::atomic<bool> cancel_requested_{false};
    outcome result_;
    context cx_;  // last: its address is the identity, its fields are hot together
};

}  // namespace zchan::detail

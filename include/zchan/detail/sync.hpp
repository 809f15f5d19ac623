// Low-level synchronisation for zchan's channels: a spin lock, a backoff
// helper, futex parking and the per-operation wait context.
//
// Why not std::mutex and std::condition_variable: on the machines zchan
// targets a sleep/wake-up pair costs tens of microseconds, while a handoff
// between two running threads costs well under one. Like Go's runtime, zchan
// spins for a bounded time before it parks, and it parks on a futex so that a
// wake-up that finds nobody asleep costs no system call.
//
// Memory ordering: a context's select_ word is the single point of
// arbitration for a blocked operation (or a whole select): whoever moves it
// from `waiting` to something else owns the outcome. All transitions are
// sequentially consistent CASes, so a waker that wins the CAS and a waiter
// that re-checks before sleeping cannot both miss each other (see park()).
#pragma once

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <thread>

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace zchan::detail {

/// Destructive interference size on the CPUs zchan targets (x86-64, most
/// arm64): data written by different threads is kept this far apart, data one
/// hand-off touches together is kept within it.
inline constexpr std::size_t cache_line = 64;

using clock = std::chrono::steady_clock;
using deadline_t = clock::time_point;
/// "No deadline": the largest representable time point.
inline constexpr deadline_t no_deadline = deadline_t::max();

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
}

/// The yield phase of a waiting thread (backoff::snooze, context::wait_until)
/// assumes that sched_yield hands the core to the thread it waits for, or
/// returns at once. On an oversubscribed machine it may hand the core to an
/// unrelated CPU-bound task instead, which keeps it for a whole time slice
/// (2-5 ms measured on the development VM) before the yielder runs again:
/// every hand-off then waits for a time slice, a thousand times slower than
/// one that parks, whose futex wake-up runs the waiter at once. So yields are
/// timed, and a thread whose recent yields cost more than slow_yield each on
/// average (a park and its wake-up cost ~50 us) stops yielding: its budget
/// drops to 0 and it parks after pausing (context::wait_until probes now and
/// then whether yielding pays again). An average, not a single slow yield:
/// among a process's own threads a yield now and then lets a sibling run a
/// long stretch of useful work, and parking at each of those cost an
/// oversubscribed in-process hand-off (8 threads, 2 vCPUs) a fifth of its rate.
inline constexpr std::chrono::microseconds slow_yield{200};
/// The moving average's weight of the latest yield: 1/16.
inline constexpr std::int64_t yield_average_weight = 16;
/// A yield counts as at most this long (a preempted or stopped thread
/// would otherwise dominate the average).
inline constexpr std::chrono::milliseconds max_counted_yield{10};

/// The calling thread's yield budget: how many yielding polls a wait makes
/// before it parks (context::wait_until explains how it adapts); 0 while
/// yields hand the core to other tasks.
inline unsigned& yield_budget() noexcept {
    thread_local unsigned budget = 128;
    return budget;
}

/// One yield to the thread we wait for, timed. False if the thread's yields
/// have become too slow (see slow_yield): its budget is then 0, and the
/// caller should park.
inline bool yield_to_partner() noexcept {
    thread_local std::int64_t average_ns = 0;  // of this thread's recent yields
    const auto start = clock::now();
    sched_yield();
    const std::int64_t took =
        std::min(std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - start),
                 std::chrono::nanoseconds(max_counted_yield))
            .count();
    average_ns += (took - average_ns) / yield_average_weight;
    if (average_ns <= std::chrono::nanoseconds(slow_yield).count()) return true;
    average_ns = 0;  // the next probe measures afresh
    yield_budget() = 0;
    return false;
}

/// Backoff for the two kinds of waiting in zchan's lock-free paths.
///
/// spin(): after a failed CAS (contention): a few pauses, growing.
/// snooze(): while waiting for another thread to change something (a slot
/// to fill or drain): poll after every single pause first, since a pause
/// costs ~50 ns on some virtual machines and the partner usually answers
/// within a microsecond; then sched_yield, so that on an oversubscribed
/// machine the thread we are waiting for gets the core, unless yields go to
/// other tasks (yield_to_partner). is_completed() says when to stop polling
/// and park instead.
class backoff {
public:
    void spin() noexcept {
        for (unsigned i = 0; i < (1u << spin_step_); ++i) cpu_relax();
        if (spin_step_ < spin_limit) ++spin_step_;
    }
    void snooze() noexcept {
        if (step_ < poll_limit) {
            cpu_relax();
        } else if (yield_budget() == 0 || !yield_to_partner()) {
            step_ = yield_limit;  // yields go to other tasks: the caller parks now
            return;
        }
        ++step_;
    }
    [[nodiscard]] bool is_completed() const noexcept { return step_ >= yield_limit; }

private:
    static constexpr unsigned spin_limit = 3;
    static constexpr unsigned poll_limit = 32;
    static constexpr unsigned yield_limit = poll_limit + 4;
    unsigned spin_step_ = 0;
    unsigned step_ = 0;
};

/// Polls while `held()`, as a spinning lock waits for its holder: holders
/// keep a lock for well under a microsecond, so poll often, and yield only
/// when the holder seems to have lost its core.
template <class Held>
void spin_while(Held held) noexcept {
    for (unsigned i = 0; held(); ++i) {
        if (i < 128) {
            cpu_relax();
        } else {
            sched_yield();
        }
    }
}

/// A test-and-test-and-set lock that never sleeps in the kernel. Critical
/// sections in zchan are a few dozen instructions (list edits, a CAS, a
/// move of one value), so spinning, then yielding, beats a futex mutex whose
/// contended path costs a sleep/wake-up.
///
/// Thread safety: safe; that is its purpose.
class spin_lock {
public:
    void lock() noexcept {
        for (;;) {
            if (!locked_.exchange(true, std::memory_order_acquire)) return;
            spin_while([this] { return locked_.load(std::memory_order_relaxed); });
        }
    }
    bool try_lock() noexcept {
        return !locked_.load(std::memory_order_relaxed) &&
               !locked_.exchange(true, std::memory_order_acquire);
    }
    void unlock() noexcept { locked_.store(false, std::memory_order_release); }

private:
    std::atomic<bool> locked_{false};
};

/// Futex wait on `word` while it equals `expected`, until the absolute
/// steady-clock `deadline` (CLOCK_MONOTONIC, which is what steady_clock is on
/// Linux). Spurious returns are allowed; callers loop.
inline void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                       deadline_t deadline) noexcept {
    static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));
    timespec ts{};
    timespec* tsp = nullptr;
    if (deadline != no_deadline) {
        auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch());
        if (ns.count() < 0) ns = std::chrono::nanoseconds(0);
        ts.tv_sec = static_cast<time_t>(ns.count() / 1'000'000'000);
        ts.tv_nsec = static_cast<long>(ns.count() % 1'000'000'000);
        tsp = &ts;
    }
    // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC timeout.
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_BITSET_PRIVATE, expected,
            tsp, nullptr, FUTEX_BITSET_MATCH_ANY);
}

inline void futex_wake_one(std::atomic<std::uint32_t>& word) noexcept {
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, 1, nullptr,
            nullptr, 0);
}

/// The identity an asynchronous operation lends to the thread that runs its
/// steps (identity_scope); nullptr when none does.
inline const void*& lent_identity() noexcept {
    static thread_local const void* identity = nullptr;
    return identity;
}

/// Identity of the calling thread, cheap to read (no syscall), or of the
/// asynchronous operation it is running a step of. Wait lists use it so
/// that a select never pairs with itself: for a blocking select that is
/// its thread; for an asynchronous one (zchan/asio.hpp) it is the
/// operation, since many of them share one thread and must pair with
/// each other, and one may run its steps on different threads in turn.
inline const void* current_thread_id() noexcept {
    static thread_local char tag;
    const void* lent = lent_identity();
    return lent != nullptr ? lent : &tag;
}

/// Lends `identity` to the calling thread for the scope's lifetime.
/// Thread safety: affects the calling thread only.
class identity_scope {
public:
    explicit identity_scope(const void* identity) noexcept : saved_(lent_identity()) {
        lent_identity() = identity;
    }
    identity_scope(const identity_scope&) = delete;
    identity_scope& operator=(const identity_scope&) = delete;
    ~identity_scope() { lent_identity() = saved_; }

private:
    const void* saved_;
};

/// Values of context::select_.
inline constexpr std::uintptr_t sel_waiting = 0;  ///< nobody has decided yet
inline constexpr std::uintptr_t sel_aborted =
    1;                                           ///< the waiter gave up (deadline) or saw readiness
inline constexpr std::uintptr_t sel_closed = 2;  ///< a channel was closed: re-examine
inline constexpr std::uintptr_t sel_first_op = 3;  ///< op k (k >= 0) is sel_first_op + k

/// The waiting state of one blocked operation or one select. It lives on the
/// waiting thread's stack (or, for a transport, in its I/O loop).
///
/// Protocol: a waker may CAS select_ from sel_waiting to an operation or to
/// sel_closed, and then calls unpark(), both while holding the lock of the
/// channel on whose wait list it found this context. The waiter, after its
/// wait returns, takes the lock of every channel it registered on (to
/// unregister) before it touches the outcome or leaves the stack frame, so a
/// waker never touches a dead context and any value handed over under that
/// lock is visible.
///
/// Thread safety: try_select/unpark from any thread; wait_until only by the
/// owner.
class context {
public:
    /// A hook that replaces the futex wake-up, for transports whose "waiter"
    /// is an event loop rather than a thread. Called under the channel lock:
    /// it must be short and must not call into channels.
    using notify_fn = void (*)(context&, void* arg) noexcept;

    context() noexcept = default;
    // An event-loop context has no thread identity: any thread, the loop's own
    // included, may be its counterpart.
    context(notify_fn fn, void* arg) noexcept
        : thread_id_(nullptr), notify_(fn), notify_arg_(arg) {}
    // An asynchronous operation's context: woken through `fn` like an event
    // loop's, but with an identity of its own (see current_thread_id), so
    // that it counts as a waiter that acts on a wake-up (sync_waker::notify).
    context(notify_fn fn, void* arg, const void* identity) noexcept
        : thread_id_(identity), notify_(fn), notify_arg_(arg) {}
    context(const context&) = delete;
    context& operator=(const context&) = delete;

    /// Claims the outcome; true if this call decided it.
    bool try_select(std::uintptr_t sel) noexcept {
        std::uintptr_t expected = sel_waiting;
        return select_.compare_exchange_strong(expected, sel, std::memory_order_seq_cst,
                                               std::memory_order_seq_cst);
    }

    [[nodiscard]] std::uintptr_t selected() const noexcept {
        return select_.load(std::memory_order_seq_cst);
    }

    /// Makes the context reusable for another wait by its owner.
    void reset() noexcept {
        select_.store(sel_waiting, std::memory_order_relaxed);
        released_.store(false, std::memory_order_relaxed);
    }

    [[nodiscard]] const void* thread_id() const noexcept { return thread_id_; }
    /// Gives an event-loop context the identity of a group of waits that
    /// must not pair with each other (a remote select's requests at its
    /// home, select_groups.hpp). Only while the context is on no wait list.
    void set_identity(const void* identity) noexcept { thread_id_ = identity; }

    /// Wakes the owner after a successful try_select by someone else. It is
    /// the selecting party's last touch of the context: once released() is
    /// true the owner may leave the frame the context lives in (see
    /// wait_released), so nothing here reads *this after that store; the
    /// futex wake-up only passes the word's address to the kernel, and a
    /// wake-up that reaches a reused address is spurious, which every futex
    /// waiter tolerates.
    void unpark() noexcept {
        if (notify_ != nullptr) {
            notify_(*this, notify_arg_);
            released_.store(true, std::memory_order_release);
            return;
        }
        std::atomic<std::uint32_t>* const word = &sleeping_;
        // Pairs with the store-then-load in wait_until: seq_cst on both
        // sides, and the try_select CAS before this load is seq_cst too, so a
        // waiter that stored 1 after this load read 0 sees the selection and
        // does not sleep. Loading first skips a locked write on the line the
        // owner is polling when it is spinning, the common case.
        const bool asleep = sleeping_.load(std::memory_order_seq_cst) != 0 &&
                            sleeping_.exchange(0, std::memory_order_seq_cst) != 0;
        released_.store(true, std::memory_order_release);
        if (asleep) futex_wake_one(*word);
    }

    /// Whether the selecting party's unpark() has finished (see wait_released).
    [[nodiscard]] bool released() const noexcept {
        return released_.load(std::memory_order_acquire);
    }
    /// Owner only, after wait_until returned an outcome someone else
    /// selected: waits until that party's unpark() is finished with the
    /// context. Everything it wrote before unpark() (a value handed over
    /// into the owner's packet) is then visible. The party is between its
    /// CAS and its unpark() for a few instructions, so this spins; it
    /// yields only if that party lost its core meanwhile.
    void wait_released() const noexcept {
        for (unsigned i = 0; !released_.load(std::memory_order_acquire); ++i) {
            if (i < 1024) {
                cpu_relax();
            } else {
                sched_yield();
            }
        }
    }

    /// The bounds of a thread's yield budget (see wait_until).
    static constexpr unsigned max_yields = 128;  // ~90 us of polls: two futex wake-ups
    static constexpr unsigned min_yields = 4;    // for a partner about to answer
    /// While the budget is 0, one wait in this many tries min_yields yields
    /// again, so that a thread finds out when the machine is no longer
    /// oversubscribed (at most one slow yield per this many waits).
    static constexpr unsigned probe_every = 64;

    /// Where a wait ended.
    enum class wait_phase { pausing, yielding, parked };
    /// The yield budget after a wait that ended in `phase`: unchanged while
    /// pausing, doubled while yielding, halved if it parked. (Yields that
    /// turned slow set it to 0 instead: yield_to_partner.)
    [[nodiscard]] static constexpr unsigned next_yields(unsigned yields,
                                                        wait_phase phase) noexcept {
        switch (phase) {
            case wait_phase::pausing:
                return yields;
            case wait_phase::yielding:
                return std::min(max_yields, yields * 2);
            case wait_phase::parked:
                return std::max(min_yields, yields / 2);
        }
        return yields;
    }
    /// The calling thread's current yield budget; for tests and diagnostics.
    [[nodiscard]] static unsigned yields_before_park() noexcept { return yield_budget(); }

    /// Spins for a bounded time, then parks until selected or `deadline`.
    /// On timeout it tries to select sel_aborted itself; whatever won is
    /// returned.
    std::uintptr_t wait_until(deadline_t deadline) noexcept {
        // Phase 1: spin. A partner running on another core answers a handoff
        // within a few hundred ns (well inside spin_pauses, ~1 us of pauses
        // on the development VM, where a pause costs ~27 ns); parking would
        // cost ~50 us. After that, yield on every poll: if the partner shares
        // our core (a loaded machine), pausing only delays it, and a yield
        // hands it the core at once (~0.7 us, measured: a same-core handoff
        // went from 3.4 us of pausing to 1.5-2x the throughput); if it does
        // not, a yield returns at once and is just a slower poll. But if
        // yields give the core to other tasks for time slices (an
        // oversubscribed machine: yield_to_partner), park instead.
        //
        // How many yields: this thread's yield budget, which adapts as
        // adaptive spinning does (a spin-then-park lock's, or the JVM's). A
        // wait that ended while yielding doubles it, up to max_yields; one
        // that had to park halves it, down to min_yields. A thread whose
        // partner answers while it yields (a hand-off on a shared core)
        // keeps yielding; one whose waits outlast the yields (a consumer fed
        // in bursts from the network) stops paying up to 128 system calls
        // before every park. Yields that turned slow set it to 0: the thread
        // parks after pausing, and one wait in probe_every tries min_yields
        // yields to find out whether yielding pays again.
        unsigned& yields = yield_budget();
        unsigned budget = yields;
        if (budget == 0 && ++probe_count() >= probe_every) {
            probe_count() = 0;
            budget = min_yields;
        }
        const unsigned iterations = spin_pauses + budget;
        bool crowded = false;
        for (unsigned i = 0; i < iterations; ++i) {
            std::uintptr_t s = select_.load(std::memory_order_acquire);
            if (s != sel_waiting) {
                if (i > spin_pauses && !crowded) {
                    yields = next_yields(budget, wait_phase::yielding);
                }
                return s;
            }
            if (i < spin_pauses) {
                cpu_relax();
            } else if (deadline != no_deadline && clock::now() >= deadline) {
                break;  // no time left to give away
            } else if (!yield_to_partner()) {
                crowded = true;  // the budget is 0 now: park
                break;
            }
        }
        if (!crowded && budget != 0) yields = next_yields(budget, wait_phase::parked);
        // Phase 2: park.
        for (;;) {
            sleeping_.store(1, std::memory_order_seq_cst);
            std::uintptr_t s = select_.load(std::memory_order_seq_cst);
            if (s != sel_waiting) {
                sleeping_.store(0, std::memory_order_relaxed);
                return s;
            }
            if (deadline != no_deadline && clock::now() >= deadline) {
                sleeping_.store(0, std::memory_order_relaxed);
                if (try_select(sel_aborted)) return sel_aborted;
                return selected();
            }
            futex_wait(sleeping_, 1, deadline);
        }
    }

private:
    static constexpr unsigned spin_pauses = 32;
    static_assert(max_yields == 128, "yield_budget() starts at max_yields");
    /// Waits since the budget dropped to 0 or the last probe.
    static unsigned& probe_count() noexcept {
        thread_local unsigned count = 0;
        return count;
    }

    std::atomic<std::uintptr_t> select_{sel_waiting};
    std::atomic<std::uint32_t> sleeping_{0};
    std::atomic<bool> released_{false};  ///< set by unpark(), last; see wait_released
    const void* thread_id_ = current_thread_id();
    notify_fn notify_ = nullptr;
    void* notify_arg_ = nullptr;
};

}  // namespace zchan::detail

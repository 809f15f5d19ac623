// Test helpers shared by the unit, integration and stress suites.
//
// Synchronisation rule for every test: threads are lined up with latches and
// atomics, never with sleeps. The only timed waits are bounded ones:
//   * positive waits ("this must happen before the deadline") fail the test
//     instead of hanging it when a bug loses a wake-up;
//   * negative checks ("this has NOT happened yet") give the other thread
//     ample opportunity and then look; they can only produce false passes on
//     a very slow machine, never false failures.
//
// Thread safety: every helper here may be used from any thread; a single
// background_call object is owned by the thread that created it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <functional>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <sys/wait.h>

namespace zchan_test {

using clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

/// True in ASan/TSan builds, where everything runs several times slower.
#if defined(ZCHAN_SANITIZED) && ZCHAN_SANITIZED
inline constexpr bool sanitized = true;
#else
inline constexpr bool sanitized = false;
#endif

/// Shrinks a workload size under sanitizers (by 10x, never below 1) so each test
/// stays well under its CTest timeout there.
[[nodiscard]] constexpr std::size_t scale(std::size_t n) noexcept {
    if constexpr (sanitized) {
        return n / 10 > 0 ? n / 10 : 1;
    } else {
        return n;
    }
}

/// How long a positive wait may take before it is a failure. Generous: the
/// machine is shared and sanitized builds are slow; a correct run never gets near it.
inline constexpr std::chrono::milliseconds generous = sanitized ? 20'000ms : 10'000ms;

/// How long a negative check waits before concluding "still blocked".
inline constexpr std::chrono::milliseconds ample = 50ms;

/// Returns the steady-clock time point `ms` from now.
[[nodiscard]] inline clock::time_point deadline_after(std::chrono::milliseconds ms) {
    return clock::now() + ms;
}
[[nodiscard]] inline clock::time_point deadline_after(long long ms) {
    return deadline_after(std::chrono::milliseconds(ms));
}

namespace detail {
/// Polling back-off for the bounded waits below: yield at first (fast
/// reaction), then sleep briefly so a long wait does not burn a shared core.
/// The sleep is only the polling interval; no ordering depends on it.
inline void backoff(int& round) {
    if (round < 200) {
        ++round;
        std::this_thread::yield();
    } else {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
}
}  // namespace detail

/// Polls until `pred()` is true or `deadline` passes. Returns the last value of
/// `pred()`. Used for bounded positive waits.
template <class Pred>
[[nodiscard]] bool wait_until(Pred&& pred, clock::time_point deadline) {
    int round = 0;
    while (!pred()) {
        if (clock::now() >= deadline) return pred();
        detail::backoff(round);
    }
    return true;
}

/// Negative check: polls for `window` and returns true if `pred()` stayed false
/// throughout. A false result proves `pred()` became true.
template <class Pred>
[[nodiscard]] bool stays_false_for(Pred&& pred, std::chrono::milliseconds window = ample) {
    const auto end = clock::now() + window;
    int round = 0;
    while (clock::now() < end) {
        if (pred()) return false;
        detail::backoff(round);
    }
    return !pred();
}

/// A start line for N worker threads plus the coordinating thread: each worker
/// calls arrive_and_wait(); the coordinator calls open() once it is ready, which
/// releases everybody at once (maximises contention in races).
class start_gate {
public:
    explicit start_gate(std::ptrdiff_t workers) : latch_(workers + 1) {}
    void arrive_and_wait() { latch_.arrive_and_wait(); }
    void open() { latch_.arrive_and_wait(); }

private:
    std::latch latch_;
};

/// Runs a callable on its own thread and records, with an atomic, when it has
/// returned (or thrown). Lets a test assert "has not returned yet" (negative
/// check) and "returns before the deadline" (positive wait).
///
/// The destructor joins; if the call is still blocked after `generous`, the
/// process aborts with a message rather than hanging until the CTest timeout.
/// Tests must therefore unblock the call (close the channel, receive...) before
/// the object goes out of scope.
class background_call {
public:
    template <class F>
    // NOLINTNEXTLINE(bugprone-forwarding-reference-overload): copy and move are deleted
    explicit background_call(F&& f) {
        started_ = std::make_unique<std::latch>(1);
        thread_ = std::thread([this, fn = std::forward<F>(f)]() mutable {
            started_->count_down();
            try {
                fn();
            } catch (...) {
                exception_ = std::current_exception();
            }
            done_.store(true, std::memory_order_release);
        });
        started_->wait();  // the thread exists and is about to make the call
    }

    background_call(const background_call&) = delete;
    background_call& operator=(const background_call&) = delete;

    ~background_call() {
        if (!wait_done(deadline_after(generous))) {
            std::fprintf(stderr, "background_call: call still blocked at destruction; aborting\n");
            std::fflush(stderr);
            std::abort();
        }
        thread_.join();
    }

    /// True once the callable has returned or thrown.
    [[nodiscard]] bool done() const noexcept { return done_.load(std::memory_order_acquire); }

    /// Positive wait: true if the call returned before `deadline`.
    [[nodiscard]] bool wait_done(clock::time_point deadline) const {
        return wait_until([this] { return done(); }, deadline);
    }
    [[nodiscard]] bool wait_done() const { return wait_done(deadline_after(generous)); }

    /// Negative check: true if the call is still blocked after `window`.
    [[nodiscard]] bool still_blocked_after(std::chrono::milliseconds window = ample) const {
        return stays_false_for([this] { return done(); }, window);
    }

    /// The exception the call threw, if any (read after done()).
    [[nodiscard]] std::exception_ptr exception() const noexcept { return exception_; }

    /// Rethrows the call's exception, if any (read after done()).
    void rethrow() const {
        if (exception_) std::rethrow_exception(exception_);
    }

private:
    std::unique_ptr<std::latch> started_;
    std::atomic<bool> done_{false};
    std::exception_ptr exception_;  // written by the call thread before done_ (release)
    std::thread thread_;
};

/// Asserts that `call` does not complete before `event` runs, and does complete
/// after it: starts `call` on its own thread, checks it is still blocked after
/// giving it ample opportunity (negative check), runs `event` on this thread,
/// then waits (bounded) for `call` to return. If `call` returns early, `event`
/// is not run. Use as EXPECT_TRUE(blocks_until(call, event)).
template <class Call, class Event>
[[nodiscard]] ::testing::AssertionResult blocks_until(Call&& call, Event&& event) {
    background_call bg(std::forward<Call>(call));
    if (!bg.still_blocked_after()) {
        return ::testing::AssertionFailure() << "the call returned before the event";
    }
    std::forward<Event>(event)();
    if (!bg.wait_done()) {
        // The destructor will abort: better than a silent hang.
        return ::testing::AssertionFailure() << "the call did not return after the event";
    }
    return ::testing::AssertionSuccess();
}

/// Returns true if `fn` throws exactly an `E` (or a type derived from it).
template <class E, class F>
[[nodiscard]] bool throws(F&& fn) {
    try {
        std::forward<F>(fn)();
    } catch (const E&) {
        return true;
    } catch (...) {
        return false;
    }
    return false;
}

/// The result of running a child program.
struct run_result {
    int exit_code = -1;              ///< exit status, or -1 if it did not exit normally
    std::string out;                 ///< everything the child wrote on stdout
    std::vector<std::string> lines;  ///< `out` split on '\n' (no trailing empty line)
};

/// Runs `command` through the shell (popen) and captures its standard output.
/// The command should bound its own run time (the child programs the tests run
/// take options that make them finish quickly); CTest's timeout is the backstop.
[[nodiscard]] inline run_result run_program(const std::string& command) {
    run_result r;
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) return r;
    char buf[4096];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) r.out.append(buf, n);
    const int status = ::pclose(pipe);
    if (status != -1 && WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
    std::size_t start = 0;
    while (start < r.out.size()) {
        const std::size_t nl = r.out.find('\n', start);
        if (nl == std::string::npos) {
            r.lines.push_back(r.out.substr(start));
            break;
        }
        r.lines.push_back(r.out.substr(start, nl - start));
        start = nl + 1;
    }
    return r;
}

/// A /proc/self/status field of this process in kB (VmRSS, VmHWM = peak RSS), or -1.
[[nodiscard]] inline long status_kb(const std::string& field) {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
    }
    return -1;
}

}  // namespace zchan_test

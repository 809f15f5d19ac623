// Small pieces of the zchan command-line tool: a table-driven argument
// parser and interruption by signals. Standard library and POSIX only.
//
// Thread safety: args belongs to the main thread; interrupt
// is built by the main thread before any other thread exists (so every
// thread inherits its signal mask) and its accessors are safe from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <zchan/channel.hpp>
#include "cli_args/cli_args.hpp"

namespace zchan_cli {

/// Exit codes (README "Command-line tool").
inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;          ///< connect, type mismatch, peer lost, closed
inline constexpr int exit_usage = 2;            ///< bad arguments
inline constexpr int exit_interrupted = 130;    ///< SIGINT/SIGTERM stopped send or recv (128+2)
inline constexpr int exit_timeout = 124;        ///< send/recv --timeout expired (as timeout(1))
inline constexpr int exit_stdout_closed = 141;  ///< recv's stdout closed (128+SIGPIPE)

/// The text of a library error as a command-line user needs it: without the
/// "zchan: " prefix and the error code's own name at the end, with the
/// options and ZCHAN_CURVE_* variables in place of net_options fields, and,
/// for a dial that got no answer or a bind that failed, whether the host of
/// `endpoint` resolves at all.
std::string cli_message(const std::exception& e, std::string_view endpoint = {});

/// The host of a tcp:// endpoint ("" for other transports, '*' or a bad one).
std::string tcp_host(std::string_view endpoint);

/// "zchan VERSION", for --version.
std::string version_line();

/// SIGINT and SIGTERM, turned from asynchronous signals into events: a
/// thread waits for them with sigwait and then closes stop() (so a
/// zchan::select can take it as a case) and makes fd() readable (so poll(2)
/// can). SIGPIPE is ignored: a closed stdout is an EPIPE write error.
///
/// Thread safety: construct on the main thread before any other thread
/// starts; the accessors are safe from any thread.
class interrupt {
public:
    interrupt();
    ~interrupt();
    interrupt(const interrupt&) = delete;
    interrupt& operator=(const interrupt&) = delete;

    /// Closed once a signal arrived.
    [[nodiscard]] const zchan::channel<int>& stop() const noexcept { return stop_; }
    /// An eventfd that becomes readable once a signal arrived.
    [[nodiscard]] int fd() const noexcept { return fd_; }
    /// The signal that arrived, 0 if none yet.
    [[nodiscard]] int signal() const noexcept { return sig_.load(std::memory_order_acquire); }

private:
    zchan::channel<int> stop_;  // unbuffered; only ever closed
    int fd_ = -1;
    std::atomic<int> sig_{0};
    std::atomic<bool> done_{false};
    std::thread waiter_;
};

}  // namespace zchan_cli

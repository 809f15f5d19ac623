// Values on stdin and stdout for `zchan send` and `zchan recv`: the three
// framings (lines, NUL-terminated, netstrings) and, for recv, a writer that
// loses at most one value when its reader goes away.
//
// Thread safety: a value_reader or value_writer belongs to one thread (the
// main thread); value_writer's own watcher thread only closes gone().
#pragma once

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

#include <zchan/channel.hpp>

namespace zchan_cli {

/// How values are delimited on stdin/stdout (README "Command-line tool").
enum class framing {
    line,       ///< each value ends with '\n' (a last line without one counts too)
    nul,        ///< each value ends with '\0' (-0): any bytes but NUL
    netstring,  ///< "LEN:BYTES," (djb's netstrings): any bytes at all
};

/// Parses --framing's value. Throws: usage_error.
framing parse_framing(std::string_view text);

/// Bad input under --framing netstring: main prints it, exit 1.
struct framing_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// Reads values from a file descriptor; gives up when `stop_fd` becomes readable.
class value_reader {
public:
    /// `max_value`: a longer value is a framing_error (netstrings) or is
    /// still read whole (lines, NUL) and left to the caller to refuse.
    value_reader(int fd, int stop_fd, framing f, std::size_t max_value)
        : fd_(fd), stop_fd_(stop_fd), framing_(f), max_value_(max_value) {}
    /// The next value; nullopt at end of input or once stopped.
    /// Throws: std::system_error (read error), framing_error (bad netstring).
    [[nodiscard]] std::optional<std::string> next();

private:
    bool fill();  // false at end of input or once stopped
    std::optional<std::string> next_delimited(char end);
    std::optional<std::string> next_netstring();

    int fd_;
    int stop_fd_;
    framing framing_;
    std::size_t max_value_;
    std::string buf_;
    std::size_t pos_ = 0;
    bool eof_ = false;
};

/// stdout went away (EPIPE): `written` values reached it.
struct output_closed : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// Writes values to a file descriptor for `zchan recv`.
///
/// On a pipe, recv is paced by its reader: it asks for a value only once the
/// reader has taken everything written before (wait_ready), and writes that
/// value at once; so a reader that stops early (`zchan recv | head -3`) loses
/// at most the one value being written when it exits, and every other value
/// stays in the channel or goes back to it. Elsewhere (a file, a terminal),
/// or on a pipe with `pace` false (--batch), values are buffered and written
/// whenever recv is about to wait or 64 KiB are buffered.
class value_writer {
public:
    value_writer(int fd, framing f, int stop_fd, bool pace = true);
    ~value_writer();
    value_writer(const value_writer&) = delete;
    value_writer& operator=(const value_writer&) = delete;

    [[nodiscard]] bool paced() const noexcept { return paced_; }
    /// Closed once the reader has closed its end of the pipe (paced only).
    [[nodiscard]] const zchan::channel<int>& gone() const noexcept { return gone_; }
    /// Paced: waits until the reader has taken all that was written; false
    /// if the reader is gone or stop_fd became readable. Else true at once.
    [[nodiscard]] bool wait_ready();
    /// Writes (paced) or buffers one value. Throws: output_closed, std::system_error.
    void put(const std::string& v);
    /// Writes what is buffered. Throws: output_closed, std::system_error.
    void flush();

private:
    void write_all(const char* p, std::size_t n);
    void frame(const std::string& v);

    int fd_;
    framing framing_;
    int stop_fd_;
    bool paced_ = false;
    bool one_page_ = false;  // paced, on a pipe shrunk to one page (see wait_ready)
    std::string buf_;
    zchan::channel<int> gone_;  // unbuffered; only ever closed
    int quit_fd_ = -1;          // eventfd: ends the watcher
    std::thread watcher_;
};

}  // namespace zchan_cli

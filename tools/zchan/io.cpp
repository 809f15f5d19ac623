// See io.hpp.
#include "io.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <system_error>

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.hpp"

namespace zchan_cli {

framing parse_framing(std::string_view text) {
    if (text == "line") return framing::line;
    if (text == "nul") return framing::nul;
    if (text == "netstring") return framing::netstring;
    throw usage_error("--framing: expected line, nul or netstring, got \"" + std::string(text) +
                      "\"");
}

bool value_reader::fill() {
    buf_.erase(0, pos_);
    pos_ = 0;
    for (;;) {
        pollfd fds[2] = {{fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            throw std::system_error(errno, std::generic_category(), "poll");
        }
        if ((fds[1].revents & POLLIN) != 0) return false;  // interrupted
        char chunk[65536];
        const ssize_t n = ::read(fd_, chunk, sizeof chunk);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            throw std::system_error(errno, std::generic_category(), "cannot read stdin");
        }
        if (n == 0) {
            eof_ = true;
            return false;
        }
        buf_.append(chunk, static_cast<std::size_t>(n));
        return true;
    }
}

std::optional<std::string> value_reader::next() {
    if (framing_ == framing::netstring) return next_netstring();
    return next_delimited(framing_ == framing::nul ? '\0' : '\n');
}

std::optional<std::string> value_reader::next_delimited(char end) {
    std::size_t scanned = 0;  // bytes after pos_ already searched for `end`
    for (;;) {
        if (auto at = buf_.find(end, pos_ + scanned); at != std::string::npos) {
            std::string v = buf_.substr(pos_, at - pos_);
            pos_ = at + 1;
            return v;
        }
        if (eof_) {
            if (pos_ >= buf_.size()) return std::nullopt;
            std::string v = buf_.substr(pos_);  // a last value without its terminator
            pos_ = buf_.size();
            return v;
        }
        scanned = buf_.size() - pos_;
        if (!fill() && !eof_) return std::nullopt;  // stopped
    }
}

std::optional<std::string> value_reader::next_netstring() {
    for (;;) {
        // Whitespace between netstrings is allowed (a trailing newline, say).
        while (pos_ < buf_.size() &&
               (buf_[pos_] == '\n' || buf_[pos_] == '\r' || buf_[pos_] == ' ')) {
            ++pos_;
        }
        const auto colon = buf_.find(':', pos_);
        if (colon != std::string::npos) {
            std::uint64_t len = 0;
            const char* first = buf_.data() + pos_;
            const char* last = buf_.data() + colon;
            const auto r = std::from_chars(first, last, len);
            if (first == last || r.ec != std::errc{} || r.ptr != last || len > max_value_) {
                throw framing_error("bad netstring length \"" + buf_.substr(pos_, colon - pos_) +
                                    "\" (expected LEN:BYTES, with LEN at most " +
                                    std::to_string(max_value_) + ")");
            }
            const std::size_t need = colon + 1 + static_cast<std::size_t>(len) + 1;
            if (buf_.size() >= need) {
                if (buf_[need - 1] != ',') {
                    throw framing_error("netstring of " + std::to_string(len) +
                                        " bytes does not end with ','");
                }
                std::string v = buf_.substr(colon + 1, static_cast<std::size_t>(len));
                pos_ = need;
                return v;
            }
        } else if (buf_.size() - pos_ > 20) {
            throw framing_error("bad netstring: no ':' within 20 bytes");
        }
        if (eof_) {
            if (pos_ >= buf_.size()) return std::nullopt;
            throw framing_error("input ends inside a netstring");
        }
        if (!fill() && !eof_) return std::nullopt;  // stopped
    }
}

value_writer::value_writer(int fd, framing f, int stop_fd, bool pace)
    : fd_(fd), framing_(f), stop_fd_(stop_fd) {
    struct stat st {};
    paced_ = pace && ::fstat(fd_, &st) == 0 && S_ISFIFO(st.st_mode);
    if (!paced_) return;
    // A pipe of one page has one buffer slot, and Linux reports POLLOUT on
    // its write end only while no slot is in use: POLLOUT then means "the
    // reader has taken everything", an event to wait for instead of a
    // condition to look at. (Not allowed when the pipe holds more than a
    // page already: then wait_ready looks, as below.)
    const long page = ::sysconf(_SC_PAGESIZE);
    one_page_ = page > 0 && ::fcntl(fd_, F_SETPIPE_SZ, static_cast<int>(page)) == page;
    quit_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (quit_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
    // The write end of a pipe reports POLLERR once no reader is left.
    watcher_ = std::thread([this] {
        for (;;) {
            pollfd fds[2] = {{fd_, 0, 0}, {quit_fd_, POLLIN, 0}};
            if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
            if ((fds[1].revents & POLLIN) != 0) return;
            if ((fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) {
                gone_.close();
                return;
            }
        }
    });
}

value_writer::~value_writer() {
    if (watcher_.joinable()) {
        const std::uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(quit_fd_, &one, sizeof one);
        watcher_.join();
    }
    if (quit_fd_ >= 0) ::close(quit_fd_);
}

bool value_writer::wait_ready() {
    if (!paced_) return true;
    if (one_page_) {
        for (;;) {
            pollfd fds[2] = {{fd_, POLLOUT, 0}, {stop_fd_, POLLIN, 0}};
            if (::poll(fds, 2, -1) < 0) {
                if (errno == EINTR) continue;
                return true;  // cannot tell: do not pace
            }
            if ((fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) return false;
            if ((fds[1].revents & POLLIN) != 0) return false;
            if ((fds[0].revents & POLLOUT) != 0) return true;
        }
    }
    // No event says "the pipe is empty": look, and between looks sleep in
    // poll (which also ends on a signal or a reader that left), 20 us at
    // first, doubling up to 2 ms for a slow reader.
    int wait_us = 0;
    for (;;) {
        int queued = 0;
        if (::ioctl(fd_, FIONREAD, &queued) != 0) return true;  // cannot tell: do not pace
        pollfd fds[2] = {{fd_, 0, 0}, {stop_fd_, POLLIN, 0}};
        const timespec ts{0, static_cast<long>(wait_us) * 1000};
        if (::ppoll(fds, 2, &ts, nullptr) > 0) {
            if ((fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) return false;
            if ((fds[1].revents & POLLIN) != 0) return false;
        }
        if (queued == 0) return true;
        wait_us = wait_us == 0 ? 20 : std::min(wait_us * 2, 2000);
    }
}

void value_writer::frame(const std::string& v) {
    if (framing_ == framing::netstring) {
        buf_ += std::to_string(v.size());
        buf_ += ':';
        buf_ += v;
        buf_ += ',';
    } else {
        buf_ += v;
        buf_ += framing_ == framing::nul ? '\0' : '\n';
    }
}

void value_writer::put(const std::string& v) {
    frame(v);
    if (paced_ || buf_.size() >= (1U << 16)) flush();
}

void value_writer::flush() {
    write_all(buf_.data(), buf_.size());
    buf_.clear();
}

void value_writer::write_all(const char* p, std::size_t n) {
    std::size_t done = 0;
    while (done < n) {
        const ssize_t w = ::write(fd_, p + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EPIPE) throw output_closed("stdout closed");
        if (w <= 0) throw std::system_error(errno, std::generic_category(), "cannot write stdout");
        done += static_cast<std::size_t>(w);
    }
}

}  // namespace zchan_cli

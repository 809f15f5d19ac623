// zchan_bench_net's harness: peer processes, their control pipes, item counts and timeouts,
// shared by the raw cppzmq cases (net_raw.hpp) and the zchan cases that will sit beside them.
//
// Process model. Every case runs its peer (a sender, an echo server, the seed's message
// server) in a separate OS process: the benchmark binary re-executes itself through
// /proc/self/exe with `--zchan-bench-child=<role>` as its first argument, and main() hands that
// to run_child() before Google Benchmark sees argv. The child starts from a fresh image, so no
// zmq context (nor libzmq's I/O threads) crosses fork(); between fork() and execv() the child
// makes only async-signal-safe calls, and its argv is built before fork().
//
// Control. The parent writes command lines to the child's stdin and reads reply lines from
// its stdout (the first is always "ready[ <endpoint>]", or "error <text>" if the child could
// not start); the child's stderr is the parent's. Control lines are never on a measured path
// except once per batch ("send <n>" in the throughput cases), where one pipe wake-up
// (~65 us here) is noise next to a batch of 200k messages.
//
// Lifetime: a child never outlives its case.
//   - EOF on stdin means "exit now". Every role watches fd 0, in its zmq_poll set or with a
//     blocking read, and exits on EOF without waiting for anything else.
//   - PR_SET_PDEATHSIG(SIGKILL): if the parent dies, even by SIGKILL, the kernel kills the
//     child. (It fires when the forking *thread* exits; Google Benchmark runs cases on the
//     main thread, which lives as long as the process.)
//   - child_process's destructor runs on every path, exceptions included: it closes the
//     child's stdin, waits up to exit_grace for it to exit, then SIGKILLs it, and always reaps
//     it with waitpid().
//
// Timeouts: nothing waits forever. Every zmq socket in either process gets ZMQ_RCVTIMEO and
// ZMQ_SNDTIMEO (io_timeout) and ZMQ_LINGER 0; every read of a control pipe has a poll()
// deadline. A timeout throws bench_error, which the case turns into SkipWithError.
//
// Thread safety: none of this is thread safe; one case runs at a time, on one thread.
#pragma once

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.hpp>

namespace zchan_bench {

using clock_type = std::chrono::steady_clock;

/// ZMQ_RCVTIMEO / ZMQ_SNDTIMEO on every socket, and the deadline for "ready" from a child.
/// Generous: the machine is shared with compiles, and a miss fails the case rather than
/// skewing it.
inline constexpr std::chrono::milliseconds io_timeout{10'000};
/// How long a child gets to exit after its stdin closes, before SIGKILL.
inline constexpr std::chrono::milliseconds exit_grace{2'000};
/// First argument that turns the binary into a child; the role name follows the '='.
inline constexpr std::string_view child_flag = "--zchan-bench-child=";

/// A case failed (timeout, a dead peer, wrong data). Cases catch it and SkipWithError.
struct bench_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// Multiplies every batch size (--zchan_items_scale=F); the ctest smoke run uses 0.01.
/// Written once in main() before any case runs.
inline double g_items_scale = 1.0;  // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)

/// Set when a case failed (SkipWithError); main() then exits 1. Benchmark thread only.
inline bool g_failed = false;  // NOLINT(cppcoreguidelines-avoid-non-const-global-variables)

/// `n` scaled by --zchan_items_scale, never below `floor`.
inline std::int64_t scaled_items(std::int64_t n, std::int64_t floor = 1) {
    const auto s = static_cast<std::int64_t>(static_cast<double>(n) * g_items_scale);
    return std::max(s, floor);
}

/// Sets the options every benchmark socket gets, in both processes (see "Timeouts" above).
inline void configure_socket(zmq::socket_t& s) {
    s.set(zmq::sockopt::linger, 0);
    s.set(zmq::sockopt::rcvtimeo, static_cast<int>(io_timeout.count()));
    s.set(zmq::sockopt::sndtimeo, static_cast<int>(io_timeout.count()));
}

/// The parent's zmq context, created on first use: children must not inherit one (they
/// re-exec anyway), and a run of only child-less code never starts libzmq's threads.
inline zmq::context_t& parent_context() {
    static zmq::context_t ctx(1);
    return ctx;
}

/// Runs `body`; a bench_error or zmq::error_t becomes SkipWithError, so that a failing case
/// is reported and the run goes on with the next one. The child_process objects the body
/// owns are already reaped when this returns (their destructors ran during unwinding).
template <class Body>
void run_case(benchmark::State& state, Body&& body) {
    try {
        std::forward<Body>(body)();
    } catch (const bench_error& e) {
        g_failed = true;
        state.SkipWithError(e.what());
    } catch (const zmq::error_t& e) {
        g_failed = true;
        state.SkipWithError((std::string("zmq: ") + e.what()).c_str());
    }
}

/// Receives one frame or throws (timeout: the peer is dead or stuck).
inline void recv_or_throw(zmq::socket_t& s, zmq::message_t& msg, const char* what) {
    if (!s.recv(msg, zmq::recv_flags::none)) {
        throw bench_error(std::string("timed out receiving ") + what);
    }
}

/// Sends one frame or throws (timeout: the peer stopped reading).
inline void send_or_throw(zmq::socket_t& s, zmq::const_buffer buf, zmq::send_flags flags,
                          const char* what) {
    if (!s.send(buf, flags)) {
        throw bench_error(std::string("timed out sending ") + what);
    }
}

/// Sends one frame (taking `msg`'s content) or throws (timeout: the peer stopped reading).
inline void send_or_throw(zmq::socket_t& s, zmq::message_t& msg, zmq::send_flags flags,
                          const char* what) {
    if (!s.send(msg, flags)) {
        throw bench_error(std::string("timed out sending ") + what);
    }
}

/// The 8-byte sequence number that starts every payload (payloads are >= 8 bytes).
inline void put_seq(void* payload, std::uint64_t seq) { std::memcpy(payload, &seq, sizeof seq); }
inline std::uint64_t get_seq(const zmq::message_t& msg) {
    std::uint64_t seq = 0;
    if (msg.size() >= sizeof seq) {
        std::memcpy(&seq, msg.data(), sizeof seq);
    }
    return seq;
}

/// Checks size and sequence number of a received payload; throws on a mismatch.
inline void check_payload(const zmq::message_t& msg, std::size_t size, std::uint64_t seq) {
    if (msg.size() != size || get_seq(msg) != seq) {
        throw bench_error("wrong payload: got " + std::to_string(msg.size()) + " bytes, seq " +
                          std::to_string(get_seq(msg)) + "; want " + std::to_string(size) +
                          " bytes, seq " + std::to_string(seq));
    }
}

namespace detail {

/// "<what>: <strerror(err)>", thread-safely (std::strerror is not).
inline std::string errno_text(const char* what, int err) {
    return std::string(what) + ": " + std::generic_category().message(err);
}

/// Writes all of `data` to `fd`; false if the reader is gone (EPIPE: SIGPIPE is ignored).
inline bool write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return false;
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

/// Moves one line (without '\n') out of `buf`, if it holds a whole one.
inline std::optional<std::string> take_line(std::string& buf) {
    const auto nl = buf.find('\n');
    if (nl == std::string::npos) {
        return std::nullopt;
    }
    std::string line = buf.substr(0, nl);
    buf.erase(0, nl + 1);
    return line;
}

/// Opens /dev/null on any of fds 0-2 that is closed, so that pipe2() in spawn never returns
/// one of them (the child's dup2 onto 0 and 1 would then clobber its own pipe ends).
inline void ensure_std_fds_open() {
    for (int fd = 0; fd <= 2; ++fd) {
        if (::fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
            const int null_fd = ::open("/dev/null", O_RDWR);
            if (null_fd >= 0 && null_fd != fd) {
                ::dup2(null_fd, fd);
                ::close(null_fd);
            }
        }
    }
}

}  // namespace detail

/// Where a case binds: tcp on loopback with a port the kernel picks (read the real endpoint
/// back with ZMQ_LAST_ENDPOINT), or ipc in a fresh temporary directory.
enum class transport { tcp, ipc };

/// A private temporary directory for ipc:// endpoints, removed with everything in it.
/// Throws: bench_error if it cannot be created.
class temp_dir {
public:
    temp_dir() {
        std::error_code ec;
        std::filesystem::path base = std::filesystem::temp_directory_path(ec);  // $TMPDIR
        if (ec) {
            base = "/tmp";
        }
        std::string tmpl = (base / "zchan-bench-XXXXXX").string();
        if (::mkdtemp(tmpl.data()) == nullptr) {
            throw bench_error(detail::errno_text(("mkdtemp " + tmpl).c_str(), errno));
        }
        path_ = tmpl;
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    temp_dir(temp_dir&&) = delete;
    temp_dir& operator=(temp_dir&&) = delete;
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    [[nodiscard]] const std::string& path() const { return path_; }

private:
    std::string path_;
};

/// The address to bind for `t`: "tcp://127.0.0.1:*", or an ipc:// path named `name` inside a
/// temporary directory that lives as long as this object. Never a fixed port.
class bind_address {
public:
    bind_address(transport t, std::string_view name) {
        if (t == transport::tcp) {
            address_ = "tcp://127.0.0.1:*";
        } else {
            dir_.emplace();
            address_ = "ipc://" + dir_->path() + "/" + std::string(name) + ".ipc";
        }
    }
    [[nodiscard]] const std::string& str() const { return address_; }

private:
    std::optional<temp_dir> dir_;
    std::string address_;
};

/// A peer process: this binary re-executed as `--zchan-bench-child=<role> args...`.
///
/// Returns from the constructor once the child runs (not once it is ready: call
/// expect("ready")). The destructor stops it: stdin closed, exit_grace, SIGKILL, waitpid.
/// Throws: bench_error if the pipes or the fork fail.
/// Thread safety: unsafe; one thread owns a child_process.
/// Example:
///     child_process echo("raw_echo_server", {"--bind=tcp://127.0.0.1:*"});
///     const std::string endpoint = echo.expect("ready");
class child_process {
public:
    child_process(std::string_view role, const std::vector<std::string>& args) {
        detail::ensure_std_fds_open();
        // Everything the child needs is allocated before fork(): after it, a child of a
        // multi-threaded parent may only make async-signal-safe calls until execv().
        std::vector<std::string> argv_s;
        argv_s.emplace_back("zchan_bench_net");
        argv_s.push_back(std::string(child_flag) + std::string(role));
        argv_s.insert(argv_s.end(), args.begin(), args.end());
        std::vector<char*> argv_p;
        argv_p.reserve(argv_s.size() + 1);
        for (auto& a : argv_s) {
            argv_p.push_back(a.data());
        }
        argv_p.push_back(nullptr);

        std::array<int, 2> to_child = {-1, -1};
        std::array<int, 2> from_child = {-1, -1};
        if (::pipe2(to_child.data(), O_CLOEXEC) != 0) {
            throw bench_error(detail::errno_text("pipe2", errno));
        }
        if (::pipe2(from_child.data(), O_CLOEXEC) != 0) {
            const int err = errno;
            ::close(to_child[0]);
            ::close(to_child[1]);
            throw bench_error(detail::errno_text("pipe2", err));
        }
        const pid_t parent = ::getpid();
        const pid_t pid = ::fork();
        if (pid == 0) {
            // Child. dup2 clears FD_CLOEXEC on the copies; execv closes the originals (and
            // every libzmq descriptor: libzmq opens them all with CLOEXEC).
            if (::dup2(to_child[0], 0) < 0 || ::dup2(from_child[1], 1) < 0) {
                ::_exit(127);
            }
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) {  // the parent died before prctl took effect
                ::_exit(127);
            }
            ::execv("/proc/self/exe", argv_p.data());
            ::_exit(127);
        }
        const int fork_errno = errno;
        ::close(to_child[0]);
        ::close(from_child[1]);
        if (pid < 0) {
            ::close(to_child[1]);
            ::close(from_child[0]);
            throw bench_error(detail::errno_text("fork", fork_errno));
        }
        pid_ = pid;
        to_child_ = to_child[1];
        from_child_ = from_child[0];
        role_ = role;
    }

    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;
    child_process(child_process&&) = delete;
    child_process& operator=(child_process&&) = delete;

    ~child_process() { stop(); }

    /// Writes `line` and a newline to the child's stdin.
    /// Throws: bench_error if the child is gone.
    void send_line(std::string_view line) {
        std::string buf(line);
        buf += '\n';
        if (to_child_ < 0 || !detail::write_all(to_child_, buf)) {
            throw bench_error(role_ + " child is gone (its stdin is closed)");
        }
    }

    /// Reads the next line the child wrote, waiting at most `timeout`.
    /// Throws: bench_error on timeout or when the child closed its stdout (exited).
    std::string read_line(std::chrono::milliseconds timeout = io_timeout) {
        const auto deadline = clock_type::now() + timeout;
        for (;;) {
            if (auto line = detail::take_line(in_buf_)) {
                return *line;
            }
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
            if (left.count() <= 0) {
                throw bench_error("timed out waiting for a line from the " + role_ + " child");
            }
            pollfd p{from_child_, POLLIN, 0};
            const int rc = ::poll(&p, 1, static_cast<int>(left.count()) + 1);
            if (rc < 0 && errno != EINTR) {
                throw bench_error(detail::errno_text("poll", errno));
            }
            if (rc <= 0) {
                continue;
            }
            std::array<char, 512> chunk{};
            const ssize_t n = ::read(from_child_, chunk.data(), chunk.size());
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                throw bench_error("the " + role_ + " child exited" + exit_note());
            }
            in_buf_.append(chunk.data(), static_cast<std::size_t>(n));
        }
    }

    /// Reads a line "<word>[ <rest>]" and returns <rest>.
    /// Throws: bench_error if the line starts otherwise ("error ..." from the child included),
    /// on timeout, or if the child exited.
    std::string expect(std::string_view word, std::chrono::milliseconds timeout = io_timeout) {
        const std::string line = read_line(timeout);
        if (line == word) {
            return {};
        }
        if (line.size() > word.size() && line.compare(0, word.size(), word) == 0 &&
            line[word.size()] == ' ') {
            return line.substr(word.size() + 1);
        }
        throw bench_error("the " + role_ + " child said '" + line + "', expected '" +
                          std::string(word) + "'");
    }

    /// Stops the child: closes its stdin (its cue to exit), waits up to exit_grace, then
    /// SIGKILLs it; always reaps it. Idempotent; never throws.
    void stop() noexcept {
        if (pid_ <= 0) {
            return;
        }
        if (to_child_ >= 0) {
            ::close(to_child_);
            to_child_ = -1;
        }
        if (!wait_exit(exit_grace)) {
            ::kill(pid_, SIGKILL);
            int status = 0;
            while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
            }
            std::fprintf(stderr, "zchan_bench_net: %s child (pid %d) did not exit; killed\n",
                         role_.c_str(), static_cast<int>(pid_));
        } else if (!WIFEXITED(status_) || WEXITSTATUS(status_) != 0) {
            std::fprintf(stderr, "zchan_bench_net: %s child (pid %d) ended badly%s\n",
                         role_.c_str(), static_cast<int>(pid_), exit_note().c_str());
        }
        pid_ = -1;
        if (from_child_ >= 0) {
            ::close(from_child_);
            from_child_ = -1;
        }
    }

private:
    /// Reaps the child if it exits within `timeout`. Waits on a pidfd (Linux >= 5.3), else
    /// naps 1 ms between waitpid(WNOHANG) calls: this is a bounded reap, not synchronisation.
    bool wait_exit(std::chrono::milliseconds timeout) noexcept {
        const auto deadline = clock_type::now() + timeout;
#ifdef SYS_pidfd_open
        const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
#else
        const int pidfd = -1;
#endif
        bool reaped = false;
        for (;;) {
            int st = 0;
            const pid_t r = ::waitpid(pid_, &st, WNOHANG);
            if (r == pid_) {
                status_ = st;
                reaped = true;
                break;
            }
            if (r < 0 && errno != EINTR) {
                reaped = true;  // ECHILD: exit_note() reaped it already
                break;
            }
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
            if (left.count() <= 0) {
                break;
            }
            if (pidfd >= 0) {
                pollfd p{pidfd, POLLIN, 0};
                ::poll(&p, 1, static_cast<int>(left.count()) + 1);
            } else {
                ::usleep(1000);
            }
        }
        if (pidfd >= 0) {
            ::close(pidfd);
        }
        return reaped;
    }

    /// " (status N)" / " (signal N)" once the child has been reaped, else "".
    std::string exit_note() {
        if (pid_ > 0 && status_ == -1) {
            int st = 0;
            if (::waitpid(pid_, &st, WNOHANG) == pid_) {
                status_ = st;
            }
        }
        if (status_ == -1) {
            return {};
        }
        if (WIFEXITED(status_)) {
            return " (status " + std::to_string(WEXITSTATUS(status_)) + ")";
        }
        if (WIFSIGNALED(status_)) {
            return " (signal " + std::to_string(WTERMSIG(status_)) + ")";
        }
        return {};
    }

    pid_t pid_ = -1;
    int to_child_ = -1;    // child's stdin; closed = "exit now"
    int from_child_ = -1;  // child's stdout
    int status_ = -1;      // waitpid status once reaped, else -1
    std::string role_;
    std::string in_buf_;  // bytes read from the child, not yet a whole line
};

// ---- child side -----------------------------------------------------------------------------

/// The `--key=value` arguments a child was started with.
class child_args {
public:
    child_args(int argc, char** argv) {
        for (int i = 0; i < argc; ++i) {
            std::string_view a = argv[i];
            if (a.substr(0, 2) != "--") {
                throw bench_error("bad child argument '" + std::string(a) + "'");
            }
            a.remove_prefix(2);
            const auto eq = a.find('=');
            kv_[std::string(a.substr(0, eq))] =
                eq == std::string_view::npos ? std::string() : std::string(a.substr(eq + 1));
        }
    }

    /// Throws: bench_error if `key` was not given.
    [[nodiscard]] const std::string& str(const std::string& key) const {
        const auto it = kv_.find(key);
        if (it == kv_.end()) {
            throw bench_error("missing child argument --" + key);
        }
        return it->second;
    }

    [[nodiscard]] std::int64_t num(const std::string& key) const {
        const std::string& s = str(key);
        char* end = nullptr;
        const long long v = std::strtoll(s.c_str(), &end, 10);
        if (s.empty() || *end != '\0') {
            throw bench_error("child argument --" + key + " is not a number: '" + s + "'");
        }
        return v;
    }

private:
    std::map<std::string, std::string> kv_;
};

/// The child's end of the control pipe: commands on fd 0, replies on fd 1.
class control_pipe {
public:
    /// Writes a reply line to the parent. Throws bench_error if the parent is gone.
    static void reply(std::string_view line) {
        std::string buf(line);
        buf += '\n';
        if (!detail::write_all(1, buf)) {
            throw bench_error("parent is gone (stdout closed)");
        }
    }

    /// Blocks for the next command line; nullopt on EOF (the parent says: exit now).
    std::optional<std::string> next_command() {
        for (;;) {
            if (auto line = detail::take_line(buf_)) {
                return line;
            }
            if (!fill()) {
                return std::nullopt;
            }
        }
    }

    /// For roles that poll fd 0 beside their sockets: call when fd 0 is readable. Returns
    /// false on EOF. Lines are buffered for next_command(); server roles ignore them.
    bool on_readable() { return fill(); }

    /// A zmq_pollitem_t for fd 0.
    static zmq_pollitem_t poll_item() { return zmq_pollitem_t{nullptr, 0, ZMQ_POLLIN, 0}; }

private:
    bool fill() {
        std::array<char, 256> chunk{};
        for (;;) {
            const ssize_t n = ::read(0, chunk.data(), chunk.size());
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n <= 0) {
                return false;
            }
            buf_.append(chunk.data(), static_cast<std::size_t>(n));
            return true;
        }
    }

    std::string buf_;
};

/// One child role: `--zchan-bench-child=<name>` runs `main`, whose return is the exit status.
struct child_role {
    std::string_view name;
    int (*main)(const child_args&);
};

/// Runs the role named `role` with the arguments after the child flag. Errors go to stderr
/// and, as "error <text>", to the parent, which is waiting for "ready".
inline int run_child(std::string_view role, int argc, char** argv,
                     const std::vector<child_role>& roles) {
    const auto it = std::find_if(roles.begin(), roles.end(),
                                 [&](const child_role& r) { return r.name == role; });
    try {
        if (it == roles.end()) {
            throw bench_error("unknown child role '" + std::string(role) + "'");
        }
        return it->main(child_args(argc, argv));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "zchan_bench_net child %.*s: %s\n", static_cast<int>(role.size()),
                     role.data(), e.what());
        try {
            control_pipe::reply(std::string("error ") + e.what());
        } catch (const bench_error&) {
        }
        return 1;
    }
}

}  // namespace zchan_bench

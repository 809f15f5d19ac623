// A child program run by an integration test: spawned with posix_spawn, its
// stdout (and, by default, stderr) read line by line on a thread, fed lines on
// stdin if asked, waited for with bounded waits, and always reaped: the
// destructor kills it if it is still running. A process that dies without
// running that destructor (a crash, a sanitizer's report, an uncaught
// exception) has its children killed by a guardian process (child_guardian).
// Also the child's side of the tests that re-execute themselves in another
// role: self_exe(), say(), env_or() and run_role().
//
// Every wait here is a positive wait with a deadline: it fails the test
// instead of hanging it, and it never sleeps to synchronise (the exit is
// watched through a pidfd; polling waitpid is only the fallback).
//
// Thread safety: a child_process belongs to the test thread that made it;
// its line accessors may be called from any thread while the reader thread
// appends (mu_).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zchan/errors.hpp"
#include "zchan_test_support.hpp"

extern char** environ;

namespace zchan_test {

/// The running test binary's own path (a child in a network namespace cannot
/// use /proc/self/exe through `ip netns exec`, so it is resolved here).
[[nodiscard]] inline std::string self_exe() {
    char buf[4096];
    const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return "/proc/self/exe";
    return std::string(buf, static_cast<std::size_t>(n));
}

/// One line on stdout, flushed at once (the parent reads it while we run).
inline void say(const std::string& line) {
    std::fputs((line + "\n").c_str(), stdout);
    std::fflush(stdout);
}

/// The environment variable `name`, or `fallback` if it is not set.
[[nodiscard]] inline std::string env_or(const char* name, const char* fallback = "") {
    const char* v = std::getenv(name);
    return v != nullptr ? v : fallback;
}

/// Runs a child role and turns its exceptions into a last line and an exit
/// code the parent checks: "lost <what>" (4) on peer_lost, "closed" (3) on
/// channel_closed, "error <what>" (2) otherwise.
template <class Role>
[[nodiscard]] int run_role(Role&& role) {
    try {
        return std::forward<Role>(role)();
    } catch (const zchan::peer_lost& e) {
        say(std::string("lost ") + e.what());
        return 4;
    } catch (const zchan::channel_closed&) {
        say("closed");
        return 3;
    } catch (const std::exception& e) {
        say(std::string("error ") + e.what());
        return 2;
    }
}

/// Kills this process's children if it dies without reaping them. The
/// destructor of child_process cannot do that when the process is killed,
/// aborts or exits from a sanitizer's report, and an orphan would hold its
/// port and the test's output pipe (CTest waits for that pipe to close).
///
/// The guardian is /bin/sh, started at the first spawn, reading "+ pid" and
/// "- pid" lines from a socket whose other end only this process holds
/// (close-on-exec, so no child inherits it). When this process is gone, by
/// any death, the socket reads end-of-file and the guardian SIGKILLs every
/// pid still registered. A child is registered right after its spawn and
/// released as soon as it is reaped, so the guardian does not signal a pid
/// that this process reaped (and the system may have reused), short of a
/// death between the reaping and the release.
///
/// Thread safety: adopt/release from any thread; each line is one small
/// send(), which a Unix stream socket keeps whole.
class child_guardian {
public:
    static child_guardian& instance() {
        // Never destroyed: children may be reaped by static destructors, and
        // the socket must stay open until the process is gone.
        static auto* g = new child_guardian();
        return *g;
    }
    void adopt(pid_t pid) const { tell('+', pid); }
    void release(pid_t pid) const { tell('-', pid); }

private:
    child_guardian() {
        int sv[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return;
        static constexpr const char* script =
            "pids=' '\n"
            "while read -r op pid; do\n"
            "  case $op in\n"
            "    +) pids=\"$pids$pid \" ;;\n"
            "    -) keep=' '; for p in $pids; do [ \"$p\" = \"$pid\" ] || keep=\"$keep$p \"; "
            "done; pids=$keep ;;\n"
            "  esac\n"
            "done\n"
            "for p in $pids; do kill -9 \"$p\" 2>/dev/null; done\n";
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
        // Not the test's stdout/stderr: CTest would wait for the guardian.
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        std::string sh = "/bin/sh", c = "-c", body = script;
        char* argv[] = {sh.data(), c.data(), body.data(), nullptr};
        pid_t pid = -1;
        const bool ok = ::posix_spawn(&pid, "/bin/sh", &fa, nullptr, argv, environ) == 0;
        posix_spawn_file_actions_destroy(&fa);
        ::close(sv[1]);
        if (!ok) {
            ::close(sv[0]);
            return;
        }
        fd_ = sv[0];
    }

    void tell(char op, pid_t pid) const {
        if (fd_ < 0) return;
        char line[32];
        const int n = std::snprintf(line, sizeof line, "%c %d\n", op, static_cast<int>(pid));
        // MSG_NOSIGNAL: a guardian that died must not take this process with it.
        (void)::send(fd_, line, static_cast<std::size_t>(n), MSG_NOSIGNAL);
    }

    int fd_ = -1;  // our end of the socket; -1 if the guardian could not start
};

/// How a child is started and ended.
struct child_options {
    /// Added to this process's environment.
    std::map<std::string, std::string> env;
    /// stdin is a pipe the test writes with tell() and ends with close_stdin()
    /// (else /dev/null).
    bool stdin_pipe = false;
    /// stderr goes to the same pipe as stdout (else to the test's own stderr).
    bool merge_stderr = true;
    /// The destructor first closes stdin, resumes a stopped child and waits a
    /// bounded time for it to finish by itself; else it kills at once.
    bool finish_on_destroy = false;
};

class child_process {
public:
    /// Starts argv[0] (a path) with the given arguments.
    explicit child_process(std::vector<std::string> argv, child_options o = {})
        : finish_on_destroy_(o.finish_on_destroy) {
        int out[2];
        int in[2] = {-1, -1};
        if (::pipe2(out, O_CLOEXEC) != 0) std::abort();
        if (o.stdin_pipe && ::pipe2(in, O_CLOEXEC) != 0) std::abort();
        std::vector<std::string> envs;
        for (char** e = environ; *e != nullptr; ++e) envs.emplace_back(*e);
        for (const auto& [k, v] : o.env) envs.push_back(k + "=" + v);
        std::vector<char*> envp;
        for (auto& e : envs) envp.push_back(e.data());
        envp.push_back(nullptr);
        std::vector<char*> args;
        for (auto& a : argv) args.push_back(a.data());
        args.push_back(nullptr);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, out[1], 1);
        if (o.merge_stderr) posix_spawn_file_actions_adddup2(&fa, out[1], 2);
        if (o.stdin_pipe) {
            posix_spawn_file_actions_adddup2(&fa, in[0], 0);
        } else {
            posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        }
        spawned_ = ::posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), envp.data()) == 0;
        posix_spawn_file_actions_destroy(&fa);
        ::close(out[1]);
        if (o.stdin_pipe) ::close(in[0]);
        if (!spawned_) {
            ::close(out[0]);
            if (o.stdin_pipe) ::close(in[1]);
            exited_ = true;
            code_ = 127;
            return;
        }
        child_guardian::instance().adopt(pid_);
        stdin_ = in[1];
        out_fd_ = out[0];
        pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
        reader_ = std::thread([this, fd = out[0]] { read_lines(fd); });
    }

    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;

    /// Never leaves the child behind, however the test ended.
    ~child_process() {
        close_stdin();
        if (!exited_ && finish_on_destroy_) {
            ::kill(pid_, SIGCONT);  // a stopped child cannot exit
            (void)wait_exit(deadline_after(generous));
        }
        if (!exited_) {
            ::kill(pid_, SIGKILL);
            (void)wait_exit(deadline_after(generous));
        }
        if (reader_.joinable()) reader_.join();
        if (pidfd_ >= 0) ::close(pidfd_);
    }

    [[nodiscard]] bool spawned() const noexcept { return spawned_; }
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }

    /// Sends `sig` (SIGINT, SIGTERM, SIGSTOP, SIGCONT, SIGKILL) if the child
    /// has not been reaped yet; false if it has (its pid may be another's now).
    bool signal(int sig) const noexcept { return spawned_ && !exited_ && ::kill(pid_, sig) == 0; }

    /// Kills with SIGKILL and reaps.
    void kill_now() {
        (void)signal(SIGKILL);
        (void)wait_exit();
    }

    /// Writes one line to the child's stdin (stdin_pipe only).
    void tell(const std::string& line) const {
        const std::string l = line + "\n";
        [[maybe_unused]] auto n = ::write(stdin_, l.data(), l.size());
    }
    /// Ends the child's stdin (roles treat EOF as "finish").
    void close_stdin() {
        if (stdin_ >= 0) ::close(stdin_);
        stdin_ = -1;
    }

    // ---- what it printed ----------------------------------------------------------------

    /// Everything the child printed so far, one entry per line.
    [[nodiscard]] std::vector<std::string> lines() const {
        std::lock_guard<std::mutex> g(mu_);
        return lines_;
    }
    [[nodiscard]] std::size_t line_count() const {
        std::lock_guard<std::mutex> g(mu_);
        return lines_.size();
    }
    /// All output so far as one string, for failure messages.
    [[nodiscard]] std::string output() const { return tail(static_cast<std::size_t>(-1)); }
    /// The last `max` lines, for failure messages.
    [[nodiscard]] std::string tail(std::size_t max = 20) const {
        std::lock_guard<std::mutex> g(mu_);
        std::string s;
        const std::size_t from = lines_.size() > max ? lines_.size() - max : 0;
        for (std::size_t i = from; i < lines_.size(); ++i) s += lines_[i] + "\n";
        return s;
    }
    /// Whether some line is exactly `line`.
    [[nodiscard]] bool has_line(const std::string& line) const {
        std::lock_guard<std::mutex> g(mu_);
        return std::find(lines_.begin(), lines_.end(), line) != lines_.end();
    }
    /// Number of lines starting with `prefix`.
    [[nodiscard]] std::size_t count(const std::string& prefix) const {
        std::lock_guard<std::mutex> g(mu_);
        return static_cast<std::size_t>(
            std::count_if(lines_.begin(), lines_.end(),
                          [&](const std::string& l) { return l.rfind(prefix, 0) == 0; }));
    }
    /// The rest of the first line starting with `prefix`, if any yet.
    [[nodiscard]] std::optional<std::string> find(const std::string& prefix) const {
        std::lock_guard<std::mutex> g(mu_);
        for (const auto& l : lines_) {
            if (l.rfind(prefix, 0) == 0) return l.substr(prefix.size());
        }
        return std::nullopt;
    }
    /// The rest of the first line containing `text` anywhere, after it.
    [[nodiscard]] std::optional<std::string> find_text(const std::string& text) const {
        std::lock_guard<std::mutex> g(mu_);
        for (const auto& l : lines_) {
            if (const auto at = l.find(text); at != std::string::npos) {
                return l.substr(at + text.size());
            }
        }
        return std::nullopt;
    }
    /// The integers after `prefix` on every line that starts with it, in order.
    [[nodiscard]] std::vector<long> values(const std::string& prefix) const {
        std::vector<long> out;
        std::lock_guard<std::mutex> g(mu_);
        for (const auto& l : lines_) {
            if (l.rfind(prefix, 0) == 0) out.push_back(std::stol(l.substr(prefix.size())));
        }
        return out;
    }

    // ---- positive waits -----------------------------------------------------------------

    /// Waits for a line equal to `line`.
    [[nodiscard]] bool wait_line(const std::string& line,
                                 clock::time_point deadline = deadline_after(generous)) const {
        return wait_until([&] { return has_line(line); }, deadline);
    }
    /// Waits for a line starting with `prefix`; returns its rest.
    [[nodiscard]] std::optional<std::string> wait_for(
        const std::string& prefix, clock::time_point deadline = deadline_after(generous)) const {
        std::optional<std::string> found;
        (void)wait_until([&] { return (found = find(prefix)).has_value(); }, deadline);
        return found;
    }
    /// Waits for a line containing `text`; returns the rest of that line after it.
    [[nodiscard]] std::optional<std::string> wait_for_text(
        const std::string& text, clock::time_point deadline = deadline_after(generous)) const {
        std::optional<std::string> found;
        (void)wait_until([&] { return (found = find_text(text)).has_value(); }, deadline);
        return found;
    }
    /// Waits until at least `n` lines start with `prefix`.
    [[nodiscard]] bool wait_count(const std::string& prefix, std::size_t n,
                                  clock::time_point deadline = deadline_after(generous)) const {
        return wait_until([&] { return count(prefix) >= n; }, deadline);
    }

    /// Waits until every line the child has written so far is in lines(): its
    /// pipe is empty and the reader is blocked in read(). For a child that
    /// cannot write meanwhile (stopped), so that a snapshot of its lines is complete.
    [[nodiscard]] bool wait_read_all(clock::time_point deadline = deadline_after(generous)) const {
        return wait_until(
            [&] {
                int pending = 0;
                if (::ioctl(out_fd_, FIONREAD, &pending) != 0) return true;  // closed: all read
                return pending == 0 && reader_idle_.load();
            },
            deadline);
    }

    /// Waits for the exit; the exit code (-signal if killed), or nullopt at the
    /// deadline. Once it has exited, also waits (bounded by the pipe closing)
    /// for its last lines.
    [[nodiscard]] std::optional<int> wait_exit(
        clock::time_point deadline = deadline_after(generous)) {
        while (!exited_) {
            int status = 0;
            const pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                child_guardian::instance().release(pid_);
                exited_ = true;
                code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
                break;
            }
            const auto now = clock::now();
            if (now >= deadline) return std::nullopt;
            if (pidfd_ >= 0) {
                // Readable once the child has exited: no polling interval to wait out.
                const auto left =
                    std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
                pollfd p{pidfd_, POLLIN, 0};
                (void)::poll(&p, 1, static_cast<int>(std::clamp<long long>(left + 1, 1, 100)));
            } else {
                std::this_thread::sleep_for(std::chrono::milliseconds(1));  // polling interval
            }
        }
        // The reader ends at EOF, i.e. when the child and anything it spawned closed stdout.
        if (reader_.joinable()) reader_.join();
        return code_;
    }

private:
    void read_lines(int fd) {
        std::string partial;
        char buf[65536];
        for (;;) {
            reader_idle_.store(true);
            const ssize_t n = ::read(fd, buf, sizeof buf);
            if (n <= 0) break;
            reader_idle_.store(false);
            partial.append(buf, static_cast<std::size_t>(n));
            std::size_t start = 0;
            std::size_t nl = 0;
            std::vector<std::string> batch;
            while ((nl = partial.find('\n', start)) != std::string::npos) {
                batch.push_back(partial.substr(start, nl - start));
                start = nl + 1;
            }
            partial.erase(0, start);
            std::lock_guard<std::mutex> g(mu_);
            for (auto& l : batch) lines_.push_back(std::move(l));
        }
        reader_idle_.store(false);
        if (!partial.empty()) {
            std::lock_guard<std::mutex> g(mu_);
            lines_.push_back(std::move(partial));
        }
        ::close(fd);
    }

    bool finish_on_destroy_ = false;
    pid_t pid_ = -1;
    int pidfd_ = -1;  // -1 where pidfd_open is unavailable: wait_exit polls
    bool spawned_ = false;
    bool exited_ = false;
    int code_ = -1;
    int stdin_ = -1;
    int out_fd_ = -1;                       // the pipe's read end; closed by the reader at EOF
    std::atomic<bool> reader_idle_{false};  // the reader is in (or about to enter) read()
    std::thread reader_;
    mutable std::mutex mu_;
    std::vector<std::string> lines_;  // guarded by mu_
};

/// How a test binary runs itself again as a child (its role chosen by
/// `env`): stdin a pipe for commands, stderr left to the test's own (only the
/// role's lines are read), finished gently when the test is done with it.
[[nodiscard]] inline child_options self_child_options(std::map<std::string, std::string> env) {
    return {.env = std::move(env),
            .stdin_pipe = true,
            .merge_stderr = false,
            .finish_on_destroy = true};
}

/// This test binary run again as a child, with self_child_options().
class self_child : public child_process {
public:
    explicit self_child(std::map<std::string, std::string> env)
        : child_process({self_exe()}, self_child_options(std::move(env))) {}
};

/// The message of a Go-style log line ("2026/11/22 10:00:00 Sent 3" -> "Sent 3"), or
/// nullopt if the line lacks the date/time prefix.
[[nodiscard]] inline std::optional<std::string> go_log_message(const std::string& line) {
    static constexpr std::string_view shape = "dddd/dd/dd dd:dd:dd ";
    if (line.size() < shape.size()) return std::nullopt;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        const bool digit = line[i] >= '0' && line[i] <= '9';
        if (shape[i] == 'd' ? !digit : line[i] != shape[i]) return std::nullopt;
    }
    return line.substr(shape.size());
}

/// The messages of every Go-style log line of `p`, in order; other lines are skipped.
[[nodiscard]] inline std::vector<std::string> go_log_messages(const child_process& p) {
    std::vector<std::string> out;
    for (const auto& l : p.lines()) {
        if (auto m = go_log_message(l)) out.push_back(std::move(*m));
    }
    return out;
}

}  // namespace zchan_test

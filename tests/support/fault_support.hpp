// Helpers for the fault tests (tests/integration/fault_*_test.cpp): a child
// process that is the test binary itself in another role (optionally inside
// a network namespace), which the test can signal (SIGKILL, SIGSTOP,
// SIGCONT), feed commands on stdin and read line by line; and the checks the
// fault tests share (values per sender, peak RSS).
//
// Roles are chosen by the environment variable ZCHAN_FAULT_ROLE; each test
// binary's main() dispatches on it before starting GoogleTest.
//
// Thread safety: a fault_child belongs to the test thread that made it; its
// line accessors may be called while its reader thread appends (mu_).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zchan_test_support.hpp"

extern char** environ;

namespace zchan_test {

/// The running test binary's own path (so that children in a namespace can exec it).
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

/// This process's peak resident set size in KiB (VmHWM), or -1.
[[nodiscard]] inline long peak_rss_kib() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmHWM:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
    }
    return -1;
}

[[nodiscard]] inline std::string env_or(const char* name, const char* fallback = "") {
    const char* v = std::getenv(name);
    return v != nullptr ? v : fallback;
}

class fault_child {
public:
    /// Runs this test binary with ZCHAN_FAULT_ROLE=`role` and the extra
    /// environment `vars`, behind `prefix` (e.g. netns_lab::exec_prefix(i)).
    fault_child(const std::string& role, const std::map<std::string, std::string>& vars,
                const std::vector<std::string>& prefix = {}) {
        int out[2];
        int in[2];
        if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(in, O_CLOEXEC) != 0) std::abort();
        std::vector<std::string> envs;
        for (char** e = environ; *e != nullptr; ++e) envs.emplace_back(*e);
        envs.push_back("ZCHAN_FAULT_ROLE=" + role);
        for (const auto& [k, v] : vars) envs.push_back(k + "=" + v);
        std::vector<char*> envp;
        for (auto& e : envs) envp.push_back(e.data());
        envp.push_back(nullptr);
        std::vector<std::string> argv = prefix;
        argv.push_back(self_exe());
        std::vector<char*> args;
        for (auto& a : argv) args.push_back(a.data());
        args.push_back(nullptr);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, out[1], 1);
        posix_spawn_file_actions_adddup2(&fa, in[0], 0);
        if (::posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), envp.data()) != 0)
            std::abort();
        posix_spawn_file_actions_destroy(&fa);
        ::close(out[1]);
        ::close(in[0]);
        stdin_ = in[1];
        out_fd_ = out[0];
        reader_ = std::thread([this, fd = out[0]] { read_lines(fd); });
    }

    fault_child(const fault_child&) = delete;
    fault_child& operator=(const fault_child&) = delete;

    /// Closes stdin (roles treat EOF as "finish"), waits a bounded time, then kills.
    ~fault_child() {
        close_stdin();
        if (!exited_) {
            ::kill(pid_, SIGCONT);  // a stopped child cannot exit
            if (!wait_exit(deadline_after(generous)).has_value()) {
                ::kill(pid_, SIGKILL);
                (void)wait_exit(deadline_after(generous));
            }
        }
        if (reader_.joinable()) reader_.join();
    }

    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    void signal(int sig) const { ::kill(pid_, sig); }

    /// Writes one line to the child's stdin (a command for its role).
    void tell(const std::string& line) const {
        const std::string l = line + "\n";
        [[maybe_unused]] auto n = ::write(stdin_, l.data(), l.size());
    }
    void close_stdin() {
        if (stdin_ >= 0) ::close(stdin_);
        stdin_ = -1;
    }

    [[nodiscard]] std::vector<std::string> lines() const {
        std::lock_guard<std::mutex> g(mu_);
        return lines_;
    }
    [[nodiscard]] std::size_t line_count() const {
        std::lock_guard<std::mutex> g(mu_);
        return lines_.size();
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
    /// Positive wait for a line starting with `prefix`; returns its rest.
    [[nodiscard]] std::optional<std::string> wait_for(
        const std::string& prefix, clock::time_point deadline = deadline_after(generous)) const {
        std::optional<std::string> found;
        (void)wait_until([&] { return (found = find(prefix)).has_value(); }, deadline);
        return found;
    }
    /// Positive wait until at least `n` lines start with `prefix`.
    [[nodiscard]] bool wait_count(const std::string& prefix, std::size_t n,
                                  clock::time_point deadline = deadline_after(generous)) const {
        return wait_until([&] { return count(prefix) >= n; }, deadline);
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
    /// Everything printed, for failure messages (the last `max` lines).
    [[nodiscard]] std::string tail(std::size_t max = 20) const {
        std::lock_guard<std::mutex> g(mu_);
        std::string s;
        const std::size_t from = lines_.size() > max ? lines_.size() - max : 0;
        for (std::size_t i = from; i < lines_.size(); ++i) s += lines_[i] + "\n";
        return s;
    }

    /// Positive wait until every line the child has written so far is in
    /// lines(): its pipe is empty and the reader is blocked in read(). For a
    /// child that cannot write meanwhile (stopped), so that a snapshot of
    /// its lines is complete.
    [[nodiscard]] bool wait_read_all(clock::time_point deadline = deadline_after(generous)) const {
        return wait_until(
            [&] {
                int pending = 0;
                if (::ioctl(out_fd_, FIONREAD, &pending) != 0) return true;  // closed: all read
                return pending == 0 && reader_idle_.load();
            },
            deadline);
    }

    /// Positive wait for the exit; the exit code (-signal if killed), or nullopt at the deadline.
    [[nodiscard]] std::optional<int> wait_exit(
        clock::time_point deadline = deadline_after(generous)) {
        while (!exited_) {
            int status = 0;
            const pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                exited_ = true;
                code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
                break;
            }
            if (clock::now() >= deadline) return std::nullopt;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));  // polling interval only
        }
        // Its last lines: the reader ends at EOF, once the child (the only
        // writer) is gone.
        if (reader_.joinable()) reader_.join();
        return code_;
    }
    /// Kills with SIGKILL and reaps.
    void kill_now() {
        signal(SIGKILL);
        (void)wait_exit();
    }

private:
    void read_lines(int fd) {
        std::string partial;
        char buf[65536];
        ssize_t n = 0;
        for (;;) {
            reader_idle_.store(true);
            n = ::read(fd, buf, sizeof buf);
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
        ::close(fd);
    }

    pid_t pid_ = -1;
    int stdin_ = -1;
    bool exited_ = false;
    int code_ = -1;
    int out_fd_ = -1;  // the pipe's read end; closed by the reader at EOF
    std::atomic<bool> reader_idle_{false};  // the reader is in (or about to enter) read()
    std::thread reader_;
    mutable std::mutex mu_;
    std::vector<std::string> lines_;  // guarded by mu_
};

/// Values are sender * value_base + i: which sender, which position.
inline constexpr long value_base = 1'000'000;

/// Counts, per receiver sequence, values of one sender that arrive below an
/// earlier value of the same sender (order broken). Redelivered values (a
/// killed receiver's deliveries go back to the head of the channel) are the
/// only expected source.
[[nodiscard]] inline std::size_t out_of_order(const std::vector<long>& seq) {
    std::map<long, long> last;
    std::size_t n = 0;
    for (long v : seq) {
        auto [it, fresh] = last.try_emplace(v / value_base, v);
        if (fresh) continue;
        if (v < it->second) {
            ++n;
        } else {
            it->second = v;
        }
    }
    return n;
}

}  // namespace zchan_test

namespace zchan_test {

/// A value of the fault tests: "<n>:" followed by `size` bytes of a pattern
/// derived from n, so that a receiver can tell a whole value from a torn,
/// mixed-up or invented one.
[[nodiscard]] inline std::string make_value(long n, std::size_t size = 0) {
    std::string s = std::to_string(n) + ":";
    s.append(size, static_cast<char>('a' + n % 26));
    return s;
}

/// The n of a value made by make_value, or nullopt if it is not one (wrong
/// pattern, or a size other than `size`).
[[nodiscard]] inline std::optional<long> parse_value(const std::string& s, std::size_t size = 0) {
    const auto colon = s.find(':');
    if (colon == std::string::npos || colon == 0) return std::nullopt;
    char* end = nullptr;
    const long n = std::strtol(s.c_str(), &end, 10);
    if (end != s.c_str() + colon || s.size() - colon - 1 != size) return std::nullopt;
    const char c = static_cast<char>('a' + n % 26);
    for (std::size_t i = colon + 1; i < s.size(); ++i) {
        if (s[i] != c) return std::nullopt;
    }
    return n;
}

}  // namespace zchan_test

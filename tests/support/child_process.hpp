// A child program run by an integration test: spawned with posix_spawn, its
// stdout (and stderr) read line by line on a thread, waited for with bounded
// waits, and always reaped: the destructor kills it if it is still running.
//
// Thread safety: one object belongs to the test thread that made it; the
// line accessors may be called while the reader thread appends (mu_).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include "zchan_test_support.hpp"

extern char** environ;

namespace zchan_test {

class child_process {
public:
    /// Starts argv[0] (a path) with the given arguments and this process's environment.
    explicit child_process(std::vector<std::string> argv) : argv_(std::move(argv)) {
        int out[2];
        if (::pipe2(out, O_CLOEXEC) != 0) std::abort();
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, out[1], 1);
        posix_spawn_file_actions_adddup2(&fa, out[1], 2);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        std::vector<char*> args;
        for (auto& a : argv_) args.push_back(a.data());
        args.push_back(nullptr);
        spawned_ = ::posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ) == 0;
        posix_spawn_file_actions_destroy(&fa);
        ::close(out[1]);
        if (!spawned_) {
            ::close(out[0]);
            exited_ = true;
            code_ = 127;
            return;
        }
        reader_ = std::thread([this, fd = out[0]] { read_lines(fd); });
    }

    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;

    /// Kills the child if it is still running (a failed test must not leave it behind).
    ~child_process() {
        if (!exited_) {
            ::kill(pid_, SIGKILL);
            (void)wait_exit(deadline_after(generous));
        }
        if (reader_.joinable()) reader_.join();
    }

    [[nodiscard]] bool spawned() const noexcept { return spawned_; }

    /// Sends `sig` to the child if it has not been reaped yet (tests of SIGINT/SIGTERM
    /// handling, and of a peer killed outright); false if it was already reaped.
    bool send_signal(int sig) const noexcept {
        return spawned_ && !exited_ && ::kill(pid_, sig) == 0;
    }

    /// Positive wait for a line containing `text`; returns the rest of that line after it.
    [[nodiscard]] std::optional<std::string> wait_for_text(
        const std::string& text, clock::time_point deadline = deadline_after(generous)) const {
        std::optional<std::string> found;
        (void)wait_until(
            [&] {
                std::lock_guard<std::mutex> g(mu_);
                for (const auto& l : lines_) {
                    if (const auto at = l.find(text); at != std::string::npos) {
                        found = l.substr(at + text.size());
                        return true;
                    }
                }
                return false;
            },
            deadline);
        return found;
    }

    /// Everything the child printed so far, one entry per line.
    [[nodiscard]] std::vector<std::string> lines() const {
        std::lock_guard<std::mutex> g(mu_);
        return lines_;
    }

    /// All output so far as one string, for failure messages.
    [[nodiscard]] std::string output() const {
        std::string all;
        for (const auto& l : lines()) all += l + "\n";
        return all;
    }

    /// Positive wait for the exit; the exit code (-signal if killed), or nullopt at the deadline.
    /// Once it has exited, also waits (bounded by the pipe closing) for its last lines.
    [[nodiscard]] std::optional<int> wait_exit(clock::time_point deadline) {
        while (!exited_) {
            int status = 0;
            const pid_t r = ::waitpid(pid_, &status, WNOHANG);
            if (r == pid_) {
                exited_ = true;
                code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
                break;
            }
            if (clock::now() >= deadline) return std::nullopt;
            std::this_thread::sleep_for(std::chrono::milliseconds(2));  // polling interval only
        }
        // The reader ends at EOF, i.e. when the child and anything it spawned closed stdout.
        if (reader_.joinable()) reader_.join();
        return code_;
    }
    [[nodiscard]] std::optional<int> wait_exit() { return wait_exit(deadline_after(generous)); }

private:
    void read_lines(int fd) {
        std::string partial;
        char buf[4096];
        ssize_t n = 0;
        while ((n = ::read(fd, buf, sizeof buf)) > 0) {
            partial.append(buf, static_cast<std::size_t>(n));
            std::size_t nl = 0;
            while ((nl = partial.find('\n')) != std::string::npos) {
                std::lock_guard<std::mutex> g(mu_);
                lines_.push_back(partial.substr(0, nl));
                partial.erase(0, nl + 1);
            }
        }
        if (!partial.empty()) {
            std::lock_guard<std::mutex> g(mu_);
            lines_.push_back(partial);
        }
        ::close(fd);
    }

    std::vector<std::string> argv_;
    pid_t pid_ = -1;
    bool spawned_ = false;
    bool exited_ = false;
    int code_ = -1;
    std::thread reader_;
    mutable std::mutex mu_;
    std::vector<std::string> lines_;  // guarded by mu_
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

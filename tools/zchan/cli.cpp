// See cli.hpp.
#include "cli.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <system_error>

#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

namespace zchan_cli {

namespace {
void replace_all(std::string& s, std::string_view from, std::string_view to) {
    for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
        s.replace(at, from.size(), to);
    }
}
bool resolves(const std::string& host) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
    if (res != nullptr) ::freeaddrinfo(res);
    return rc == 0;
}
}  // namespace

std::string tcp_host(std::string_view endpoint) {
    if (!endpoint.starts_with("tcp://")) return {};
    std::string_view a = endpoint.substr(6);
    const auto colon = a.rfind(':');
    if (colon == std::string_view::npos) return {};
    a = a.substr(0, colon);
    if (auto semi = a.find(';'); semi != std::string_view::npos) a = a.substr(semi + 1);
    if (a.size() >= 2 && a.front() == '[' && a.back() == ']') a = a.substr(1, a.size() - 2);
    if (a.empty() || a == "*") return {};
    return std::string(a);
}

std::string cli_message(const std::exception& e, std::string_view endpoint) {
    std::string m = e.what();
    const auto* se = dynamic_cast<const std::system_error*>(&e);
    if (se != nullptr) {
        const std::string suffix = ": " + se->code().message();
        if (m.size() > suffix.size() && m.ends_with(suffix)) m.resize(m.size() - suffix.size());
    }
    if (m.starts_with("zchan: ")) m.erase(0, 7);
    replace_all(m, "net_options::create_capacity", "--cap N");
    replace_all(m, "(net_options::curve_client)",
                "(set ZCHAN_CURVE_SERVER_KEY_FILE and ZCHAN_CURVE_SECRET_KEY_FILE)");
    replace_all(m, "net_options::curve_client",
                "ZCHAN_CURVE_SERVER_KEY_FILE and ZCHAN_CURVE_SECRET_KEY_FILE");
    replace_all(m, "net_options::curve_server", "ZCHAN_CURVE_ALLOW_FILE");
    const bool no_answer = m.starts_with("no answer from ");
    const bool bind_failed = m.starts_with("cannot bind ");
    if (no_answer || bind_failed) {
        const std::string host = tcp_host(endpoint);
        if (!host.empty() && !resolves(host)) {
            return (bind_failed ? "cannot bind " : "cannot dial ") + std::string(endpoint) +
                   ": cannot resolve host \"" + host + "\"";
        }
        if (no_answer) m += " (is a hub or zchan server running there? --connect-timeout MS)";
    }
    return m;
}

std::string version_line() { return std::string("zchan ") + ZCHAN_VERSION; }

namespace {
sigset_t handled_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGUSR1);  // our own wake-up at destruction
    return set;
}
}  // namespace

interrupt::interrupt() {
    std::signal(SIGPIPE, SIG_IGN);
    const sigset_t set = handled_signals();
    // Blocked in this thread, and so in every thread started later (libzmq's
    // included): only the waiter below ever takes them.
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
    waiter_ = std::thread([this, set] {
        int sig = 0;
        while (sigwait(&set, &sig) == 0) {
            if (sig == SIGUSR1) {
                if (done_.load(std::memory_order_acquire)) return;
                continue;
            }
            if (sig_.exchange(sig, std::memory_order_acq_rel) == 0) {
                stop_.close();
                const std::uint64_t one = 1;
                [[maybe_unused]] auto n = ::write(fd_, &one, sizeof one);
            }
        }
    });
}

interrupt::~interrupt() {
    done_.store(true, std::memory_order_release);
    pthread_kill(waiter_.native_handle(), SIGUSR1);
    waiter_.join();
    ::close(fd_);
}

}  // namespace zchan_cli

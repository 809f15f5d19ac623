// A user-space TCP proxy for fault tests: listens on 127.0.0.1 (a port the
// kernel picks), forwards every accepted connection to a target address, and
// lets the test break the path without root:
//   * pause():  stop forwarding in both directions but keep every connection
//               open (a network cut that TCP itself survives: the bytes wait
//               in the kernel buffers, as during a routing black hole);
//   * resume(): forward again, including everything that queued meanwhile;
//   * kill_connections(): reset every open connection (RST on both sides);
//   * drop_new(true): accept new connections and reset them at once (the
//     target is unreachable; ZeroMQ keeps reconnecting).
//
// One thread runs a poll(2) loop over the listener, every connection pair and
// an eventfd that the control calls use to wake it. Each direction of a pair
// has one buffer: the proxy reads from the source only while that buffer is
// empty and writes it to the destination when writable, so a slow reader
// pushes back to the writer through TCP flow control as without a proxy.
//
// Thread safety: every public member is safe from any thread. The control
// calls take effect on the proxy thread; pause() and kill_connections()
// return only after the proxy thread has applied them, so once pause()
// returns no further byte is forwarded until resume().
#pragma once

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

namespace zchan_test {

class tcp_proxy {
public:
    /// Forwards to `target_host:target_port` (an IPv4 address, e.g. 127.0.0.1).
    /// Throws: std::system_error if the listener cannot be set up.
    tcp_proxy(std::string target_host, std::uint16_t target_port)
        : host_(std::move(target_host)), target_port_(target_port) {
        listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (listen_fd_ < 0) fail("socket");
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = 0;
        if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fail("bind");
        if (::listen(listen_fd_, 64) != 0) fail("listen");
        socklen_t len = sizeof a;
        if (::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
            fail("getsockname");
        }
        port_ = ntohs(a.sin_port);
        wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (wake_fd_ < 0) fail("eventfd");
        thread_ = std::thread([this] { run(); });
    }

    /// Parses "tcp://host:port" (what zchan::server::endpoint() returns).
    explicit tcp_proxy(const std::string& zmq_endpoint)
        : tcp_proxy(host_of(zmq_endpoint), port_of(zmq_endpoint)) {}

    tcp_proxy(const tcp_proxy&) = delete;
    tcp_proxy& operator=(const tcp_proxy&) = delete;

    ~tcp_proxy() {
        stop_.store(true);
        wake();
        thread_.join();
        for (auto& p : pairs_) close_pair(*p, false);
        ::close(listen_fd_);
        ::close(wake_fd_);
    }

    /// The port the proxy listens on (127.0.0.1).
    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
    /// "tcp://127.0.0.1:<port>", for zchan::dial.
    [[nodiscard]] std::string endpoint() const {
        return "tcp://127.0.0.1:" + std::to_string(port_);
    }

    /// Stops forwarding (connections stay open); returns once applied.
    void pause() {
        command([this] { paused_ = true; });
    }
    /// Forwards again, including what queued while paused.
    void resume() {
        command([this] { paused_ = false; });
    }
    /// Resets every open connection (both sides see ECONNRESET); returns once done.
    void kill_connections() {
        command([this] {
            // Marked dead, erased at the end of the loop iteration (the poll
            // set of this iteration still points at them).
            for (auto& p : pairs_) close_pair(*p, true);
        });
    }
    /// While on, new connections are accepted and reset at once.
    void drop_new(bool on) {
        command([this, on] { drop_new_ = on; });
    }

    /// Connections accepted so far (including dropped ones).
    [[nodiscard]] std::uint64_t accepted() const noexcept { return accepted_.load(); }
    /// Connections currently open and forwarded.
    [[nodiscard]] std::size_t open_connections() const noexcept { return open_.load(); }
    /// Bytes forwarded so far, both directions.
    [[nodiscard]] std::uint64_t bytes_forwarded() const noexcept { return bytes_.load(); }

    static std::string host_of(const std::string& ep) {
        const auto start = ep.find("://");
        const auto colon = ep.rfind(':');
        if (start == std::string::npos || colon == std::string::npos || colon <= start + 3) {
            throw std::invalid_argument("tcp_proxy: not a tcp://host:port endpoint: " + ep);
        }
        return ep.substr(start + 3, colon - start - 3);
    }
    static std::uint16_t port_of(const std::string& ep) {
        const auto colon = ep.rfind(':');
        if (colon == std::string::npos) {
            throw std::invalid_argument("tcp_proxy: not a tcp://host:port endpoint: " + ep);
        }
        return static_cast<std::uint16_t>(std::stoul(ep.substr(colon + 1)));
    }

private:
    /// One direction of a connection pair: bytes read from `from`, not yet
    /// written to `to`.
    struct direction {
        std::vector<char> buf;
        std::size_t off = 0;  // bytes of buf already written
        bool eof = false;     // `from` reached end of stream
        [[nodiscard]] bool empty() const noexcept { return off == buf.size(); }
    };
    struct pair {
        int client = -1;
        int target = -1;
        direction up;    // client -> target
        direction down;  // target -> client
        bool dead = false;
    };

    [[noreturn]] static void fail(const char* what) {
        throw std::system_error(errno, std::generic_category(), std::string("tcp_proxy: ") + what);
    }

    void wake() noexcept {
        const std::uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
    }

    /// Runs `fn` on the proxy thread and waits until it has run.
    template <class F>
    void command(F&& fn) {
        std::unique_lock<std::mutex> g(mu_);
        const std::uint64_t ticket = ++posted_;
        commands_.emplace_back(std::forward<F>(fn));
        wake();
        done_cv_.wait(g, [&] { return applied_ >= ticket; });
    }

    void run_commands() {
        std::vector<std::function<void()>> cmds;
        std::uint64_t upto = 0;
        {
            std::lock_guard<std::mutex> g(mu_);
            cmds.swap(commands_);
            upto = posted_;
        }
        for (auto& c : cmds) c();
        {
            std::lock_guard<std::mutex> g(mu_);
            applied_ = upto;
        }
        done_cv_.notify_all();
    }

    static void set_rst_on_close(int fd) {
        linger l{1, 0};
        (void)::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }

    void close_pair(pair& p, bool reset) {
        if (p.dead) return;
        for (int fd : {p.client, p.target}) {
            if (fd < 0) continue;
            if (reset) set_rst_on_close(fd);
            ::close(fd);
        }
        p.client = p.target = -1;
        p.dead = true;
        open_.fetch_sub(1);
    }

    void accept_all() {
        for (;;) {
            const int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (c < 0) return;  // EAGAIN (or a transient error): poll again
            accepted_.fetch_add(1);
            if (drop_new_) {
                set_rst_on_close(c);
                ::close(c);
                continue;
            }
            const int t = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_port = htons(target_port_);
            ::inet_pton(AF_INET, host_.c_str(), &a.sin_addr);
            // A blocking connect: the target is local to the test (loopback or
            // a test namespace), so it answers or refuses at once.
            if (t < 0 || ::connect(t, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
                if (t >= 0) ::close(t);
                set_rst_on_close(c);
                ::close(c);
                continue;
            }
            ::fcntl(t, F_SETFL, ::fcntl(t, F_GETFL) | O_NONBLOCK);
            const int one = 1;
            ::setsockopt(t, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            auto p = std::make_unique<pair>();
            p->client = c;
            p->target = t;
            pairs_.push_back(std::move(p));
            open_.fetch_add(1);
        }
    }

    /// Reads from `from` into an empty direction buffer. False: the pair died.
    bool fill(int from, direction& d) {
        d.buf.resize(std::size_t{64} * 1024);
        const ssize_t n = ::recv(from, d.buf.data(), d.buf.size(), 0);
        if (n > 0) {
            d.buf.resize(static_cast<std::size_t>(n));
            d.off = 0;
            return true;
        }
        d.buf.clear();
        d.off = 0;
        if (n == 0) {
            d.eof = true;
            return true;
        }
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    }

    /// Writes what is buffered to `to`. False: the pair died.
    bool flush(int to, direction& d) {
        while (!d.empty()) {
            const ssize_t n = ::send(to, d.buf.data() + d.off, d.buf.size() - d.off, MSG_NOSIGNAL);
            if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
            d.off += static_cast<std::size_t>(n);
            bytes_.fetch_add(static_cast<std::uint64_t>(n));
        }
        if (d.eof) ::shutdown(to, SHUT_WR);
        return true;
    }

    void run() {
        std::vector<pollfd> fds;
        std::vector<pair*> owners;  // owners[i]: the pair fds[i] belongs to (nullptr: control)
        while (!stop_.load()) {
            fds.clear();
            owners.clear();
            fds.push_back({wake_fd_, POLLIN, 0});
            owners.push_back(nullptr);
            fds.push_back({listen_fd_, POLLIN, 0});
            owners.push_back(nullptr);
            if (!paused_) {
                for (auto& p : pairs_) {
                    short ce = 0;
                    short te = 0;
                    if (p->up.empty() && !p->up.eof) ce |= POLLIN;
                    if (!p->down.empty()) ce |= POLLOUT;
                    if (p->down.empty() && !p->down.eof) te |= POLLIN;
                    if (!p->up.empty()) te |= POLLOUT;
                    fds.push_back({p->client, ce, 0});
                    owners.push_back(p.get());
                    fds.push_back({p->target, te, 0});
                    owners.push_back(p.get());
                }
            }
            ::poll(fds.data(), fds.size(), 1000);
            if ((fds[0].revents & POLLIN) != 0) {
                std::uint64_t n = 0;
                [[maybe_unused]] auto r = ::read(wake_fd_, &n, sizeof n);
            }
            run_commands();
            if ((fds[1].revents & POLLIN) != 0) accept_all();
            if (paused_) continue;
            for (std::size_t i = 2; i < fds.size(); ++i) {
                pair* p = owners[i];
                if (p == nullptr || p->dead || fds[i].revents == 0) continue;
                const bool is_client = fds[i].fd == p->client;
                direction& in = is_client ? p->up : p->down;
                direction& out = is_client ? p->down : p->up;
                const int self = is_client ? p->client : p->target;
                const int other = is_client ? p->target : p->client;
                bool ok = true;
                if ((fds[i].revents & POLLOUT) != 0) ok = flush(self, out);
                if (ok && (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0 && in.empty() &&
                    !in.eof) {
                    ok = fill(self, in) && flush(other, in);
                }
                if (!ok || (in.eof && out.eof && in.empty() && out.empty())) {
                    close_pair(*p, !ok);  // a reset on one side resets the other
                }
            }
            std::erase_if(pairs_, [](const std::unique_ptr<pair>& p) { return p->dead; });
        }
    }

    const std::string host_;
    const std::uint16_t target_port_;
    std::uint16_t port_ = 0;
    int listen_fd_ = -1;
    int wake_fd_ = -1;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    std::atomic<std::uint64_t> accepted_{0};
    std::atomic<std::size_t> open_{0};
    std::atomic<std::uint64_t> bytes_{0};

    std::mutex mu_;
    std::condition_variable done_cv_;
    std::vector<std::function<void()>> commands_;  // guarded by mu_
    std::uint64_t posted_ = 0;                     // guarded by mu_
    std::uint64_t applied_ = 0;                    // guarded by mu_

    // Proxy thread only (after construction).
    std::vector<std::unique_ptr<pair>> pairs_;
    bool paused_ = false;
    bool drop_new_ = false;
};

}  // namespace zchan_test

// peer_connection: the peer's shared DEALER (see peer_connection.hpp).
#include "peer_connection.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <ctime>
#include <map>
#include <mutex>
#include <system_error>
#include <utility>
#include <vector>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "endpoint.hpp"
#include "net_context.hpp"
#include "zchan/errors.hpp"
#include "zmq_eintr.hpp"
#include "zmq_monitor.hpp"

namespace zchan::detail {

namespace w = wire;
using steady = std::chrono::steady_clock;

namespace {

/// Longest single poll of a leader (a backstop; it is kicked when needed).
constexpr long long leader_poll_max_ms = 100;

/// How long a failed send waits for the monitor to report a refusal.
constexpr int refusal_wait_ms = 200;

/// CLOCK_MONOTONIC_COARSE reads up to one tick (1-10 ms with common HZ)
/// behind the real clock; the silence check allows for it.
constexpr std::int64_t coarse_slack_ms = 20;

/// The registry of live connections (see get()).
struct registry {
    std::mutex mu;
    std::map<std::string, std::weak_ptr<peer_connection>> by_key;
};

registry& connections() {
    static auto* r = new registry;  // never destroyed: handles may outlive statics
    return *r;
}

/// What makes two dials share a connection: where, with which keys, and the
/// socket's frame limit.
std::string key_of(const std::string& endpoint, const net_options& opts) {
    std::string k = endpoint;
    k += '\n';
    k += std::to_string(opts.max_frame);
    if (opts.curve_client) {
        k += '\n';
        k += opts.curve_client->server_key.z85();
        k += '\n';
        k += opts.curve_client->secret_key.z85();
    }
    return k;
}

}  // namespace

std::int64_t coarse_now_ms() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

/// The DEALER's handshake-failure and disconnect events (see the top).
class peer_connection::monitor {
public:
    explicit monitor(zmq::socket_t& watched)
        : mon_(watched,
               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                   ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_DISCONNECTED,
               "dial") {
        if (!mon_.ok()) throw connect_error("zchan: cannot monitor the dial socket");
    }

    [[nodiscard]] int fd() { return mon_.fd(); }

    /// Reads the queued events: whether a connection broke, and the first
    /// refusal. NO_DETAIL (the home closed the connection during the
    /// handshake) is what a wrong server key looks like to a CURVE dial:
    /// refused at once. A plaintext dial sees it when a CURVE home drops the
    /// connection before libzmq has read the home's greeting (a race; libzmq
    /// then retries and usually reports the mechanism mismatch next time); it
    /// gives up at the second, so that one transient drop is still retried.
    void read(bool curve, const std::string& endpoint, bool& broke,
              std::optional<std::string>& refusal) {
        while (const auto e = mon_.next()) {
            const std::uint16_t event = e->event;
            const std::uint32_t value = e->value;
            const std::string at = "zchan: " + endpoint + ": ";
            if (event == ZMQ_EVENT_DISCONNECTED) {
                broke = true;
            } else if (refusal) {
                continue;
            } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
                refusal = at +
                          "access denied: the home's allow-list does not admit this client's "
                          "CURVE key (ZAP status " +
                          std::to_string(value) + ")";
            } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
                if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
                    refusal = at + (curve ? "security handshake failed: this dial uses CURVE but "
                                            "the home is plaintext"
                                          : "security handshake failed: the home requires CURVE "
                                            "(net_options::curve_client) but this dial is "
                                            "plaintext");
                } else {
                    refusal =
                        at + "security handshake failed: protocol error " + std::to_string(value);
                }
            } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL && curve) {
                refusal = at +
                          "CURVE handshake failed: the home closed the connection (wrong "
                          "server key, or a plaintext home)";
            } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL && ++dropped_ >= 2) {
                refusal = at +
                          "security handshake failed: the home closed the connection during "
                          "the handshake twice (does it require CURVE? see "
                          "net_options::curve_client)";
            }
        }
    }

private:
    zmq_monitor mon_;
    int dropped_ = 0;  // NO_DETAIL events of a plaintext dial
};

std::shared_ptr<peer_connection> peer_connection::get(const std::string& endpoint,
                                                      const net_options& opts) {
    validate_endpoint(endpoint, false);  // endpoint.hpp
    const std::string key = key_of(endpoint, opts);
    registry& r = connections();
    std::lock_guard<std::mutex> g(r.mu);
    auto& slot = r.by_key[key];
    if (auto c = slot.lock(); c && !c->dead()) return c;
    // Opening a connection costs a socket, a monitor PAIR, two eventfds and
    // a thread: running out of any of them is a connect_error that says so.
    std::shared_ptr<peer_connection> c;
    try {
        c = std::make_shared<peer_connection>(endpoint, opts);
    } catch (const zmq::error_t& e) {
        throw connect_error("zchan: cannot open a connection to " + endpoint +
                            " (out of sockets or file descriptors?): " + e.what());
    } catch (const std::system_error& e) {
        throw connect_error("zchan: cannot open a connection to " + endpoint +
                            " (out of file descriptors or threads?): " + e.what());
    }
    slot = c;
    // Forget the entries of connections that are gone, so that the map does
    // not grow with every endpoint ever dialed.
    for (auto it = r.by_key.begin(); it != r.by_key.end();) {
        it = it->second.expired() ? r.by_key.erase(it) : std::next(it);
    }
    return c;
}

peer_connection::peer_connection(const std::string& endpoint, const net_options& opts)
    : endpoint_(endpoint),
      max_frame_(opts.max_frame),
      curve_(opts.curve_client.has_value()),
      sock_(net_context(), zmq::socket_type::dealer),
      hb_ms_(opts.heartbeat.count()) {
    sock_.set(zmq::sockopt::linger, 1000);  // BYE/ACK/RETURN get a chance to leave
    sock_.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(opts.max_frame));
    // Flow control is the protocol's (§3): never drop or block on HWM.
    sock_.set(zmq::sockopt::sndhwm, 0);
    sock_.set(zmq::sockopt::rcvhwm, 0);
    if (opts.curve_client) {
        const auto& c = *opts.curve_client;
        if (c.secret_key.empty() || c.server_key.empty()) {
            throw std::invalid_argument(
                "zchan: net_options::curve_client needs secret_key and server_key");
        }
        sock_.set(zmq::sockopt::curve_serverkey, c.server_key.z85());
        sock_.set(zmq::sockopt::curve_publickey, curve::public_key_of(c.secret_key).z85());
        sock_.set(zmq::sockopt::curve_secretkey, c.secret_key.z85());
    }
    // §3, §12.2: one routing id for every connection of this socket, so that
    // the home's ROUTER routes to the newest one (ROUTER_HANDOVER). Not
    // starting with a zero byte (libzmq reserves those).
    const auto id = random_instance_id();
    std::string rid(1, 'z');
    rid.append(reinterpret_cast<const char*>(id.data()), id.size());
    sock_.set(zmq::sockopt::routing_id, zmq::buffer(rid));
    nonce_base_ = static_cast<std::uint64_t>(random_instance_id()[0]) << 32;
    mon_ = std::make_unique<monitor>(sock_);  // before connect: see the top
    for (;;) {  // as retry_eintr (zmq_eintr.hpp), in the constructor's own body: no lock yet
        try {
            sock_.connect(endpoint);
            break;
        } catch (const zmq::error_t& e) {
            if (e.num() == EINTR) continue;
            throw connect_error("zchan: cannot connect to " + endpoint + ": " + e.what());
        }
    }
    zmq_fd_ = sock_.get(zmq::sockopt::fd);
    mon_fd_ = mon_->fd();
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
    leader_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (leader_fd_ < 0) {
        const int err = errno;
        ::close(wake_fd_);
        throw std::system_error(err, std::generic_category(), "eventfd");
    }
    try {
        io_ = std::jthread([this](const std::stop_token& st) { run(st); });
    } catch (...) {
        ::close(wake_fd_);
        ::close(leader_fd_);
        throw;
    }
}

peer_connection::~peer_connection() {
    io_.request_stop();
    wake();
    if (io_.joinable()) io_.join();
    lock_guard g(mu);
    mon_.reset();  // stops the monitor: before the socket it watches goes
    sock_.close();
    ::close(wake_fd_);
    ::close(leader_fd_);
}

void peer_connection::attach_locked(std::uint32_t channel, connection_client* c) {
    clients_[channel] = c;
}

void peer_connection::detach_locked(std::uint32_t channel) { clients_.erase(channel); }

std::uint64_t peer_connection::expect_hello_locked(connection_client* c) {
    const std::uint64_t nonce = nonce_base_ | (++hello_count_ & 0xffffffffu);
    hellos_[nonce] = c;
    return nonce;
}

void peer_connection::forget_hello_locked(std::uint64_t nonce) { hellos_.erase(nonce); }

void peer_connection::set_timing_locked(std::chrono::milliseconds hb,
                                        std::chrono::milliseconds timeout) {
    hb_ms_ = std::max<std::int64_t>(1, hb.count());
    timeout_ms_.store(timeout.count(), std::memory_order_relaxed);
    if (!timed_) {
        timed_ = true;
        last_rx_ = last_tx_ = steady::now();
        last_send_ms_ = coarse_now_ms();
    }
}

void peer_connection::wake() noexcept {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
}

void peer_connection::kick_leader_locked() noexcept {
    if (!leader_ || leader_kicked_) return;
    leader_kicked_ = true;
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(leader_fd_, &one, sizeof one);
}

/// After a drain: the leader needs waking only if the drain answered its
/// request (it polls the socket, not its context). Anything else the drain
/// took was for others, and having read to EAGAIN the socket signals the
/// next frame again.
void peer_connection::kick_leader_if_answered_locked() noexcept {
    if (leader_req_ == nullptr || leader_req_->result == net_answer::none) return;
    kick_leader_locked();
}

void peer_connection::need_poller_locked() {
    if (!leader_ && !bg_polls_sock_) wake_background_locked();
}

/// One write per wake-up: until the background thread is back at the top of
/// its loop (where it clears the flag and looks at everything afresh), the
/// eventfd is still readable from the first write, and every further one
/// was a system call and an extra turn of its loop contending for mu. A
/// windowed producer made one per value while the thread had not run yet.
void peer_connection::wake_background_locked() {
    if (bg_wake_pending_) return;
    bg_wake_pending_ = true;
    wake();
}

/// Calls `f` on every attached session, from a copy of the list: a call may
/// detach or attach sessions.
template <class F>
void peer_connection::for_each_client_locked(F&& f) {
    std::vector<connection_client*> all;
    all.reserve(clients_.size());
    for (auto& [ch, c] : clients_) all.push_back(c);
    for (connection_client* c : all) f(c);
}

bool peer_connection::send_locked(const std::string& frame) {
    // The send may consume the socket's edge. Inside a drain, or with a
    // drain to follow (defer_kick_locked), that drain reads on to EAGAIN
    // and kicks the leader if it must; otherwise kick it now.
    if (!draining_ && !kick_deferred_) kick_leader_locked();
    // A thread stopped after its last check must not refresh the stamp by
    // sending: that would make a stale session look alive again.
    expire_if_silent_locked();
    if (dead()) return false;
    // The stamp is the time of the check, not of the send: a stop lands most
    // often inside the send's system call, and a stamp taken after it would
    // make a session the home has lost meanwhile look fresh, so its queued
    // values would reach users (a flaky SIGSTOP test found it).
    const std::int64_t checked_ms = coarse_now_ms();
    try {
        if (!send_eintr(sock_, zmq::buffer(frame), zmq::send_flags::dontwait)) {
            // HWM is unlimited; EAGAIN means the socket cannot queue at all.
            socket_failed_locked();
            return false;
        }
        tx_seen_ = true;  // stamped at the next heartbeat tick
        last_send_ms_ = checked_ms;
        return true;
    } catch (const zmq::error_t&) {
        socket_failed_locked();
        return false;
    }
}

/// libzmq refused a send: its pipe is gone, which a refused security
/// handshake also does (§14.3), and then the monitor's event says why, a
/// moment later. Wait briefly for it, so that a refused dial reports
/// access_denied rather than a failed socket (a heartbeat's PING can hit the
/// missing pipe first on a loaded machine).
void peer_connection::socket_failed_locked() {
    pollfd p{mon_fd_, POLLIN, 0};
    (void)::poll(&p, 1, refusal_wait_ms);
    read_monitor_locked();
    lose_locked(lost_why::socket_failed);  // no-op if the monitor found a refusal
}

void peer_connection::drain_locked() {
    if (draining_) return;  // re-entered from a dispatch hook
    kick_deferred_ = false;
    expire_if_silent_locked();
    if (dead()) return;  // lose_locked kicked the leader
    draining_ = true;
    try {
        // Until EAGAIN: a failed recv also processes the socket's pending
        // commands, so afterwards ZMQ_FD is armed again (as after
        // ZMQ_EVENTS), at one zmq call per frame instead of two.
        for (;;) {
            // A stop can land between two frames too (§12.1): check per frame.
            const std::int64_t now = coarse_now_ms();
            expire_if_silent_locked(now);
            if (dead()) break;
            // A long burst (large values) must not silence us: the home
            // would declare us lost, and so would expire_if_silent_locked.
            if (timed_ && now - last_send_ms_ >= hb_ms_) send_ping_locked();
            zmq::message_t m;
            if (!recv_eintr(sock_, m, zmq::recv_flags::dontwait)) break;
            if (m.more()) {  // protocol.md §3: one frame per message
                ++malformed_;
                while (m.more() && recv_eintr(sock_, m, zmq::recv_flags::dontwait)) {
                }
                continue;
            }
            dispatch_locked(m);
        }
    } catch (const zmq::error_t&) {
        lose_locked(lost_why::socket_failed);
    }
    draining_ = false;
    // A send made while dispatching (a CREDIT flushing the batch) may have
    // deferred its kick to this drain, which has read on to EAGAIN.
    kick_deferred_ = false;
    kick_leader_if_answered_locked();
}

void peer_connection::dispatch_locked(const zmq::message_t& m) {
    w::frame f;
    if (w::decode({m.data<unsigned char>(), m.size()}, w::side::peer, f, max_frame_)) {
        ++malformed_;  // protocol.md §11.1: count and drop
        return;
    }
    rx_seen_ = true;  // any frame is life (§12.1); stamped at the next tick
    if (f.h.channel != 0) {
        auto it = clients_.find(f.h.channel);
        if (it == clients_.end()) {
            ++malformed_;  // a session detached since, or never ours
            return;
        }
        it->second->on_frame_locked(f);
        return;
    }
    switch (f.h.type) {
        case w::msg::ping:  // the home's connection heartbeat (§12.1)
            tx_.clear();
            w::encode_header(tx_, w::header{w::version, w::msg::pong, 0, 0, f.h.id});
            (void)send_locked(tx_);
            return;
        case w::msg::pong:
            return;
        case w::msg::welcome:
        case w::msg::error: {
            auto it = hellos_.find(f.h.id);
            if (it == hellos_.end()) return;  // a stale answer (superseded HELLO)
            connection_client* c = it->second;
            hellos_.erase(it);
            c->on_frame_locked(f);
            return;
        }
        default:
            ++malformed_;
            return;
    }
}

void peer_connection::await_locked(net_request& r, deadline_t deadline) {
    while (r.result == net_answer::none) {
        const auto now = clock::now();
        if (deadline != no_deadline && now >= deadline) return;
        if (leader_) {
            // Follower: the leader, or the background thread once the leader
            // retires, drains our answer and unparks us.
            mu.unlock();
            r.cx.wait_until(deadline);
            mu.lock();
            continue;
        }
        leader_ = true;
        leader_req_ = &r;
        mu.unlock();
        // Bounded, as a backstop: a lost edge costs at most this much.
        auto wait_ms = leader_poll_max_ms;
        if (deadline != no_deadline) {
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
            wait_ms = std::min<long long>(wait_ms, std::max<long long>(left.count(), 0));
        }
        std::array<pollfd, 2> fds{{{zmq_fd_, POLLIN, 0}, {leader_fd_, POLLIN, 0}}};
        ::poll(fds.data(), fds.size(), static_cast<int>(wait_ms));
        mu.lock();
        leader_ = false;
        leader_req_ = nullptr;
        if (leader_kicked_) {
            std::uint64_t n = 0;
            [[maybe_unused]] auto rd = ::read(leader_fd_, &n, sizeof n);
            leader_kicked_ = false;
        }
        drain_locked();
    }
    // Retiring: whoever still waits (followers, select registrations, orphans
    // whose VALUE must be given back) needs a poller.
    if (requests_pending != 0 && !bg_polls_sock_) wake_background_locked();
}

void peer_connection::expire_if_silent_locked() { expire_if_silent_locked(coarse_now_ms()); }

/// A process that sent nothing for the heartbeat timeout was stopped
/// (SIGSTOP, a debugger) or starved: the home may have declared its sessions
/// lost (protocol.md §12.1) and given their deliveries to other receivers
/// (§12.4), so they must not reach a user here (§12.5). Frames still queued
/// in the socket (VALUEs, and the home's PINGs, which would look like signs
/// of life) cannot tell: only our own silence can, so this runs before
/// anything is dispatched, handed over or sent.
///
/// Why the timeout itself is early enough: the stamp is taken before the
/// frame leaves, and the home stamps the frame after it arrived, so the home
/// cannot run out of patience before this does. coarse_slack_ms covers the
/// coarse clock's tick. A live process sends at least every heartbeat.
void peer_connection::expire_if_silent_locked(std::int64_t now) {
    if (dead() || !timed_) return;
    const std::int64_t limit = timeout_ms_.load(std::memory_order_relaxed) - coarse_slack_ms;
    if (now - last_send_ms_ > limit) lose_locked(lost_why::not_running);
}

/// protocol.md §12.1. Frames are not stamped with the clock one by one:
/// whatever was received or sent since the last tick counts as received or
/// sent now (late by at most heartbeat/4).
void peer_connection::heartbeat_locked() {
    if (!timed_) return;
    const auto now = steady::now();
    if (rx_seen_) last_rx_ = now;
    if (tx_seen_) last_tx_ = now;
    rx_seen_ = tx_seen_ = false;
    if (now - last_rx_ > timeout()) {
        lose_locked(lost_why::silence);
        return;
    }
    if (now - last_tx_ >= std::chrono::milliseconds(hb_ms_)) {
        send_ping_locked();
        last_tx_ = now;
        tx_seen_ = false;
    }
}

void peer_connection::send_ping_locked() {
    tx_.clear();
    w::encode_header(tx_, w::header{w::version, w::msg::ping, 0, 0, ++ping_nonce_});
    (void)send_locked(tx_);
}

void peer_connection::read_monitor_locked() {
    bool broke = false;
    std::optional<std::string> refusal;
    mon_->read(curve_, endpoint_, broke, refusal);
    if (refusal) {
        refusal_ = *refusal;
        // §14.3: every HELLO waiting on this connection is refused, and the
        // connection is of no more use (libzmq would retry it forever).
        std::vector<connection_client*> waiting;
        waiting.reserve(hellos_.size());
        for (auto& [nonce, c] : hellos_) waiting.push_back(c);
        for (connection_client* c : waiting) c->on_refused_locked(*refusal);
        kick_leader_locked();
        lose_locked(lost_why::socket_failed);
        return;
    }
    if (broke) {  // §12.2: every session resumes
        for_each_client_locked([](connection_client* c) { c->on_reset_locked(); });
    }
}

void peer_connection::lose_locked(lost_why why) {
    if (dead_.load(std::memory_order_relaxed)) return;
    why_ = why;
    dead_.store(true, std::memory_order_release);
    std::vector<connection_client*> all;
    all.reserve(clients_.size() + hellos_.size());
    for (auto& [ch, c] : clients_) all.push_back(c);
    for (auto& [nonce, c] : hellos_) all.push_back(c);
    hellos_.clear();  // no answer can come any more
    for (connection_client* c : all) c->on_lost_locked(why);
    kick_leader_locked();  // its request was answered `lost`
}

/// The background thread: polls without the lock, drains and ticks with it.
/// The tick (heartbeat, every session's on_tick) runs every heartbeat/4,
/// not at every wake-up: a wake-up per frame (the socket while nobody leads,
/// need_poller_locked) made every session send its queued ACKs and a PING
/// per frame received, where a tick's worth was meant.
void peer_connection::run(const std::stop_token& st) {
    std::int64_t next_tick_ms = 0;
    while (!st.stop_requested()) {
        bool poll_sock = false;
        int poll_ms = 0;
        {
            lock_guard g(mu);
            bg_wake_pending_ = false;  // whatever a wake-up asked for is looked at below
            read_monitor_locked();
            drain_locked();
            const std::int64_t tick_ms = std::max<std::int64_t>(1, hb_ms_ / 4);
            const std::int64_t now = coarse_now_ms();
            if (now >= next_tick_ms) {
                heartbeat_locked();
                if (!dead()) {
                    for_each_client_locked([](connection_client* c) { c->on_tick_locked(); });
                    drain_locked();  // a PING or ACK sent may have consumed the edge
                }
                next_tick_ms = now + tick_ms;
            }
            // While a user thread leads, polling the socket too would only
            // add a competing wake-up per answer.
            poll_sock = !leader_ && !dead();
            bg_polls_sock_ = poll_sock;
            poll_ms = static_cast<int>(std::clamp<std::int64_t>(next_tick_ms - now, 1, tick_ms));
        }
        std::array<pollfd, 3> fds{
            {{wake_fd_, POLLIN, 0}, {mon_fd_, POLLIN, 0}, {zmq_fd_, POLLIN, 0}}};
        ::poll(fds.data(), poll_sock ? 3 : 2, poll_ms);
        if ((fds[0].revents & POLLIN) != 0) {
            std::uint64_t n = 0;
            [[maybe_unused]] auto r = ::read(wake_fd_, &n, sizeof n);
        }
    }
}

}  // namespace zchan::detail

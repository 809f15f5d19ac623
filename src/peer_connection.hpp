// The peer's I/O engine (docs/protocol.md §3, §12.1, §15): one DEALER per
// (process, endpoint, security), shared by every handle the process dials
// there; each handle is a protocol session (peer_session.hpp) multiplexed on
// it by channel id, which every frame carries (§4). 10,000 handles to one
// home cost one socket, one monitor and one background thread.
//
// What the connection owns: the socket and its edge-triggered ZMQ_FD rules,
// the leader/followers that let a waiting user thread poll the socket itself,
// the background thread, the monitor (handshake refusals, broken
// connections), and liveness, which is the connection's (§12.1): any frame
// received counts as life for every session on it, and a PING on channel 0
// keeps the whole connection alive. What it does not own: requests, windows,
// resume and confirmations, which are per session.
//
// Leader/followers. A thread waiting for an answer does not wait for another
// thread to hand it over: if nobody is polling the socket it becomes the
// *leader* (leader_ = true), releases mu and polls ZMQ_FD itself, then takes
// mu back and drains. So the thread libzmq wakes is the thread the answer is
// for: one wake-up per answer, as with a raw blocking zmq_recv. Other waiters
// are *followers*: they park on their request's context and whoever drains
// their answer wakes them. The background thread polls ZMQ_FD only while
// there is no leader (select registrations, followers after the leader left,
// orphaned requests, PINGs); otherwise it sleeps on its eventfd and wakes
// every heartbeat/4 to drain and run the heartbeat.
//
// Edges. ZMQ_FD is edge-triggered: any zmq call on the socket (a send, a
// drain) may consume the notification. Hence (1) every send is followed by a
// drain while still holding mu, so no answer sits unseen in the socket; and
// (2) a thread that touches the socket while a leader polls (that is, without
// being the leader: the leader clears leader_ before touching it) kicks the
// leader through leader_fd_ when the leader may have missed its answer: after
// a drain, only if that drain answered the leader's request (leader_req_),
// since a drain reads to EAGAIN and so re-arms the edge; after a send that no
// drain follows, always. A leader that retires while requests are still
// pending wakes the background thread unless it already polls the socket
// (bg_polls_sock_).
//
// Security (§14): libzmq reports a refused security handshake only through
// monitor events (and retries the connection forever), so the connection
// watches them and fails every HELLO still waiting with access_denied at once
// instead of a connect timeout; a refused connection is dead (later dials open
// a new one).
//
// Thread safety: every member function is safe from any thread; functions
// named *_locked require `mu` (the one lock of the connection and of every
// session on it: they share the socket).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

#include <zmq.hpp>

#include "codec.hpp"
#include "zchan/detail/net_link.hpp"
#include "zchan/detail/thread_annotations.hpp"

namespace zchan::detail {

/// Why a session was lost (net_link::lost_what).
enum class lost_why : std::uint8_t {
    silence,            // nothing received for the timeout (§12.1)
    not_running,        // nothing sent for the timeout: this process was stopped (§12.1)
    home_shut_down,     // ERROR shutting_down (§12.4)
    home_restarted,     // a resume reached another home instance (§12.2)
    session_forgotten,  // a resume reached a home that lost the session (§12.2)
    socket_failed,      // libzmq refused a send or receive
    closed_here,        // the handle is being destroyed
};

/// A session attached to a connection. Every member is called with the
/// connection's mu held, on whichever thread drains or ticks.
class connection_client {
public:
    /// A frame for this session: its channel id, or (channel 0) the WELCOME
    /// or ERROR answering a HELLO nonce it registered.
    virtual void on_frame_locked(const wire::frame& f) = 0;
    /// A security refusal for a HELLO it registered (§14.3).
    virtual void on_refused_locked(const std::string& why) = 0;
    /// The connection broke (§12.2): resume.
    virtual void on_reset_locked() = 0;
    /// The background thread's tick (heartbeat/4): queued ACKs, confirmations.
    virtual void on_tick_locked() = 0;
    /// The connection is lost for good (§12.1): so is the session.
    virtual void on_lost_locked(lost_why why) = 0;

protected:
    ~connection_client() = default;
};

class peer_connection {
public:
    /// The process's connection for `endpoint` with `opts`' security and
    /// frame limit, opened if there is none (or it is dead). Throws
    /// connect_error (invalid endpoint; out of sockets, descriptors or
    /// threads: the message says which).
    static std::shared_ptr<peer_connection> get(const std::string& endpoint,
                                                const net_options& opts);

    explicit peer_connection(const std::string& endpoint, const net_options& opts);
    ~peer_connection();
    peer_connection(const peer_connection&) = delete;
    peer_connection& operator=(const peer_connection&) = delete;

    annotated_mutex mu;

    [[nodiscard]] const std::string& endpoint() const noexcept { return endpoint_; }
    [[nodiscard]] bool curve() const noexcept { return curve_; }
    [[nodiscard]] bool dead() const noexcept { return dead_.load(std::memory_order_acquire); }
    /// Why it died, and the security refusal that killed it (if one did).
    [[nodiscard]] lost_why why_dead_locked() const ZCHAN_REQUIRES(mu) { return why_; }
    [[nodiscard]] const std::string& refusal_locked() const ZCHAN_REQUIRES(mu) { return refusal_; }
    [[nodiscard]] std::uint64_t malformed_frames() const noexcept { return malformed_.load(); }
    /// The heartbeat timeout the home granted (after the first WELCOME).
    [[nodiscard]] std::chrono::milliseconds timeout() const noexcept {
        return std::chrono::milliseconds(timeout_ms_.load(std::memory_order_relaxed));
    }

    /// Attaches `c` under its channel id (after WELCOME) / detaches it.
    void attach_locked(std::uint32_t channel, connection_client* c) ZCHAN_REQUIRES(mu);
    void detach_locked(std::uint32_t channel) ZCHAN_REQUIRES(mu);
    /// A fresh HELLO nonce whose WELCOME/ERROR goes to `c`; forget it when answered or abandoned.
    std::uint64_t expect_hello_locked(connection_client* c) ZCHAN_REQUIRES(mu);
    void forget_hello_locked(std::uint64_t nonce) ZCHAN_REQUIRES(mu);
    /// The home's timing from a WELCOME (the same for every session of one home).
    void set_timing_locked(std::chrono::milliseconds hb, std::chrono::milliseconds timeout)
        ZCHAN_REQUIRES(mu);

    /// One frame out (kicks the leader first, see (2) above). False if the connection is
    /// dead or died now (every session was told).
    bool send_locked(const std::string& frame) ZCHAN_REQUIRES(mu);
    /// Reads and dispatches every frame the socket has ready.
    void drain_locked() ZCHAN_REQUIRES(mu);
    /// The caller drains (drain_locked) before it releases mu: until then
    /// its sends do not kick the leader; the drain does, if it answered the
    /// leader's request. With many threads on one connection, a kick per
    /// frame sent woke the leader for nothing most of the time.
    void defer_kick_locked() ZCHAN_REQUIRES(mu) { kick_deferred_ = true; }
    /// Waits (as leader or follower, releasing mu meanwhile) until `r` has
    /// its final answer or `deadline` passes. Nothing in it throws.
    void await_locked(net_request& r, deadline_t deadline) ZCHAN_REQUIRES(mu);
    /// A request nobody's thread will lead for (a select registration):
    /// makes sure the background thread polls the socket.
    void need_poller_locked() ZCHAN_REQUIRES(mu);
    /// The self-silence check (§12.1): a process that sent nothing for the
    /// timeout was stopped or starved; every session is then lost.
    void expire_if_silent_locked() ZCHAN_REQUIRES(mu);

    /// Requests of every session that still wait for a final answer: a
    /// retiring leader leaves a poller behind while there are any.
    std::size_t requests_pending ZCHAN_GUARDED_BY(mu) = 0;

private:
    void wake() noexcept;
    void wake_background_locked() ZCHAN_REQUIRES(mu);
    void kick_leader_locked() noexcept ZCHAN_REQUIRES(mu);
    void kick_leader_if_answered_locked() noexcept ZCHAN_REQUIRES(mu);
    void expire_if_silent_locked(std::int64_t now) ZCHAN_REQUIRES(mu);
    void dispatch_locked(const zmq::message_t& m) ZCHAN_REQUIRES(mu);
    void heartbeat_locked() ZCHAN_REQUIRES(mu);
    void send_ping_locked() ZCHAN_REQUIRES(mu);
    void read_monitor_locked() ZCHAN_REQUIRES(mu);
    void lose_locked(lost_why why) ZCHAN_REQUIRES(mu);
    void socket_failed_locked() ZCHAN_REQUIRES(mu);
    template <class F>
    void for_each_client_locked(F&& f) ZCHAN_REQUIRES(mu);
    void run(const std::stop_token& st);

    class monitor;

    const std::string endpoint_;
    const std::size_t max_frame_;
    const bool curve_;
    std::atomic<bool> dead_{false};
    std::atomic<std::uint64_t> malformed_{0};
    std::atomic<std::int64_t> timeout_ms_{0};
    int wake_fd_ = -1;    // wakes the background thread
    int leader_fd_ = -1;  // kicks the leader out of its poll (kick_leader_locked)
    int zmq_fd_ = -1;
    int mon_fd_ = -1;

    zmq::socket_t sock_ ZCHAN_GUARDED_BY(mu);
    std::unique_ptr<monitor> mon_ ZCHAN_GUARDED_BY(mu);  // destroyed before sock_ closes
    std::unordered_map<std::uint32_t, connection_client*> clients_ ZCHAN_GUARDED_BY(mu);
    std::unordered_map<std::uint64_t, connection_client*> hellos_ ZCHAN_GUARDED_BY(mu);
    std::uint64_t nonce_base_ = 0;  // HELLO nonces: nonce_base_ | counter
    std::uint64_t hello_count_ ZCHAN_GUARDED_BY(mu) = 0;
    std::uint64_t ping_nonce_ ZCHAN_GUARDED_BY(mu) = 0;
    std::int64_t hb_ms_ ZCHAN_GUARDED_BY(mu);  // the home's heartbeat (else ours)
    bool timed_ ZCHAN_GUARDED_BY(mu) = false;  // a WELCOME set the timing
    std::chrono::steady_clock::time_point last_rx_ ZCHAN_GUARDED_BY(mu){};
    std::chrono::steady_clock::time_point last_tx_ ZCHAN_GUARDED_BY(mu){};
    bool rx_seen_ ZCHAN_GUARDED_BY(mu) = false;           // a frame arrived since the last tick
    bool tx_seen_ ZCHAN_GUARDED_BY(mu) = false;           // a frame left since the last tick
    std::int64_t last_send_ms_ ZCHAN_GUARDED_BY(mu) = 0;  // coarse clock of the last frame sent
    bool draining_ ZCHAN_GUARDED_BY(mu) = false;
    bool leader_ ZCHAN_GUARDED_BY(mu) = false;                // a user thread polls the socket
    bool leader_kicked_ ZCHAN_GUARDED_BY(mu) = false;         // leader_fd_ written, not yet read
    net_request* leader_req_ ZCHAN_GUARDED_BY(mu) = nullptr;  // what the leader waits for
    bool kick_deferred_ ZCHAN_GUARDED_BY(mu) = false;         // a drain follows the sends
    bool bg_polls_sock_ ZCHAN_GUARDED_BY(mu) = false;    // the background poll includes zmq_fd_
    bool bg_wake_pending_ ZCHAN_GUARDED_BY(mu) = false;  // wake_fd_ written since its loop's top
    std::string tx_ ZCHAN_GUARDED_BY(mu);                // the connection's own frames (PING/PONG)
    lost_why why_ ZCHAN_GUARDED_BY(mu) = lost_why::silence;  // once dead_
    std::string refusal_ ZCHAN_GUARDED_BY(mu);               // once refused (§14.3)
    std::jthread io_;  // last: started when everything above exists, joined first
};

/// CLOCK_MONOTONIC_COARSE in ms: a few ns per read (no syscall, tick
/// resolution), cheap enough to stamp every frame sent.
std::int64_t coarse_now_ms() noexcept;

}  // namespace zchan::detail

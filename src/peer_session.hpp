// A protocol session of a dialed handle (net_link, declared in
// zchan/detail/net_link.hpp): handshake, request table, prefetch window, ACK
// batching and confirmations, resume. Its frames travel on the process's
// shared connection to the endpoint (peer_connection.hpp), which owns the
// socket, the threads that poll it and liveness; the session's state is
// guarded by the connection's mutex (conn_->mu is a reference to it).
//
// One job a file; each file's top says how its part works:
//   peer_session.cpp           the session's life: the dial's HELLO (protocol.md §7),
//                              frames from the home (§5.2), loss (§11.3), BYE; net_link::dial
//   peer_session_requests.cpp  the request table: start, wait, CANCEL_* (§8.5), final answers,
//                              the frames out
//   peer_session_recv.cpp      the prefetch window (§9.2), ACK batching and RETURNs (§8.4, §12.4)
//   peer_session_send.cpp      the send window: credits, SEND_MANY batches, flush, REVOKE (§9.1)
//   peer_session_resume.cpp    resume (§12.2, §12.3) and the confirmation of resolutions (§12.5)
//   peer_session_poll.cpp      POLL (§8.9): a select's remote cases polled at one instant
//
// Invariant: a request is in pending_ (and counted in the connection's
// requests_pending) until its final answer (or loss); the answer is written
// into it under the mutex before its waiter is woken.
//
// Thread safety: every member function is safe from any thread (net_link's
// contract) once handshake() has returned, which net_link::dial does before it
// shares the session. Public functions take conn_->mu, or read only atomics
// and what handshake() set; functions named *_locked, and the connection_client
// callbacks (the connection calls them on whichever thread drains or ticks),
// require it held.
//
// Private to the library: only the peer_session*.cpp files include it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "codec.hpp"
#include "peer_connection.hpp"
#include "prefetch_queue.hpp"
#include "send_window.hpp"
#include "zchan/detail/net_link.hpp"
#include "zchan/detail/thread_annotations.hpp"

namespace zchan::detail {

class peer_session final : public net_link, private connection_client {
public:
    explicit peer_session(std::shared_ptr<peer_connection> conn, net_options opts)
        : opts_(std::move(opts)), conn_(std::move(conn)) {}
    ~peer_session() override;

    peer_session(const peer_session&) = delete;
    peer_session& operator=(const peer_session&) = delete;

    /// Opens the session on the connection (protocol.md §7). Throws as
    /// net_link::dial says.
    void handshake(const std::string& name, const std::string& type_name);

    std::uint64_t capacity() const noexcept override { return capacity_; }
    bool lost() const noexcept override { return lost_.load(std::memory_order_acquire); }
    std::string lost_what() const override;
    static std::string lost_text(lost_why why, std::chrono::milliseconds timeout);
    std::uint64_t malformed_frames() const noexcept override {
        return conn_->malformed_frames() + malformed_.load();
    }

    // The request table (peer_session_requests.cpp).
    std::shared_ptr<net_request> start(net_op op, bool try_now, std::string payload,
                                       void (*configure)(net_request&, void*),
                                       void* configure_arg) override;
    net_answer wait(net_request& r, deadline_t deadline) override;
    void detach(net_request& r) override;

    // Receives (peer_session_recv.cpp).
    net_answer take_prefetched(std::string& payload) override;
    void ack(std::uint64_t delivery) override;
    void ack_locked(std::uint64_t delivery) override ZCHAN_REQUIRES(conn_->mu);
    void give_back_locked(std::uint64_t delivery) override ZCHAN_REQUIRES(conn_->mu);

    // The send window (peer_session_send.cpp).
    bool has_window() const noexcept override { return window_.load(std::memory_order_relaxed); }
    bool has_credit() const override;
    credited send_credited(void (*encode)(std::string& out, void* value), void* value) override;
    net_answer flush(deadline_t deadline) override;
    std::uint64_t unconfirmed() const override;

    // POLL (peer_session_poll.cpp).
    [[nodiscard]] const peer_connection* connection() const noexcept { return conn_.get(); }
    /// Sends one POLL for `cases` (sessions on this one's connection, this
    /// one among them, and whether each sends) as a request of this session;
    /// nullptr if one of them is lost.
    std::shared_ptr<net_request> start_poll(std::span<const poll_target> cases);

private:
    // The session's life, frames from the home (peer_session.cpp).
    void on_frame_locked(const wire::frame& f) override ZCHAN_REQUIRES(conn_->mu);
    void answer_hello_locked(const wire::frame& f) ZCHAN_REQUIRES(conn_->mu);
    void lose_locked(lost_why why) ZCHAN_REQUIRES(conn_->mu);
    void on_lost_locked(lost_why why) override ZCHAN_REQUIRES(conn_->mu);
    void on_refused_locked(const std::string& why) override ZCHAN_REQUIRES(conn_->mu);

    // The request table (peer_session_requests.cpp).
    static void notify_locked(net_request& r);
    void cancel_locked(net_request& r) ZCHAN_REQUIRES(conn_->mu);
    static std::optional<wire::msg> cancel_type(net_op op) noexcept;
    void encode_request_locked(const net_request& r) ZCHAN_REQUIRES(conn_->mu);
    void complete_locked(const wire::frame& f, net_answer a) ZCHAN_REQUIRES(conn_->mu);
    void send_locked() ZCHAN_REQUIRES(conn_->mu);
    void send_raw_locked() ZCHAN_REQUIRES(conn_->mu);
    void send_buf_locked(const std::string& buf) ZCHAN_REQUIRES(conn_->mu);

    // Receives (peer_session_recv.cpp).
    void start_prefetched_locked(const std::shared_ptr<net_request>& r, bool try_now)
        ZCHAN_REQUIRES(conn_->mu);
    bool hand_over_locked(net_request& r) ZCHAN_REQUIRES(conn_->mu);
    void serve_waiters_locked() ZCHAN_REQUIRES(conn_->mu);
    void forget_waiter_locked(const net_request& r) ZCHAN_REQUIRES(conn_->mu);
    void refill_locked() ZCHAN_REQUIRES(conn_->mu);
    void prefetch_answer_locked(net_answer a) ZCHAN_REQUIRES(conn_->mu);
    void dispatch_values_locked(const wire::frame& f) ZCHAN_REQUIRES(conn_->mu);
    void flush_acks_locked() ZCHAN_REQUIRES(conn_->mu);
    void acks_now_locked() ZCHAN_REQUIRES(conn_->mu);
    void home_stopping_locked() ZCHAN_REQUIRES(conn_->mu);

    // The send window (peer_session_send.cpp).
    net_answer flush_locked(net_request& r, deadline_t deadline) ZCHAN_REQUIRES(conn_->mu);
    void flush_batch_locked() ZCHAN_REQUIRES(conn_->mu);
    void on_credit_locked(const wire::frame& f) ZCHAN_REQUIRES(conn_->mu);
    void on_revoke_locked() ZCHAN_REQUIRES(conn_->mu);

    // POLL (peer_session_poll.cpp).
    void before_poll_locked() ZCHAN_REQUIRES(conn_->mu);

    // Resume and confirmations (peer_session_resume.cpp).
    void on_tick_locked() override ZCHAN_REQUIRES(conn_->mu);
    void on_reset_locked() override ZCHAN_REQUIRES(conn_->mu) { start_resume_locked(); }
    void send_ping_locked() ZCHAN_REQUIRES(conn_->mu);
    void confirm_locked(std::uint64_t nonce) ZCHAN_REQUIRES(conn_->mu);
    void start_resume_locked() ZCHAN_REQUIRES(conn_->mu);
    [[nodiscard]] wire::hello_body hello_locked() const ZCHAN_REQUIRES(conn_->mu);
    void welcome_locked(const wire::frame& f) ZCHAN_REQUIRES(conn_->mu);
    void resend_locked() ZCHAN_REQUIRES(conn_->mu);
    bool second_answer_locked(std::uint64_t id, net_answer a, std::uint64_t delivery)
        ZCHAN_REQUIRES(conn_->mu);

    const net_options opts_;
    const std::shared_ptr<peer_connection> conn_;
    /// Why the session was lost (lost_what); written once, before lost_.
    std::atomic<bool> lost_{false};
    std::atomic<lost_why> why_{lost_why::silence};
    std::atomic<std::uint64_t> malformed_{0};  // frames for this session that made no sense

    // Set by handshake() while dialing; read-only afterwards.
    std::string name_;
    std::string type_name_;
    wire::instance_id instance_{};       // ours: HELLO RESUME presents it again (§12.2)
    wire::instance_id home_instance_{};  // the home's, from WELCOME
    std::uint32_t channel_ = 0;          // set under conn_->mu by the WELCOME (answer_hello_locked)
    std::uint64_t capacity_ = 0;
    std::size_t max_value_ = 0;  // the largest encoded value a VALUE can carry (§6.4)

    net_request hs_;  // the dial's HELLO, waited for like a request
    std::uint64_t hello_nonce_ ZCHAN_GUARDED_BY(conn_->mu) = 0;  // the dial's HELLO until answered
    bool refused_ ZCHAN_GUARDED_BY(conn_->mu) = false;           // a security refusal (§14.3)
    std::unordered_map<std::uint64_t, std::shared_ptr<net_request>> pending_
        ZCHAN_GUARDED_BY(conn_->mu);
    std::uint64_t next_id_ ZCHAN_GUARDED_BY(conn_->mu) = 1;
    std::uint64_t ping_nonce_ ZCHAN_GUARDED_BY(conn_->mu) = 0;
    bool home_stopping_ ZCHAN_GUARDED_BY(conn_->mu) = false;  // ERROR shutting_down received
    // The home asked for resolutions (a PING on this channel): queued ACKs
    // leave whenever a receiver goes to wait (acks_now_locked).
    bool acks_at_wait_ ZCHAN_GUARDED_BY(conn_->mu) = false;
    // Resume (peer_session_resume.cpp); all guarded by conn_->mu.
    bool resuming_ ZCHAN_GUARDED_BY(conn_->mu) =
        false;  // HELLO RESUME sent, its WELCOME not yet here
    std::uint64_t resume_nonce_ ZCHAN_GUARDED_BY(conn_->mu) = 0;  // the latest HELLO RESUME's nonce
    std::uint64_t resumes_ ZCHAN_GUARDED_BY(conn_->mu) = 0;       // completed resumes
    /// Resolutions sent and not yet confirmed (§12.5), in order: a delivery
    /// seq, with return_bit set for a RETURN.
    static constexpr std::uint64_t return_bit = std::uint64_t{1} << 63;
    std::deque<std::uint64_t> unconf_ ZCHAN_GUARDED_BY(conn_->mu);
    /// PINGs sent since: (nonce, how many of unconf_ its PONG confirms).
    std::deque<std::pair<std::uint64_t, std::size_t>> conf_marks_ ZCHAN_GUARDED_BY(conn_->mu);
    /// Requests re-sent by the last resume -> the delivery of their first
    /// answer (0: not a VALUE; `unanswered`: none yet).
    static constexpr std::uint64_t unanswered = ~std::uint64_t{0};
    std::unordered_map<std::uint64_t, std::uint64_t> resent_ ZCHAN_GUARDED_BY(conn_->mu);
    std::string tx_ ZCHAN_GUARDED_BY(conn_->mu);
    std::string ack_tx_ ZCHAN_GUARDED_BY(conn_->mu);  // an ACK frame being sent
    // Prefetch window (peer_session_recv.cpp); all guarded by conn_->mu. prefetch_ is set by
    // the WELCOME while dialing, before any request.
    std::uint32_t prefetch_ = 0;  // granted window P'; 0 = none
    prefetch_queue pq_ ZCHAN_GUARDED_BY(conn_->mu);
    std::deque<std::shared_ptr<net_request>> pwaiters_
        ZCHAN_GUARDED_BY(conn_->mu);  // recvs waiting for pq_, in arrival order
    std::vector<std::uint64_t> acks_
        ZCHAN_GUARDED_BY(conn_->mu);  // deliveries taken, not yet ACKed
    // Send window (peer_session_send.cpp).
    send_window sw_ ZCHAN_GUARDED_BY(conn_->mu);
    std::atomic<bool> window_{false};  // sw_.enabled(), read without the lock (has_window)
    std::vector<net_request*> flushers_
        ZCHAN_GUARDED_BY(conn_->mu);  // flush() callers, waiting for a confirmation
};

}  // namespace zchan::detail

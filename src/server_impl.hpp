// zchan::server's implementation: the home side of the protocol
// (docs/protocol.md §3, §7, §8, §10-§12, §15). An internal header, included
// only by the files that define server::impl, one job each:
//   server.cpp           the public zchan::server, construction and security,
//                        the serve() registry, the run loop, shutdown
//   server_dispatch.cpp  frames in: validation and the per-type dispatch
//   server_sessions.cpp  HELLO, resume, connections and liveness, session end,
//                        the hub's idle sweep
//   server_replies.cpp   frames out: the reply_sink side, routing by session
//   server_stats.cpp     the "$stat" channel and its snapshot
//   server_poll.cpp      POLL: a select's cases polled at one instant
//
// Threading: one server thread owns the ROUTER and every session; it runs
// each request directly on the served channel through the non-blocking core
// hooks (served_chan<T>). The only cross-thread traffic is:
//   * serve() adding a channel (served_mu_);
//   * op_notifier::post() from whichever thread completed a registered
//     operation (under that channel's lock): it appends to ready_ under
//     ready_mu_ and writes the eventfd. Lock order: channel lock -> ready_mu_;
//     the server thread never holds ready_mu_ while calling a channel.
//
// Invariants (server thread, between frames):
//   * every session_info's conn points into conns_ at its routing_id, and a
//     connection_info's `sessions` counts the sessions pointing at it; a
//     connection leaves conns_ with its last session (move_to,
//     leave_connection);
//   * every session_info's stats points into counters_ at its channel, which
//     stays served while a session is attached (sweep_idle);
//   * session_count_ == sessions_.size() after every change of sessions_;
//   * once stopping_ is set (shut_down), no session opens and no request
//     starts: only ACK, RETURN and BYE are handled.
//
// Thread safety of server::impl: add(), set_factory(), set_sweeper() (under
// served_mu_), post() (under ready_mu_) and the const accessors (atomics, or
// immutable after construction) are safe from any thread; every other member
// is the server thread's, but for construction and destruction, which run on
// the owning zchan::server's thread before the server thread starts and after
// it is joined.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <zmq.hpp>

#include "codec.hpp"
#include "zap.hpp"
#include "zchan/detail/thread_annotations.hpp"
#include "zchan/hub.hpp"
#include "zchan/net.hpp"
#include "zmq_monitor.hpp"

namespace zchan {

// Shorthands for the server's files (the only ones that include this header).
using steady = std::chrono::steady_clock;
namespace w = detail::wire;

class server::impl final : public detail::reply_sink, public detail::op_notifier {
public:
    impl(const std::string& endpoint, const net_options& opts);
    ~impl();

    impl(const impl&) = delete;
    impl& operator=(const impl&) = delete;

    void add(const std::string& name, std::unique_ptr<detail::served_base> ch);
    void set_factory(detail::channel_factory f);
    void set_sweeper(detail::channel_sweeper f);  // hub: idle channels (§17.1)

    // op_notifier: any thread, under a channel lock.
    void post(detail::served_base* ch, std::uint64_t op_id) noexcept override;

    [[nodiscard]] const std::string& endpoint() const noexcept { return endpoint_; }
    [[nodiscard]] std::uint64_t malformed() const noexcept { return malformed_.load(); }
    [[nodiscard]] std::size_t session_count() const noexcept { return session_count_.load(); }
    [[nodiscard]] std::uint64_t rejected() const noexcept { return rejected_.load(); }
    [[nodiscard]] bool is_secure() const noexcept { return zap_ != nullptr; }

    // reply_sink: server thread only (server_replies.cpp).
    void reply(std::uint32_t session, w::msg type, std::uint64_t id) override;
    void reply_value(std::uint32_t session, std::uint64_t request, std::uint64_t delivery,
                     const std::string& payload) override;
    void reply_error(std::uint32_t session, std::uint64_t ref, w::error_code code,
                     std::string_view text) override;
    std::string& values_begin(std::uint32_t session, std::uint64_t first_request,
                              std::uint64_t first_delivery) override;
    void reply_credit(std::uint32_t session, std::uint64_t granted,
                      std::uint64_t confirmed) override;
    void values_end(std::uint32_t count) override;

private:
    /// Per served channel, for "$stat" (protocol.md §17.2). Server thread only.
    struct counters {
        std::uint64_t values_in = 0;
        std::uint64_t values_out = 0;
        std::uint64_t returned = 0;
        std::uint64_t errors = 0;
    };

    /// A peer connection (one routing id): liveness is per connection
    /// (protocol.md §12.1), since one DEALER carries all of a process's
    /// sessions with this home. Removed with its last session.
    struct connection_info {
        steady::time_point last_rx;  // any frame from it
        steady::time_point last_tx;  // any frame to it
        std::size_t sessions = 0;
    };

    struct session_info {
        std::string routing_id;
        connection_info* conn = nullptr;  // conns_[routing_id] (node-based: stable)
        detail::served_base* ch = nullptr;
        counters* stats = nullptr;      // counters_[ch]
        bool sends = false;             // has sent SEND or WATCH_SEND (a sender, for "$stat")
        bool recvs = false;             // has sent RECV (a receiver)
        w::instance_id instance{};      // the peer's, from HELLO: HELLO RESUME finds it (§12.2)
        std::uint32_t prefetch = 0;     // granted in WELCOME, granted again on resume
        std::uint32_t send_window = 0;  // likewise (§9.1)
        /// CLOSE request ids this session executed (§12.3: a re-send gets
        /// CLOSE_OK again, not already_closed). A peer closes once or twice.
        std::vector<std::uint64_t> closed_by;
    };

    // ---- "$stat" (server_stats.cpp)
    class stat_chan;
    std::unique_ptr<detail::served_base> make_stat_chan();
    void bump(std::uint32_t session, std::uint64_t counters::*field, std::uint64_t n = 1);
    server_stats snapshot();

    // ---- construction, the run loop, shutdown (server.cpp)
    void secure();
    void read_monitor();
    void wake() noexcept;
    void run(const std::stop_token& st);
    void shut_down(zmq::pollitem_t& item);
    void process_ready();
    bool recv_one();

    // ---- frames in (server_dispatch.cpp)
    void count_malformed(const char* why);
    void handle(const std::string& rid, const zmq::message_t& body);
    void credited(std::uint32_t sid, session_info& s, std::uint64_t first, std::uint32_t count,
                  std::string_view entries);

    // ---- POLL (server_poll.cpp)
    bool none_ready(const std::string& rid, const w::frame& f);

    // ---- sessions and connections (server_sessions.cpp)
    void on_hello(const std::string& rid, const w::frame& f);
    void drop(std::uint32_t sid);
    void housekeeping();
    void sweep_idle();
    void move_to(session_info& s, const std::string& rid);
    void leave_connection(session_info& s);

    // ---- frames out (server_replies.cpp)
    void send_to(std::uint32_t sid);
    void send_to(std::uint32_t sid, const std::string& frame);
    bool send_raw(const std::string& rid);
    bool send_raw(const std::string& rid, const std::string& frame);

    const net_options opts_;
    // Secure servers only; declared before router_, so it outlives the ROUTER.
    std::unique_ptr<detail::zap_registration> zap_;
    zmq::socket_t router_;                    // server thread only (after construction)
    std::optional<detail::zmq_monitor> mon_;  // secure servers; server thread only
    std::string endpoint_;                    // immutable after construction
    w::instance_id instance_{};
    int wake_fd_ = -1;
    std::atomic<std::uint64_t> malformed_{0};
    std::atomic<std::size_t> session_count_{0};
    std::atomic<std::uint64_t> rejected_{0};

    detail::annotated_mutex served_mu_;
    std::map<std::string, std::unique_ptr<detail::served_base>> served_
        ZCHAN_GUARDED_BY(served_mu_);
    detail::channel_factory factory_ ZCHAN_GUARDED_BY(served_mu_);  // a hub's (protocol.md §17.1)
    detail::channel_sweeper sweeper_ ZCHAN_GUARDED_BY(served_mu_);  // a hub's (protocol.md §17.1)

    detail::annotated_mutex ready_mu_;
    std::vector<std::pair<detail::served_base*, std::uint64_t>> ready_ ZCHAN_GUARDED_BY(ready_mu_);
    std::atomic<bool> signalled_{false};

    // Server thread only.
    bool stopping_ = false;  // shut_down() runs: only ACK, RETURN and BYE are handled
    std::unordered_map<std::uint32_t, session_info> sessions_;
    std::unordered_map<std::string, connection_info> conns_;  // by routing id
    // Elements are erased only with their channel (sweep_idle), which no
    // session is attached to, so session_info::stats pointers stay valid.
    std::unordered_map<const detail::served_base*, counters> counters_;
    std::vector<std::uint32_t> unroutable_;
    std::uint32_t next_session_ = 1;
    std::uint64_t refused_dials_ = 0;  // "$stat" (§17.2)
    std::uint64_t ping_nonce_ = 0;
    std::string tx_;
    std::string vtx_;    // a VALUES frame being built (values_begin/values_end)
    std::string entry_;  // a credited SEND's value as a SEND_MANY entry
    std::uint32_t values_session_ = 0;
    // The time at the start of this poll iteration (refreshed before
    // housekeeping): frames are stamped with it instead of reading the clock
    // per frame; a batch is at most 512 frames, far below heartbeat/4.
    steady::time_point now_ = steady::now();
    std::vector<std::pair<detail::served_base*, std::uint64_t>> ready_scratch_;
    // POLL's scratch (server_poll.cpp): one element per case.
    std::vector<std::pair<const detail::served_base*, std::uint32_t>> poll_sessions_;
    std::vector<const detail::chan_poll*> poll_chans_;
    std::vector<detail::spin_lock*> poll_locks_;
    std::vector<detail::poll_stamp> poll_stamps_;

    std::jthread thread_;  // last: started once everything above exists
};

}  // namespace zchan

// zchan::server: the home side of the protocol (docs/protocol.md §3, §7, §8,
// §10-§12, §15).
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
// Resume (protocol.md §12.2): a session outlives its connection. A reply
// that cannot be routed (the connection was reset; ROUTER_MANDATORY makes it
// an error) is simply lost: the session waits, until its heartbeat timeout,
// for the peer's HELLO RESUME, which re-attaches it to the routing id the
// HELLO came from; the peer then re-sends what it has no answer for, and
// the idempotency records (§12.3: served_chan<T>'s, and closed_by here for
// CLOSE) answer it again. Peers keep a stable routing id across reconnects
// and the ROUTER hands it over to the newest connection (ZMQ_ROUTER_HANDOVER),
// so frames queued on the peer's side before it noticed the reset still
// reach the session.
//
// Security (protocol.md §14, opt-in: net_options::curve_server): the ROUTER
// is a CURVE server whose ZAP domain is registered with the process's ZAP
// handler (zap.hpp) before it binds. A socket monitor, read on the server
// thread like the ROUTER, counts the peers whose handshake failed
// (rejected_peers()); a plaintext server has neither.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.hpp>

#include "codec.hpp"
#include "endpoint.hpp"
#include "net_context.hpp"
#include "zap.hpp"
#include "zchan/detail/thread_annotations.hpp"
#include "zchan/hub.hpp"
#include "zchan/net.hpp"
#include "zmq_monitor.hpp"

namespace zchan {
namespace {

using steady = std::chrono::steady_clock;
namespace w = detail::wire;

/// Largest prefetch window granted (protocol.md §9.2): bounds the values one
/// session holds out of a channel.
constexpr std::uint32_t max_prefetch = 65536;

/// The handshake failures a secure server counts (see the top).
constexpr int rejection_events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                 ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;

std::unique_ptr<detail::zap_registration> make_zap(const net_options& opts) {
    if (!opts.curve_server) return nullptr;
    if (opts.curve_server->secret_key.empty()) {
        throw std::invalid_argument("zchan: net_options::curve_server has no secret key");
    }
    return std::make_unique<detail::zap_registration>(opts.curve_server->allowed_clients);
}

}  // namespace

class server::impl final : public detail::reply_sink, public detail::op_notifier {
public:
    impl(const std::string& endpoint, const net_options& opts)
        : opts_(opts),
          zap_(make_zap(opts)),
          router_(detail::net_context(), zmq::socket_type::router) {
        if (zap_ != nullptr) secure();
        router_.set(zmq::sockopt::router_mandatory, 1);  // §3: no silent drops
        // §3, §12.2: a peer's reconnect (same routing id) replaces its old,
        // possibly half-dead connection instead of being refused.
        router_.set(zmq::sockopt::router_handover, 1);
        router_.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(opts.max_frame));
        router_.set(zmq::sockopt::linger, 200);
        router_.set(zmq::sockopt::sndhwm, 0);
        router_.set(zmq::sockopt::rcvhwm, 0);
        detail::validate_endpoint(endpoint, true);  // endpoint.hpp
        try {
            router_.bind(endpoint);
        } catch (const zmq::error_t& e) {
            throw transport_error(make_error_code(errc::connect_failed),
                                  "zchan: cannot bind " + endpoint + ": " + e.what());
        }
        endpoint_ = router_.get(zmq::sockopt::last_endpoint);
        if (zap_ != nullptr) zap_->set_label(endpoint_);
        instance_ = detail::random_instance_id();
        wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
        served_.emplace(stats_channel, std::make_unique<stat_chan>(*this));  // §17.2
        thread_ = std::jthread([this](std::stop_token st) { run(st); });
    }

    ~impl() {
        thread_.request_stop();
        wake();
        thread_.join();
        served_.clear();  // after every session was dropped on the server thread
        mon_.reset();     // stops the monitor before the socket it watches closes
        router_.close();
        ::close(wake_fd_);
    }  // then zap_: the ROUTER that used its domain is gone

    impl(const impl&) = delete;
    impl& operator=(const impl&) = delete;

    void add(const std::string& name, std::unique_ptr<detail::served_base> ch) {
        if (name.empty() || name.size() > w::max_name) {
            throw std::invalid_argument("zchan: channel name must be 1..255 bytes");
        }
        if (name.front() == '$') {  // protocol.md §17.2
            throw std::invalid_argument("zchan: channel names starting with '$' are reserved");
        }
        detail::lock_guard g(served_mu_);
        if (!served_.emplace(name, std::move(ch)).second) {
            throw std::invalid_argument("zchan: a channel named \"" + name +
                                        "\" is already served");
        }
    }

    void set_factory(detail::channel_factory f) {
        detail::lock_guard g(served_mu_);
        factory_ = std::move(f);
    }
    void set_sweeper(detail::channel_sweeper f) {  // hub: idle channels (§17.1)
        detail::lock_guard g(served_mu_);
        sweeper_ = std::move(f);
    }

    // op_notifier: any thread, under a channel lock.
    void post(detail::served_base* ch, std::uint64_t op_id) noexcept override {
        {
            detail::lock_guard g(ready_mu_);
            ready_.emplace_back(ch, op_id);
        }
        if (!signalled_.exchange(true, std::memory_order_acq_rel)) wake();
    }

    [[nodiscard]] const std::string& endpoint() const noexcept { return endpoint_; }
    [[nodiscard]] std::uint64_t malformed() const noexcept { return malformed_.load(); }
    [[nodiscard]] std::size_t session_count() const noexcept { return session_count_.load(); }
    [[nodiscard]] std::uint64_t rejected() const noexcept { return rejected_.load(); }
    [[nodiscard]] bool is_secure() const noexcept { return zap_ != nullptr; }

    // reply_sink: server thread only.
    void reply(std::uint32_t session, w::msg type, std::uint64_t id) override {
        if (type == w::msg::send_ok) bump(session, &counters::values_in);
        tx_.clear();
        w::encode_header(tx_, w::header{w::version, type, 0, session, id});
        send_to(session);
    }
    void reply_value(std::uint32_t session, std::uint64_t request, std::uint64_t delivery,
                     const std::string& payload) override {
        bump(session, &counters::values_out);
        tx_.clear();
        w::begin_value(tx_, session, request, delivery);
        tx_.append(payload);
        send_to(session);
    }
    void reply_error(std::uint32_t session, std::uint64_t ref, w::error_code code,
                     std::string_view text) override {
        bump(session, &counters::errors);
        tx_.clear();
        w::encode_error(tx_, session, ref, code, text);
        send_to(session);
    }

    std::string& values_begin(std::uint32_t session, std::uint64_t first_request,
                              std::uint64_t first_delivery) override {
        vtx_.clear();
        values_session_ = session;
        w::begin_values(vtx_, session, first_request, first_delivery);
        return vtx_;
    }
    void reply_credit(std::uint32_t session, std::uint64_t granted,
                      std::uint64_t confirmed) override {
        tx_.clear();
        w::encode_credit(tx_, session, granted, confirmed);
        send_to(session);
    }
    void values_end(std::uint32_t count) override {
        bump(values_session_, &counters::values_out, count);
        w::finish_values(vtx_, 0, count);
        send_to(values_session_, vtx_);
    }

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

    /// The reserved channel "$stat" (protocol.md §17.2): every RECV is
    /// answered at once with a VALUE holding a fresh server_stats; its
    /// deliveries need no ACK (nothing is taken out of a channel), and it
    /// refuses values. Server thread only, like every served_base.
    class stat_chan final : public detail::served_base {
    public:
        explicit stat_chan(impl& srv) : srv_(srv) {}
        const std::string& type_name() const noexcept override { return type_; }
        std::uint64_t capacity() const override { return 0; }
        void open_session(std::uint32_t session) override { next_delivery_[session] = 1; }
        void drop_session(std::uint32_t session) override { next_delivery_.erase(session); }
        std::size_t unresolved(std::uint32_t /*session*/) const override { return 0; }
        bool on_send(detail::reply_sink& /*out*/, std::uint32_t /*session*/, std::uint64_t /*seq*/,
                     bool /*try_now*/, const unsigned char* /*data*/,
                     std::size_t /*size*/) override {
            return false;  // answered ERROR decode_error: "$stat" takes no values
        }
        void on_cancel_send(detail::reply_sink& /*out*/, std::uint32_t /*session*/,
                            std::uint64_t /*seq*/) override {}
        void on_recv(detail::reply_sink& out, std::uint32_t session, std::uint64_t request,
                     bool /*try_now*/) override {
            enc_.clear();
            encode_value(srv_.snapshot(), enc_);
            out.reply_value(session, request, next_delivery_[session]++, enc_);
        }
        void on_cancel_recv(detail::reply_sink& /*out*/, std::uint32_t /*session*/,
                            std::uint64_t /*request*/) override {}  // never pending
        void on_recv_many(detail::reply_sink& out, std::uint32_t session, std::uint64_t first,
                          std::uint32_t count) override {  // each RECV it stands for (§8.8)
            for (std::uint32_t i = 0; i < count; ++i) on_recv(out, session, first + i, false);
        }
        void on_watch_send(detail::reply_sink& out, std::uint32_t session,
                           std::uint64_t request) override {
            out.reply(session, w::msg::ready, request);  // its TRY SEND fails
        }
        void on_cancel_watch(detail::reply_sink& /*out*/, std::uint32_t /*session*/,
                             std::uint64_t /*request*/) override {}
        void on_ack(std::uint32_t /*session*/, std::uint64_t /*delivery*/) override {}
        void on_return(std::uint32_t /*session*/, std::uint64_t /*delivery*/) override {}
        bool on_close() override { return false; }  // ERROR already_closed
        void on_query(std::uint64_t& length, bool& closed) override {
            length = 0;
            closed = false;
        }
        void on_ready(detail::reply_sink& /*out*/, std::uint64_t /*op_id*/) override {}

    private:
        impl& srv_;
        const std::string type_ = zchan::type_name<server_stats>::value();
        std::string enc_;
        // Per session, consecutive from 1 like any channel's (§8.4): a
        // prefetching peer hands values out in delivery order (src/peer_session_recv.cpp).
        std::unordered_map<std::uint32_t, std::uint64_t> next_delivery_;
    };

    void bump(std::uint32_t session, std::uint64_t counters::*field, std::uint64_t n = 1) {
        auto it = sessions_.find(session);
        if (it != sessions_.end() && it->second.stats != nullptr) it->second.stats->*field += n;
    }

    /// "$stat"'s answer (protocol.md §17.2). Server thread.
    server_stats snapshot() {
        server_stats st;
        st.endpoint = endpoint_;
        st.sessions = sessions_.size();
        st.malformed_frames = malformed_.load();
        st.refused_dials = refused_dials_;  // hub limits (§17.1)
        struct attached {
            std::uint32_t sessions = 0, senders = 0, receivers = 0;
        };
        std::unordered_map<const detail::served_base*, attached> per;
        for (const auto& [sid, s] : sessions_) {
            auto& a = per[s.ch];
            ++a.sessions;
            a.senders += s.sends ? 1 : 0;
            a.receivers += s.recvs ? 1 : 0;
        }
        detail::lock_guard g(served_mu_);  // then channel locks (on_query)
        for (const auto& [name, ch] : served_) {
            if (name.front() == '$') continue;
            channel_stats c;
            c.name = name;
            c.type = ch->type_name();
            c.cap = ch->capacity();
            ch->on_query(c.len, c.closed);
            if (auto a = per.find(ch.get()); a != per.end()) {
                c.sessions = a->second.sessions;
                c.senders = a->second.senders;
                c.receivers = a->second.receivers;
            }
            if (auto k = counters_.find(ch.get()); k != counters_.end()) {
                c.values_in = k->second.values_in;
                c.values_out = k->second.values_out;
                c.returned = k->second.returned;
                c.errors = k->second.errors;
            }
            st.channels.push_back(std::move(c));
        }
        return st;
    }

    /// Constructor only, before bind: CURVE server, ZAP domain, monitor.
    void secure() {
        const auto& c = *opts_.curve_server;
        router_.set(zmq::sockopt::curve_server, 1);
        router_.set(zmq::sockopt::curve_secretkey, c.secret_key.z85());
        router_.set(zmq::sockopt::zap_domain, zap_->domain());
#ifdef ZMQ_ZAP_ENFORCE_DOMAIN
        constexpr int enforce_option = ZMQ_ZAP_ENFORCE_DOMAIN;
#else
        constexpr int enforce_option = 93;  // draft API; libzmq 4.3 knows it when built with drafts
#endif
        // Defence in depth: with it, no ZAP handler means no admission
        // (instead of libzmq's default, everyone). Unknown to some builds: ignored.
        const int one = 1;
        (void)zmq_setsockopt(router_.handle(), enforce_option, &one, sizeof one);
        mon_.emplace(router_, rejection_events, "server");
        if (!mon_->ok()) {
            throw transport_error(make_error_code(errc::connect_failed),
                                  "zchan: cannot monitor the server socket");
        }
    }

    /// Server thread. Counts (and logs, rate-limited) failed handshakes. ZAP
    /// refusals (AUTH) are logged by the ZAP handler, which knows the key.
    void read_monitor() {
        while (const auto e = mon_->next()) {
            const std::uint16_t event = e->event;
            const std::uint32_t value = e->value;
            const auto n = ++rejected_;
            if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH || (n > 10 && n % 1000 != 0)) continue;
            const char* why = "the connection ended during the handshake";
            if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
                why = value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
                          ? "not a CURVE client (plaintext?)"
                      : value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC
                          ? "CURVE handshake failed (the client has the wrong server key?)"
                          : "CURVE handshake failed (protocol error)";
            }
            std::fprintf(stderr, "zchan: server %s: refused a peer: %s (rejection #%llu)\n",
                         endpoint_.c_str(), why, static_cast<unsigned long long>(n));
        }
    }

    void wake() noexcept {
        const std::uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
    }

    void run(const std::stop_token& st) {
        zmq::pollitem_t items[3] = {{router_.handle(), 0, ZMQ_POLLIN, 0},
                                    {nullptr, wake_fd_, ZMQ_POLLIN, 0},
                                    {mon_ ? mon_->handle() : nullptr, 0, ZMQ_POLLIN, 0}};
        const int n_items = mon_ ? 3 : 2;
        const auto tick =
            std::chrono::milliseconds(std::max<long long>(1, opts_.heartbeat.count() / 4));
        while (!st.stop_requested()) {
            try {
                zmq::poll(items, n_items, tick);
            } catch (const zmq::error_t&) {
                continue;  // EINTR
            }
            if ((items[1].revents & ZMQ_POLLIN) != 0) {
                std::uint64_t n = 0;
                [[maybe_unused]] auto r = ::read(wake_fd_, &n, sizeof n);
            }
            if (n_items == 3 && (items[2].revents & ZMQ_POLLIN) != 0) read_monitor();
            now_ = steady::now();  // once per iteration, not per frame
            process_ready();
            // A bounded batch, so that completions and heartbeats keep up.
            for (int i = 0; i < 512 && recv_one(); ++i) {
            }
            housekeeping();
        }
        shut_down(items[0]);
    }

    /// Shutdown (protocol.md §11.2 shutting_down, §12.4). Every peer learns
    /// it; a live peer answers by ACKing what its users took and RETURNing
    /// what it holds for nobody (its prefetch queue). Those frames are
    /// awaited, bounded by the heartbeat timeout (a dead or stopped peer
    /// cannot hang the destructor, and would be declared lost after that
    /// long anyway); then every session is dropped, which puts whatever is
    /// still unresolved back into its channel. So no value leaves with the
    /// server: each one reached a user, or is in its channel (len() counts
    /// it). Without the wait, a value a peer's user took just before the
    /// ERROR arrived would be both there and back in the channel.
    void shut_down(zmq::pollitem_t& item) {
        // Operations completed on the channels before the stop (a local
        // receiver took a remote offer) are answered first: their SEND_OK
        // must reach the peer ahead of ERROR shutting_down, which fails
        // whatever the peer still waits for.
        process_ready();
        stopping_ = true;
        for (auto& [id, s] : sessions_) {
            reply_error(id, 0, w::error_code::shutting_down, "server shutting down");
        }
        const auto deadline = steady::now() + opts_.heartbeat_timeout;
        auto unresolved = [&] {
            for (auto& [id, s] : sessions_) {
                if (s.ch->unresolved(id) != 0) return true;
            }
            return false;
        };
        while (unresolved()) {
            const auto now = steady::now();
            if (now >= deadline) break;
            try {
                zmq::poll(&item, 1, std::chrono::ceil<std::chrono::milliseconds>(deadline - now));
            } catch (const zmq::error_t&) {
                continue;  // EINTR
            }
            for (int i = 0; i < 512 && recv_one(); ++i) {
            }
            for (auto sid : unroutable_) drop(sid);
            unroutable_.clear();
        }
        std::vector<std::uint32_t> ids;
        for (auto& [id, s] : sessions_) ids.push_back(id);
        for (auto id : ids) drop(id);
    }

    void process_ready() {
        // Order matters (see post()): clear the flag before taking the list.
        signalled_.store(false, std::memory_order_release);
        auto& ready = ready_scratch_;  // reused: its capacity goes back and forth
        ready.clear();
        {
            detail::lock_guard g(ready_mu_);
            ready.swap(ready_);
        }
        for (auto& [ch, op] : ready) ch->on_ready(*this, op);
    }

    bool recv_one() {
        zmq::message_t id;
        zmq::message_t body;
        try {
            if (!router_.recv(id, zmq::recv_flags::dontwait)) return false;
            if (!id.more()) {
                count_malformed("empty message");
                return true;
            }
            (void)router_.recv(body);  // the rest of a multipart message is already here
            if (body.more()) {
                zmq::message_t rest;
                do {
                    (void)router_.recv(rest);
                } while (rest.more());
                count_malformed("more than one frame");
                return true;
            }
        } catch (const zmq::error_t&) {
            return false;
        }
        handle(std::string(id.data<char>(), id.size()), body);
        return true;
    }

    void count_malformed(const char* why) {
        const auto n = ++malformed_;
        // protocol.md §11.1: counted, logged (rate-limited), dropped.
        if (n <= 10 || n % 1000 == 0) {
            std::fprintf(stderr, "zchan: server %s: rejected frame #%llu: %s\n", endpoint_.c_str(),
                         static_cast<unsigned long long>(n), why);
        }
    }

    void handle(const std::string& rid, const zmq::message_t& body) {
        w::frame f;
        if (auto ec = w::decode({body.data<unsigned char>(), body.size()}, w::side::home, f,
                                opts_.max_frame)) {
            count_malformed(ec.message().c_str());
            return;
        }
        if (f.h.type == w::msg::hello) {
            if (stopping_) return;  // no new sessions while shutting down
            on_hello(rid, f);
            return;
        }
        if (f.h.channel == 0) {  // only PING/PONG may use channel 0
            // The connection's heartbeat (§12.1): life for all its sessions.
            if (auto c = conns_.find(rid); c != conns_.end()) c->second.last_rx = now_;
            if (f.h.type == w::msg::ping) {
                tx_.clear();
                w::encode_header(tx_, w::header{w::version, w::msg::pong, 0, 0, f.h.id});
                send_raw(rid);
            }
            return;
        }
        auto it = sessions_.find(f.h.channel);
        if (it == sessions_.end() || it->second.routing_id != rid) {
            count_malformed("frame for an unknown session");
            tx_.clear();
            w::encode_error(tx_, f.h.channel, f.h.id, w::error_code::unknown_session,
                            "no such session");
            send_raw(rid);
            return;
        }
        const std::uint32_t sid = it->first;
        session_info& s = it->second;
        s.conn->last_rx = now_;  // any frame is life for the whole connection (§12.1)
        auto& ch = *s.ch;
        if (stopping_) {
            // Shutting down (see shut_down): only resolutions and BYE count;
            // nothing new starts, so nothing new leaves a channel.
            switch (f.h.type) {
                case w::msg::ack:
                    for (std::uint64_t i = 0; i < f.h.id; ++i) ch.on_ack(sid, f.ack(i));
                    return;
                case w::msg::ret:
                    if (s.stats != nullptr) ++s.stats->returned;
                    ch.on_return(sid, f.h.id);
                    return;
                case w::msg::bye:
                    drop(sid);
                    return;
                default:
                    return;
            }
        }
        switch (f.h.type) {  // roles and RETURNs are counted for "$stat" (§17.2)
            case w::msg::send:
                s.sends = true;
                if ((f.h.flags & w::flag::credited) != 0) {  // §9.1: one value, numbered
                    entry_.assign(4, '\0');
                    const auto len = static_cast<std::uint32_t>(f.payload.size());
                    for (std::size_t i = 0; i < 4; ++i)
                        entry_[i] = static_cast<char>(len >> (8 * i));
                    entry_.append(reinterpret_cast<const char*>(f.payload.data()),
                                  f.payload.size());
                    credited(sid, s, f.h.id, 1, entry_);
                    return;
                }
                if (!ch.on_send(*this, sid, f.h.id, (f.h.flags & w::flag::try_now) != 0,
                                f.payload.data(), f.payload.size())) {
                    count_malformed("SEND payload does not decode");
                    reply_error(sid, f.h.id, w::error_code::decode_error,
                                "value does not decode as " + ch.type_name());
                }
                return;
            case w::msg::send_many:  // §9.1
                s.sends = true;
                credited(sid, s, f.h.id, f.count,
                         std::string_view(reinterpret_cast<const char*>(f.entries.data()),
                                          f.entries.size()));
                return;
            case w::msg::revoked:  // §9.1
                ch.on_revoked(*this, sid);
                return;
            case w::msg::cancel_send:
                ch.on_cancel_send(*this, sid, f.h.id);
                return;
            case w::msg::watch_send:  // §8.6
                s.sends = true;
                ch.on_watch_send(*this, sid, f.h.id);
                return;
            case w::msg::cancel_watch:
                ch.on_cancel_watch(*this, sid, f.h.id);
                return;
            case w::msg::recv:
                s.recvs = true;
                ch.on_recv(*this, sid, f.h.id, (f.h.flags & w::flag::try_now) != 0);
                return;
            case w::msg::cancel_recv:
                ch.on_cancel_recv(*this, sid, f.h.id);
                return;
            case w::msg::recv_many:  // §8.8
                s.recvs = true;
                ch.on_recv_many(*this, sid, f.h.id, f.count);
                return;
            case w::msg::ack:
                for (std::uint64_t i = 0; i < f.h.id; ++i) ch.on_ack(sid, f.ack(i));
                ch.settle(*this);  // §10: receivers held back by these deliveries
                return;
            case w::msg::ret:
                if (s.stats != nullptr) ++s.stats->returned;
                ch.on_return(sid, f.h.id);
                ch.settle(*this);
                return;
            case w::msg::close:
                if (std::find(s.closed_by.begin(), s.closed_by.end(), f.h.id) !=
                    s.closed_by.end()) {  // a re-send (§12.3)
                    reply(sid, w::msg::close_ok, f.h.id);
                } else if (ch.on_close()) {
                    s.closed_by.push_back(f.h.id);
                    reply(sid, w::msg::close_ok, f.h.id);
                } else {
                    reply_error(sid, f.h.id, w::error_code::already_closed,
                                "close of closed channel");
                }
                return;
            case w::msg::query: {
                w::status_body b;
                b.capacity = ch.capacity();
                ch.on_query(b.length, b.closed);
                tx_.clear();
                w::encode_status(tx_, sid, f.h.id, b);
                send_to(sid);
                return;
            }
            case w::msg::ping:
                reply(sid, w::msg::pong, f.h.id);
                return;
            case w::msg::pong:
                return;
            case w::msg::bye:
                drop(sid);
                return;
            default:
                count_malformed("unexpected message type");
                return;
        }
    }

    /// Credited values of session `sid` (protocol.md §9.1), counted in for "$stat".
    void credited(std::uint32_t sid, session_info& s, std::uint64_t first, std::uint32_t count,
                  std::string_view entries) {
        const std::uint32_t in = s.ch->on_credited(
            *this, sid, first, count, reinterpret_cast<const unsigned char*>(entries.data()),
            entries.size());
        if (s.stats != nullptr) s.stats->values_in += in;
    }

    void on_hello(const std::string& rid, const w::frame& f) {
        const auto nonce = f.h.id;
        auto refuse = [&](w::error_code code, const std::string& text) {
            tx_.clear();
            w::encode_error(tx_, 0, nonce, code, text);
            send_raw(rid);
        };
        if (w::negotiate(f.hello) == 0) {
            refuse(w::error_code::unsupported_version, "this home speaks ZCHAN version 1 only");
            return;
        }
        const std::string name(f.hello.name);
        detail::served_base* ch = nullptr;
        std::string refusal;
        {
            detail::lock_guard g(served_mu_);
            auto it = served_.find(name);
            if (it != served_.end()) {
                ch = it->second.get();
            } else if (factory_ && name.front() != '$') {  // a hub: protocol.md §17.1
                std::optional<std::uint32_t> cap;
                if ((f.h.flags & w::flag::create) != 0) cap = f.hello.create_capacity;
                try {
                    if (auto made = factory_(name, f.hello.type_name, cap, *this, refusal)) {
                        ch = made.get();
                        served_.emplace(name, std::move(made));
                    }
                } catch (const std::exception& e) {  // std::bad_alloc: refuse, keep serving
                    refusal = e.what();
                }
            }
        }
        if (ch == nullptr) {
            ++refused_dials_;  // "$stat" (§17.2)
            refuse(w::error_code::unknown_channel,
                   refusal.empty() ? "no channel \"" + name + "\" is served at " + endpoint_
                                   : refusal);
            return;
        }
        ch->adopt_type(f.hello.type_name);           // a hub channel nobody has dialed yet (§17.1)
        if (f.hello.type_name != ch->type_name()) {  // protocol.md §7.2 step 4
            ++counters_[ch].errors;
            refuse(w::error_code::type_mismatch, "channel \"" + name + "\" carries " +
                                                     ch->type_name() + ", not " +
                                                     std::string(f.hello.type_name));
            return;
        }
        std::uint16_t welcome_flags = 0;
        std::uint32_t sid = 0;
        if ((f.h.flags & w::flag::resume) != 0) {
            // §12.2: the same peer instance on the same channel, not yet lost.
            for (auto& [id, s] : sessions_) {
                if (s.ch == ch && s.instance == f.hello.instance) {
                    sid = id;
                    move_to(s, rid);  // the connection it came on, from now on
                    welcome_flags = w::flag::resume;
                    break;
                }
            }
        }
        if (sid == 0) {
            sid = next_session_++;
            if (sid == 0) sid = next_session_++;
            session_info si;
            si.ch = ch;
            move_to(si, rid);
            si.stats = &counters_[ch];
            si.instance = f.hello.instance;
            si.prefetch = std::min<std::uint32_t>(f.hello.prefetch, max_prefetch);  // §9.2
            sessions_.emplace(sid, std::move(si));
            session_count_.store(sessions_.size());
            ch->open_session(sid);
            sessions_.at(sid).send_window = ch->grant_window(sid, f.hello.send_window);
        }
        w::welcome_body b;
        b.channel = sid;
        b.heartbeat_ms = static_cast<std::uint32_t>(opts_.heartbeat.count());
        b.timeout_ms = static_cast<std::uint32_t>(opts_.heartbeat_timeout.count());
        b.capacity = ch->capacity();
        b.max_frame = static_cast<std::uint32_t>(opts_.max_frame);
        b.instance = instance_;
        b.prefetch = sessions_.at(sid).prefetch;
        b.send_window = sessions_.at(sid).send_window;
        tx_.clear();
        w::encode_welcome(tx_, nonce, welcome_flags, b);
        send_to(sid);
        ch->welcomed(*this, sid);  // its credits follow the WELCOME (§9.1)
    }

    /// Ends a session (lost, BYE, unroutable, shutdown): protocol.md §12.4.
    void drop(std::uint32_t sid) {
        auto it = sessions_.find(sid);
        if (it == sessions_.end()) return;
        detail::served_base* ch = it->second.ch;
        // "$stat": deliveries given back at the session's end count as returned (§17.2).
        if (it->second.stats != nullptr) it->second.stats->returned += ch->unresolved(sid);
        leave_connection(it->second);
        sessions_.erase(it);
        session_count_.store(sessions_.size());
        ch->drop_session(sid);
        if (!stopping_) ch->settle(*this);  // §10: its deliveries are back in the channel
    }

    void housekeeping() {
        // An unroutable session is not dropped: its connection may have been
        // reset, and the peer resumes within the timeout (see the top), or
        // is lost by it below.
        unroutable_.clear();
        const auto now = now_ = steady::now();
        std::vector<std::uint32_t> lost;
        for (auto& [sid, s] : sessions_) {
            if (now - s.conn->last_rx > opts_.heartbeat_timeout) lost.push_back(sid);
        }
        for (auto sid : lost) drop(sid);
        // One PING per quiet connection, on channel 0 (§12.1).
        for (auto& [rid, c] : conns_) {
            if (now - c.last_tx < opts_.heartbeat) continue;
            tx_.clear();
            w::encode_header(tx_, w::header{w::version, w::msg::ping, 0, 0, ++ping_nonce_});
            if (send_raw(rid)) c.last_tx = now;
        }
        sweep_idle();
    }

    // ---- hub: removing idle channels (protocol.md §17.1, zchan::hub_options::idle_timeout).
    // Only channels no session is attached to, and only while no on_ready is
    // pending (it would name the channel): a hub's channels have no local
    // users, so nothing but this thread posts for them.
    void sweep_idle() {
        {
            detail::lock_guard g(ready_mu_);
            if (!ready_.empty()) return;
        }
        detail::lock_guard g(served_mu_);
        if (!sweeper_) return;
        std::unordered_set<const detail::served_base*> attached;
        for (const auto& [sid, s] : sessions_) attached.insert(s.ch);
        for (auto it = served_.begin(); it != served_.end();) {
            detail::served_base* ch = it->second.get();
            if (it->first.front() != '$' && attached.count(ch) == 0 && sweeper_(*ch)) {
                counters_.erase(ch);
                it = served_.erase(it);
            } else {
                ++it;
            }
        }
    }
    // ---- end hub

    /// Attaches session `s` to the connection `rid` (a new session, or a
    /// resume that came on another connection: §12.2), leaving its old one.
    void move_to(session_info& s, const std::string& rid) {
        if (s.conn != nullptr && s.routing_id == rid) {
            s.conn->last_rx = now_;
            return;
        }
        if (s.conn != nullptr) leave_connection(s);
        auto [it, fresh] = conns_.try_emplace(rid);
        if (fresh) it->second.last_rx = it->second.last_tx = now_;
        it->second.last_rx = now_;
        ++it->second.sessions;
        s.routing_id = rid;
        s.conn = &it->second;
    }

    void leave_connection(session_info& s) {
        if (s.conn == nullptr) return;
        if (--s.conn->sessions == 0) conns_.erase(s.routing_id);
        s.conn = nullptr;
    }

    void send_to(std::uint32_t sid) { send_to(sid, tx_); }

    void send_to(std::uint32_t sid, const std::string& frame) {
        auto it = sessions_.find(sid);
        if (it == sessions_.end()) return;
        if (!send_raw(it->second.routing_id, frame)) {
            unroutable_.push_back(sid);  // only dropped while shutting down (shut_down)
            return;
        }
        it->second.conn->last_tx = now_;
    }

    bool send_raw(const std::string& rid) { return send_raw(rid, tx_); }

    bool send_raw(const std::string& rid, const std::string& frame) {
        try {
            if (!router_.send(zmq::buffer(rid),
                              zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
                return false;
            }
            return router_.send(zmq::buffer(frame), zmq::send_flags::dontwait).has_value();
        } catch (const zmq::error_t&) {
            return false;  // EHOSTUNREACH (ROUTER_MANDATORY): the peer is gone
        }
    }

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

    std::jthread thread_;  // last: started once everything above exists
};

server::server(const std::string& endpoint, const net_options& opts)
    : impl_(std::make_unique<impl>(endpoint, opts)) {}

server::~server() = default;

std::string server::endpoint() const { return impl_->endpoint(); }
std::uint64_t server::malformed_frames() const noexcept { return impl_->malformed(); }
std::size_t server::sessions() const noexcept { return impl_->session_count(); }
std::uint64_t server::rejected_peers() const noexcept { return impl_->rejected(); }
bool server::secure() const noexcept { return impl_->is_secure(); }
void server::add(const std::string& name, std::unique_ptr<detail::served_base> ch) {
    impl_->add(name, std::move(ch));
}
void server::set_factory(detail::channel_factory f) { impl_->set_factory(std::move(f)); }
void server::set_sweeper(detail::channel_sweeper f) { impl_->set_sweeper(std::move(f)); }
detail::op_notifier& server::notifier() noexcept { return *impl_; }

}  // namespace zchan

// The peer side of a remote channel (net_link, declared in
// zchan/detail/net_link.hpp): handshake, request table, dispatch, heartbeats.
//
// Threading (protocol.md §15): mu_ guards the DEALER and every field below it.
// Whoever holds mu_ may use the socket: a user thread sends its own request
// (no hop to an I/O thread) and then drains whatever the socket has ready.
//
// Leader/followers. A thread waiting for an answer does not wait for another
// thread to hand it over: if nobody is polling the socket it becomes the
// *leader* (leader_ = true), releases mu_ and polls ZMQ_FD itself, then
// takes mu_ back and drains. So the thread libzmq wakes is the thread the
// answer is for: one wake-up per answer, as with a raw blocking zmq_recv.
// Other waiters are *followers*: they park on their request's context and
// whoever drains their answer wakes them. The background thread polls
// ZMQ_FD only while there is no leader (select registrations, followers
// after the leader left, orphaned requests, PINGs); otherwise it sleeps on
// its eventfd and wakes every heartbeat/4 to drain and send heartbeats.
//
// Edges. ZMQ_FD is edge-triggered: any zmq call on the socket (a send, a
// drain) may consume the notification. Hence (1) every send is followed by
// a drain while still holding mu_, so no answer sits unseen in the socket;
// and (2) any thread that touches the socket while a leader polls (that is,
// without being the leader: the leader clears leader_ before touching it)
// kicks the leader through leader_fd_, because the leader's answer may have
// just been drained by that thread, or its edge consumed. A leader that
// retires while requests are still pending wakes the background thread
// unless it already polls the socket (bg_polls_sock_).
//
// Prefetch window (protocol.md §9.2, opt-in: net_options::prefetch, granted
// by the home in WELCOME). From the first recv on, the link keeps up to P
// RECVs outstanding that no user operation waits for ("prefetch requests").
// They are asked for in one RECV_MANY per refill and answered mostly in
// VALUES frames (§8.8), so a stream of values costs a frame per batch, not
// per value; they are tracked as id ranges (p_ranges_), not as request
// objects. Their values queue in pq_ in delivery order, which is the home's
// channel order and, but after a resume, their arrival order: a VALUE lost
// with a connection comes again only when its request is re-sent, after
// values the home sent later on the new connection. So the head of pq_ is
// handed out only once every delivery before it has arrived (p_next_), and
// the handle reports closed only once no prefetch request is outstanding
// (drained_locked).
// A user recv takes the head of pq_ without a round trip,
// or waits in pwaiters_ (FIFO) for the next one; a TRY recv never goes to
// the home (empty unless a value is queued). The queued values are
// unacknowledged deliveries: BYE or loss gives them back to the channel
// (protocol.md §12.4). Refills happen when the window is half used, so that
// ACKs and the RECV_MANY leave together.
//
// Security (protocol.md §14): with net_options::curve_client the DEALER is a
// CURVE client. libzmq reports a refused security handshake only through
// socket monitor events (and retries the connection forever), so every dial,
// secure or not, watches the DEALER's handshake-failure events until WELCOME
// and turns a refusal into zchan::access_denied at once instead of a
// connect_timeout. The monitor's PAIR socket is created and read by the
// dialing thread inside handshake(), before the background thread exists;
// afterwards the same monitor watches for broken connections (below), and
// its PAIR is read under mu_ like the DEALER.
//
// Resume (protocol.md §12.2, §12.3, §12.5). The DEALER keeps one routing id
// across reconnects ('z' + the instance id) and libzmq reconnects it by
// itself; frames queued in the DEALER wait for the new connection, frames
// already on the broken one are lost in either direction. The monitor
// reports ZMQ_EVENT_DISCONNECTED; the background thread (or an ERROR
// unknown_session) then queues HELLO RESUME. On WELCOME RESUME the link
// re-sends, with their original ids, every request without a final answer
// (a send with its value, a cancelled one followed by its CANCEL), every
// prefetch range still outstanding, and every ACK/RETURN not yet confirmed;
// the home answers re-sends idempotently. A resolution is confirmed by the
// PONG of a PING sent after it (frames of one connection are processed in
// order): unconf_ holds them, conf_marks_ the PINGs that will confirm them.
// A request that was re-sent can be answered twice (its answer was in
// flight on a path the home had already replaced); resent_ remembers the
// first answer so that the second is dropped, not given back (it is the
// same delivery). A fresh WELCOME (the home lost the session) or a
// different home instance is peer lost, as before.
//
// Invariant: a request is in pending_ until its final answer (or loss); the
// answer is written into it under mu_ before its waiter is woken.
#include "zchan/detail/net_link.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <optional>
#include <set>
#include <stop_token>
#include <thread>
#include <unordered_map>
#include <vector>

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.hpp>

#include "codec.hpp"
#include "endpoint.hpp"
#include "net_context.hpp"
#include "zchan/detail/id_ranges.hpp"
#include "zchan/detail/thread_annotations.hpp"
#include "zchan/errors.hpp"
#include "zmq_monitor.hpp"

namespace zchan::detail {
namespace {

using steady = std::chrono::steady_clock;
namespace w = wire;

/// Longest single poll of a leader (a backstop; it is kicked when needed).
constexpr long long leader_poll_max_ms = 100;

/// CLOCK_MONOTONIC_COARSE reads up to one tick (1-10 ms with common HZ)
/// behind the real clock; the silence check allows for it.
constexpr std::int64_t coarse_slack_ms = 20;

/// The DEALER's handshake-failure and disconnect events (see the top).
/// Owned by the link; destroyed before the socket it watches.
class dial_monitor {
public:
    explicit dial_monitor(zmq::socket_t& watched)
        : mon_(watched,
               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                   ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_DISCONNECTED,
               "dial") {
        if (!mon_.ok()) throw connect_error("zchan: cannot monitor the dial socket");
    }

    [[nodiscard]] void* handle() noexcept { return mon_.handle(); }
    [[nodiscard]] int fd() { return mon_.fd(); }

    /// After the handshake: reads the queued events; true if a connection
    /// broke (ZMQ_EVENT_DISCONNECTED) since the last call.
    [[nodiscard]] bool disconnected() {
        bool broke = false;
        while (const auto e = mon_.next()) {
            if (e->event == ZMQ_EVENT_DISCONNECTED) broke = true;
        }
        return broke;
    }

    /// Reads the queued events; returns the first one that means refusal.
    /// NO_DETAIL (the home closed the connection during the handshake) is
    /// what a wrong server key looks like to a CURVE dial: refused at once.
    /// A plaintext dial sees it when a CURVE home drops the connection
    /// before libzmq has read the home's greeting (a race; libzmq then
    /// retries and usually reports the mechanism mismatch next time); it
    /// gives up at the second, so that one transient drop is still retried.
    [[nodiscard]] std::optional<std::string> refusal(bool curve, const std::string& endpoint) {
        while (const auto e = mon_.next()) {
            const std::uint16_t event = e->event;
            const std::uint32_t value = e->value;
            const std::string at = "zchan: " + endpoint + ": ";
            if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
                return at +
                       "access denied: the home's allow-list does not admit this client's "
                       "CURVE key (ZAP status " +
                       std::to_string(value) + ")";
            }
            if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
                if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
                    return at + (curve ? "security handshake failed: this dial uses CURVE but "
                                         "the home is plaintext"
                                       : "security handshake failed: the home requires CURVE "
                                         "(net_options::curve_client) but this dial is "
                                         "plaintext");
                }
                return at + "security handshake failed: protocol error " + std::to_string(value);
            }
            if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL && curve) {
                return at +
                       "CURVE handshake failed: the home closed the connection (wrong "
                       "server key, or a plaintext home)";
            }
            if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL && ++dropped_ >= 2) {
                return at +
                       "security handshake failed: the home closed the connection during "
                       "the handshake twice (does it require CURVE? see "
                       "net_options::curve_client)";
            }
        }
        return std::nullopt;
    }

private:
    zmq_monitor mon_;
    int dropped_ = 0;  // NO_DETAIL events of a plaintext dial
};

/// Why a link lost its session (net_link::lost_what).
enum class lost_why : std::uint8_t {
    silence,            // nothing received for the timeout (§12.1)
    not_running,        // nothing sent for the timeout: this process was stopped (§12.1)
    home_shut_down,     // ERROR shutting_down (§12.4)
    home_restarted,     // a resume reached another home instance (§12.2)
    session_forgotten,  // a resume reached a home that lost the session (§12.2)
    socket_failed,      // libzmq refused a send or receive
    closed_here,        // the handle is being destroyed
};

class link_impl final : public net_link {
public:
    explicit link_impl(const net_options& opts)
        : opts_(opts), sock_(net_context(), zmq::socket_type::dealer) {
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
        wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
        leader_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (leader_fd_ < 0) {
            const int err = errno;
            ::close(wake_fd_);
            throw std::system_error(err, std::generic_category(), "eventfd");
        }
    }

    ~link_impl() override {
        io_.request_stop();
        wake();
        if (io_.joinable()) io_.join();
        lock_guard g(mu_);
        if (!lost_ && channel_ != 0) {
            tx_.clear();
            w::encode_header(tx_, w::header{w::version, w::msg::bye, 0, channel_, 0});
            send_raw_locked();
        }
        lose_locked(lost_why::closed_here);  // nobody can be waiting any more; release select hooks
        mon_.reset();                        // stops the monitor: before the socket it watches goes
        sock_.close();
        ::close(wake_fd_);
        ::close(leader_fd_);
    }

    void handshake(const std::string& endpoint, const std::string& name,
                   const std::string& type_name) {
        if (name.empty() || name.size() > w::max_name) {
            throw connect_error("zchan: channel name must be 1..255 bytes");
        }
        if (type_name.empty() || type_name.size() > w::max_type_name) {
            throw connect_error("zchan: type identity must be 1..1024 bytes");
        }
        validate_endpoint(endpoint, false);  // endpoint.hpp
        // Uncontended: the link is not shared and io_ does not run yet; held
        // so that the socket and the clocks are touched as everywhere else.
        lock_guard g(mu_);
        const bool curve = opts_.curve_client.has_value();
        instance_ = random_instance_id();
        name_ = name;
        type_name_ = type_name;
        // §3, §12.2: one routing id for every connection of this link, so
        // that the home's ROUTER routes to the newest one (ROUTER_HANDOVER).
        // Not starting with a zero byte (libzmq reserves those).
        std::string rid(1, 'z');
        rid.append(reinterpret_cast<const char*>(instance_.data()), instance_.size());
        sock_.set(zmq::sockopt::routing_id, zmq::buffer(rid));
        std::optional<dial_monitor>& monitor = mon_;
        monitor.emplace(sock_);  // before connect: see the top
        try {
            sock_.connect(endpoint);
        } catch (const zmq::error_t& e) {
            throw connect_error("zchan: cannot connect to " + endpoint + ": " + e.what());
        }
        nonce_base_ = static_cast<std::uint64_t>(random_instance_id()[0]) << 32;
        const std::uint64_t nonce = nonce_base_ | 1;
        w::hello_body h;
        h.heartbeat_ms = static_cast<std::uint32_t>(opts_.heartbeat.count());
        h.prefetch = opts_.prefetch;
        h.instance = instance_;
        h.name = name_;
        h.type_name = type_name_;
        std::uint16_t hello_flags = 0;
        if (opts_.create_capacity) {  // protocol.md §17.1
            hello_flags |= w::flag::create;
            h.create_capacity = *opts_.create_capacity;
        }
        tx_.clear();
        w::encode_hello(tx_, nonce, hello_flags, h);
        sock_.send(zmq::buffer(tx_), zmq::send_flags::dontwait);

        const auto deadline = steady::now() + opts_.connect_timeout;
        for (;;) {
            const auto now = steady::now();
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
            if (now >= deadline) {
                throw connect_error("zchan: no answer from " + endpoint + " within " +
                                    std::to_string(opts_.connect_timeout.count()) + " ms");
            }
            zmq::pollitem_t items[2] = {{sock_.handle(), 0, ZMQ_POLLIN, 0},
                                        {monitor->handle(), 0, ZMQ_POLLIN, 0}};
            // dial() runs on the user's thread, which may take signals (a
            // SIGALRM timer, SIGCHLD): zmq_poll then fails with EINTR, which
            // cppzmq throws. That is no reason to fail the dial; poll again.
            try {
                zmq::poll(items, 2, left);
            } catch (const zmq::error_t& e) {
                if (e.num() != EINTR) throw;
                continue;
            }
            if ((items[1].revents & ZMQ_POLLIN) != 0) {
                if (auto why = monitor->refusal(curve, endpoint)) throw access_denied(*why);
            }
            if ((items[0].revents & ZMQ_POLLIN) == 0) continue;
            zmq::message_t m;
            if (!sock_.recv(m, zmq::recv_flags::dontwait)) continue;
            w::frame f;
            if (w::decode({m.data<unsigned char>(), m.size()}, w::side::peer, f, opts_.max_frame) ||
                f.h.id != nonce) {
                ++malformed_;
                continue;
            }
            if (f.h.type == w::msg::welcome) {
                channel_ = f.welcome.channel;
                capacity_ = f.welcome.capacity;
                hb_ = std::chrono::milliseconds(f.welcome.heartbeat_ms);
                timeout_ = std::chrono::milliseconds(f.welcome.timeout_ms);
                prefetch_ = std::min(f.welcome.prefetch, opts_.prefetch);  // §9.2: P' <= P
                home_instance_ = f.welcome.instance;
                break;
            }
            if (f.h.type == w::msg::error) {
                const std::string text(f.error.text);
                switch (f.error.code) {
                    case w::error_code::type_mismatch:
                        throw type_mismatch("zchan: " + text);
                    case w::error_code::unknown_channel:
                        throw connect_error("zchan: " + text,
                                            make_error_code(errc::unknown_channel));
                    case w::error_code::unsupported_version:
                        throw connect_error("zchan: " + text,
                                            make_error_code(errc::version_mismatch));
                    case w::error_code::access_denied:
                        throw access_denied("zchan: " + text);
                    default:
                        throw connect_error("zchan: handshake refused: " + text);
                }
            }
        }
        (void)monitor->disconnected();  // what happened before WELCOME is no news
        last_rx_ = last_tx_ = steady::now();
        last_send_ms_ = coarse_now_ms();
        zmq_fd_ = sock_.get(zmq::sockopt::fd);
        mon_fd_ = monitor->fd();
        io_ = std::jthread([this](std::stop_token st) { run(st); });
    }

    std::uint64_t capacity() const noexcept override { return capacity_; }
    bool lost() const noexcept override { return lost_.load(std::memory_order_acquire); }

    std::string lost_what() const override {
        // transport_error appends ": peer lost" (the code's message).
        if (!lost()) return "zchan";
        const std::string ms = std::to_string(timeout_.count()) + " ms";
        switch (why_.load(std::memory_order_relaxed)) {
            case lost_why::silence:
                return "zchan: nothing heard from the home within the heartbeat timeout (" + ms +
                       ")";
            case lost_why::not_running:
                return "zchan: this process did not run for the heartbeat timeout (" + ms +
                       "; stopped or starved), so the home has given its values to others";
            case lost_why::home_shut_down:
                return "zchan: the home is shutting down";
            case lost_why::home_restarted:
                return "zchan: the home restarted (a new instance answered the resume)";
            case lost_why::session_forgotten:
                return "zchan: the home no longer knows this session (it expired it)";
            case lost_why::socket_failed:
                return "zchan: the connection's socket failed";
            case lost_why::closed_here:
                return "zchan: the handle is being destroyed";
        }
        return "zchan";
    }

    std::uint64_t malformed_frames() const noexcept override { return malformed_.load(); }

    std::shared_ptr<net_request> start(net_op op, bool try_now, std::string payload,
                                       void (*configure)(net_request&, void*),
                                       void* configure_arg) override {
        auto r = std::make_shared<net_request>();
        r->op = op;
        lock_guard g(mu_);
        if (configure != nullptr) configure(*r, configure_arg);
        expire_if_silent_locked();
        if (lost_) {
            r->result = net_answer::lost;
            return r;
        }
        if (op == net_op::recv && prefetch_ != 0) {
            start_prefetched_locked(r, try_now);
            return r;
        }
        r->id = next_id_++;
        r->try_now = try_now;
        if (op == net_op::send) r->payload = std::move(payload);  // a resume re-sends it (§12.2)
        pending_.emplace(r->id, r);
        encode_request_locked(*r);
        if (tx_.size() > opts_.max_frame) {
            pending_.erase(r->id);
            throw transport_error(make_error_code(errc::message_too_large),
                                  "zchan: value larger than the maximum frame");
        }
        send_locked();
        // A select registration has no thread that will lead (it waits on the
        // select's own context): make sure the background thread polls.
        if (r->on_answer != nullptr && !leader_ && !bg_polls_sock_) wake();
        return r;
    }

    net_answer wait(net_request& r, deadline_t deadline) override {
        lock_guard g(mu_);
        // Often answered already: the user thread drained its own answer
        // right after sending, or start() failed.
        await_locked(r, deadline);
        if (r.result != net_answer::none) return r.result;
        // The deadline passed first. protocol.md §8.5: cancel and let the
        // home decide.
        if (r.op == net_op::recv && prefetch_ != 0) {
            r.orphan = true;  // nothing at the home to cancel: leave the queue
            forget_waiter_locked(r);
            return net_answer::none;
        }
        if (r.op == net_op::recv) {
            r.orphan = true;  // a VALUE still arriving is given back
            cancel_locked(r);
            return net_answer::none;
        }
        cancel_locked(r);
        // cancel_locked drains: the verdict may be in already, written while
        // cx was still aborted (so nobody unparked us). Check before re-arming.
        if (r.result != net_answer::none) return r.result;
        r.cx.reset();                  // under mu_: no answer can race with it
        await_locked(r, no_deadline);  // answered, or lost within the timeout
        return r.result;
    }

    void detach(net_request& r) override {
        lock_guard g(mu_);
        r.entry = nullptr;
        if (r.op == net_op::recv && prefetch_ != 0) {
            r.orphan = true;
            forget_waiter_locked(r);
            return;
        }
        if (r.orphan || pending_.count(r.id) == 0) return;
        r.orphan = true;
        cancel_locked(r);
    }

    void ack(std::uint64_t delivery) override {
        lock_guard g(mu_);
        ack_locked(delivery);
    }

    /// ACKs are batched (protocol.md §8.4): queued here, they leave in one
    /// frame just ahead of the next frame this link sends (typically the
    /// caller's next request, a few microseconds later) or at the
    /// background thread's next tick (heartbeat/4), whichever comes first.
    /// The home then handles ACK and request in one wake-up instead of two.
    void ack_locked(std::uint64_t delivery) override ZCHAN_REQUIRES(mu_) {
        if (lost_) {
            // The home is shutting down and still listens for a while
            // (home_stopping_locked): a value taken now must be ACKed or it
            // would also go back to the channel. Otherwise protocol.md
            // §12.5: the value belongs to the channel again.
            if (home_stopping_) {
                acks_.assign(1, delivery);
                ack_tx_.clear();
                w::encode_ack(ack_tx_, channel_, acks_);
                acks_.clear();
                send_buf_locked(ack_tx_);
            }
            return;
        }
        acks_.push_back(delivery);
        if (acks_.size() >= w::max_acks) flush_acks_locked();
    }

    void give_back_locked(std::uint64_t delivery) override ZCHAN_REQUIRES(mu_) {
        if (lost_) return;
        tx_.clear();
        w::encode_header(tx_, w::header{w::version, w::msg::ret, 0, channel_, delivery});
        send_raw_locked();
        if (!home_stopping_) unconf_.push_back(delivery | return_bit);  // §12.5
    }

private:
    void wake() noexcept {
        const std::uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
    }

    /// Requires mu_. A recv on a prefetching link (see the top): served from
    /// pq_, or queued in pwaiters_; never a request of its own.
    void start_prefetched_locked(const std::shared_ptr<net_request>& r, bool try_now)
        ZCHAN_REQUIRES(mu_) {
        if (head_ready_locked()) {
            (void)hand_over_locked(*r);  // false: a select already decided otherwise
        } else if (drained_locked()) {
            r->result = net_answer::closed;
            // A select registration learns every final answer through its
            // hook: the select polled this case before registering it, and
            // the handle may have drained since (another thread dispatched
            // the last prefetch answer). Its register_recv reports only a
            // lost link as "ready", so without this wake-up it sleeps forever.
            if (r->on_answer != nullptr) r->on_answer(*r, r->arg);
        } else if (try_now) {
            r->result = net_answer::empty;  // what has arrived is all a TRY sees (§9.2)
        } else {
            pwaiters_.push_back(r);
        }
        if (pq_.size() + p_outstanding_ <= prefetch_ / 2) refill_locked();
        if (r->result == net_answer::none && r->on_answer != nullptr && !leader_ &&
            !bg_polls_sock_) {
            wake();  // a select waiter: someone must poll for the value it waits for
        }
    }

    /// Requires mu_. The head of pq_ may be handed out: no earlier delivery
    /// is still to come (see the top).
    [[nodiscard]] bool head_ready_locked() const noexcept ZCHAN_REQUIRES(mu_) {
        return !pq_.empty() && pq_.front().delivery < p_next_;
    }

    /// Requires mu_. A prefetch RECV was answered CLOSED and nothing more can
    /// come: every value queued was taken, no request is outstanding.
    ///
    /// Every outstanding request is waited for, resumed session or not: the
    /// home answers each one (§8.1, §8.8), and a later one is not always
    /// CLOSED too. A value given back after the close (RETURN, another
    /// peer's BYE or loss, §8.4, §12.4) goes to the next request, and after
    /// a resume a re-sent request may bring a value that was lost with the
    /// connection (§12.2). (A `zchan recv` that once hung here was a select
    /// that registered after the handle drained and was never told, see
    /// start_prefetched_locked; no request had gone unanswered.)
    [[nodiscard]] bool drained_locked() const noexcept ZCHAN_REQUIRES(mu_) {
        return p_closed_ && pq_.empty() && p_outstanding_ == 0;
    }

    /// Requires mu_. Delivery `d` arrived (queued, given back or a repeat):
    /// advances p_next_ past every delivery that has arrived.
    void saw_delivery_locked(std::uint64_t d) ZCHAN_REQUIRES(mu_) {
        if (prefetch_ == 0 || d < p_next_) return;
        if (d > p_next_) {
            p_above_.insert(d);
            return;
        }
        ++p_next_;
        while (!p_above_.empty() && *p_above_.begin() <= p_next_) {
            if (*p_above_.begin() == p_next_) ++p_next_;
            p_above_.erase(p_above_.begin());
        }
    }

    /// Requires mu_. Queues a prefetched value in delivery order (at the
    /// back but after a resume, see the top).
    void queue_value_locked(std::string payload, std::uint64_t delivery) ZCHAN_REQUIRES(mu_) {
        auto at = pq_.end();
        while (at != pq_.begin() && std::prev(at)->delivery > delivery) --at;
        pq_.insert(at, queued_value{std::move(payload), delivery});
    }

    /// Requires mu_, head_ready_locked(). Gives the head of pq_ to `r`: a plain
    /// recv takes it (true); a select registration takes it if its select
    /// chose it (then ACKed), else the value stays queued (false).
    bool hand_over_locked(net_request& r) ZCHAN_REQUIRES(mu_) {
        queued_value& q = pq_.front();
        r.payload.swap(q.payload);
        r.delivery = q.delivery;
        r.result = net_answer::value;
        if (r.on_answer == nullptr) {
            pq_.pop_front();
            return true;
        }
        if (r.on_answer(r, r.arg)) {
            pq_.pop_front();
            ack_locked(r.delivery);
            return true;
        }
        q.payload.swap(r.payload);  // not taken: keep it for the next receiver
        r.result = net_answer::none;
        r.orphan = true;  // its select is decided; it waits for nothing more
        return false;
    }

    /// Requires mu_. Serves waiting receivers from pq_ (or with CLOSED).
    void serve_waiters_locked() ZCHAN_REQUIRES(mu_) {
        while (!pwaiters_.empty() && (head_ready_locked() || drained_locked())) {
            std::shared_ptr<net_request> r = std::move(pwaiters_.front());
            pwaiters_.pop_front();
            if (r->orphan) continue;
            if (!head_ready_locked()) {  // closed and drained
                r->result = net_answer::closed;
                notify_locked(*r);
                continue;
            }
            if (hand_over_locked(*r) && r->on_answer == nullptr) {
                if (r->cx.try_select(sel_first_op)) r->cx.unpark();
            }
        }
        if (pq_.size() + p_outstanding_ <= prefetch_ / 2) refill_locked();
    }

    /// Requires mu_. Wakes a plain waiter, or tells a select registration.
    static void notify_locked(net_request& r) {
        if (r.on_answer != nullptr) {
            r.on_answer(r, r.arg);
        } else if (r.cx.try_select(sel_first_op)) {
            r.cx.unpark();
        }
    }

    /// Requires mu_. Drops `r` from pwaiters_ (deadline passed, select gone).
    void forget_waiter_locked(const net_request& r) ZCHAN_REQUIRES(mu_) {
        for (auto it = pwaiters_.begin(); it != pwaiters_.end(); ++it) {
            if (it->get() == &r) {
                pwaiters_.erase(it);
                return;
            }
        }
    }

    /// Requires mu_. Tops the window up to the grant with one RECV_MANY
    /// (§8.8), queued ACKs first.
    void refill_locked() ZCHAN_REQUIRES(mu_) {
        if (p_closed_ || lost_) return;
        const std::size_t have = pq_.size() + p_outstanding_;
        if (have >= prefetch_) return;
        const auto k = static_cast<std::uint32_t>(prefetch_ - have);
        const std::uint64_t first = next_id_;
        next_id_ += k;
        p_ranges_.push_back(first, k);
        p_outstanding_ += k;
        tx_.clear();
        w::encode_recv_many(tx_, channel_, first, k);
        send_raw_locked();
        drain_locked();
    }

    /// Requires mu_. If `id` is an outstanding prefetch request, forgets it
    /// (its answer has come) and returns true. Answers come in request order
    /// (§8.8), so it is almost always the first id of the first range.
    bool take_prefetch_id_locked(std::uint64_t id) ZCHAN_REQUIRES(mu_) {
        if (!p_ranges_.take(id)) return false;
        --p_outstanding_;
        return true;
    }

    /// Requires mu_. A non-value final answer to prefetch request (already
    /// taken off p_ranges_).
    void prefetch_answer_locked(net_answer a) ZCHAN_REQUIRES(mu_) {
        if (a == net_answer::closed) p_closed_ = true;
        // cancelled/error/empty: the slot is simply free again.
        serve_waiters_locked();
    }

    /// Requires mu_. VALUES (§8.8): entry i answers request f.h.id + i with
    /// delivery f.delivery_seq + i.
    void dispatch_values_locked(const w::frame& f) ZCHAN_REQUIRES(mu_) {
        w::values_reader entries(f);
        bool queued = false;
        for (std::uint32_t i = 0; i < f.count; ++i) {
            const w::bytes payload = entries.next();
            const std::uint64_t id = f.h.id + i;
            const std::uint64_t delivery = f.delivery_seq + i;
            saw_delivery_locked(delivery);
            if (!resent_.empty() && second_answer_locked(id, net_answer::value, delivery)) {
                continue;
            }
            if (take_prefetch_id_locked(id)) {
                queue_value_locked(
                    std::string(reinterpret_cast<const char*>(payload.data()), payload.size()),
                    delivery);
                queued = true;
                continue;
            }
            w::frame one;  // a request of its own: handled as the VALUE it stands for
            one.h = w::header{w::version, w::msg::value, 0, f.h.channel, id};
            one.delivery_seq = delivery;
            one.payload = payload;
            complete_locked(one, net_answer::value);
        }
        if (queued) serve_waiters_locked();
    }

    /// Requires mu_. Called before any zmq call on the socket: if a leader
    /// is polling (and so it is not us), its edge may be consumed or its
    /// answer taken by this call; make its poll return (see the top).
    void kick_leader_locked() noexcept ZCHAN_REQUIRES(mu_) {
        if (!leader_ || leader_kicked_) return;
        leader_kicked_ = true;
        const std::uint64_t one = 1;
        [[maybe_unused]] auto n = ::write(leader_fd_, &one, sizeof one);
    }

    /// Requires mu_ (released while it waits or polls, held again on
    /// return). Waits until `r` has its final answer or `deadline` passes, as
    /// the leader that polls the socket or as a follower parked on r.cx (see
    /// the top). Nothing between the unlock and the lock can throw.
    void await_locked(net_request& r, deadline_t deadline) ZCHAN_REQUIRES(mu_) {
        while (r.result == net_answer::none) {
            const auto now = clock::now();
            if (deadline != no_deadline && now >= deadline) return;
            if (leader_) {
                // Follower: the leader, or the background thread once the
                // leader retires, drains our answer and unparks us.
                mu_.unlock();
                r.cx.wait_until(deadline);
                mu_.lock();
                continue;
            }
            leader_ = true;
            mu_.unlock();
            // Bounded, as a backstop: a lost edge costs at most this much.
            auto wait_ms = leader_poll_max_ms;
            if (deadline != no_deadline) {
                const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
                wait_ms = std::min<long long>(wait_ms, std::max<long long>(left.count(), 0));
            }
            pollfd fds[2] = {{zmq_fd_, POLLIN, 0}, {leader_fd_, POLLIN, 0}};
            ::poll(fds, 2, static_cast<int>(wait_ms));
            mu_.lock();
            leader_ = false;
            if (leader_kicked_) {
                std::uint64_t n = 0;
                [[maybe_unused]] auto rd = ::read(leader_fd_, &n, sizeof n);
                leader_kicked_ = false;
            }
            drain_locked();
        }
        // Retiring: whoever still waits (followers, select registrations,
        // orphans whose VALUE must be given back) needs a poller.
        if (!pending_.empty() && !bg_polls_sock_) wake();
    }

    /// Requires mu_. CANCEL_SEND / CANCEL_RECV / CANCEL_WATCH for a pending request.
    void cancel_locked(net_request& r) ZCHAN_REQUIRES(mu_) {
        if (lost_ || pending_.count(r.id) == 0) return;
        const auto m = cancel_type(r.op);
        if (!m) return;
        r.cancel_sent = true;  // a resume re-sends the cancel too (§12.2)
        tx_.clear();
        w::encode_header(tx_, w::header{w::version, *m, 0, channel_, r.id});
        send_locked();
    }

    /// The CANCEL_* that withdraws a request of kind `op` (§8.5); none for
    /// CLOSE and QUERY, which cannot be cancelled.
    static std::optional<w::msg> cancel_type(net_op op) noexcept {
        switch (op) {
            case net_op::send:
                return w::msg::cancel_send;
            case net_op::recv:
                return w::msg::cancel_recv;
            case net_op::watch:
                return w::msg::cancel_watch;
            case net_op::close:
            case net_op::query:
                return std::nullopt;
        }
        return std::nullopt;
    }

    /// Requires mu_. Encodes request `r` into tx_ (§5.2): the first time it
    /// is sent (start) and again, with its original id and flags, after a
    /// resume (§12.2).
    void encode_request_locked(const net_request& r) ZCHAN_REQUIRES(mu_) {
        const std::uint16_t flags = r.try_now ? w::flag::try_now : 0;
        tx_.clear();
        switch (r.op) {
            case net_op::send:
                w::begin_send(tx_, channel_, r.id, flags);
                tx_.append(r.payload);
                break;
            case net_op::recv:
                w::encode_header(tx_, w::header{w::version, w::msg::recv, flags, channel_, r.id});
                break;
            case net_op::close:
                w::encode_header(tx_, w::header{w::version, w::msg::close, 0, channel_, r.id});
                break;
            case net_op::query:
                w::encode_header(tx_, w::header{w::version, w::msg::query, 0, channel_, r.id});
                break;
            case net_op::watch:  // protocol.md §8.6
                w::encode_header(tx_, w::header{w::version, w::msg::watch_send, 0, channel_, r.id});
                break;
        }
    }

    /// Requires mu_. Sends tx_, then drains (the send may have consumed the
    /// ZMQ_FD edge; see the top of the file).
    void send_locked() ZCHAN_REQUIRES(mu_) {
        send_raw_locked();
        drain_locked();
    }

    /// Requires mu_. Sends the queued ACKs, if any (see ack_locked).
    void flush_acks_locked() ZCHAN_REQUIRES(mu_) {
        if (acks_.empty() || lost_) {
            acks_.clear();
            return;
        }
        kick_leader_locked();
        ack_tx_.clear();
        w::encode_ack(ack_tx_, channel_, acks_);
        unconf_.insert(unconf_.end(), acks_.begin(), acks_.end());  // §12.5
        acks_.clear();
        send_buf_locked(ack_tx_);
    }

    /// Requires mu_. Sends tx_ (after the queued ACKs) without draining
    /// (used while dispatching).
    void send_raw_locked() ZCHAN_REQUIRES(mu_) {
        kick_leader_locked();
        flush_acks_locked();
        if (lost_) return;
        send_buf_locked(tx_);
    }

    /// Requires mu_. One frame out; a failure loses the session.
    void send_buf_locked(const std::string& buf) ZCHAN_REQUIRES(mu_) {
        // A thread stopped after its last check must not refresh the stamp
        // by sending: that would make a stale session look alive again.
        expire_if_silent_locked();
        if (lost_ && !home_stopping_) return;
        // The stamp is the time of the check, not of the send: a stop lands
        // most often inside the send's system call, and a stamp taken after
        // it would make a session the home has lost meanwhile look fresh, so
        // its queued values would reach users (a flaky SIGSTOP test found it).
        const std::int64_t checked_ms = coarse_now_ms();
        try {
            if (!sock_.send(zmq::buffer(buf), zmq::send_flags::dontwait)) {
                // HWM is unlimited; EAGAIN means the socket cannot queue at all.
                lose_locked(lost_why::socket_failed);
                return;
            }
            tx_seen_ = true;             // stamped at the next heartbeat tick (heartbeat_locked)
            last_send_ms_ = checked_ms;  // see expire_if_silent_locked
        } catch (const zmq::error_t&) {
            lose_locked(lost_why::socket_failed);
        }
    }

    /// Requires mu_. Reads and dispatches every frame the socket has ready.
    void drain_locked() ZCHAN_REQUIRES(mu_) {
        if (draining_) return;  // re-entered from a dispatch hook
        expire_if_silent_locked();
        if (lost_) return;
        kick_leader_locked();
        draining_ = true;
        try {
            // Until EAGAIN: a failed recv also processes the socket's pending
            // commands, so afterwards ZMQ_FD is armed again (as after
            // ZMQ_EVENTS), at one zmq call per frame instead of two.
            for (;;) {
                // A stop can land between two frames too (§12.1): check per frame.
                const std::int64_t now = coarse_now_ms();
                expire_if_silent_locked(now);
                if (lost_) break;
                // A long burst (large values) must not silence us: the home
                // would declare us lost, and so would expire_if_silent_locked.
                if (now - last_send_ms_ >= hb_.count()) send_ping_locked();
                zmq::message_t m;
                if (!sock_.recv(m, zmq::recv_flags::dontwait)) break;
                if (m.more()) {  // protocol.md §3: one frame per message
                    ++malformed_;
                    while (m.more() && sock_.recv(m, zmq::recv_flags::dontwait)) {
                    }
                    continue;
                }
                dispatch_locked(m);
            }
        } catch (const zmq::error_t&) {
            lose_locked(lost_why::socket_failed);
        }
        draining_ = false;
    }

    /// Requires mu_. One frame from the home (protocol.md §5.2, H->P).
    void dispatch_locked(const zmq::message_t& m) ZCHAN_REQUIRES(mu_) {
        w::frame f;
        if (w::decode({m.data<unsigned char>(), m.size()}, w::side::peer, f, opts_.max_frame)) {
            ++malformed_;  // protocol.md §11.1: count and drop
            return;
        }
        if (f.h.channel != channel_ &&
            !(f.h.channel == 0 && (f.h.type == w::msg::ping || f.h.type == w::msg::pong ||
                                   f.h.type == w::msg::error || f.h.type == w::msg::welcome))) {
            ++malformed_;
            return;
        }
        rx_seen_ = true;  // stamped at the next heartbeat tick (heartbeat_locked)
        switch (f.h.type) {
            case w::msg::ping:
                tx_.clear();
                w::encode_header(tx_, w::header{w::version, w::msg::pong, 0, channel_, f.h.id});
                send_raw_locked();
                return;
            case w::msg::pong:
                confirm_locked(f.h.id);
                return;
            case w::msg::welcome:
                welcome_locked(f);
                return;
            case w::msg::credit:
                return;
            case w::msg::send_ok:
            case w::msg::close_ok:
                complete_locked(f, net_answer::ok);
                return;
            case w::msg::send_closed:
            case w::msg::closed:
                complete_locked(f, net_answer::closed);
                return;
            case w::msg::send_full:
                complete_locked(f, net_answer::full);
                return;
            case w::msg::empty:
                complete_locked(f, net_answer::empty);
                return;
            case w::msg::send_cancelled:
            case w::msg::recv_cancelled:
            case w::msg::watch_cancelled:
                complete_locked(f, net_answer::cancelled);
                return;
            case w::msg::ready:
                complete_locked(f, net_answer::ready);
                return;
            case w::msg::status:
                complete_locked(f, net_answer::status);
                return;
            case w::msg::value:
                complete_locked(f, net_answer::value);
                return;
            case w::msg::values:
                dispatch_values_locked(f);
                return;
            case w::msg::error:
                if (f.error.code == w::error_code::shutting_down) {
                    home_stopping_locked();
                    return;
                }
                if (f.error.code == w::error_code::unknown_session) {
                    // §12.2: resume; if the home has lost the session, its
                    // fresh WELCOME makes this peer lost (welcome_locked).
                    if (!resuming_) start_resume_locked();
                    return;
                }
                complete_locked(f, net_answer::error);
                return;
            default:
                ++malformed_;
                return;
        }
    }

    /// Requires mu_. ERROR shutting_down: the home waits a bounded time for
    /// our deliveries to be resolved (src/server.cpp shut_down). ACK what
    /// users took, RETURN what is queued for nobody (it must not reach a
    /// user now: the home puts it back into the channel), then the session
    /// is lost (protocol.md §11.3). A VALUE already handed to a user
    /// operation that has not ACKed yet is ACKed when it does (ack_locked).
    void home_stopping_locked() ZCHAN_REQUIRES(mu_) {
        flush_acks_locked();
        // Newest first: each RETURN goes to the head of the channel, so the
        // channel ends up holding them in delivery order.
        for (auto q = pq_.rbegin(); q != pq_.rend(); ++q) give_back_locked(q->delivery);
        pq_.clear();
        home_stopping_ = true;
        lose_locked(lost_why::home_shut_down);
    }

    /// Requires mu_. Writes a final answer into its request and wakes it.
    void complete_locked(const w::frame& f, net_answer a) ZCHAN_REQUIRES(mu_) {
        if (a == net_answer::value) saw_delivery_locked(f.delivery_seq);
        if (!resent_.empty() && second_answer_locked(f.h.id, a, f.delivery_seq)) return;
        auto it = pending_.find(f.h.id);
        if (it == pending_.end()) {
            if (take_prefetch_id_locked(f.h.id)) {
                if (a == net_answer::value) {
                    queue_value_locked(std::string(reinterpret_cast<const char*>(f.payload.data()),
                                                   f.payload.size()),
                                       f.delivery_seq);
                }
                prefetch_answer_locked(a);
                return;
            }
            // Unknown request: a VALUE nobody asked for still belongs to the
            // channel (protocol.md §8.4): give it back.
            if (a == net_answer::value) give_back_locked(f.delivery_seq);
            return;
        }
        std::shared_ptr<net_request> r = std::move(it->second);
        pending_.erase(it);
        r->result = a;
        if (a == net_answer::value) {
            r->payload.assign(reinterpret_cast<const char*>(f.payload.data()), f.payload.size());
            r->delivery = f.delivery_seq;
        } else if (a == net_answer::status) {
            r->length = f.status.length;
            r->status_closed = f.status.closed;
        } else if (a == net_answer::error) {
            r->error_code = static_cast<std::uint16_t>(f.error.code);
            r->error_text.assign(f.error.text);
        }
        if (r->orphan) {
            if (a == net_answer::value) give_back_locked(r->delivery);
            return;
        }
        if (r->on_answer != nullptr) {
            const bool taken = r->on_answer(*r, r->arg);
            if (a == net_answer::value) {
                if (taken) {
                    ack_locked(r->delivery);
                } else {
                    give_back_locked(r->delivery);
                }
            }
            return;
        }
        if (r->cx.try_select(sel_first_op)) r->cx.unpark();
    }

    /// Requires mu_. The session is lost (protocol.md §11.3): every pending
    /// request fails with `lost`. The first reason is the one reported.
    void lose_locked(lost_why why) ZCHAN_REQUIRES(mu_) {
        if (!lost_.load(std::memory_order_relaxed)) {
            why_.store(why, std::memory_order_relaxed);  // published by lost_'s release
        }
        lost_.store(true, std::memory_order_release);
        auto pending = std::move(pending_);
        pending_.clear();
        std::vector<std::shared_ptr<net_request>> waiting;
        waiting.reserve(pending.size() + pwaiters_.size());
        for (auto& [id, r] : pending) waiting.push_back(std::move(r));
        for (auto& r : pwaiters_) waiting.push_back(std::move(r));
        pwaiters_.clear();
        p_outstanding_ = 0;
        p_ranges_.clear();
        unconf_.clear();
        conf_marks_.clear();
        resent_.clear();
        for (auto& r : waiting) {
            r->result = net_answer::lost;
            if (r->orphan) continue;
            if (r->on_answer != nullptr) {
                r->on_answer(*r, r->arg);
            } else if (r->cx.try_select(sel_first_op)) {
                r->cx.unpark();
            }
        }
    }

    /// CLOCK_MONOTONIC_COARSE in ms: a few ns per read (no syscall, tick
    /// resolution), cheap enough to stamp every frame sent.
    static std::int64_t coarse_now_ms() noexcept {
        timespec ts{};
        ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
        return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
    }

    /// Requires mu_. A process that sent nothing for the heartbeat timeout
    /// was stopped (SIGSTOP, a debugger) or starved: the home may have
    /// declared its session lost (protocol.md §12.1) and given its
    /// deliveries to other receivers (§12.4), so they must not reach a user
    /// here (§12.5). Frames still queued in the socket (VALUEs, and the
    /// home's PINGs, which would look like signs of life) cannot tell: only
    /// our own silence can, so this runs before anything is dispatched,
    /// handed over or sent (also in send_buf_locked: a thread stopped just
    /// after a check must not refresh the stamp with its next frame).
    ///
    /// Why the timeout itself is early enough: the stamp is taken before the
    /// frame leaves, and the home stamps the frame after it arrived, so the
    /// home cannot run out of patience before this does. `coarse_slack`
    /// covers the coarse clock's tick (it may read up to one tick late). A
    /// stop shorter than the timeout minus the heartbeat never trips either
    /// side (a live process sends at least every heartbeat).
    void expire_if_silent_locked(std::int64_t now = coarse_now_ms()) ZCHAN_REQUIRES(mu_) {
        if (lost_ || last_send_ms_ == 0) return;
        const std::int64_t limit = timeout_.count() - coarse_slack_ms;
        if (now - last_send_ms_ > limit) lose_locked(lost_why::not_running);
    }

    /// Requires mu_. protocol.md §12.1. Frames are not stamped with the
    /// clock one by one: whatever was received or sent since the last tick
    /// counts as received or sent now (late by at most heartbeat/4).
    void heartbeat_locked() ZCHAN_REQUIRES(mu_) {
        const auto now = steady::now();
        if (rx_seen_) last_rx_ = now;
        if (tx_seen_) last_tx_ = now;
        rx_seen_ = tx_seen_ = false;
        if (now - last_rx_ > timeout_) {
            lose_locked(lost_why::silence);
            return;
        }
        // A PING also when resolutions wait for their confirmation (§12.5),
        // so that unconf_ holds at most about a tick's worth.
        const std::size_t marked = conf_marks_.empty() ? 0 : conf_marks_.back().second;
        if (now - last_tx_ >= hb_ || unconf_.size() > marked) {
            send_ping_locked();
            last_tx_ = now;
            tx_seen_ = false;
        }
    }

    /// Requires mu_. PING; its PONG confirms every resolution sent before it.
    void send_ping_locked() ZCHAN_REQUIRES(mu_) {
        tx_.clear();
        w::encode_header(tx_, w::header{w::version, w::msg::ping, 0, channel_, ++ping_nonce_});
        send_raw_locked();  // flushes the queued ACKs first: they are covered too
        if (!unconf_.empty()) conf_marks_.emplace_back(ping_nonce_, unconf_.size());
    }

    /// Requires mu_. PONG `nonce` (§12.5): the resolutions sent before its
    /// PING have been processed by the home; forget them.
    void confirm_locked(std::uint64_t nonce) ZCHAN_REQUIRES(mu_) {
        while (!conf_marks_.empty() && conf_marks_.front().first <= nonce) {
            const auto [n, count] = conf_marks_.front();
            conf_marks_.pop_front();
            if (n != nonce) continue;  // an older PING whose PONG was lost: covered by this one
            unconf_.erase(unconf_.begin(), unconf_.begin() + static_cast<std::ptrdiff_t>(count));
            for (auto& m : conf_marks_) m.second -= count;
            return;
        }
    }

    /// Requires mu_. The connection broke, or the home does not know the
    /// session on this connection (§12.2): HELLO RESUME. It queues in the
    /// DEALER until the new connection is up. A second one (another reset
    /// before WELCOME) supersedes the first: only its WELCOME counts.
    void start_resume_locked() ZCHAN_REQUIRES(mu_) {
        if (lost_) return;
        resuming_ = true;
        resume_nonce_ = nonce_base_ | ++hello_count_;
        w::hello_body h;
        h.heartbeat_ms = static_cast<std::uint32_t>(opts_.heartbeat.count());
        h.prefetch = opts_.prefetch;
        h.instance = instance_;
        h.name = name_;
        h.type_name = type_name_;
        tx_.clear();
        w::encode_hello(tx_, resume_nonce_, w::flag::resume, h);
        send_raw_locked();
    }

    /// Requires mu_. WELCOME: the answer to our latest HELLO RESUME, else stale.
    void welcome_locked(const w::frame& f) ZCHAN_REQUIRES(mu_) {
        if (!resuming_ || f.h.id != resume_nonce_) return;
        resuming_ = false;
        if ((f.h.flags & w::flag::resume) == 0 || f.welcome.channel != channel_ ||
            f.welcome.instance != home_instance_) {
            // §12.2: the home lost the session (or restarted): peer lost.
            // End the fresh session it opened for us at once.
            if ((f.h.flags & w::flag::resume) == 0) {
                tx_.clear();
                w::encode_header(tx_, w::header{w::version, w::msg::bye, 0, f.welcome.channel, 0});
                send_raw_locked();
            }
            lose_locked(f.welcome.instance != home_instance_ ? lost_why::home_restarted
                                                             : lost_why::session_forgotten);
            return;
        }
        ++resumes_;
        resend_locked();
    }

    /// Requires mu_. After WELCOME RESUME (§12.2): re-sends the unconfirmed
    /// resolutions, then every request without a final answer, in id order
    /// (so one sender's values stay in order), then the outstanding
    /// prefetch ranges; a PING last, to confirm the resolutions.
    void resend_locked() ZCHAN_REQUIRES(mu_) {
        flush_acks_locked();  // queued ones join unconf_
        conf_marks_.clear();  // their PINGs may have died with the connection
        std::vector<std::uint64_t> acks;
        // Runs here only, under mu_ (the analysis does not follow lambdas).
        auto flush = [&]() ZCHAN_NO_THREAD_SAFETY_ANALYSIS {
            if (acks.empty()) return;
            ack_tx_.clear();
            w::encode_ack(ack_tx_, channel_, acks);
            acks.clear();
            send_buf_locked(ack_tx_);
        };
        for (const std::uint64_t u : unconf_) {
            if ((u & return_bit) == 0) {
                acks.push_back(u);
                if (acks.size() >= w::max_acks) flush();
                continue;
            }
            flush();  // keep the order of ACKs and RETURNs
            tx_.clear();
            w::encode_header(tx_, w::header{w::version, w::msg::ret, 0, channel_, u & ~return_bit});
            send_buf_locked(tx_);
        }
        flush();
        resent_.clear();
        std::vector<net_request*> reqs;
        reqs.reserve(pending_.size());
        for (auto& [id, r] : pending_) reqs.push_back(r.get());
        std::sort(reqs.begin(), reqs.end(),
                  [](const net_request* a, const net_request* b) { return a->id < b->id; });
        for (net_request* r : reqs) {
            resent_.emplace(r->id, unanswered);
            encode_request_locked(*r);
            send_buf_locked(tx_);
            if (r->cancel_sent) {
                tx_.clear();
                w::encode_header(tx_,
                                 w::header{w::version, *cancel_type(r->op), 0, channel_, r->id});
                send_buf_locked(tx_);
            }
        }
        // Called by for_each_range under mu_ (the analysis does not follow lambdas).
        p_ranges_.for_each_range(
            [&](std::uint64_t first, std::uint64_t count) ZCHAN_NO_THREAD_SAFETY_ANALYSIS {
                for (std::uint64_t i = 0; i < count; ++i) resent_.emplace(first + i, unanswered);
                tx_.clear();
                w::encode_recv_many(tx_, channel_, first, static_cast<std::uint32_t>(count));
                send_buf_locked(tx_);
            });
        send_ping_locked();
    }

    /// Requires mu_, resent_ non-empty. An answer to a re-sent request: the
    /// first one is recorded and handled as usual (false); a second one is
    /// dropped (true), after giving back a VALUE that is not the delivery
    /// the first one brought (the home ran the request again).
    bool second_answer_locked(std::uint64_t id, net_answer a, std::uint64_t delivery)
        ZCHAN_REQUIRES(mu_) {
        auto it = resent_.find(id);
        if (it == resent_.end()) return false;
        if (it->second == unanswered) {
            it->second = a == net_answer::value ? delivery : 0;
            return false;
        }
        if (a == net_answer::value && delivery != it->second) give_back_locked(delivery);
        return true;
    }

    /// The background thread: polls ZMQ_FD without the lock, drains with it.
    void run(const std::stop_token& st) {
        const int poll_ms = static_cast<int>(std::max<long long>(1, hb_.count() / 4));
        while (!st.stop_requested()) {
            bool poll_sock = false;
            {
                lock_guard g(mu_);
                if (lost_) return;
                if (mon_->disconnected()) start_resume_locked();  // §12.2
                drain_locked();
                heartbeat_locked();
                if (lost_) return;
                flush_acks_locked();
                drain_locked();  // a PING or ACK sent may have consumed the edge
                // While a user thread leads, polling the socket too would
                // only add a competing wake-up per answer.
                poll_sock = !leader_;
                bg_polls_sock_ = poll_sock;
            }
            pollfd fds[3] = {{wake_fd_, POLLIN, 0}, {mon_fd_, POLLIN, 0}, {zmq_fd_, POLLIN, 0}};
            ::poll(fds, poll_sock ? 3 : 2, poll_ms);
            if ((fds[0].revents & POLLIN) != 0) {
                std::uint64_t n = 0;
                [[maybe_unused]] auto r = ::read(wake_fd_, &n, sizeof n);
            }
        }
    }

    const net_options opts_;
    std::jthread io_;     // the destructor stops and joins it before touching anything else
    int wake_fd_ = -1;    // wakes the background thread
    int leader_fd_ = -1;  // kicks the leader out of its poll (kick_leader_locked)
    int zmq_fd_ = -1;
    /// Why the session was lost (lost_what); written once, before lost_.
    std::atomic<bool> lost_{false};
    std::atomic<lost_why> why_{lost_why::silence};
    std::atomic<std::uint64_t> malformed_{0};

    // Set by handshake() before io_ starts; read-only afterwards.
    std::string name_;
    std::string type_name_;
    w::instance_id instance_{};       // ours: HELLO RESUME presents it again (§12.2)
    w::instance_id home_instance_{};  // the home's, from WELCOME
    std::uint64_t nonce_base_ = 0;    // HELLO nonces: nonce_base_ | counter
    int mon_fd_ = -1;                 // the monitor PAIR's ZMQ_FD
    std::uint32_t channel_ = 0;
    std::uint64_t capacity_ = 0;
    std::chrono::milliseconds hb_{1000};
    std::chrono::milliseconds timeout_{3000};

    annotated_mutex mu_;
    zmq::socket_t sock_ ZCHAN_GUARDED_BY(mu_);  // after handshake
    std::unordered_map<std::uint64_t, std::shared_ptr<net_request>> pending_ ZCHAN_GUARDED_BY(mu_);
    std::uint64_t next_id_ ZCHAN_GUARDED_BY(mu_) = 1;
    std::uint64_t ping_nonce_ ZCHAN_GUARDED_BY(mu_) = 0;
    steady::time_point last_rx_ ZCHAN_GUARDED_BY(mu_){};
    steady::time_point last_tx_ ZCHAN_GUARDED_BY(mu_){};
    bool rx_seen_ ZCHAN_GUARDED_BY(mu_) = false;           // a frame arrived since the last tick
    bool tx_seen_ ZCHAN_GUARDED_BY(mu_) = false;           // a frame left since the last tick
    std::int64_t last_send_ms_ ZCHAN_GUARDED_BY(mu_) = 0;  // coarse_now_ms() of the last frame sent
    bool home_stopping_ ZCHAN_GUARDED_BY(mu_) = false;     // ERROR shutting_down received
    // Resume (see the top); all guarded by mu_.
    std::optional<dial_monitor> mon_;  // created in handshake(); read under mu_ after it
    bool resuming_ ZCHAN_GUARDED_BY(mu_) = false;  // HELLO RESUME sent, its WELCOME not yet here
    std::uint64_t resume_nonce_ ZCHAN_GUARDED_BY(mu_) = 0;  // the latest HELLO RESUME's nonce
    std::uint64_t hello_count_ ZCHAN_GUARDED_BY(mu_) = 1;   // HELLOs sent (the dial's was 1)
    std::uint64_t resumes_ ZCHAN_GUARDED_BY(mu_) = 0;       // completed resumes
    /// Resolutions sent and not yet confirmed (§12.5), in order: a delivery
    /// seq, with return_bit set for a RETURN.
    static constexpr std::uint64_t return_bit = std::uint64_t{1} << 63;
    std::deque<std::uint64_t> unconf_ ZCHAN_GUARDED_BY(mu_);
    /// PINGs sent since: (nonce, how many of unconf_ its PONG confirms).
    std::deque<std::pair<std::uint64_t, std::size_t>> conf_marks_ ZCHAN_GUARDED_BY(mu_);
    /// Requests re-sent by the last resume -> the delivery of their first
    /// answer (0: not a VALUE; `unanswered`: none yet).
    static constexpr std::uint64_t unanswered = ~std::uint64_t{0};
    std::unordered_map<std::uint64_t, std::uint64_t> resent_ ZCHAN_GUARDED_BY(mu_);
    std::string tx_ ZCHAN_GUARDED_BY(mu_);
    std::string ack_tx_ ZCHAN_GUARDED_BY(mu_);  // an ACK frame being sent
    // Prefetch window (see the top); all guarded by mu_. prefetch_ is set by
    // handshake() before io_ starts.
    struct queued_value {
        std::string payload;
        std::uint64_t delivery = 0;
    };
    std::uint32_t prefetch_ = 0;                         // granted window P'; 0 = none
    std::deque<queued_value> pq_ ZCHAN_GUARDED_BY(mu_);  // prefetched, not yet taken
    std::uint64_t p_next_ ZCHAN_GUARDED_BY(mu_) =
        1;  // the lowest delivery seq that has not arrived
    std::set<std::uint64_t> p_above_
        ZCHAN_GUARDED_BY(mu_);  // deliveries above p_next_ that have arrived
    std::deque<std::shared_ptr<net_request>> pwaiters_
        ZCHAN_GUARDED_BY(mu_);  // recvs waiting for pq_
    // Prefetch RECVs in flight: (first id, count) ranges in request order.
    id_ranges p_ranges_ ZCHAN_GUARDED_BY(mu_);
    std::size_t p_outstanding_ ZCHAN_GUARDED_BY(mu_) = 0;    // their total
    bool p_closed_ ZCHAN_GUARDED_BY(mu_) = false;            // a prefetch RECV got CLOSED
    std::vector<std::uint64_t> acks_ ZCHAN_GUARDED_BY(mu_);  // deliveries taken, not yet ACKed
    bool draining_ ZCHAN_GUARDED_BY(mu_) = false;
    bool leader_ ZCHAN_GUARDED_BY(mu_) = false;         // a user thread polls the socket
    bool leader_kicked_ ZCHAN_GUARDED_BY(mu_) = false;  // leader_fd_ written, not yet read
    bool bg_polls_sock_ ZCHAN_GUARDED_BY(mu_) =
        false;  // the background thread's poll includes zmq_fd_
};

}  // namespace

std::shared_ptr<net_link> net_link::dial(const std::string& endpoint, const std::string& name,
                                         const std::string& type_name, const net_options& opts) {
    auto link = std::make_shared<link_impl>(opts);
    link->handshake(endpoint, name, type_name);
    return link;
}

}  // namespace zchan::detail

// A protocol session of a dialed handle (net_link, declared in
// zchan/detail/net_link.hpp): handshake, request table, prefetch window, ACK
// batching and confirmations, resume. Its frames travel on the process's
// shared connection to the endpoint (peer_connection.hpp), which owns the
// socket, the threads that poll it and liveness; the session's state is
// guarded by the connection's mutex (conn_->mu is a reference to it).
//
// Prefetch window (protocol.md §9.2, opt-in: net_options::prefetch, granted
// by the home in WELCOME). From the first recv on, the session keeps up to P
// RECVs outstanding that no user operation waits for ("prefetch requests").
// They are asked for in one RECV_MANY per refill and answered mostly in
// VALUES frames (§8.8), so a stream of values costs a frame per batch, not
// per value; they are tracked as id ranges, not as request objects, and
// their values queue in delivery order (src/prefetch_queue.hpp, pq_).
// A user recv takes the head of pq_ without a round trip,
// or waits in pwaiters_ (FIFO) for the next one; a TRY recv never goes to
// the home (empty unless a value is queued). The queued values are
// unacknowledged deliveries: BYE or loss gives them back to the channel
// (protocol.md §12.4). Refills happen when the window is half used, so that
// ACKs and the RECV_MANY leave together.
//
// Send window (protocol.md §9.1, opt-in: net_options::send_window, granted
// in WELCOME). A send that finds a credit appends its value to sw_'s batch
// (src/send_window.hpp) and returns; batches leave as SEND_MANY frames and
// stay in sw_ until the home's CREDIT confirms them (a resume re-sends them
// first, before any request, so one sender's values keep their order). Any
// request flushes the batch before it leaves, for the same reason. flush()
// waits in flushers_ for the confirmation of the last value sent; REVOKE (the
// channel closed) ends the window: the batch leaves, then REVOKED.
//
// Resume (protocol.md §12.2, §12.3, §12.5). The connection keeps one routing
// id across reconnects and libzmq reconnects it by itself; frames queued in
// the DEALER wait for the new connection, frames already on the broken one
// are lost in either direction. When the connection reports a reset (or the
// home answers ERROR unknown_session) the session queues HELLO RESUME. On
// WELCOME RESUME it re-sends, with their original ids, every request without
// a final answer (a send with its value, a cancelled one followed by its
// CANCEL), every prefetch range still outstanding, and every ACK/RETURN not
// yet confirmed; the home answers re-sends idempotently. A resolution is
// confirmed by the PONG of a PING sent after it on the session's channel
// (frames of one connection are processed in order): unconf_ holds them,
// conf_marks_ the PINGs that will confirm them. A request that was re-sent
// can be answered twice (its answer was in flight on a path the home had
// already replaced); resent_ remembers the first answer so that the second
// is dropped, not given back (it is the same delivery). A fresh WELCOME (the
// home lost the session) or a different home instance is peer lost.
//
// Invariant: a request is in pending_ (and counted in the connection's
// requests_pending) until its final answer (or loss); the answer is written
// into it under the mutex before its waiter is woken.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <deque>
#include <optional>
#include <unordered_map>
#include <vector>

#include "codec.hpp"
#include "net_context.hpp"
#include "peer_connection.hpp"
#include "prefetch_queue.hpp"
#include "send_window.hpp"
#include "zchan/detail/id_ranges.hpp"
#include "zchan/detail/net_link.hpp"
#include "zchan/detail/thread_annotations.hpp"
#include "zchan/errors.hpp"

namespace zchan::detail {
namespace {

using steady = std::chrono::steady_clock;
namespace w = wire;

class peer_session final : public net_link, private connection_client {
public:
    explicit peer_session(std::shared_ptr<peer_connection> conn, const net_options& opts)
        : opts_(opts), conn_(std::move(conn)) {}

    ~peer_session() override {
        lock_guard g(conn_->mu);
        // Credited values are the user's sent values: wait (bounded) for the
        // home to confirm them before saying BYE, and say what was lost.
        if (!lost_ && channel_ != 0 && sw_.unconfirmed() != 0) {
            net_request r;
            (void)flush_locked(r, steady::now() + conn_->timeout());
        }
        if (sw_.unconfirmed() != 0) {
            std::fprintf(stderr,
                         "zchan: a handle of \"%s\" was destroyed with %llu sent values not "
                         "confirmed by the home (%s)\n",
                         name_.c_str(), static_cast<unsigned long long>(sw_.unconfirmed()),
                         lost_ ? lost_what().c_str() : "no confirmation in time");
        }
        if (!lost_ && channel_ != 0) {
            tx_.clear();
            w::encode_header(tx_, w::header{w::version, w::msg::bye, 0, channel_, 0});
            send_raw_locked();
        }
        lose_locked(lost_why::closed_here);  // nobody can be waiting any more; release select hooks
        if (channel_ != 0) conn_->detach_locked(channel_);
        if (hello_nonce_ != 0) conn_->forget_hello_locked(hello_nonce_);
        if (resuming_) conn_->forget_hello_locked(resume_nonce_);
    }

    peer_session(const peer_session&) = delete;
    peer_session& operator=(const peer_session&) = delete;

    /// Opens the session on the connection (protocol.md §7). Throws as
    /// net_link::dial says.
    void handshake(const std::string& name, const std::string& type_name) {
        if (name.empty() || name.size() > w::max_name) {
            throw connect_error("zchan: channel name must be 1..255 bytes");
        }
        if (type_name.empty() || type_name.size() > w::max_type_name) {
            throw connect_error("zchan: type identity must be 1..1024 bytes");
        }
        const std::string& endpoint = conn_->endpoint();
        lock_guard g(conn_->mu);
        instance_ = random_instance_id();
        name_ = name;
        type_name_ = type_name;
        hello_nonce_ = conn_->expect_hello_locked(this);
        if (conn_->dead()) {  // refused (or lost) before our HELLO: the same verdict
            conn_->forget_hello_locked(hello_nonce_);
            if (!conn_->refusal_locked().empty()) on_refused_locked(conn_->refusal_locked());
            on_lost_locked(conn_->why_dead_locked());
        }
        w::hello_body h;
        h.heartbeat_ms = static_cast<std::uint32_t>(opts_.heartbeat.count());
        h.prefetch = opts_.prefetch;
        h.send_window = opts_.send_window;
        h.instance = instance_;
        h.name = name_;
        h.type_name = type_name_;
        std::uint16_t hello_flags = 0;
        if (opts_.create_capacity) {  // protocol.md §17.1
            hello_flags |= w::flag::create;
            h.create_capacity = *opts_.create_capacity;
        }
        tx_.clear();
        w::encode_hello(tx_, hello_nonce_, hello_flags, h);
        ++conn_->requests_pending;  // hs_ waits like a request (a retiring leader leaves a poller)
        if (conn_->send_locked(tx_)) conn_->drain_locked();
        conn_->await_locked(hs_, steady::now() + opts_.connect_timeout);
        --conn_->requests_pending;
        if (hs_.result == net_answer::none) {
            conn_->forget_hello_locked(std::exchange(hello_nonce_, 0));
            throw connect_error("zchan: no answer from " + endpoint + " within " +
                                std::to_string(opts_.connect_timeout.count()) + " ms");
        }
        hello_nonce_ = 0;  // answered: the connection forgot it
        if (hs_.result == net_answer::ok) return;
        const std::string text = hs_.error_text;
        if (hs_.result == net_answer::lost) {
            if (refused_) throw access_denied(text);
            throw connect_error("zchan: " + endpoint + ": " + text);
        }
        switch (static_cast<w::error_code>(hs_.error_code)) {
            case w::error_code::type_mismatch:
                throw type_mismatch("zchan: " + text);
            case w::error_code::unknown_channel:
                throw connect_error("zchan: " + text, make_error_code(errc::unknown_channel));
            case w::error_code::unsupported_version:
                throw connect_error("zchan: " + text, make_error_code(errc::version_mismatch));
            case w::error_code::access_denied:
                throw access_denied("zchan: " + text);
            default:
                throw connect_error("zchan: handshake refused: " + text);
        }
    }

    std::uint64_t capacity() const noexcept override { return capacity_; }
    bool lost() const noexcept override { return lost_.load(std::memory_order_acquire); }

    std::string lost_what() const override {
        // transport_error appends ": peer lost" (the code's message).
        if (!lost()) return "zchan";
        return lost_text(why_.load(std::memory_order_relaxed), conn_->timeout());
    }

    static std::string lost_text(lost_why why, std::chrono::milliseconds timeout) {
        const std::string ms = std::to_string(timeout.count()) + " ms";
        switch (why) {
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

    std::uint64_t malformed_frames() const noexcept override {
        return conn_->malformed_frames() + malformed_.load();
    }

    std::shared_ptr<net_request> start(net_op op, bool try_now, std::string payload,
                                       void (*configure)(net_request&, void*),
                                       void* configure_arg) override {
        auto r = std::make_shared<net_request>();
        r->op = op;
        lock_guard g(conn_->mu);
        if (configure != nullptr) configure(*r, configure_arg);
        conn_->expire_if_silent_locked();
        if (lost_) {
            r->result = net_answer::lost;
            return r;
        }
        if (op == net_op::recv && prefetch_ != 0) {
            start_prefetched_locked(r, try_now);
            return r;
        }
        // §6.4: a value must fit the VALUE frame that will carry it to a
        // receiver (24 octets of prefix), within both sides' maximum frame;
        // a SEND the home would accept but no VALUE could carry is refused here.
        if (op == net_op::send && payload.size() > max_value_) {
            throw transport_error(make_error_code(errc::message_too_large),
                                  "zchan: a value of " + std::to_string(payload.size()) +
                                      " bytes encoded; the largest that can travel is " +
                                      std::to_string(max_value_) +
                                      " (net_options::max_frame and the home's, minus 24)");
        }
        if (!sw_.batch_empty()) flush_batch_locked();  // one sender's values in order
        r->id = next_id_++;
        r->try_now = try_now;
        if (op == net_op::send) r->payload = std::move(payload);  // a resume re-sends it (§12.2)
        pending_.emplace(r->id, r);
        ++conn_->requests_pending;
        encode_request_locked(*r);
        send_locked();
        // A select registration has no thread that will lead (it waits on the
        // select's own context): make sure the background thread polls.
        if (r->on_answer != nullptr) conn_->need_poller_locked();
        return r;
    }

    net_answer wait(net_request& r, deadline_t deadline) override {
        lock_guard g(conn_->mu);
        // Often answered already: the user thread drained its own answer
        // right after sending, or start() failed.
        conn_->await_locked(r, deadline);
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
        r.cx.reset();                         // under conn_->mu: no answer can race with it
        conn_->await_locked(r, no_deadline);  // answered, or lost within the timeout
        return r.result;
    }

    void detach(net_request& r) override {
        lock_guard g(conn_->mu);
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
        lock_guard g(conn_->mu);
        ack_locked(delivery);
    }

    bool has_window() const noexcept override { return window_.load(std::memory_order_relaxed); }
    bool has_credit() const override {
        lock_guard g(conn_->mu);
        return sw_.has_credit();
    }

    credited send_credited(void (*encode)(std::string& out, void* value), void* value) override {
        lock_guard g(conn_->mu);
        conn_->expire_if_silent_locked();
        if (lost_) return credited::lost;
        if (!sw_.has_credit()) return credited::no_credit;
        std::string& buf = sw_.begin_value(channel_);
        try {
            encode(buf, value);
        } catch (...) {
            sw_.drop_value();
            throw;
        }
        // §6.4: a value must fit a VALUE frame to its receiver; one that is
        // too large goes the exact way, which says so.
        if (sw_.value_size() > max_value_) {
            sw_.drop_value();
            return credited::no_credit;
        }
        sw_.end_value();
        if (sw_.should_flush()) {
            flush_batch_locked();
        } else {
            // The batch waits for a CREDIT that nobody's thread may read
            // (this one returns to its user): make sure the socket is polled.
            conn_->need_poller_locked();
        }
        return credited::sent;
    }

    net_answer flush(deadline_t deadline) override {
        lock_guard g(conn_->mu);
        net_request r;
        return flush_locked(r, deadline);
    }

    std::uint64_t unconfirmed() const override {
        lock_guard g(conn_->mu);
        return sw_.unconfirmed();
    }

    /// ACKs are batched (protocol.md §8.4): queued here, they leave in one
    /// frame just ahead of the next frame this link sends (typically the
    /// caller's next request, a few microseconds later) or at the
    /// background thread's next tick (heartbeat/4), whichever comes first.
    /// The home then handles ACK and request in one wake-up instead of two.
    void ack_locked(std::uint64_t delivery) override ZCHAN_REQUIRES(conn_->mu) {
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
        // On an unbuffered channel the value's sender waits for this ACK
        // (the rendezvous, protocol.md §8.3): it leaves now.
        if (acks_.size() >= w::max_acks || capacity_ == 0) flush_acks_locked();
    }

    void give_back_locked(std::uint64_t delivery) override ZCHAN_REQUIRES(conn_->mu) {
        if (lost_) return;
        tx_.clear();
        w::encode_header(tx_, w::header{w::version, w::msg::ret, 0, channel_, delivery});
        send_raw_locked();
        if (!home_stopping_) unconf_.push_back(delivery | return_bit);  // §12.5
    }

private:
    /// flush(): sends the batch and waits in flushers_ (r.id: the number to
    /// be confirmed) for the CREDIT that confirms it.
    net_answer flush_locked(net_request& r, deadline_t deadline) ZCHAN_REQUIRES(conn_->mu) {
        if (sw_.unconfirmed() == 0) return net_answer::ok;
        if (lost_) return net_answer::lost;
        if (!sw_.batch_empty()) flush_batch_locked();
        r.id = sw_.last_number();
        flushers_.push_back(&r);
        ++conn_->requests_pending;
        conn_->await_locked(r, deadline);
        if (r.result == net_answer::none) {
            flushers_.erase(std::find(flushers_.begin(), flushers_.end(), &r));
            --conn_->requests_pending;
        }
        return r.result;
    }

    /// Sends the batch of credited values as one SEND_MANY (§9.1).
    void flush_batch_locked() ZCHAN_REQUIRES(conn_->mu) {
        const std::string& frame = sw_.take_batch();
        flush_acks_locked();
        send_buf_locked(frame);
        conn_->drain_locked();  // the send may have consumed the socket's edge
    }

    /// CREDIT: new credits and confirmations; a waiting batch leaves now.
    void on_credit_locked(const w::frame& f) ZCHAN_REQUIRES(conn_->mu) {
        sw_.on_credit(f.h.id, f.confirmed);
        if (sw_.should_flush()) flush_batch_locked();
        for (auto it = flushers_.begin(); it != flushers_.end();) {
            net_request* r = *it;
            if (r->id > sw_.confirmed()) {
                ++it;
                continue;
            }
            it = flushers_.erase(it);
            --conn_->requests_pending;
            r->result = net_answer::ok;
            if (r->cx.try_select(sel_first_op)) r->cx.unpark();
        }
    }

    /// REVOKE: the channel closed. The batch leaves (its values were sent
    /// before the close), then REVOKED; later sends are offers.
    void on_revoke_locked() ZCHAN_REQUIRES(conn_->mu) {
        if (!sw_.batch_empty()) flush_batch_locked();
        sw_.revoke();
        window_.store(false, std::memory_order_relaxed);
        tx_.clear();
        w::encode_header(tx_, w::header{w::version, w::msg::revoked, 0, channel_, 0});
        send_raw_locked();
    }

    /// A recv on a prefetching link (see the top): served from
    /// pq_, or queued in pwaiters_; never a request of its own.
    void start_prefetched_locked(const std::shared_ptr<net_request>& r, bool try_now)
        ZCHAN_REQUIRES(conn_->mu) {
        if (pq_.head_ready()) {
            (void)hand_over_locked(*r);  // false: a select already decided otherwise
        } else if (pq_.drained()) {
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
        if (pq_.wants_refill(prefetch_)) refill_locked();
        if (r->result == net_answer::none && r->on_answer != nullptr) {
            conn_->need_poller_locked();  // a select waiter: someone must poll for its value
        }
    }

    /// pq_.head_ready(). Gives the head of pq_ to `r`: a plain
    /// recv takes it (true); a select registration takes it if its select
    /// chose it (then ACKed), else the value stays queued (false).
    bool hand_over_locked(net_request& r) ZCHAN_REQUIRES(conn_->mu) {
        prefetch_queue::value& q = pq_.head();
        r.payload.swap(q.payload);
        r.delivery = q.delivery;
        r.result = net_answer::value;
        if (r.on_answer == nullptr) {
            pq_.pop();
            return true;
        }
        if (r.on_answer(r, r.arg)) {
            pq_.pop();
            ack_locked(r.delivery);
            return true;
        }
        q.payload.swap(r.payload);  // not taken: keep it for the next receiver
        r.result = net_answer::none;
        r.orphan = true;  // its select is decided; it waits for nothing more
        return false;
    }

    /// Serves waiting receivers from pq_ (or with CLOSED).
    void serve_waiters_locked() ZCHAN_REQUIRES(conn_->mu) {
        while (!pwaiters_.empty() && (pq_.head_ready() || pq_.drained())) {
            std::shared_ptr<net_request> r = std::move(pwaiters_.front());
            pwaiters_.pop_front();
            if (r->orphan) continue;
            if (!pq_.head_ready()) {  // closed and drained
                r->result = net_answer::closed;
                notify_locked(*r);
                continue;
            }
            if (hand_over_locked(*r) && r->on_answer == nullptr) {
                if (r->cx.try_select(sel_first_op)) r->cx.unpark();
            }
        }
        if (pq_.wants_refill(prefetch_)) refill_locked();
    }

    /// Wakes a plain waiter, or tells a select registration.
    static void notify_locked(net_request& r) {
        if (r.on_answer != nullptr) {
            r.on_answer(r, r.arg);
        } else if (r.cx.try_select(sel_first_op)) {
            r.cx.unpark();
        }
    }

    /// Drops `r` from pwaiters_ (deadline passed, select gone).
    void forget_waiter_locked(const net_request& r) ZCHAN_REQUIRES(conn_->mu) {
        for (auto it = pwaiters_.begin(); it != pwaiters_.end(); ++it) {
            if (it->get() == &r) {
                pwaiters_.erase(it);
                return;
            }
        }
    }

    /// Tops the window up to the grant with one RECV_MANY
    /// (§8.8), queued ACKs first.
    void refill_locked() ZCHAN_REQUIRES(conn_->mu) {
        if (lost_) return;
        const auto ask = pq_.refill(prefetch_, next_id_);
        if (!ask) return;
        tx_.clear();
        w::encode_recv_many(tx_, channel_, ask->first, ask->second);
        send_raw_locked();
        conn_->drain_locked();
    }

    /// A non-value final answer to prefetch request (already
    /// taken off p_ranges_).
    void prefetch_answer_locked(net_answer a) ZCHAN_REQUIRES(conn_->mu) {
        if (a == net_answer::closed) pq_.close();
        // cancelled/error/empty: the slot is simply free again.
        serve_waiters_locked();
    }

    /// VALUES (§8.8): entry i answers request f.h.id + i with
    /// delivery f.delivery_seq + i.
    void dispatch_values_locked(const w::frame& f) ZCHAN_REQUIRES(conn_->mu) {
        w::values_reader entries(f);
        bool queued = false;
        for (std::uint32_t i = 0; i < f.count; ++i) {
            const w::bytes payload = entries.next();
            const std::uint64_t id = f.h.id + i;
            const std::uint64_t delivery = f.delivery_seq + i;
            pq_.saw_delivery(delivery);
            if (!resent_.empty() && second_answer_locked(id, net_answer::value, delivery)) {
                continue;
            }
            if (pq_.take(id)) {
                pq_.queue(
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

    /// CANCEL_SEND / CANCEL_RECV / CANCEL_WATCH for a pending request.
    void cancel_locked(net_request& r) ZCHAN_REQUIRES(conn_->mu) {
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

    /// Encodes request `r` into tx_ (§5.2): the first time it
    /// is sent (start) and again, with its original id and flags, after a
    /// resume (§12.2).
    void encode_request_locked(const net_request& r) ZCHAN_REQUIRES(conn_->mu) {
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

    /// Sends tx_, then drains (the send may have consumed the
    /// ZMQ_FD edge; see the top of the file).
    void send_locked() ZCHAN_REQUIRES(conn_->mu) {
        send_raw_locked();
        conn_->drain_locked();
    }

    /// Sends the queued ACKs, if any (see ack_locked).
    void flush_acks_locked() ZCHAN_REQUIRES(conn_->mu) {
        if (acks_.empty() || lost_) {
            acks_.clear();
            return;
        }
        ack_tx_.clear();
        w::encode_ack(ack_tx_, channel_, acks_);
        unconf_.insert(unconf_.end(), acks_.begin(), acks_.end());  // §12.5
        acks_.clear();
        send_buf_locked(ack_tx_);
    }

    /// Sends tx_ (after the queued ACKs) without draining
    /// (used while dispatching).
    void send_raw_locked() ZCHAN_REQUIRES(conn_->mu) {
        flush_acks_locked();
        if (lost_) return;
        send_buf_locked(tx_);
    }

    /// One frame out on the connection (a failure there loses
    /// every session on it). A lost session sends nothing, but for the ACKs
    /// and RETURNs a stopping home still waits for (home_stopping_locked).
    void send_buf_locked(const std::string& buf) ZCHAN_REQUIRES(conn_->mu) {
        conn_->expire_if_silent_locked();
        if (lost_ && !home_stopping_) return;
        (void)conn_->send_locked(buf);
    }

    /// One frame from the home for this session (protocol.md
    /// §5.2, H->P): on its channel, or the answer to one of its HELLOs.
    void on_frame_locked(const w::frame& f) override ZCHAN_REQUIRES(conn_->mu) {
        if (hello_nonce_ != 0) {  // the dial's HELLO (§7)
            answer_hello_locked(f);
            return;
        }
        if (lost_) return;
        if (f.h.channel == 0) {  // the answer to a HELLO RESUME, routed by its nonce
            welcome_locked(f);
            return;
        }
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
                on_credit_locked(f);
                return;
            case w::msg::revoke:
                on_revoke_locked();
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

    /// ERROR shutting_down: the home waits a bounded time for
    /// our deliveries to be resolved (src/server.cpp shut_down). ACK what
    /// users took, RETURN what is queued for nobody (it must not reach a
    /// user now: the home puts it back into the channel), then the session
    /// is lost (protocol.md §11.3). A VALUE already handed to a user
    /// operation that has not ACKed yet is ACKed when it does (ack_locked).
    void home_stopping_locked() ZCHAN_REQUIRES(conn_->mu) {
        flush_acks_locked();
        // Newest first: each RETURN goes to the head of the channel, so the
        // channel ends up holding them in delivery order.
        // Runs here only, under the mutex (the analysis does not follow lambdas).
        pq_.give_back_all([&](std::uint64_t d)
                              ZCHAN_NO_THREAD_SAFETY_ANALYSIS { give_back_locked(d); });
        home_stopping_ = true;
        lose_locked(lost_why::home_shut_down);
    }

    /// Writes a final answer into its request and wakes it.
    void complete_locked(const w::frame& f, net_answer a) ZCHAN_REQUIRES(conn_->mu) {
        if (a == net_answer::value && prefetch_ != 0) pq_.saw_delivery(f.delivery_seq);
        if (!resent_.empty() && second_answer_locked(f.h.id, a, f.delivery_seq)) return;
        auto it = pending_.find(f.h.id);
        if (it == pending_.end()) {
            if (pq_.take(f.h.id)) {
                if (a == net_answer::value) {
                    pq_.queue(std::string(reinterpret_cast<const char*>(f.payload.data()),
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
        --conn_->requests_pending;
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

    /// The session is lost (protocol.md §11.3): every pending
    /// request fails with `lost`. The first reason is the one reported.
    void lose_locked(lost_why why) ZCHAN_REQUIRES(conn_->mu) {
        if (!lost_.load(std::memory_order_relaxed)) {
            why_.store(why, std::memory_order_relaxed);  // published by lost_'s release
        }
        lost_.store(true, std::memory_order_release);
        auto pending = std::move(pending_);
        pending_.clear();
        conn_->requests_pending -= pending.size();
        std::vector<std::shared_ptr<net_request>> waiting;
        waiting.reserve(pending.size() + pwaiters_.size());
        for (auto& [id, r] : pending) waiting.push_back(std::move(r));
        for (auto& r : pwaiters_) waiting.push_back(std::move(r));
        pwaiters_.clear();
        pq_.forget_outstanding();
        window_.store(false, std::memory_order_relaxed);
        for (net_request* r : flushers_) {
            r->result = net_answer::lost;
            if (r->cx.try_select(sel_first_op)) r->cx.unpark();
        }
        conn_->requests_pending -= flushers_.size();
        flushers_.clear();
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

    /// The connection's tick (heartbeat/4): queued ACKs leave, and a PING
    /// on the session's channel when resolutions wait for their
    /// confirmation (§12.5), so that unconf_ holds at most about a tick's
    /// worth. (Liveness is the connection's, §12.1.)
    void on_tick_locked() override ZCHAN_REQUIRES(conn_->mu) {
        if (lost_ || channel_ == 0) return;
        flush_acks_locked();
        const std::size_t marked = conf_marks_.empty() ? 0 : conf_marks_.back().second;
        if (unconf_.size() > marked) send_ping_locked();
    }

    void on_reset_locked() override ZCHAN_REQUIRES(conn_->mu) { start_resume_locked(); }

    void on_lost_locked(lost_why why) override ZCHAN_REQUIRES(conn_->mu) {
        if (hello_nonce_ != 0) {  // still dialing: handshake() reports it
            hello_nonce_ = 0;
            hs_.result = net_answer::lost;
            if (!refused_) hs_.error_text = lost_text(why, conn_->timeout());
            notify_locked(hs_);
            return;
        }
        resuming_ = false;  // the connection forgets its HELLOs
        lose_locked(why);
    }

    void on_refused_locked(const std::string& why) override ZCHAN_REQUIRES(conn_->mu) {
        if (hello_nonce_ != 0) {
            refused_ = true;
            hs_.error_text = why;
        }
    }

    /// The answer to the dial's HELLO: WELCOME, or ERROR (§7).
    void answer_hello_locked(const w::frame& f) ZCHAN_REQUIRES(conn_->mu) {
        hello_nonce_ = 0;  // the connection forgot it
        if (f.h.type == w::msg::welcome) {
            channel_ = f.welcome.channel;
            capacity_ = f.welcome.capacity;
            prefetch_ = std::min(f.welcome.prefetch, opts_.prefetch);      // §9.2: P' <= P
            sw_.open(std::min(f.welcome.send_window, opts_.send_window));  // §9.1: W' <= W
            window_.store(sw_.enabled(), std::memory_order_relaxed);
            home_instance_ = f.welcome.instance;
            const std::size_t frame = std::min<std::size_t>(opts_.max_frame, f.welcome.max_frame);
            max_value_ = frame - std::min(w::value_prefix_size, frame);
            conn_->set_timing_locked(std::chrono::milliseconds(f.welcome.heartbeat_ms),
                                     std::chrono::milliseconds(f.welcome.timeout_ms));
            conn_->attach_locked(channel_, this);  // its next frame may be in this drain
            hs_.result = net_answer::ok;
        } else if (f.h.type == w::msg::error) {
            hs_.error_code = static_cast<std::uint16_t>(f.error.code);
            hs_.error_text.assign(f.error.text);
            hs_.result = net_answer::error;
        } else {
            ++malformed_;
            return;
        }
        notify_locked(hs_);
    }

    /// PING; its PONG confirms every resolution sent before it.
    void send_ping_locked() ZCHAN_REQUIRES(conn_->mu) {
        tx_.clear();
        w::encode_header(tx_, w::header{w::version, w::msg::ping, 0, channel_, ++ping_nonce_});
        send_raw_locked();  // flushes the queued ACKs first: they are covered too
        if (!unconf_.empty()) conf_marks_.emplace_back(ping_nonce_, unconf_.size());
    }

    /// PONG `nonce` (§12.5): the resolutions sent before its
    /// PING have been processed by the home; forget them.
    void confirm_locked(std::uint64_t nonce) ZCHAN_REQUIRES(conn_->mu) {
        while (!conf_marks_.empty() && conf_marks_.front().first <= nonce) {
            const auto [n, count] = conf_marks_.front();
            conf_marks_.pop_front();
            if (n != nonce) continue;  // an older PING whose PONG was lost: covered by this one
            unconf_.erase(unconf_.begin(), unconf_.begin() + static_cast<std::ptrdiff_t>(count));
            for (auto& m : conf_marks_) m.second -= count;
            return;
        }
    }

    /// The connection broke, or the home does not know the
    /// session on this connection (§12.2): HELLO RESUME. It queues in the
    /// DEALER until the new connection is up. A second one (another reset
    /// before WELCOME) supersedes the first: only its WELCOME counts.
    void start_resume_locked() ZCHAN_REQUIRES(conn_->mu) {
        if (lost_) return;
        if (resuming_) conn_->forget_hello_locked(resume_nonce_);  // superseded
        resuming_ = true;
        resume_nonce_ = conn_->expect_hello_locked(this);
        w::hello_body h;
        h.heartbeat_ms = static_cast<std::uint32_t>(opts_.heartbeat.count());
        h.prefetch = opts_.prefetch;
        h.send_window = opts_.send_window;
        h.instance = instance_;
        h.name = name_;
        h.type_name = type_name_;
        tx_.clear();
        w::encode_hello(tx_, resume_nonce_, w::flag::resume, h);
        send_raw_locked();
    }

    /// WELCOME: the answer to our latest HELLO RESUME, else stale.
    void welcome_locked(const w::frame& f) ZCHAN_REQUIRES(conn_->mu) {
        if (!resuming_ || f.h.id != resume_nonce_) return;
        if (f.h.type != w::msg::welcome) {  // ERROR: the home refuses the resume
            resuming_ = false;
            lose_locked(lost_why::session_forgotten);
            return;
        }
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

    /// After WELCOME RESUME (§12.2): re-sends the unconfirmed
    /// resolutions, then every request without a final answer, in id order
    /// (so one sender's values stay in order), then the outstanding
    /// prefetch ranges; a PING last, to confirm the resolutions.
    void resend_locked() ZCHAN_REQUIRES(conn_->mu) {
        flush_acks_locked();  // queued ones join unconf_
        conf_marks_.clear();  // their PINGs may have died with the connection
        std::vector<std::uint64_t> acks;
        // Runs here only, under conn_->mu (the analysis does not follow lambdas).
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
        // Credited values first: they were sent before any request still
        // pending (start flushes the batch before a request leaves).
        sw_.for_each_inflight([&](const std::string& frame)
                                  ZCHAN_NO_THREAD_SAFETY_ANALYSIS { send_buf_locked(frame); });
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
        // Called by for_each_range under conn_->mu (the analysis does not follow lambdas).
        pq_.for_each_range(
            [&](std::uint64_t first, std::uint64_t count) ZCHAN_NO_THREAD_SAFETY_ANALYSIS {
                for (std::uint64_t i = 0; i < count; ++i) resent_.emplace(first + i, unanswered);
                tx_.clear();
                w::encode_recv_many(tx_, channel_, first, static_cast<std::uint32_t>(count));
                send_buf_locked(tx_);
            });
        send_ping_locked();
    }

    /// Requires conn_->mu, resent_ non-empty. An answer to a re-sent request: the
    /// first one is recorded and handled as usual (false); a second one is
    /// dropped (true), after giving back a VALUE that is not the delivery
    /// the first one brought (the home ran the request again).
    bool second_answer_locked(std::uint64_t id, net_answer a, std::uint64_t delivery)
        ZCHAN_REQUIRES(conn_->mu) {
        auto it = resent_.find(id);
        if (it == resent_.end()) return false;
        if (it->second == unanswered) {
            it->second = a == net_answer::value ? delivery : 0;
            return false;
        }
        if (a == net_answer::value && delivery != it->second) give_back_locked(delivery);
        return true;
    }

    const net_options opts_;
    const std::shared_ptr<peer_connection> conn_;
    /// Why the session was lost (lost_what); written once, before lost_.
    std::atomic<bool> lost_{false};
    std::atomic<lost_why> why_{lost_why::silence};
    std::atomic<std::uint64_t> malformed_{0};  // frames for this session that made no sense

    // Set by handshake() while dialing; read-only afterwards.
    std::string name_;
    std::string type_name_;
    w::instance_id instance_{};       // ours: HELLO RESUME presents it again (§12.2)
    w::instance_id home_instance_{};  // the home's, from WELCOME
    std::uint32_t channel_ = 0;       // set under conn_->mu by the WELCOME (answer_hello_locked)
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
    // Resume (see the top); all guarded by conn_->mu.
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
    // Prefetch window (see the top); all guarded by conn_->mu. prefetch_ is set by
    // the WELCOME while dialing, before any request.
    std::uint32_t prefetch_ = 0;  // granted window P'; 0 = none
    prefetch_queue pq_ ZCHAN_GUARDED_BY(conn_->mu);
    std::deque<std::shared_ptr<net_request>> pwaiters_
        ZCHAN_GUARDED_BY(conn_->mu);  // recvs waiting for pq_, in arrival order
    std::vector<std::uint64_t> acks_
        ZCHAN_GUARDED_BY(conn_->mu);  // deliveries taken, not yet ACKed
    // Send window (see the top).
    send_window sw_ ZCHAN_GUARDED_BY(conn_->mu);
    std::atomic<bool> window_{false};  // sw_.enabled(), read without the lock (has_window)
    std::vector<net_request*> flushers_
        ZCHAN_GUARDED_BY(conn_->mu);  // flush() callers, waiting for a confirmation
};

}  // namespace

std::shared_ptr<net_link> net_link::dial(const std::string& endpoint, const std::string& name,
                                         const std::string& type_name, const net_options& opts) {
    auto link = std::make_shared<peer_session>(peer_connection::get(endpoint, opts), opts);
    link->handshake(name, type_name);
    return link;
}

}  // namespace zchan::detail

// peer_session's receives (the session as a whole: peer_session.hpp): the
// prefetch window, and the resolution of deliveries: batched ACKs, RETURNs.
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
#include <memory>
#include <string>
#include <utility>

#include "codec.hpp"
#include "peer_session.hpp"
#include "prefetch_queue.hpp"
#include "zchan/detail/net_link.hpp"
#include "zchan/detail/thread_annotations.hpp"

namespace zchan::detail {

namespace w = wire;

/// The common case of a recv on a prefetching link, a value already
/// queued, in one lock and without a net_request: with many handles on one
/// connection (one mutex) the three locks and the allocation of
/// start/wait/ack were where their threads queued up.
net_answer peer_session::take_prefetched(std::string& payload) {
    if (prefetch_ == 0) return net_answer::none;  // set before the session is shared
    lock_guard g(conn_->mu);
    conn_->expire_if_silent_locked();  // before anything is handed over (§12.5)
    if (lost_) return net_answer::none;
    if (pq_.drained()) {
        acks_now_locked();
        return net_answer::closed;
    }
    if (!pq_.head_ready()) return net_answer::none;
    prefetch_queue::value& q = pq_.head();
    payload.swap(q.payload);
    const std::uint64_t delivery = q.delivery;
    pq_.pop();
    ack_locked(delivery);
    if (pq_.wants_refill(prefetch_)) refill_locked();
    return net_answer::value;
}

/// A plain recv's value, handed over by whoever drained it
/// (serve_waiters_locked): its receiver ACKs once it has woken. If the
/// stream ended meanwhile, no frame of ours may be due: see acks_now_locked.
void peer_session::ack(std::uint64_t delivery) {
    lock_guard g(conn_->mu);
    ack_locked(delivery);
    if (pq_.drained()) acks_now_locked();
}

/// ACKs are batched (protocol.md §8.4): queued here, they leave in one
/// frame just ahead of the next frame this link sends (typically the
/// caller's next request, a few microseconds later), when the stream ends
/// or, after the home asked for them, the receiver goes to wait
/// (acks_now_locked), or at the background thread's next tick
/// (heartbeat/4), whichever comes first.
/// The home then handles ACK and request in one wake-up instead of two.
void peer_session::ack_locked(std::uint64_t delivery) {
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
    // On an unbuffered channel the value's sender waits for this ACK (the
    // rendezvous, protocol.md §8.3): it leaves now.
    if (acks_.size() >= w::max_acks || capacity_ == 0) flush_acks_locked();
}

void peer_session::give_back_locked(std::uint64_t delivery) {
    if (lost_) return;
    tx_.clear();
    w::encode_header(tx_, w::header{w::version, w::msg::ret, 0, channel_, delivery});
    send_raw_locked();
    if (!home_stopping_) unconf_.push_back(delivery | return_bit);  // §12.5
}

/// A recv on a prefetching link (see the top): served from
/// pq_, or queued in pwaiters_; never a request of its own.
void peer_session::start_prefetched_locked(const std::shared_ptr<net_request>& r, bool try_now) {
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
    if (pq_.wants_refill(prefetch_)) refill_locked();  // the queued ACKs go first
    // The stream ended, or the receiver waits after the home asked for
    // resolutions (the channel closed): see acks_now_locked.
    if (r->result == net_answer::closed || (r->result != net_answer::value && acks_at_wait_)) {
        acks_now_locked();
    }
    if (r->result == net_answer::none && r->on_answer != nullptr) {
        conn_->need_poller_locked();  // a select waiter: someone must poll for its value
    }
}

/// pq_.head_ready(). Gives the head of pq_ to `r`: a plain
/// recv takes it (true); a select registration takes it if its select
/// chose it (then ACKed), else the value stays queued (false).
bool peer_session::hand_over_locked(net_request& r) {
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
void peer_session::serve_waiters_locked() {
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

/// Drops `r` from pwaiters_ (deadline passed, select gone).
void peer_session::forget_waiter_locked(const net_request& r) {
    for (auto it = pwaiters_.begin(); it != pwaiters_.end(); ++it) {
        if (it->get() == &r) {
            pwaiters_.erase(it);
            return;
        }
    }
}

/// Tops the window up to the grant with one RECV_MANY
/// (§8.8), queued ACKs first.
void peer_session::refill_locked() {
    if (lost_) return;
    const auto ask = pq_.refill(prefetch_, next_id_);
    if (!ask) return;
    tx_.clear();
    w::encode_recv_many(tx_, channel_, ask->first, ask->second);
    send_locked();
}

/// A non-value final answer to prefetch request (already
/// taken off p_ranges_).
void peer_session::prefetch_answer_locked(net_answer a) {
    if (a == net_answer::closed) pq_.close();
    // cancelled/error/empty: the slot is simply free again.
    serve_waiters_locked();
    // The stream ended under receivers already waiting (they were answered
    // CLOSED here, not in start_prefetched_locked): see acks_now_locked.
    if (pq_.drained()) acks_now_locked();
}

/// VALUES (§8.8): entry i answers request f.h.id + i with
/// delivery f.delivery_seq + i.
void peer_session::dispatch_values_locked(const w::frame& f) {
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
            pq_.queue(std::string(reinterpret_cast<const char*>(payload.data()), payload.size()),
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

/// The receiver's stream ended, or it goes to wait once the home has asked
/// for resolutions (a PING on this session's channel: the home sends it
/// when the channel closes, protocol.md §10): no frame of ours may be due
/// for a while, and the home keeps the close from its other receivers (a
/// lent value may come back) until these deliveries are resolved. The
/// queued ACKs leave now instead of at the next tick (heartbeat/4). On an
/// open channel a receiver that goes to wait keeps them for its next
/// frame: an ACK frame per wait would cost a request-reply pair (the
/// message server) a frame and a wake-up of the home each way.
void peer_session::acks_now_locked() {
    if (acks_.empty()) return;
    conn_->defer_kick_locked();
    flush_acks_locked();
    conn_->drain_locked();
}

/// Sends the queued ACKs, if any (see ack_locked).
void peer_session::flush_acks_locked() {
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

/// ERROR shutting_down: the home waits a bounded time for
/// our deliveries to be resolved (src/server.cpp shut_down). ACK what
/// users took, RETURN what is queued for nobody (it must not reach a
/// user now: the home puts it back into the channel), then the session
/// is lost (protocol.md §11.3). A VALUE already handed to a user
/// operation that has not ACKed yet is ACKed when it does (ack_locked).
void peer_session::home_stopping_locked() {
    flush_acks_locked();
    // Newest first: each RETURN goes to the head of the channel, so the
    // channel ends up holding them in delivery order.
    // Runs here only, under the mutex (the analysis does not follow lambdas).
    pq_.give_back_all([&](std::uint64_t d)
                          ZCHAN_NO_THREAD_SAFETY_ANALYSIS { give_back_locked(d); });
    home_stopping_ = true;
    lose_locked(lost_why::home_shut_down);
}

}  // namespace zchan::detail

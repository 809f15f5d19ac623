// peer_session's resume and confirmations (the session as a whole:
// peer_session.hpp).
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
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "codec.hpp"
#include "peer_session.hpp"
#include "zchan/detail/net_link.hpp"
#include "zchan/detail/thread_annotations.hpp"

namespace zchan::detail {

namespace w = wire;

/// The connection's tick (heartbeat/4): queued ACKs leave, and a PING
/// on the session's channel when resolutions wait for their
/// confirmation (§12.5), so that unconf_ holds at most about a tick's
/// worth. (Liveness is the connection's, §12.1.)
void peer_session::on_tick_locked() {
    if (lost_ || channel_ == 0) return;
    flush_acks_locked();
    const std::size_t marked = conf_marks_.empty() ? 0 : conf_marks_.back().second;
    if (unconf_.size() > marked) send_ping_locked();
}

/// PING; its PONG confirms every resolution sent before it.
void peer_session::send_ping_locked() {
    tx_.clear();
    w::encode_header(tx_, w::header{w::version, w::msg::ping, 0, channel_, ++ping_nonce_});
    send_raw_locked();  // flushes the queued ACKs first: they are covered too
    if (!unconf_.empty()) conf_marks_.emplace_back(ping_nonce_, unconf_.size());
}

/// The HELLO body of this session: the same for its first HELLO and for
/// every HELLO RESUME (§7.2, §12.2).
wire::hello_body peer_session::hello_locked() const {
    wire::hello_body h;
    h.heartbeat_ms = static_cast<std::uint32_t>(opts_.heartbeat.count());
    h.prefetch = opts_.prefetch;
    h.send_window = opts_.send_window;
    h.instance = instance_;
    h.name = name_;
    h.type_name = type_name_;
    return h;
}

/// PONG `nonce` (§12.5): the resolutions sent before its
/// PING have been processed by the home; forget them.
void peer_session::confirm_locked(std::uint64_t nonce) {
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
void peer_session::start_resume_locked() {
    if (lost_) return;
    if (resuming_) conn_->forget_hello_locked(resume_nonce_);  // superseded
    resuming_ = true;
    resume_nonce_ = conn_->expect_hello_locked(this);
    w::hello_body h = hello_locked();
    tx_.clear();
    w::encode_hello(tx_, resume_nonce_, w::flag::resume, h);
    send_raw_locked();
}

/// WELCOME: the answer to our latest HELLO RESUME, else stale.
void peer_session::welcome_locked(const w::frame& f) {
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
void peer_session::resend_locked() {
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
            w::encode_header(tx_, w::header{w::version, *cancel_type(r->op), 0, channel_, r->id});
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
bool peer_session::second_answer_locked(std::uint64_t id, net_answer a, std::uint64_t delivery) {
    auto it = resent_.find(id);
    if (it == resent_.end()) return false;
    if (it->second == unanswered) {
        it->second = a == net_answer::value ? delivery : 0;
        return false;
    }
    if (a == net_answer::value && delivery != it->second) give_back_locked(delivery);
    return true;
}

}  // namespace zchan::detail

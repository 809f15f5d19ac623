// peer_session's request table (the session as a whole: peer_session.hpp): a
// user operation's request from start() to its final answer (complete_locked)
// or its CANCEL_* (protocol.md §8.5), and the helpers every frame out goes
// through.
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "codec.hpp"
#include "peer_session.hpp"
#include "zchan/detail/net_link.hpp"
#include "zchan/errors.hpp"

namespace zchan::detail {

namespace w = wire;

std::shared_ptr<net_request> peer_session::start(net_op op, bool try_now, std::string payload,
                                                 void (*configure)(net_request&, void*),
                                                 void* configure_arg) {
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

net_answer peer_session::wait(net_request& r, deadline_t deadline) {
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

void peer_session::detach(net_request& r) {
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

/// Wakes a plain waiter, or tells a select registration.
void peer_session::notify_locked(net_request& r) {
    if (r.on_answer != nullptr) {
        r.on_answer(r, r.arg);
    } else if (r.cx.try_select(sel_first_op)) {
        r.cx.unpark();
    }
}

/// CANCEL_SEND / CANCEL_RECV / CANCEL_WATCH for a pending request.
void peer_session::cancel_locked(net_request& r) {
    if (lost_ || pending_.count(r.id) == 0) return;
    const auto m = cancel_type(r.op);
    if (!m) return;
    r.cancel_sent = true;  // a resume re-sends the cancel too (§12.2)
    tx_.clear();
    w::encode_header(tx_, w::header{w::version, *m, 0, channel_, r.id});
    send_locked();
}

/// The CANCEL_* that withdraws a request of kind `op` (§8.5); none for
/// CLOSE, QUERY and POLL, which cannot be cancelled.
std::optional<w::msg> peer_session::cancel_type(net_op op) noexcept {
    switch (op) {
        case net_op::send:
            return w::msg::cancel_send;
        case net_op::recv:
            return w::msg::cancel_recv;
        case net_op::watch:
            return w::msg::cancel_watch;
        case net_op::close:
        case net_op::query:
        case net_op::poll:
            return std::nullopt;
    }
    return std::nullopt;
}

/// Encodes request `r` into tx_ (§5.2): the first time it
/// is sent (start) and again, with its original id and flags, after a
/// resume (§12.2).
void peer_session::encode_request_locked(const net_request& r) {
    const std::uint16_t flags = r.try_now ? w::flag::try_now : 0;
    tx_.clear();
    switch (r.op) {
        case net_op::send:
            w::begin_send(tx_, channel_, r.id, flags);
            tx_.append(r.payload);
            break;
        case net_op::recv:
            w::encode_wait_request(tx_, w::msg::recv, channel_, r.id, flags, r.select_tag);
            break;
        case net_op::close:
            w::encode_header(tx_, w::header{w::version, w::msg::close, 0, channel_, r.id});
            break;
        case net_op::query:
            w::encode_header(tx_, w::header{w::version, w::msg::query, 0, channel_, r.id});
            break;
        case net_op::watch:  // protocol.md §8.6
            w::encode_wait_request(tx_, w::msg::watch_send, channel_, r.id, 0, r.select_tag);
            break;
        case net_op::poll:  // protocol.md §8.9: the body was encoded by start_poll
            w::encode_header(tx_, w::header{w::version, w::msg::poll, 0, channel_, r.id});
            tx_.append(r.payload);
            break;
    }
}

/// Sends tx_, then drains (the send may have consumed the
/// ZMQ_FD edge; see Edges in peer_connection.hpp).
void peer_session::send_locked() {
    conn_->defer_kick_locked();
    send_raw_locked();
    conn_->drain_locked();
}

/// Sends tx_ (after the queued ACKs) without draining
/// (used while dispatching).
void peer_session::send_raw_locked() {
    flush_acks_locked();
    if (lost_) return;
    send_buf_locked(tx_);
}

/// One frame out on the connection (a failure there loses
/// every session on it). A lost session sends nothing, but for the ACKs
/// and RETURNs a stopping home still waits for (home_stopping_locked).
void peer_session::send_buf_locked(const std::string& buf) {
    conn_->expire_if_silent_locked();
    if (lost_ && !home_stopping_) return;
    (void)conn_->send_locked(buf);
}

/// Writes a final answer into its request and wakes it.
void peer_session::complete_locked(const w::frame& f, net_answer a) {
    if (a == net_answer::value && prefetch_ != 0) pq_.saw_delivery(f.delivery_seq);
    if (!resent_.empty() && second_answer_locked(f.h.id, a, f.delivery_seq)) return;
    auto it = pending_.find(f.h.id);
    if (it == pending_.end()) {
        if (pq_.take(f.h.id)) {
            if (a == net_answer::value) {
                pq_.queue(
                    std::string(reinterpret_cast<const char*>(f.payload.data()), f.payload.size()),
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

}  // namespace zchan::detail

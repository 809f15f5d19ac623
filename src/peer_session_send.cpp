// peer_session's send window (the session as a whole: peer_session.hpp); a
// send without a credit is an offer, a SEND request (peer_session_requests.cpp).
//
// Send window (protocol.md §9.1, opt-in: net_options::send_window, granted
// in WELCOME). A send that finds a credit appends its value to sw_'s batch
// (src/send_window.hpp) and returns; batches leave as SEND_MANY frames and
// stay in sw_ until the home's CREDIT confirms them (a resume re-sends them
// first, before any request, so one sender's values keep their order). Any
// request flushes the batch before it leaves, for the same reason. flush()
// waits in flushers_ for the confirmation of the last value sent; REVOKE (the
// channel closed) ends the window: the batch leaves, then REVOKED.
#include <algorithm>
#include <string>

#include "codec.hpp"
#include "peer_session.hpp"
#include "send_window.hpp"
#include "zchan/detail/net_link.hpp"

namespace zchan::detail {

namespace w = wire;

bool peer_session::has_credit() const {
    lock_guard g(conn_->mu);
    return sw_.has_credit();
}

net_link::credited peer_session::send_credited(void (*encode)(std::string& out, void* value),
                                               void* value) {
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

net_answer peer_session::flush(deadline_t deadline) {
    lock_guard g(conn_->mu);
    net_request r;
    return flush_locked(r, deadline);
}

std::uint64_t peer_session::unconfirmed() const {
    lock_guard g(conn_->mu);
    return sw_.unconfirmed();
}

/// flush(): sends the batch and waits in flushers_ (r.id: the number to
/// be confirmed) for the CREDIT that confirms it.
net_answer peer_session::flush_locked(net_request& r, deadline_t deadline) {
    if (sw_.unconfirmed() == 0) return net_answer::ok;
    if (lost_) return net_answer::lost;
    if (!sw_.batch_empty()) {
        flush_batch_locked();
        // Sending drains the socket (flush_batch_locked): the confirmation
        // may have been read and dispatched right there, before this
        // flusher was listed to be woken by it.
        if (sw_.unconfirmed() == 0) return net_answer::ok;
        if (lost_) return net_answer::lost;
    }
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
void peer_session::flush_batch_locked() {
    const std::string& frame = sw_.take_batch();
    conn_->defer_kick_locked();
    flush_acks_locked();
    send_buf_locked(frame);
    conn_->drain_locked();  // the send may have consumed the socket's edge
}

/// CREDIT: new credits and confirmations; a waiting batch leaves now.
void peer_session::on_credit_locked(const w::frame& f) {
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
void peer_session::on_revoke_locked() {
    if (!sw_.batch_empty()) flush_batch_locked();
    sw_.revoke();
    window_.store(false, std::memory_order_relaxed);
    tx_.clear();
    w::encode_header(tx_, w::header{w::version, w::msg::revoked, 0, channel_, 0});
    send_raw_locked();
}

}  // namespace zchan::detail

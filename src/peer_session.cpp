// peer_session's life (the session as a whole: peer_session.hpp): the dial's
// HELLO and its answer (protocol.md §7), every frame from the home and where it
// goes (§5.2, H->P), loss (§11.3), and the BYE of a destroyed handle.
#include "peer_session.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "codec.hpp"
#include "net_context.hpp"
#include "peer_connection.hpp"
#include "zchan/detail/net_link.hpp"
#include "zchan/errors.hpp"

namespace zchan::detail {

using steady = std::chrono::steady_clock;
namespace w = wire;

peer_session::~peer_session() {
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

void peer_session::handshake(const std::string& name, const std::string& type_name) {
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
    w::hello_body h = hello_locked();
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

std::string peer_session::lost_what() const {
    // transport_error appends ": peer lost" (the code's message).
    if (!lost()) return "zchan";
    return lost_text(why_.load(std::memory_order_relaxed), conn_->timeout());
}

std::string peer_session::lost_text(lost_why why, std::chrono::milliseconds timeout) {
    const std::string ms = std::to_string(timeout.count()) + " ms";
    switch (why) {
        case lost_why::silence:
            return "zchan: nothing heard from the home within the heartbeat timeout (" + ms + ")";
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

/// One frame from the home for this session (protocol.md
/// §5.2, H->P): on its channel, or the answer to one of its HELLOs.
void peer_session::on_frame_locked(const w::frame& f) {
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
            // On a session's channel the home asks for this session's
            // resolutions (the channel closed, protocol.md §10): they leave
            // ahead of the PONG, and from now on whenever a receiver waits.
            acks_at_wait_ = true;
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

/// The session is lost (protocol.md §11.3): every pending
/// request fails with `lost`. The first reason is the one reported.
void peer_session::lose_locked(lost_why why) {
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

void peer_session::on_lost_locked(lost_why why) {
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

void peer_session::on_refused_locked(const std::string& why) {
    if (hello_nonce_ != 0) {
        refused_ = true;
        hs_.error_text = why;
    }
}

/// The answer to the dial's HELLO: WELCOME, or ERROR (§7).
void peer_session::answer_hello_locked(const w::frame& f) {
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

std::shared_ptr<net_link> net_link::dial(const std::string& endpoint, const std::string& name,
                                         const std::string& type_name, const net_options& opts) {
    auto link = std::make_shared<peer_session>(peer_connection::get(endpoint, opts), opts);
    link->handshake(name, type_name);
    return link;
}

}  // namespace zchan::detail

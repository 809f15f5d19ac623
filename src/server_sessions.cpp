// server::impl, sessions and connections (docs/protocol.md §7, §12, §17.1):
// the handshake (HELLO, WELCOME), resume, per-connection liveness and PINGs,
// the end of a session, and a hub's channels made on demand and swept when
// idle.
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
// Server thread only (server_impl.hpp); served_mu_ is taken where served_,
// factory_ and sweeper_ are read.
#include <algorithm>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "server_impl.hpp"
#include "zchan/detail/thread_annotations.hpp"
#include "zchan/net.hpp"

namespace zchan {
namespace {

/// Largest prefetch window granted (protocol.md §9.2): bounds the values one
/// session holds out of a channel.
constexpr std::uint32_t max_prefetch = 65536;

}  // namespace

void server::impl::on_hello(const std::string& rid, const w::frame& f) {
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
               refusal.empty() ? "no channel \"" + name + "\" is served at " + endpoint_ : refusal);
        return;
    }
    ch->adopt_type(f.hello.type_name);           // a hub channel nobody has dialed yet (§17.1)
    if (f.hello.type_name != ch->type_name()) {  // protocol.md §7.2 step 4
        ++counters_[ch].errors;
        refuse(w::error_code::type_mismatch, "channel \"" + name + "\" carries " + ch->type_name() +
                                                 ", not " + std::string(f.hello.type_name));
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
void server::impl::drop(std::uint32_t sid) {
    auto it = sessions_.find(sid);
    if (it == sessions_.end()) return;
    detail::served_base* ch = it->second.ch;
    // "$stat": deliveries given back at the session's end count as returned (§17.2).
    if (it->second.stats != nullptr) it->second.stats->returned += ch->unresolved(sid);
    leave_connection(it->second);
    sessions_.erase(it);
    ch->drop_session(sid);
    if (!stopping_) ch->settle(*this);  // §10: its deliveries are back in the channel
    // Published last: once sessions() no longer counts it, its reserved
    // slots are free and its deliveries back (a test that waited for the
    // count and then filled the channel found the window still reserved).
    session_count_.store(sessions_.size());
}

void server::impl::housekeeping() {
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
void server::impl::sweep_idle() {
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
void server::impl::move_to(session_info& s, const std::string& rid) {
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

void server::impl::leave_connection(session_info& s) {
    if (s.conn == nullptr) return;
    if (--s.conn->sessions == 0) conns_.erase(s.routing_id);
    s.conn = nullptr;
}

}  // namespace zchan

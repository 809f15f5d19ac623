// server::impl, frames in (docs/protocol.md §4-§6, §8-§12): recv_one() takes
// one message off the ROUTER and handle() decodes it (codec.hpp) and runs it
// on its session's channel; a HELLO goes to on_hello (server_sessions.cpp).
// A frame that does not decode, or that names no session of the connection it
// came on, is counted, logged (rate-limited) and dropped (§11.1); the latter
// is also answered ERROR unknown_session, on which the peer resumes (§12.2).
// Roles and RETURNs are counted here for "$stat" (§17.2).
//
// Server thread only (server_impl.hpp).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include <zmq.hpp>

#include "server_impl.hpp"
#include "zchan/net.hpp"
#include "zmq_eintr.hpp"

namespace zchan {

bool server::impl::recv_one() {
    zmq::message_t id;
    zmq::message_t body;
    try {
        if (!detail::recv_eintr(router_, id, zmq::recv_flags::dontwait)) return false;
        if (!id.more()) {
            count_malformed("empty message");
            return true;
        }
        (void)detail::recv_eintr(router_, body);  // the rest of a multipart message is already here
        if (body.more()) {
            zmq::message_t rest;
            do {
                (void)detail::recv_eintr(router_, rest);
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

void server::impl::count_malformed(const char* why) {
    const auto n = ++malformed_;
    // protocol.md §11.1: counted, logged (rate-limited), dropped.
    if (n <= 10 || n % 1000 == 0) {
        std::fprintf(stderr, "zchan: server %s: rejected frame #%llu: %s\n", endpoint_.c_str(),
                     static_cast<unsigned long long>(n), why);
    }
}

void server::impl::handle(const std::string& rid, const zmq::message_t& body) {
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
                for (std::size_t i = 0; i < 4; ++i) entry_[i] = static_cast<char>(len >> (8 * i));
                entry_.append(reinterpret_cast<const char*>(f.payload.data()), f.payload.size());
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
            ch.on_watch_send(*this, sid, f.h.id, f.select_tag);
            return;
        case w::msg::cancel_watch:
            ch.on_cancel_watch(*this, sid, f.h.id);
            return;
        case w::msg::recv:
            s.recvs = true;
            ch.on_recv(*this, sid, f.h.id, (f.h.flags & w::flag::try_now) != 0, f.select_tag);
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
                reply_error(sid, f.h.id, w::error_code::already_closed, "close of closed channel");
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
        case w::msg::poll:  // §8.9
            reply(sid, none_ready(rid, f) ? w::msg::empty : w::msg::ready, f.h.id);
            return;
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
void server::impl::credited(std::uint32_t sid, session_info& s, std::uint64_t first,
                            std::uint32_t count, std::string_view entries) {
    const std::uint32_t in =
        s.ch->on_credited(*this, sid, first, count,
                          reinterpret_cast<const unsigned char*>(entries.data()), entries.size());
    if (s.stats != nullptr) s.stats->values_in += in;
}

}  // namespace zchan

// server::impl, frames out (docs/protocol.md §4, §8, §9.1, §11.2): the
// reply_sink the served channels answer through, and the routing of a frame
// to its session's connection. A frame the ROUTER cannot route (the peer's
// connection is gone: ROUTER_MANDATORY) is lost, not an error: its session
// waits for the peer's resume (server_sessions.cpp, §12.2).
//
// Server thread only (server_impl.hpp).
#include <cstdint>
#include <string>
#include <string_view>

#include <zmq.hpp>

#include "server_impl.hpp"
#include "zchan/net.hpp"
#include "zmq_eintr.hpp"

namespace zchan {

void server::impl::reply(std::uint32_t session, w::msg type, std::uint64_t id) {
    if (type == w::msg::send_ok) bump(session, &counters::values_in);
    tx_.clear();
    w::encode_header(tx_, w::header{w::version, type, 0, session, id});
    send_to(session);
}

void server::impl::reply_value(std::uint32_t session, std::uint64_t request, std::uint64_t delivery,
                               const std::string& payload) {
    bump(session, &counters::values_out);
    tx_.clear();
    w::begin_value(tx_, session, request, delivery);
    tx_.append(payload);
    send_to(session);
}

void server::impl::reply_error(std::uint32_t session, std::uint64_t ref, w::error_code code,
                               std::string_view text) {
    bump(session, &counters::errors);
    tx_.clear();
    w::encode_error(tx_, session, ref, code, text);
    send_to(session);
}

std::string& server::impl::values_begin(std::uint32_t session, std::uint64_t first_request,
                                        std::uint64_t first_delivery) {
    vtx_.clear();
    values_session_ = session;
    w::begin_values(vtx_, session, first_request, first_delivery);
    return vtx_;
}

void server::impl::reply_credit(std::uint32_t session, std::uint64_t granted,
                                std::uint64_t confirmed) {
    tx_.clear();
    w::encode_credit(tx_, session, granted, confirmed);
    send_to(session);
}

void server::impl::values_end(std::uint32_t count) {
    bump(values_session_, &counters::values_out, count);
    w::finish_values(vtx_, 0, count);
    send_to(values_session_, vtx_);
}

void server::impl::send_to(std::uint32_t sid) { send_to(sid, tx_); }

void server::impl::send_to(std::uint32_t sid, const std::string& frame) {
    auto it = sessions_.find(sid);
    if (it == sessions_.end()) return;
    if (!send_raw(it->second.routing_id, frame)) {
        unroutable_.push_back(sid);  // only dropped while shutting down (shut_down)
        return;
    }
    it->second.conn->last_tx = now_;
}

bool server::impl::send_raw(const std::string& rid) { return send_raw(rid, tx_); }

bool server::impl::send_raw(const std::string& rid, const std::string& frame) {
    try {
        if (!detail::send_eintr(router_, zmq::buffer(rid),
                                zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
            return false;
        }
        return detail::send_eintr(router_, zmq::buffer(frame), zmq::send_flags::dontwait)
            .has_value();
    } catch (const zmq::error_t&) {
        return false;  // EHOSTUNREACH (ROUTER_MANDATORY): the peer is gone
    }
}

}  // namespace zchan

// Socket calls that a signal cannot fail: every zmq send, recv, bind and
// connect in zchan goes through these (peer_connection.cpp, server.cpp,
// server_dispatch.cpp, server_replies.cpp, zap.cpp, zmq_monitor.hpp).
//
// libzmq fails a send, recv, bind or connect with EINTR when a signal is
// pending while it polls its command mailbox, which it does first, with a
// zero timeout, even for ZMQ_DONTWAIT: Linux poll(2) checks for pending
// signals before it honours a zero timeout. cppzmq throws zmq::error_t for
// it. Nothing was sent, received, bound or connected then (the mailbox is
// polled before anything else is touched), so the call is simply made again. Taken for a failure,
// it made a dialed connection lose itself and the home drop a peer in any process that receives
// signals (timers, SIGCHLD, profilers): NetIntegrationTcp.SignalsWhileValuesFlowAreNotAnError.
//
// zmq_poll's EINTR is not handled here: its callers loop anyway and
// recompute their deadline.
//
// Thread safety: as the socket's (one thread at a time).
#pragma once

#include <cerrno>

#include <zmq.hpp>

namespace zchan::detail {

/// Calls `op` again while it fails with EINTR; any other error propagates.
template <class Op>
auto retry_eintr(Op&& op) -> decltype(op()) {
    for (;;) {
        try {
            return op();
        } catch (const zmq::error_t& e) {
            if (e.num() != EINTR) throw;
        }
    }
}

inline zmq::recv_result_t recv_eintr(zmq::socket_t& s, zmq::message_t& m,
                                     zmq::recv_flags flags = zmq::recv_flags::none) {
    return retry_eintr([&] { return s.recv(m, flags); });
}

inline zmq::send_result_t send_eintr(zmq::socket_t& s, zmq::const_buffer buf,
                                     zmq::send_flags flags = zmq::send_flags::none) {
    return retry_eintr([&] { return s.send(buf, flags); });
}

}  // namespace zchan::detail

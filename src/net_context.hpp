// The process-wide ZeroMQ context shared by every zchan server and dialed
// channel (private). One context means inproc:// endpoints work between a
// server and a dialer in the same process, and one set of libzmq I/O threads.
//
// Lifetime: created on first use and intentionally never destroyed:
// zmq_ctx_term blocks until every socket is closed, and running it from a
// static destructor at exit could hang on a socket some other static still
// owns. The OS reclaims it at exit.
//
// Thread safety: a ZeroMQ context is thread-safe.
#pragma once

#include <array>
#include <cstdint>

#include <zmq.hpp>

namespace zchan::detail {

zmq::context_t& net_context();

/// 16 random bytes, never all zero (protocol.md §2 instance id).
std::array<std::uint8_t, 16> random_instance_id();

}  // namespace zchan::detail

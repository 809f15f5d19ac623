// The process-wide ZeroMQ context shared by every zchan server and dialed
// channel (private). One context means inproc:// endpoints work between a
// server and a dialer in the same process, and one set of libzmq I/O threads.
//
// Lifetime: created on first use and never destroyed as an object. At exit
// (atexit, registered on first use) the context is terminated so that each
// closed socket's linger applies: a reply queued just before the process
// returns from main (a SEND_OK, an ACK, a BYE) still leaves. zmq_ctx_term
// blocks until every socket is closed, so it runs on a helper thread and
// exit waits for it at most exit_flush_timeout: a socket some object still
// owns at exit (a leaked server or handle) delays exit by that much, never
// hangs it.
//
// Thread safety: a ZeroMQ context is thread-safe.
#pragma once

#include <array>
#include <cstdint>

#include <zmq.hpp>

namespace zchan::detail {

zmq::context_t& net_context();

/// How long exit waits for queued frames to leave (see above); longer than
/// the longest linger zchan sets on its sockets.
inline constexpr int exit_flush_timeout_ms = 1500;

/// 16 random bytes, never all zero (protocol.md §2 instance id).
std::array<std::uint8_t, 16> random_instance_id();

}  // namespace zchan::detail

// The wire's message types, flag bits and ERROR codes (docs/protocol.md §4,
// §5.2, §11.2): the single source of these numbers. The codec (src/codec.hpp)
// encodes and validates frames with them; served_chan<T>, a template that
// must live in a header, names its answers with them.
//
// Thread safety: constants only.
#pragma once

#include <cstdint>

namespace zchan::detail::wire {

/// Message types (protocol.md §5.2).
enum class msg : std::uint8_t {
    hello = 0x01,
    welcome = 0x02,
    error = 0x03,
    send = 0x10,
    cancel_send = 0x11,
    send_ok = 0x12,
    send_closed = 0x13,
    send_full = 0x14,
    send_cancelled = 0x15,
    credit = 0x16,
    watch_send = 0x17,       // §8.6
    cancel_watch = 0x18,     // §8.6
    ready = 0x19,            // §8.6
    watch_cancelled = 0x1a,  // §8.6
    send_many = 0x1b,        // §9.1: credited values, batched
    revoke = 0x1c,           // §9.1: the channel closed, credits end
    revoked = 0x1d,          // §9.1: the peer's answer to REVOKE
    recv = 0x20,
    cancel_recv = 0x21,
    ack = 0x22,
    ret = 0x23,        // RETURN
    recv_many = 0x24,  // §8.8
    recv_cancelled = 0x25,
    value = 0x26,
    closed = 0x27,
    empty = 0x28,
    values = 0x29,  // §8.8
    close = 0x30,
    query = 0x31,
    close_ok = 0x32,
    status = 0x33,
    poll = 0x34,  // §8.9: a select's cases polled at one instant
    ping = 0x40,
    pong = 0x41,
    bye = 0x42,
};

/// Flag bits (protocol.md §4).
namespace flag {
inline constexpr std::uint16_t try_now = 1u << 0;   // TRY
inline constexpr std::uint16_t resume = 1u << 1;    // RESUME
inline constexpr std::uint16_t credited = 1u << 2;  // CREDITED
inline constexpr std::uint16_t create = 1u << 3;    // CREATE (HELLO, §17.1)
inline constexpr std::uint16_t select = 1u << 4;    // SELECT (RECV, WATCH_SEND, §8.6.1)
}  // namespace flag

/// A POLL case's operation (protocol.md §8.9).
enum class poll_op : std::uint8_t { recv = 1, send = 2 };

/// ERROR frame codes (protocol.md §11.2).
enum class error_code : std::uint16_t {
    protocol_error = 1,
    unsupported_version = 2,
    unknown_channel = 3,
    type_mismatch = 4,
    decode_error = 5,
    message_too_large = 6,
    already_closed = 7,
    access_denied = 8,
    unknown_session = 9,
    shutting_down = 10,
};

}  // namespace zchan::detail::wire

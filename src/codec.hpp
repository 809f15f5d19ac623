// ZCHAN/1 frame codec (private): encodes and strictly validates every message
// of docs/protocol.md §4-§6. Value payloads are not decoded here (they are
// typed; see zchan/serialize.hpp): a decoded frame points at its payload bytes.
//
// Invariants:
//   * decode() never throws and never allocates: a decoded frame is a view of
//     the input bytes (string_views and spans into them), valid as long as
//     those bytes are. That is what lets an I/O thread decode hostile input
//     without any length on the wire reaching an allocator.
//   * decode() accepts exactly the frames encode_*() produce (round trip), and
//     rejects everything else with a specific codec_errc (protocol.md §6).
//   * encode_*() append to a std::string and may throw only std::bad_alloc.
//
// Thread safety: free functions over caller-owned data; safe from any thread.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

#include "zchan/detail/wire_types.hpp"
#include "zchan/errors.hpp"

namespace zchan::detail::wire {

/// Protocol version implemented here (protocol.md §7.1).
inline constexpr std::uint8_t version = 1;
inline constexpr std::size_t header_size = 16;               // §4
inline constexpr std::size_t hello_fixed_size = 56;          // §5.2, before name and type
inline constexpr std::size_t welcome_size = 64;              // §5.2
inline constexpr std::size_t value_prefix_size = 24;         // header + delivery seq
inline constexpr std::size_t status_size = 40;               // header + 24
inline constexpr std::size_t max_name = 255;                 // §6.4
inline constexpr std::size_t max_type_name = 1024;           // §6.4
inline constexpr std::size_t max_error_text = 1024;          // §6.4
inline constexpr std::size_t max_acks = 1024;                // §6.4
inline constexpr std::size_t max_batch = 65536;              // §6.4: RECV_MANY count, VALUES count
inline constexpr std::size_t recv_many_size = 24;            // header + count + reserved
inline constexpr std::size_t values_prefix_size = 32;        // header + delivery + count + reserved
inline constexpr std::size_t send_many_prefix_size = 24;     // header + count + reserved (§9.1)
inline constexpr std::size_t credit_size = 24;               // header + confirmed (§9.1)
inline constexpr std::size_t select_request_size = 24;       // header + select tag (§8.6.1)
inline constexpr std::size_t poll_prefix_size = 24;          // header + count + reserved (§8.9)
inline constexpr std::size_t poll_case_size = 8;             // channel + op + reserved (§8.9)
inline constexpr std::size_t max_poll_cases = 1024;          // §6.4
inline constexpr std::size_t default_max_frame = 64u << 20;  // §6.4

[[nodiscard]] const char* to_string(msg m) noexcept;

/// Which side decodes: the home accepts peer->home types, the peer the
/// reverse; both accept PING and PONG (protocol.md §6.1 rule 3).
enum class side : std::uint8_t { home, peer };

/// Why decode() rejected a frame. Category "zchan.codec"; to_errc() maps
/// each to the public zchan::errc.
enum class codec_errc {
    truncated = 1,      ///< shorter than the header or than the type's fixed body
    too_large,          ///< longer than the configured maximum frame
    bad_version,        ///< header version is not 1 (non-HELLO), or != max-version (HELLO)
    unknown_type,       ///< type byte not in §5.2
    wrong_direction,    ///< a type this side never receives
    bad_flags,          ///< a flag bit not defined for the type
    bad_length,         ///< body length differs from the computed length
    bad_reserved,       ///< a reserved field is not zero
    bad_channel,        ///< channel must be 0 (HELLO, WELCOME) or non-zero (others)
    zero_id,            ///< an id that must be >= 1 is 0 (or BYE's id is not 0)
    bad_name,           ///< channel name empty or longer than 255
    bad_type_name,      ///< type identity empty or longer than 1024
    bad_version_range,  ///< HELLO min-version 0 or > max-version
    zero_instance,      ///< HELLO/WELCOME instance id all zero
    bad_ack,            ///< ACK count 0 or > 1024, or a zero delivery seq
    bad_text,           ///< ERROR text longer than 1024
    bad_error_code,     ///< ERROR code not in §11.2
    bad_status,         ///< STATUS closed flag not 0/1
    bad_welcome,        ///< WELCOME channel 0 or timeout <= interval
    bad_batch,          ///< RECV_MANY/VALUES count 0 or > 65536, ids overflow, entries malformed
    bad_poll,           ///< POLL count 0 or > 1024, a case's channel 0 or op unknown
};

[[nodiscard]] const std::error_category& codec_category() noexcept;
[[nodiscard]] inline std::error_code make_error_code(codec_errc e) noexcept {
    return {static_cast<int>(e), codec_category()};
}
/// The public code a codec error is reported as (protocol_error, or
/// message_too_large for too_large).
[[nodiscard]] zchan::errc to_errc(codec_errc e) noexcept;

using instance_id = std::array<std::uint8_t, 16>;
using bytes = std::span<const unsigned char>;

struct header {
    std::uint8_t version = wire::version;
    msg type = msg::ping;
    std::uint16_t flags = 0;
    std::uint32_t channel = 0;
    std::uint64_t id = 0;
};

struct hello_body {
    std::uint8_t min_version = wire::version;
    std::uint8_t max_version = wire::version;
    std::uint32_t prefetch = 0;
    std::uint32_t send_window = 0;
    std::uint32_t heartbeat_ms = 0;
    /// With flag::create: the capacity to create the channel with (§17.1);
    /// the field is reserved (0) otherwise.
    std::uint32_t create_capacity = 0;
    instance_id instance{};
    std::string_view name;
    std::string_view type_name;
};

struct welcome_body {
    std::uint32_t channel = 0;  ///< the new channel id (the header's channel is 0)
    std::uint32_t heartbeat_ms = 1000;
    std::uint64_t capacity = 0;
    std::uint32_t timeout_ms = 3000;
    std::uint32_t max_frame = default_max_frame;
    std::uint32_t prefetch = 0;
    std::uint32_t send_window = 0;
    instance_id instance{};
};

struct error_body {
    error_code code = error_code::protocol_error;
    std::string_view text;
};

struct status_body {
    std::uint64_t length = 0;
    std::uint64_t capacity = 0;
    bool closed = false;
};

/// A validated frame: a view of the bytes it was decoded from.
struct frame {
    header h;
    hello_body hello;                ///< HELLO
    welcome_body welcome;            ///< WELCOME
    error_body error;                ///< ERROR (h.id = ref)
    status_body status;              ///< STATUS
    std::uint64_t delivery_seq = 0;  ///< VALUE
    bytes payload;                   ///< SEND, VALUE: the cereal value bytes
    bytes ack_seqs;                  ///< ACK: h.id little-endian u64 delivery seqs
    std::uint32_t count = 0;         ///< RECV_MANY, VALUES, SEND_MANY, POLL: requests / entries
    bytes entries;                   ///< VALUES, SEND_MANY: `count` (u32 length, payload) entries;
                                     ///< POLL: `count` cases (poll_case)
    std::uint64_t confirmed = 0;     ///< CREDIT: highest credited number accepted (h.id: granted)
    std::uint64_t select_tag = 0;    ///< RECV, WATCH_SEND with SELECT: the select's tag (§8.6.1)

    /// ACK: the i-th delivery seq (i < h.id).
    [[nodiscard]] std::uint64_t ack(std::size_t i) const noexcept;
    /// POLL: the i-th case's channel and operation (i < count).
    [[nodiscard]] std::uint32_t poll_channel(std::size_t i) const noexcept;
    [[nodiscard]] poll_op poll_case_op(std::size_t i) const noexcept;
};

/// Validates `in` (protocol.md §6) and fills `out` with views into it.
/// Returns: empty on success, else a codec_errc. Never throws; allocates nothing.
[[nodiscard]] std::error_code decode(bytes in, side receiver, frame& out,
                                     std::size_t max_frame = default_max_frame) noexcept;

/// Picks the version for a HELLO (protocol.md §7.1): 1 if the peer's range
/// contains it, else 0 (answer ERROR unsupported_version).
[[nodiscard]] std::uint8_t negotiate(const hello_body& h) noexcept;

// ---- encoders: append one frame to `out` (may throw std::bad_alloc) --------

/// Any frame whose body is empty (every type with body length 0 in §5.2).
void encode_header(std::string& out, const header& h);
void encode_hello(std::string& out, std::uint64_t nonce, std::uint16_t flags, const hello_body& b);
void encode_welcome(std::string& out, std::uint64_t nonce, std::uint16_t flags,
                    const welcome_body& b);
/// Text longer than max_error_text is cut (at a byte boundary).
void encode_error(std::string& out, std::uint32_t channel, std::uint64_t ref, error_code code,
                  std::string_view text);
void encode_status(std::string& out, std::uint32_t channel, std::uint64_t request,
                   const status_body& b);
/// seqs.size() must be 1..max_acks.
void encode_ack(std::string& out, std::uint32_t channel, std::span<const std::uint64_t> seqs);
/// SEND header; the caller appends the value (zchan::encode_value).
void begin_send(std::string& out, std::uint32_t channel, std::uint64_t seq, std::uint16_t flags);
/// RECV (flags: TRY) or WATCH_SEND; a nonzero `select_tag` sets SELECT and
/// appends the tag (§8.6.1); TRY and a tag exclude each other.
void encode_wait_request(std::string& out, msg type, std::uint32_t channel, std::uint64_t request,
                         std::uint16_t flags, std::uint64_t select_tag);
/// VALUE header and delivery seq; the caller appends the value.
void begin_value(std::string& out, std::uint32_t channel, std::uint64_t request,
                 std::uint64_t delivery_seq);
/// RECV_MANY (§8.8): `count` RECVs with request ids first..first+count-1.
void encode_recv_many(std::string& out, std::uint32_t channel, std::uint64_t first,
                      std::uint32_t count);
/// VALUES (§8.8): writes the prefix with count 0; append entries with
/// reply_sink::values_entry_begin/values_entry_end (zchan/detail/net_link.hpp),
/// then finish_values(out, start, n) where `start` is out.size() before begin_values.
void begin_values(std::string& out, std::uint32_t channel, std::uint64_t first_request,
                  std::uint64_t first_delivery);
void finish_values(std::string& out, std::size_t start, std::uint32_t count);
/// CREDIT (§9.1): `granted` credits in total so far, credited values up to
/// number `confirmed` accepted.
void encode_credit(std::string& out, std::uint32_t channel, std::uint64_t granted,
                   std::uint64_t confirmed);
/// SEND_MANY (§9.1), built in place as VALUES is: begin_send_many, then per
/// value a u32 length and the payload, then finish_send_many(out, start, n).
/// POLL (§8.9): `cases` (1..max_poll_cases of them) polled at one instant.
struct poll_case {
    std::uint32_t channel = 0;
    poll_op op = poll_op::recv;
};
void encode_poll(std::string& out, std::uint32_t channel, std::uint64_t request,
                 std::span<const poll_case> cases);
void begin_send_many(std::string& out, std::uint32_t channel, std::uint64_t first);
void finish_send_many(std::string& out, std::size_t start, std::uint32_t count);

/// Walks a validated VALUES frame's entries in order.
class values_reader {
public:
    explicit values_reader(const frame& f) noexcept : rest_(f.entries) {}
    /// The next entry's payload. Requires: fewer than count calls so far.
    [[nodiscard]] bytes next() noexcept;

private:
    bytes rest_;
};

}  // namespace zchan::detail::wire

template <>
struct std::is_error_code_enum<zchan::detail::wire::codec_errc> : std::true_type {};

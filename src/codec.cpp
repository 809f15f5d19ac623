// ZCHAN/1 frame codec; see codec.hpp for the invariants and protocol.md §4-§6
// for the rules each check implements.
#include "codec.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

namespace zchan::detail::wire {
namespace {

// ---- little-endian primitives (protocol.md §4: all integers LE) -----------

template <class U>
U load_le(const unsigned char* p) noexcept {
    U v = 0;
    for (std::size_t i = 0; i < sizeof(U); ++i) v |= static_cast<U>(U{p[i]} << (8 * i));
    return v;
}

template <class U>
void put_le(std::string& out, U v) {
    for (std::size_t i = 0; i < sizeof(U); ++i) {
        out.push_back(static_cast<char>(static_cast<unsigned char>(v >> (8 * i))));
    }
}

// ---- per-type rules (protocol.md §5.2, §6.1) -------------------------------

enum class dir : std::uint8_t { to_home, to_peer, both };
enum class chan_rule : std::uint8_t { zero, nonzero, any };
enum class id_rule : std::uint8_t { positive, zero, any };
inline constexpr std::size_t special = static_cast<std::size_t>(-1);  // length computed per type

struct rule {
    bool known = false;
    dir direction = dir::both;
    std::uint16_t flags = 0;  // allowed flag bits
    std::size_t body = 0;     // exact body length, or `special`
    chan_rule channel = chan_rule::any;
    id_rule id = id_rule::any;
};

constexpr std::array<rule, 256> make_rules() {
    std::array<rule, 256> r{};
    auto set = [&r](msg m, dir d, std::uint16_t f, std::size_t body, chan_rule c, id_rule i) {
        r[static_cast<std::uint8_t>(m)] = rule{true, d, f, body, c, i};
    };
    using enum msg;
    // One-letter names keep the table below one rule per line.
    constexpr auto H = dir::to_home;         // NOLINT(readability-identifier-naming)
    constexpr auto P = dir::to_peer;         // NOLINT(readability-identifier-naming)
    constexpr auto NZ = chan_rule::nonzero;  // NOLINT(readability-identifier-naming)
    constexpr auto POS = id_rule::positive;  // NOLINT(readability-identifier-naming)
    set(hello, H, flag::resume | flag::create, special, chan_rule::zero, id_rule::any);
    set(welcome, P, flag::resume, welcome_size - header_size, chan_rule::zero, id_rule::any);
    set(error, P, 0, special, chan_rule::any, id_rule::any);
    set(send, H, flag::try_now | flag::credited, special, NZ, POS);
    set(cancel_send, H, 0, 0, NZ, POS);
    set(send_ok, P, 0, 0, NZ, POS);
    set(send_closed, P, 0, 0, NZ, POS);
    set(send_full, P, 0, 0, NZ, POS);
    set(send_cancelled, P, 0, 0, NZ, POS);
    set(credit, P, 0, credit_size - header_size, NZ, id_rule::any);  // id = total granted
    set(send_many, H, 0, special, NZ, POS);
    set(revoke, P, 0, 0, NZ, id_rule::zero);
    set(revoked, H, 0, 0, NZ, id_rule::zero);
    set(watch_send, H, flag::select, special, NZ, POS);
    set(cancel_watch, H, 0, 0, NZ, POS);
    set(ready, P, 0, 0, NZ, POS);
    set(watch_cancelled, P, 0, 0, NZ, POS);
    set(recv, H, flag::try_now | flag::select, special, NZ, POS);
    set(cancel_recv, H, 0, 0, NZ, POS);
    set(ack, H, 0, special, NZ, id_rule::any);  // id = count, checked with the body
    set(ret, H, 0, 0, NZ, POS);
    set(recv_many, H, 0, recv_many_size - header_size, NZ, POS);
    set(values, P, 0, special, NZ, POS);
    set(recv_cancelled, P, 0, 0, NZ, POS);
    set(value, P, 0, special, NZ, POS);
    set(closed, P, 0, 0, NZ, POS);
    set(empty, P, 0, 0, NZ, POS);
    set(close, H, 0, 0, NZ, POS);
    set(query, H, 0, 0, NZ, POS);
    set(close_ok, P, 0, 0, NZ, POS);
    set(status, P, 0, status_size - header_size, NZ, POS);
    set(poll, H, 0, special, NZ, POS);
    set(ping, dir::both, 0, 0, chan_rule::any, id_rule::any);
    set(pong, dir::both, 0, 0, chan_rule::any, id_rule::any);
    set(bye, H, 0, 0, NZ, id_rule::zero);
    return r;
}

constexpr std::array<rule, 256> rules = make_rules();

bool all_zero(const instance_id& id) noexcept {
    return std::all_of(id.begin(), id.end(), [](std::uint8_t b) { return b == 0; });
}

std::error_code err(codec_errc e) noexcept { return make_error_code(e); }

/// The entries of VALUES (§8.8) and SEND_MANY (§9.1): a u32 count at
/// `count_at`, four zero octets, then from `first` the entries, each a u32
/// length and that many octets. Every entry must fit, and together they must
/// fill the frame exactly: values_reader then walks them without checks.
std::error_code decode_entries(bytes in, std::size_t count_at, std::size_t first,
                               frame& out) noexcept {
    const unsigned char* p = in.data();
    const std::size_t n = in.size();
    const auto count = load_le<std::uint32_t>(p + count_at);
    if (load_le<std::uint32_t>(p + count_at + 4) != 0) return err(codec_errc::bad_reserved);
    if (count == 0 || count > max_batch) return err(codec_errc::bad_batch);
    if (out.h.id > std::numeric_limits<std::uint64_t>::max() - (count - 1)) {
        return err(codec_errc::bad_batch);
    }
    std::size_t at = first;
    for (std::uint32_t i = 0; i < count; ++i) {
        if (n - at < 4) return err(codec_errc::bad_batch);
        const auto len = load_le<std::uint32_t>(p + at);
        at += 4;
        if (len > n - at) return err(codec_errc::bad_batch);
        at += len;
    }
    if (at != n) return err(codec_errc::bad_batch);
    out.count = count;
    out.entries = in.subspan(first);
    return {};
}

// HELLO body (protocol.md §5.2 table); `p` is the whole frame.
std::error_code decode_hello(const unsigned char* p, std::size_t n, frame& f) noexcept {
    if (n < hello_fixed_size) return err(codec_errc::truncated);
    auto& b = f.hello;
    b.min_version = p[16];
    b.max_version = p[17];
    const auto name_len = load_le<std::uint16_t>(p + 18);
    const auto type_len = load_le<std::uint16_t>(p + 20);
    // Offset 36 is the CREATE capacity with the CREATE flag (§17.1), else reserved.
    b.create_capacity = load_le<std::uint32_t>(p + 36);
    if (load_le<std::uint16_t>(p + 22) != 0 ||
        ((f.h.flags & flag::create) == 0 && b.create_capacity != 0)) {
        return err(codec_errc::bad_reserved);
    }
    b.prefetch = load_le<std::uint32_t>(p + 24);
    b.send_window = load_le<std::uint32_t>(p + 28);
    b.heartbeat_ms = load_le<std::uint32_t>(p + 32);
    std::memcpy(b.instance.data(), p + 40, b.instance.size());
    // §7.1: header version == max-version, 1 <= min <= max.
    if (b.min_version == 0 || b.min_version > b.max_version) {
        return err(codec_errc::bad_version_range);
    }
    if (f.h.version != b.max_version) return err(codec_errc::bad_version);
    if (name_len == 0 || name_len > max_name) return err(codec_errc::bad_name);
    if (type_len == 0 || type_len > max_type_name) return err(codec_errc::bad_type_name);
    if (n != hello_fixed_size + name_len + type_len) return err(codec_errc::bad_length);
    if (all_zero(b.instance)) return err(codec_errc::zero_instance);
    const auto* s = reinterpret_cast<const char*>(p + hello_fixed_size);
    b.name = std::string_view(s, name_len);
    b.type_name = std::string_view(s + name_len, type_len);
    return {};
}

std::error_code decode_welcome(const unsigned char* p, frame& f) noexcept {
    auto& b = f.welcome;
    b.channel = load_le<std::uint32_t>(p + 16);
    b.heartbeat_ms = load_le<std::uint32_t>(p + 20);
    b.capacity = load_le<std::uint64_t>(p + 24);
    b.timeout_ms = load_le<std::uint32_t>(p + 32);
    b.max_frame = load_le<std::uint32_t>(p + 36);
    b.prefetch = load_le<std::uint32_t>(p + 40);
    b.send_window = load_le<std::uint32_t>(p + 44);
    std::memcpy(b.instance.data(), p + 48, b.instance.size());
    if (b.channel == 0 || b.heartbeat_ms == 0 || b.timeout_ms <= b.heartbeat_ms ||
        b.max_frame < value_prefix_size) {
        return err(codec_errc::bad_welcome);
    }
    if (all_zero(b.instance)) return err(codec_errc::zero_instance);
    return {};
}

std::error_code decode_error_body(const unsigned char* p, std::size_t n, frame& f) noexcept {
    if (n < header_size + 4) return err(codec_errc::truncated);
    const auto code = load_le<std::uint16_t>(p + 16);
    const auto text_len = load_le<std::uint16_t>(p + 18);
    if (code < 1 || code > static_cast<std::uint16_t>(error_code::shutting_down)) {
        return err(codec_errc::bad_error_code);
    }
    if (text_len > max_error_text) return err(codec_errc::bad_text);
    if (n != header_size + 4 + text_len) return err(codec_errc::bad_length);
    f.error.code = static_cast<error_code>(code);
    f.error.text = std::string_view(reinterpret_cast<const char*>(p + 20), text_len);
    return {};
}

}  // namespace

const char* to_string(msg m) noexcept {
    switch (m) {
        case msg::hello:
            return "HELLO";
        case msg::welcome:
            return "WELCOME";
        case msg::error:
            return "ERROR";
        case msg::send:
            return "SEND";
        case msg::cancel_send:
            return "CANCEL_SEND";
        case msg::send_ok:
            return "SEND_OK";
        case msg::send_closed:
            return "SEND_CLOSED";
        case msg::send_full:
            return "SEND_FULL";
        case msg::send_cancelled:
            return "SEND_CANCELLED";
        case msg::credit:
            return "CREDIT";
        case msg::send_many:
            return "SEND_MANY";
        case msg::revoke:
            return "REVOKE";
        case msg::revoked:
            return "REVOKED";
        case msg::watch_send:
            return "WATCH_SEND";
        case msg::cancel_watch:
            return "CANCEL_WATCH";
        case msg::ready:
            return "READY";
        case msg::watch_cancelled:
            return "WATCH_CANCELLED";
        case msg::recv:
            return "RECV";
        case msg::cancel_recv:
            return "CANCEL_RECV";
        case msg::ack:
            return "ACK";
        case msg::ret:
            return "RETURN";
        case msg::recv_many:
            return "RECV_MANY";
        case msg::values:
            return "VALUES";
        case msg::recv_cancelled:
            return "RECV_CANCELLED";
        case msg::value:
            return "VALUE";
        case msg::closed:
            return "CLOSED";
        case msg::empty:
            return "EMPTY";
        case msg::close:
            return "CLOSE";
        case msg::query:
            return "QUERY";
        case msg::close_ok:
            return "CLOSE_OK";
        case msg::status:
            return "STATUS";
        case msg::poll:
            return "POLL";
        case msg::ping:
            return "PING";
        case msg::pong:
            return "PONG";
        case msg::bye:
            return "BYE";
    }
    return "?";
}

namespace {
class codec_category_impl final : public std::error_category {
public:
    [[nodiscard]] const char* name() const noexcept override { return "zchan.codec"; }
    [[nodiscard]] std::string message(int code) const override {
        switch (static_cast<codec_errc>(code)) {
            case codec_errc::truncated:
                return "frame truncated";
            case codec_errc::too_large:
                return "frame larger than the maximum frame size";
            case codec_errc::bad_version:
                return "unsupported or inconsistent protocol version";
            case codec_errc::unknown_type:
                return "unknown message type";
            case codec_errc::wrong_direction:
                return "message type not valid in this direction";
            case codec_errc::bad_flags:
                return "undefined flag bits set";
            case codec_errc::bad_length:
                return "body length does not match the message type";
            case codec_errc::bad_reserved:
                return "reserved field not zero";
            case codec_errc::bad_channel:
                return "invalid channel id for the message type";
            case codec_errc::zero_id:
                return "invalid id for the message type";
            case codec_errc::bad_name:
                return "channel name empty or longer than 255 bytes";
            case codec_errc::bad_type_name:
                return "type identity empty or longer than 1024 bytes";
            case codec_errc::bad_version_range:
                return "invalid version range in HELLO";
            case codec_errc::zero_instance:
                return "instance id is all zero";
            case codec_errc::bad_ack:
                return "ACK count out of range or zero delivery seq";
            case codec_errc::bad_text:
                return "ERROR text longer than 1024 bytes";
            case codec_errc::bad_error_code:
                return "unknown ERROR code";
            case codec_errc::bad_status:
                return "STATUS closed flag not 0 or 1";
            case codec_errc::bad_welcome:
                return "invalid WELCOME parameters";
            case codec_errc::bad_batch:
                return "RECV_MANY/VALUES count out of range or entries malformed";
            case codec_errc::bad_poll:
                return "POLL count out of range or a malformed case";
        }
        return "unknown codec error";
    }
};
}  // namespace

const std::error_category& codec_category() noexcept {
    static const codec_category_impl category;
    return category;
}

zchan::errc to_errc(codec_errc e) noexcept {
    return e == codec_errc::too_large ? zchan::errc::message_too_large
                                      : zchan::errc::protocol_error;
}

std::uint64_t frame::ack(std::size_t i) const noexcept {
    return load_le<std::uint64_t>(ack_seqs.data() + 8 * i);
}

std::uint32_t frame::poll_channel(std::size_t i) const noexcept {
    return load_le<std::uint32_t>(entries.data() + poll_case_size * i);
}

poll_op frame::poll_case_op(std::size_t i) const noexcept {
    return static_cast<poll_op>(entries[poll_case_size * i + 4]);
}

std::error_code decode(bytes in, side receiver, frame& out, std::size_t max_frame) noexcept {
    const unsigned char* p = in.data();
    const std::size_t n = in.size();
    if (n < header_size) return err(codec_errc::truncated);
    if (n > max_frame) return err(codec_errc::too_large);

    out = frame{};
    out.h.version = p[0];
    const rule& r = rules[p[1]];
    if (!r.known) return err(codec_errc::unknown_type);
    out.h.type = static_cast<msg>(p[1]);
    out.h.flags = load_le<std::uint16_t>(p + 2);
    out.h.channel = load_le<std::uint32_t>(p + 4);
    out.h.id = load_le<std::uint64_t>(p + 8);

    const bool allowed =
        r.direction == dir::both ||
        (receiver == side::home ? r.direction == dir::to_home : r.direction == dir::to_peer);
    if (!allowed) return err(codec_errc::wrong_direction);
    // §7.1: only HELLO may carry another version; decode_hello checks it.
    if (out.h.type != msg::hello && out.h.version != version) return err(codec_errc::bad_version);
    if ((out.h.flags & ~r.flags) != 0) return err(codec_errc::bad_flags);
    if ((out.h.flags & flag::try_now) != 0 && (out.h.flags & flag::credited) != 0) {
        return err(codec_errc::bad_flags);  // a credited send never waits: TRY is meaningless
    }
    if ((r.channel == chan_rule::zero && out.h.channel != 0) ||
        (r.channel == chan_rule::nonzero && out.h.channel == 0)) {
        return err(codec_errc::bad_channel);
    }
    if ((r.id == id_rule::positive && out.h.id == 0) || (r.id == id_rule::zero && out.h.id != 0)) {
        return err(codec_errc::zero_id);
    }
    if (r.body != special) {
        if (n < header_size + r.body) return err(codec_errc::truncated);
        if (n != header_size + r.body) return err(codec_errc::bad_length);
    }

    switch (out.h.type) {
        case msg::hello:
            return decode_hello(p, n, out);
        case msg::welcome:
            return decode_welcome(p, out);
        case msg::error:
            return decode_error_body(p, n, out);
        case msg::send:
            out.payload = in.subspan(header_size);
            return {};
        case msg::value:
            if (n < value_prefix_size) return err(codec_errc::truncated);
            out.delivery_seq = load_le<std::uint64_t>(p + 16);
            if (out.delivery_seq == 0) return err(codec_errc::zero_id);
            out.payload = in.subspan(value_prefix_size);
            return {};
        case msg::ack: {
            const std::uint64_t count = out.h.id;
            if (count == 0 || count > max_acks) return err(codec_errc::bad_ack);
            if (n != header_size + 8 * count) return err(codec_errc::bad_length);
            out.ack_seqs = in.subspan(header_size);
            for (std::size_t i = 0; i < count; ++i) {
                if (out.ack(i) == 0) return err(codec_errc::bad_ack);
            }
            return {};
        }
        case msg::recv_many: {  // §8.8
            const auto count = load_le<std::uint32_t>(p + 16);
            if (load_le<std::uint32_t>(p + 20) != 0) return err(codec_errc::bad_reserved);
            if (count == 0 || count > max_batch) return err(codec_errc::bad_batch);
            if (out.h.id > std::numeric_limits<std::uint64_t>::max() - (count - 1))
                return err(codec_errc::bad_batch);
            out.count = count;
            return {};
        }
        case msg::values: {  // §8.8
            if (n < values_prefix_size) return err(codec_errc::truncated);
            out.delivery_seq = load_le<std::uint64_t>(p + 16);
            if (out.delivery_seq == 0) return err(codec_errc::zero_id);
            if (auto ec = decode_entries(in, 24, values_prefix_size, out)) return ec;
            if (out.delivery_seq > std::numeric_limits<std::uint64_t>::max() - (out.count - 1)) {
                return err(codec_errc::bad_batch);
            }
            return {};
        }
        case msg::recv:
        case msg::watch_send: {  // §8.6.1: SELECT carries the select's tag
            if ((out.h.flags & flag::select) == 0) {
                return n == header_size ? std::error_code{} : err(codec_errc::bad_length);
            }
            if ((out.h.flags & flag::try_now) != 0) return err(codec_errc::bad_flags);
            if (n < select_request_size) return err(codec_errc::truncated);
            if (n != select_request_size) return err(codec_errc::bad_length);
            out.select_tag = load_le<std::uint64_t>(p + header_size);
            return out.select_tag == 0 ? err(codec_errc::zero_id) : std::error_code{};
        }
        case msg::send_many:  // §9.1
            if (n < send_many_prefix_size) return err(codec_errc::truncated);
            return decode_entries(in, 16, send_many_prefix_size, out);
        case msg::poll: {  // §8.9
            if (n < poll_prefix_size) return err(codec_errc::truncated);
            const auto count = load_le<std::uint32_t>(p + 16);
            if (load_le<std::uint32_t>(p + 20) != 0) return err(codec_errc::bad_reserved);
            if (count == 0 || count > max_poll_cases) return err(codec_errc::bad_poll);
            if (n != poll_prefix_size + poll_case_size * count) return err(codec_errc::bad_length);
            for (std::size_t at = poll_prefix_size; at < n; at += poll_case_size) {
                const std::uint8_t op = p[at + 4];
                if (load_le<std::uint32_t>(p + at) == 0 ||
                    (op != static_cast<std::uint8_t>(poll_op::recv) &&
                     op != static_cast<std::uint8_t>(poll_op::send))) {
                    return err(codec_errc::bad_poll);
                }
                if (p[at + 5] != 0 || p[at + 6] != 0 || p[at + 7] != 0) {
                    return err(codec_errc::bad_reserved);
                }
            }
            out.count = count;
            out.entries = in.subspan(poll_prefix_size);
            return {};
        }
        case msg::credit:  // §9.1
            out.confirmed = load_le<std::uint64_t>(p + 16);
            return {};
        case msg::status:
            out.status.length = load_le<std::uint64_t>(p + 16);
            out.status.capacity = load_le<std::uint64_t>(p + 24);
            if (p[32] > 1) return err(codec_errc::bad_status);
            for (std::size_t i = 33; i < status_size; ++i) {
                if (p[i] != 0) return err(codec_errc::bad_reserved);
            }
            out.status.closed = p[32] == 1;
            return {};
        default:
            return {};
    }
}

std::uint8_t negotiate(const hello_body& h) noexcept {
    return (h.min_version <= version && version <= h.max_version) ? version : 0;
}

void encode_header(std::string& out, const header& h) {
    out.push_back(static_cast<char>(h.version));
    out.push_back(static_cast<char>(h.type));
    put_le(out, h.flags);
    put_le(out, h.channel);
    put_le(out, h.id);
}

void encode_hello(std::string& out, std::uint64_t nonce, std::uint16_t flags, const hello_body& b) {
    out.reserve(out.size() + hello_fixed_size + b.name.size() + b.type_name.size());
    encode_header(out, header{b.max_version, msg::hello, flags, 0, nonce});
    out.push_back(static_cast<char>(b.min_version));
    out.push_back(static_cast<char>(b.max_version));
    put_le(out, static_cast<std::uint16_t>(b.name.size()));
    put_le(out, static_cast<std::uint16_t>(b.type_name.size()));
    put_le(out, std::uint16_t{0});
    put_le(out, b.prefetch);
    put_le(out, b.send_window);
    put_le(out, b.heartbeat_ms);
    put_le(out, (flags & flag::create) != 0 ? b.create_capacity : std::uint32_t{0});
    out.append(reinterpret_cast<const char*>(b.instance.data()), b.instance.size());
    out.append(b.name);
    out.append(b.type_name);
}

void encode_welcome(std::string& out, std::uint64_t nonce, std::uint16_t flags,
                    const welcome_body& b) {
    encode_header(out, header{version, msg::welcome, flags, 0, nonce});
    put_le(out, b.channel);
    put_le(out, b.heartbeat_ms);
    put_le(out, b.capacity);
    put_le(out, b.timeout_ms);
    put_le(out, b.max_frame);
    put_le(out, b.prefetch);
    put_le(out, b.send_window);
    out.append(reinterpret_cast<const char*>(b.instance.data()), b.instance.size());
}

void encode_error(std::string& out, std::uint32_t channel, std::uint64_t ref, error_code code,
                  std::string_view text) {
    text = text.substr(0, max_error_text);
    encode_header(out, header{version, msg::error, 0, channel, ref});
    put_le(out, static_cast<std::uint16_t>(code));
    put_le(out, static_cast<std::uint16_t>(text.size()));
    out.append(text);
}

void encode_status(std::string& out, std::uint32_t channel, std::uint64_t request,
                   const status_body& b) {
    encode_header(out, header{version, msg::status, 0, channel, request});
    put_le(out, b.length);
    put_le(out, b.capacity);
    out.push_back(b.closed ? '\1' : '\0');
    out.append(7, '\0');
}

void encode_ack(std::string& out, std::uint32_t channel, std::span<const std::uint64_t> seqs) {
    encode_header(out, header{version, msg::ack, 0, channel, seqs.size()});
    for (const auto s : seqs) put_le(out, s);
}

void begin_send(std::string& out, std::uint32_t channel, std::uint64_t seq, std::uint16_t flags) {
    encode_header(out, header{version, msg::send, flags, channel, seq});
}

void encode_wait_request(std::string& out, msg type, std::uint32_t channel, std::uint64_t request,
                         std::uint16_t flags, std::uint64_t select_tag) {
    if (select_tag == 0) {
        encode_header(out, header{version, type, flags, channel, request});
        return;
    }
    encode_header(out, header{version, type, static_cast<std::uint16_t>(flags | flag::select),
                              channel, request});
    put_le(out, select_tag);
}

void begin_value(std::string& out, std::uint32_t channel, std::uint64_t request,
                 std::uint64_t delivery_seq) {
    encode_header(out, header{version, msg::value, 0, channel, request});
    put_le(out, delivery_seq);
}

void encode_recv_many(std::string& out, std::uint32_t channel, std::uint64_t first,
                      std::uint32_t count) {
    encode_header(out, header{version, msg::recv_many, 0, channel, first});
    put_le(out, count);
    put_le(out, std::uint32_t{0});
}

void encode_poll(std::string& out, std::uint32_t channel, std::uint64_t request,
                 std::span<const poll_case> cases) {
    out.reserve(out.size() + poll_prefix_size + poll_case_size * cases.size());
    encode_header(out, header{version, msg::poll, 0, channel, request});
    put_le(out, static_cast<std::uint32_t>(cases.size()));
    put_le(out, std::uint32_t{0});
    for (const poll_case& c : cases) {
        put_le(out, c.channel);
        out.push_back(static_cast<char>(c.op));
        out.append(3, '\0');
    }
}

void begin_values(std::string& out, std::uint32_t channel, std::uint64_t first_request,
                  std::uint64_t first_delivery) {
    encode_header(out, header{version, msg::values, 0, channel, first_request});
    put_le(out, first_delivery);
    put_le(out, std::uint32_t{0});  // count, patched by finish_values
    put_le(out, std::uint32_t{0});
}

void encode_credit(std::string& out, std::uint32_t channel, std::uint64_t granted,
                   std::uint64_t confirmed) {
    encode_header(out, header{version, msg::credit, 0, channel, granted});
    put_le(out, confirmed);
}

void begin_send_many(std::string& out, std::uint32_t channel, std::uint64_t first) {
    encode_header(out, header{version, msg::send_many, 0, channel, first});
    put_le(out, std::uint32_t{0});  // count, patched by finish_send_many
    put_le(out, std::uint32_t{0});
}

void finish_send_many(std::string& out, std::size_t start, std::uint32_t count) {
    for (std::size_t i = 0; i < 4; ++i) {
        out[start + 16 + i] = static_cast<char>(static_cast<unsigned char>(count >> (8 * i)));
    }
}

void finish_values(std::string& out, std::size_t start, std::uint32_t count) {
    for (std::size_t i = 0; i < 4; ++i) {
        out[start + 24 + i] = static_cast<char>(static_cast<unsigned char>(count >> (8 * i)));
    }
}

bytes values_reader::next() noexcept {
    const auto len = load_le<std::uint32_t>(rest_.data());
    bytes v = rest_.subspan(4, len);
    rest_ = rest_.subspan(4 + len);
    return v;
}

}  // namespace zchan::detail::wire

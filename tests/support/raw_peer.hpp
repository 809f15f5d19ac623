// A hand-written ZCHAN/1 peer for integration tests: a raw DEALER whose
// frames are encoded here, from protocol.md §4-§5 and §13 only, and not with
// src/codec.hpp. The tests that use it (hostile_input_test, net_resume_test)
// check the home against the spec, so the bytes they send must not come from
// the code under test; they can also send frames the codec would never
// produce (wrong versions, lying lengths, undefined flags).
//
// Thread safety: a raw_peer is used by one thread at a time (it owns one
// ZeroMQ socket); the free functions are pure.
#pragma once

#include <chrono>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <zmq.hpp>

#include "zchan_test_support.hpp"

namespace zchan_test::raw {

/// Message types (protocol.md §5.2).
enum : std::uint8_t {
    t_hello = 0x01,
    t_welcome = 0x02,
    t_error = 0x03,
    t_send = 0x10,
    t_send_ok = 0x12,
    t_send_full = 0x14,
    t_watch_send = 0x17,
    t_cancel_watch = 0x18,
    t_ready = 0x19,
    t_watch_cancelled = 0x1a,
    t_recv = 0x20,
    t_cancel_recv = 0x21,
    t_ack = 0x22,
    t_return = 0x23,
    t_recv_many = 0x24,
    t_recv_cancelled = 0x25,
    t_value = 0x26,
    t_closed = 0x27,
    t_empty = 0x28,
    t_values = 0x29,
    t_close = 0x30,
    t_query = 0x31,
    t_close_ok = 0x32,
    t_status = 0x33,
    t_poll = 0x34,
    t_ping = 0x40,
    t_pong = 0x41,
    t_bye = 0x42,
};

/// Flag bits (protocol.md §4).
inline constexpr std::uint16_t f_try = 1u << 0;
inline constexpr std::uint16_t f_resume = 1u << 1;
inline constexpr std::uint16_t f_select = 1u << 4;

/// ERROR codes (protocol.md §11.2).
enum : std::uint16_t {
    e_protocol_error = 1,
    e_unsupported_version = 2,
    e_unknown_channel = 3,
    e_type_mismatch = 4,
    e_decode_error = 5,
    e_already_closed = 7,
    e_unknown_session = 9,
};

/// Appends `v` little-endian (protocol.md §4: every integer is).
template <class U>
void put(std::string& s, U v) {
    for (std::size_t i = 0; i < sizeof(U); ++i) {
        s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    }
}

/// The little-endian U at `at`; octets past the end read as 0 (a short frame
/// is the test's to notice, not a crash).
template <class U>
U get(const std::string& s, std::size_t at) {
    U v = 0;
    for (std::size_t i = 0; i < sizeof(U) && at + i < s.size(); ++i) {
        v |= static_cast<U>(static_cast<unsigned char>(s[at + i])) << (8 * i);
    }
    return v;
}

/// The 16-octet header (protocol.md §4).
[[nodiscard]] inline std::string header(std::uint8_t type, std::uint32_t channel, std::uint64_t id,
                                        std::uint16_t flags = 0, std::uint8_t version = 1) {
    std::string s;
    put<std::uint8_t>(s, version);
    put<std::uint8_t>(s, type);
    put<std::uint16_t>(s, flags);
    put<std::uint32_t>(s, channel);
    put<std::uint64_t>(s, id);
    return s;
}

/// What a HELLO asks for besides its name, type and nonce.
struct hello_options {
    std::uint16_t flags = 0;
    std::uint32_t prefetch = 0;
    std::uint8_t instance = 1;  ///< the instance id's octets are instance, instance+1, ...
    std::uint8_t min_version = 1;
    std::uint8_t max_version = 1;  ///< also the header's version (§7.1)
};

/// HELLO (protocol.md §5.2); send window 0 and heartbeat 0 (the home's).
[[nodiscard]] inline std::string hello(const std::string& name, const std::string& type,
                                       std::uint64_t nonce, const hello_options& o = {}) {
    std::string s = header(t_hello, 0, nonce, o.flags, o.max_version);
    put<std::uint8_t>(s, o.min_version);
    put<std::uint8_t>(s, o.max_version);
    put<std::uint16_t>(s, static_cast<std::uint16_t>(name.size()));
    put<std::uint16_t>(s, static_cast<std::uint16_t>(type.size()));
    put<std::uint16_t>(s, 0);
    put<std::uint32_t>(s, o.prefetch);
    put<std::uint32_t>(s, 0);  // send window
    put<std::uint32_t>(s, 0);  // heartbeat: the home's
    put<std::uint32_t>(s, 0);  // create-capacity: no CREATE
    for (int i = 0; i < 16; ++i) put<std::uint8_t>(s, static_cast<std::uint8_t>(o.instance + i));
    return s + name + type;
}

/// A select's RECV or WATCH_SEND (protocol.md §8.6.1): SELECT and its tag.
[[nodiscard]] inline std::string select_request(std::uint8_t type, std::uint32_t channel,
                                                std::uint64_t request, std::uint64_t tag) {
    std::string s = header(type, channel, request, f_select);
    put<std::uint64_t>(s, tag);
    return s;
}

/// RECV_MANY (protocol.md §8.8): requests first .. first+count-1.
[[nodiscard]] inline std::string recv_many(std::uint32_t channel, std::uint64_t first,
                                           std::uint32_t count) {
    std::string s = header(t_recv_many, channel, first);
    put<std::uint32_t>(s, count);
    put<std::uint32_t>(s, 0);
    return s;
}

/// POLL (protocol.md §8.9): cases as (channel id, 1 receive / 2 send).
[[nodiscard]] inline std::string poll(
    std::uint32_t channel, std::uint64_t request,
    const std::vector<std::pair<std::uint32_t, std::uint8_t>>& cases) {
    std::string s = header(t_poll, channel, request);
    put<std::uint32_t>(s, static_cast<std::uint32_t>(cases.size()));
    put<std::uint32_t>(s, 0);
    for (const auto& [ch, op] : cases) {
        put<std::uint32_t>(s, ch);
        put<std::uint8_t>(s, op);
        s.append(3, '\0');
    }
    return s;
}

/// ACK of one delivery.
[[nodiscard]] inline std::string ack(std::uint32_t channel, std::uint64_t delivery) {
    std::string s = header(t_ack, channel, 1);
    put<std::uint64_t>(s, delivery);
    return s;
}

/// cereal's binary encoding of a std::string (protocol.md §13).
[[nodiscard]] inline std::string encoded(const std::string& v) {
    std::string s;
    put<std::uint64_t>(s, v.size());
    return s + v;
}

/// One frame from the home as the peer sees it; VALUES are split into the
/// VALUEs they stand for (protocol.md §8.8).
struct answer {
    std::uint8_t type = 0;
    std::uint32_t channel = 0;
    std::uint64_t id = 0;
    std::uint16_t flags = 0;
    std::uint64_t delivery = 0;  ///< VALUE
    std::string payload;         ///< VALUE
    std::string frame;           ///< the whole frame (empty for a VALUE split from VALUES)

    /// ERROR's code (offset 16).
    [[nodiscard]] std::uint16_t error_code() const { return get<std::uint16_t>(frame, 16); }
    /// WELCOME's new channel id (offset 16).
    [[nodiscard]] std::uint32_t welcome_channel() const { return get<std::uint32_t>(frame, 16); }
};

/// A raw DEALER connected to a home.
class raw_peer {
public:
    raw_peer(zmq::context_t& ctx, const std::string& ep) : s_(ctx, zmq::socket_type::dealer) {
        s_.set(zmq::sockopt::linger, 0);
        s_.connect(ep);
    }

    void send(const std::string& frame) { s_.send(zmq::buffer(frame), zmq::send_flags::none); }
    void send_multipart(const std::string& a, const std::string& b) {
        s_.send(zmq::buffer(a), zmq::send_flags::sndmore);
        s_.send(zmq::buffer(b), zmq::send_flags::none);
    }

    /// PINGs on channel 0 and returns every answer the home sent before the
    /// PONG (frames of one connection are handled in order, protocol.md
    /// §12.5), leaving out the home's own heartbeat PINGs (§10: they answer
    /// nothing the peer sent); nullopt if no PONG came in time.
    std::optional<std::vector<answer>> sync() {
        using namespace std::chrono_literals;
        const std::uint64_t nonce = 0x5eed0000'00000000ULL + ++pings_;
        send(header(t_ping, 0, nonce));
        std::vector<answer> got;
        const auto deadline = deadline_after(generous);
        zmq::pollitem_t item{s_.handle(), 0, ZMQ_POLLIN, 0};
        while (clock::now() < deadline) {
            zmq::message_t m;
            if (!s_.recv(m, zmq::recv_flags::dontwait)) {
                zmq::poll(&item, 1, 50ms);
                continue;
            }
            answer a;
            a.frame.assign(m.data<char>(), m.size());
            a.type = get<std::uint8_t>(a.frame, 1);
            a.flags = get<std::uint16_t>(a.frame, 2);
            a.channel = get<std::uint32_t>(a.frame, 4);
            a.id = get<std::uint64_t>(a.frame, 8);
            if (a.type == t_pong && a.id == nonce) return got;
            if (a.type == t_ping) continue;
            if (a.type == t_value) {
                a.delivery = get<std::uint64_t>(a.frame, 16);
                a.payload = a.frame.substr(24);
            }
            if (a.type == t_values) {
                split_values(a, got);
                continue;
            }
            got.push_back(std::move(a));
        }
        return std::nullopt;
    }

    /// Syncs until at least `n` answers came, for answers the home sends on
    /// its own after an action of a local thread (a send or close on the
    /// served channel reaches the home's thread as a notification, which it
    /// may handle after the next PING); nullopt if a PONG or the answers did
    /// not come in time.
    std::optional<std::vector<answer>> sync_until(std::size_t n) {
        std::vector<answer> got;
        const auto deadline = deadline_after(generous);
        while (got.size() < n && clock::now() < deadline) {
            auto more = sync();
            if (!more) return std::nullopt;
            got.insert(got.end(), std::make_move_iterator(more->begin()),
                       std::make_move_iterator(more->end()));
        }
        if (got.size() < n) return std::nullopt;
        return got;
    }

    /// HELLO and its WELCOME; nullopt if none came.
    std::optional<answer> open(const std::string& name, const std::string& type,
                               const hello_options& o = {}) {
        const std::uint64_t nonce = 0x4e11000 + ++hellos_;
        send(hello(name, type, nonce, o));
        auto got = sync();
        if (!got) return std::nullopt;
        for (auto& a : *got) {
            if (a.type == t_welcome && a.id == nonce) return a;
        }
        return std::nullopt;
    }

private:
    static void split_values(const answer& a, std::vector<answer>& out) {
        const auto first_delivery = get<std::uint64_t>(a.frame, 16);
        const auto count = get<std::uint32_t>(a.frame, 24);
        std::size_t at = 32;
        for (std::uint32_t i = 0; i < count; ++i) {
            const auto len = get<std::uint32_t>(a.frame, at);
            answer v;
            v.type = t_value;
            v.channel = a.channel;
            v.id = a.id + i;
            v.delivery = first_delivery + i;
            v.payload = a.frame.substr(at + 4, len);
            at += 4 + len;
            out.push_back(std::move(v));
        }
    }

    zmq::socket_t s_;
    std::uint64_t pings_ = 0;
    std::uint64_t hellos_ = 0;
};

}  // namespace zchan_test::raw

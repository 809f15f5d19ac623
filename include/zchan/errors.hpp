// zchan errors.
//
// Misuse of a channel is a programming error and throws, as Go panics:
// channel_closed for a send on a closed channel, closing twice, or closing a
// nil channel. Conditions that happen at run time are values (send_status,
// recv_status) or, from the network transport, std::error_code in the
// zchan::errc category; calls that cannot return a status wrap that code in a
// transport_error subclass.
//
// Thread safety: every type here is immutable after construction.
#pragma once

#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>

namespace zchan {

/// Thrown by send() on a closed channel, by close() on a closed or nil
/// channel, and by select() when a send case's channel is closed.
class channel_closed : public std::logic_error {
public:
    channel_closed() : std::logic_error("zchan: channel closed") {}
    explicit channel_closed(const std::string& what) : std::logic_error(what) {}
};

/// Error codes of the network transport (category "zchan").
enum class errc {
    peer_lost = 1,      ///< the other side is gone: silence, shutdown or a forgotten session
    decode_error,       ///< a value or frame could not be decoded
    protocol_error,     ///< a frame violated docs/protocol.md
    type_mismatch,      ///< the two ends disagree on the value type
    unknown_channel,    ///< no channel of that name is served there
    version_mismatch,   ///< unsupported protocol version
    connect_failed,     ///< the handshake did not complete in time
    message_too_large,  ///< a frame or value exceeds the configured limit
    access_denied,      ///< security handshake or allow-list refused the peer
    shutdown,           ///< the local server or dialer is shutting down
};

namespace detail {
class errc_category final : public std::error_category {
public:
    [[nodiscard]] const char* name() const noexcept override { return "zchan"; }
    [[nodiscard]] std::string message(int code) const override {
        switch (static_cast<errc>(code)) {
            case errc::peer_lost:
                return "peer lost";
            case errc::decode_error:
                return "value or frame could not be decoded";
            case errc::protocol_error:
                return "protocol error";
            case errc::type_mismatch:
                return "value type mismatch";
            case errc::unknown_channel:
                return "unknown channel";
            case errc::version_mismatch:
                return "unsupported protocol version";
            case errc::connect_failed:
                return "could not connect";
            case errc::message_too_large:
                return "message too large";
            case errc::access_denied:
                return "access denied";
            case errc::shutdown:
                return "shutting down";
        }
        return "unknown zchan error";
    }
};
}  // namespace detail

/// The category of zchan::errc codes.
inline const std::error_category& error_category() noexcept {
    static const detail::errc_category category;
    return category;
}

inline std::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), error_category()};
}

/// Base of every error the transport reports by exception.
class transport_error : public std::system_error {
public:
    explicit transport_error(std::error_code ec) : std::system_error(ec) {}
    transport_error(std::error_code ec, const std::string& what) : std::system_error(ec, what) {}
};

/// The peer (home of a remote channel, or a remote handle) is gone. what()
/// says why: nothing heard within the heartbeat timeout, this process did
/// not run for that long, the home shut down, or the home no longer knows
/// the session (it restarted or expired it). code() is errc::peer_lost.
class peer_lost : public transport_error {
public:
    explicit peer_lost(const std::string& what = "zchan: peer lost")
        : transport_error(make_error_code(errc::peer_lost), what) {}
};

/// dial() or a server could not reach, or complete the handshake with, its peer.
class connect_error : public transport_error {
public:
    explicit connect_error(const std::string& what,
                           std::error_code ec = make_error_code(errc::connect_failed))
        : transport_error(ec, what) {}
};

/// dial() was refused by the home's security (docs/protocol.md §14): the
/// CURVE handshake failed (wrong server key, or one side plaintext and the
/// other CURVE) or the home's allow-list does not hold this client's key.
/// The message says which. code() is errc::access_denied.
class access_denied : public connect_error {
public:
    explicit access_denied(const std::string& what)
        : connect_error(what, make_error_code(errc::access_denied)) {}
};

/// The two ends of a remote channel disagree on the value type.
class type_mismatch : public transport_error {
public:
    explicit type_mismatch(const std::string& what)
        : transport_error(make_error_code(errc::type_mismatch), what) {}
};

}  // namespace zchan

template <>
struct std::is_error_code_enum<zchan::errc> : std::true_type {};

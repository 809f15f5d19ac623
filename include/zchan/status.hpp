// Results of channel operations that may not complete.
//
// Thread safety: plain values.
#pragma once

#include <optional>
#include <ostream>
#include <utility>

namespace zchan {

/// Outcome of try_send / send_for / send_until.
enum class send_status {
    ok,         ///< the channel accepted the value
    full,       ///< try_send only: the send would block (buffer full, or no receiver ready)
    closed,     ///< the channel is closed; the value was not sent
    timeout,    ///< the deadline passed first; the value was not sent
    peer_lost,  ///< remote channels only: the channel's home stopped answering
};

/// Outcome of try_recv / recv_for / recv_until.
enum class recv_status {
    ok,         ///< a value was received
    empty,      ///< try_recv only: the receive would block
    closed,     ///< the channel is closed and drained
    timeout,    ///< the deadline passed first
    peer_lost,  ///< remote channels only: the channel's home stopped answering
};

inline const char* to_string(send_status s) noexcept {
    switch (s) {
        case send_status::ok:
            return "ok";
        case send_status::full:
            return "full";
        case send_status::closed:
            return "closed";
        case send_status::timeout:
            return "timeout";
        case send_status::peer_lost:
            return "peer_lost";
    }
    return "?";
}

inline const char* to_string(recv_status s) noexcept {
    switch (s) {
        case recv_status::ok:
            return "ok";
        case recv_status::empty:
            return "empty";
        case recv_status::closed:
            return "closed";
        case recv_status::timeout:
            return "timeout";
        case recv_status::peer_lost:
            return "peer_lost";
    }
    return "?";
}

inline std::ostream& operator<<(std::ostream& os, send_status s) { return os << to_string(s); }
inline std::ostream& operator<<(std::ostream& os, recv_status s) { return os << to_string(s); }

/// A receive that may not have produced a value.
///
/// Example:
///   if (auto r = ch.recv_for(100ms)) use(*r.value);
///   else if (r.status == zchan::recv_status::timeout) ...
template <class T>
struct recv_result {
    recv_status status = recv_status::empty;
    std::optional<T> value;  ///< engaged iff status == ok

    explicit operator bool() const noexcept { return status == recv_status::ok; }
    [[nodiscard]] bool ok() const noexcept { return status == recv_status::ok; }
    T& operator*() & { return *value; }
    T&& operator*() && { return std::move(*value); }
    T* operator->() { return &*value; }
};

}  // namespace zchan

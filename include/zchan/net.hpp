// Channels across processes over ZeroMQ (docs/protocol.md).
//
// A channel lives in one process, its home, which serves it by name:
//
//   zchan::channel<job> jobs(16);
//   zchan::server srv("tcp://127.0.0.1:*");
//   srv.serve("jobs", jobs);
//   std::cout << srv.endpoint();          // e.g. tcp://127.0.0.1:40123
//
// Any other process dials it and gets the same zchan::channel<T> type; send,
// recv, close, range, try/for/until and zchan::select work unchanged:
//
//   auto jobs = zchan::dial<job>("tcp://127.0.0.1:40123", "jobs");
//   for (auto& j : jobs) handle(j);
//
// Results: closed, timed out and peer lost are distinct (send_status /
// recv_status::peer_lost; send()/recv() throw zchan::peer_lost).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "zchan/channel.hpp"
#include "zchan/detail/net_link.hpp"
#include "zchan/detail/remote_chan.hpp"
#include "zchan/detail/served_chan.hpp"
#include "zchan/errors.hpp"
#include "zchan/net_options.hpp"
#include "zchan/security.hpp"
#include "zchan/serialize.hpp"

namespace zchan {

class hub;

namespace detail {
/// Makes a channel for a HELLO naming no served channel (protocol.md §17.1),
/// on the server thread: returns it, or nullptr with `refusal` set (the
/// ERROR text). `capacity`: the HELLO's CREATE capacity, if any.
using channel_factory = std::function<std::unique_ptr<served_base>(
    const std::string& name, std::string_view type, std::optional<std::uint32_t> capacity,
    op_notifier& notifier, std::string& refusal)>;
/// A hub's idle-channel policy (protocol.md §17.1): asked on the server
/// thread, about once per heartbeat/4, for each channel no session is
/// attached to; true removes (destroys) it.
using channel_sweeper = std::function<bool(served_base& ch)>;
}  // namespace detail

/// Serves local channels to other processes: binds a ZeroMQ ROUTER and runs
/// one I/O thread that executes remote requests on the served channels
/// (docs/protocol.md §3, §15).
///
/// Destroying the server ends every session (peers then see peer_lost) and
/// puts values that were in flight to remote receivers back into their
/// channels.
///
/// Security: with net_options::curve_server the server is a CURVE server and
/// admits only the allow-listed client keys (zchan/security.hpp,
/// docs/protocol.md §14).
///
/// Thread safety: serve() and the accessors are safe from any thread; the
/// server object itself must outlive calls made on it.
///
/// Example:
///   zchan::server srv("tcp://127.0.0.1:*");
///   srv.serve("jobs", jobs);
class server {
public:
    /// Binds `endpoint` (tcp://, ipc:// or inproc://; "tcp://127.0.0.1:*" picks a port).
    /// Throws: transport_error if the endpoint cannot be bound.
    explicit server(const std::string& endpoint, const net_options& opts = {});
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    /// Exposes `ch` under `name` (1..255 bytes; names starting with '$' are
    /// reserved, protocol.md §17.2). One server serves many channels of
    /// different types.
    /// Throws: std::invalid_argument if the name is taken or invalid.
    template <class T>
    void serve(const std::string& name, const channel<T>& ch) {
        detail::require_serializable<T>();
        if constexpr (serializable<T>) {
            if (ch.is_nil()) throw std::invalid_argument("zchan: cannot serve a nil channel");
            add(name, std::make_unique<detail::served_chan<T>>(ch, notifier()));
        }
    }

    /// The bound address, with the port filled in for "tcp://host:*".
    [[nodiscard]] std::string endpoint() const;

    /// Frames rejected as malformed so far (protocol.md §11.1).
    [[nodiscard]] std::uint64_t malformed_frames() const noexcept;
    /// Number of live sessions.
    [[nodiscard]] std::size_t sessions() const noexcept;
    /// Peers whose security handshake failed so far (protocol.md §14): key
    /// not on the allow-list, wrong server key, plaintext peer. Always 0
    /// without net_options::curve_server. Counted when libzmq reports it,
    /// a moment after the peer was refused.
    [[nodiscard]] std::uint64_t rejected_peers() const noexcept;
    /// True if the server was made with net_options::curve_server.
    [[nodiscard]] bool secure() const noexcept;

private:
    friend class hub;
    class impl;
    void add(const std::string& name, std::unique_ptr<detail::served_base> ch);
    /// Only a hub creates channels on dial (protocol.md §17.1). Call before
    /// any peer can dial (the server thread reads it without a lock).
    void set_factory(detail::channel_factory f);
    /// A hub's idle-channel policy; same rule as set_factory.
    void set_sweeper(detail::channel_sweeper f);
    detail::op_notifier& notifier() noexcept;
    std::unique_ptr<impl> impl_;
};

/// Connects to the channel `name` served at `endpoint` and returns a handle
/// to it: a zchan::channel<T> like any other.
/// Throws: connect_error (nothing answered within opts.connect_timeout,
/// unknown channel, unsupported version), access_denied (a connect_error:
/// the home's security refused this dial, reported as soon as libzmq says
/// so; see opts.curve_client), type_mismatch (the channel carries another
/// type; the message names both).
///
/// Example:
///   auto results = zchan::dial<std::string>(endpoint, "results");
///   results << "done";
template <class T>
[[nodiscard]] channel<T> dial(const std::string& endpoint, const std::string& name,
                              const net_options& opts = {}) {
    detail::require_serializable<T>();
    if constexpr (serializable<T>) {
        auto link = detail::net_link::dial(endpoint, name, type_name<T>::value(), opts);
        return channel<T>(std::make_shared<detail::remote_chan<T>>(std::move(link)));
    } else {
        return channel<T>::nil();
    }
}

}  // namespace zchan

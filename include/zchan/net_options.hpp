// zchan::net_options: the settings of zchan::server and zchan::dial
// (docs/protocol.md §9, §12, §14, §17).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "zchan/security.hpp"

namespace zchan {

/// Transport settings for zchan::server and zchan::dial.
struct net_options {
    /// dial(): how long to wait for the home's WELCOME before connect_error.
    std::chrono::milliseconds connect_timeout{5000};
    /// Send a PING after this long without sending anything (protocol.md §12.1).
    std::chrono::milliseconds heartbeat{1000};
    /// Declare the other side lost after this long without receiving anything.
    std::chrono::milliseconds heartbeat_timeout{3000};
    /// Largest frame accepted or sent (ZMQ_MAXMSGSIZE; protocol.md §6.4).
    std::size_t max_frame = 64u << 20;
    /// dial(): prefetch window P to ask for (protocol.md §9.2); 0 (the default)
    /// keeps exact Go semantics, one round trip per remote recv. With P > 0
    /// the handle keeps up to P values received ahead of its user: they have
    /// left the channel (so the channel's effective capacity grows by up to
    /// P), a try_recv sees only what has arrived, and they go back to the
    /// channel when the handle is destroyed. Server: ignored (the home grants
    /// up to 65536).
    std::uint32_t prefetch = 0;
    /// dial(): send window W to ask for (protocol.md §9.1); 0 (the default)
    /// keeps exact Go semantics: a remote send returns once the home has the
    /// value, one round trip each. With W > 0 the home reserves up to W free
    /// slots for this handle (they count against the capacity: local senders
    /// see them as full) and a send that finds a credit returns as soon as
    /// its value is handed to the socket, without a round trip; values travel
    /// batched. A send that finds no credit is an exact send. What "send
    /// returned" then means: the value will be in the channel unless this
    /// process dies or the session is lost first; channel::flush() waits
    /// until the home has confirmed every such value, and close() and the
    /// handle's destructor flush first. No window on unbuffered channels
    /// (the rendezvous needs the round trip). Server: ignored (the home
    /// grants up to min(W, capacity, 65536)).
    std::uint32_t send_window = 0;
    /// dial(): if the home is a hub (zchan::hub) and no channel of that name
    /// exists yet, create it with this capacity (protocol.md §17, HELLO's
    /// CREATE flag). Unset (the default): only dial an existing channel. An
    /// existing channel keeps its capacity. Server: ignored.
    std::optional<std::uint32_t> create_capacity;
    /// Server: when set, the ROUTER is a CURVE server with this secret key,
    /// and a ZAP handler admits only the listed client keys (protocol.md
    /// §14); peers that fail the handshake are counted
    /// (server::rejected_peers()) and never open a session. Unset (the
    /// default): plaintext. dial(): ignored.
    std::optional<curve::server_options> curve_server;
    /// dial(): when set, the DEALER is a CURVE client with this secret key
    /// and expects the home to hold `server_key`'s secret; a refused
    /// handshake throws zchan::access_denied promptly (protocol.md §14).
    /// Unset (the default): plaintext. Server: ignored.
    std::optional<curve::client_options> curve_client;
};

}  // namespace zchan

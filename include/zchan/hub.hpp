// Hubs and server introspection (docs/protocol.md §17).
//
// A hub is a home that owns no typed channel: it hosts named channels for
// processes that all dial, so no producer or consumer has to be the home.
// A hub channel is created by the hub's owner (add_channel) or on the first
// dial that asks for it with a capacity (net_options::create_capacity); it
// stores each value as the bytes it arrived as (zchan::opaque_value) and
// takes its type identity from add_channel or from the first dialer, so a
// dialer of another type is refused with zchan::type_mismatch as by any home.
// Close, range, capacity, rendezvous and the reliability rules are those of
// any served channel: the hub serves an ordinary zchan::channel of opaque
// values through the same server code.
//
//   zchan::hub h("tcp://*:5555");
//   h.add_channel("jobs", 64);                       // or let the first dialer create it
//
//   // any process:
//   zchan::net_options o; o.create_capacity = 64;     // create it if it is not there yet
//   auto jobs = zchan::dial<std::string>("tcp://hub:5555", "jobs", o);
//
// Bounded by default (hub_options): a dialer creates a channel only within
// the per-channel capacity limit, the limit on the number of channels created
// on dial and the limit on the sum of their capacities (a buffered channel
// preallocates its slots, about 40 bytes each); past a limit the HELLO is
// refused with a text naming the limit, and server_stats::refused_dials
// counts it. A channel created on dial that is empty (closed or not) and has
// had no session for hub_options::idle_timeout is removed; the next dialer
// that gives a capacity creates it afresh. Channels from add_channel are
// neither limited nor removed.
//
// Every zchan::server (a hub included) also answers the reserved channel
// "$stat" (server_stats below): zchan::stats(endpoint) lists the served
// channels with their counters. `zchan hub`, `zchan stat` (tools/zchan) are
// the command-line front ends.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "zchan/net.hpp"

namespace zchan {

/// One served channel as seen by zchan::stats() (protocol.md §17.2). The
/// counters are the server's, since it started serving the channel: remote
/// operations only (the home's own local sends and receives are not counted).
struct channel_stats {
    std::string name;
    std::string type;  ///< type identity; empty: a hub channel nobody has dialed yet
    std::uint64_t len = 0;
    std::uint64_t cap = 0;
    bool closed = false;
    std::uint32_t sessions = 0;    ///< dialed handles attached now
    std::uint32_t senders = 0;     ///< of those, the ones that have sent (or watched a send)
    std::uint32_t receivers = 0;   ///< of those, the ones that have asked for a value
    std::uint64_t values_in = 0;   ///< remote sends accepted (SEND_OK)
    std::uint64_t values_out = 0;  ///< deliveries to remote receivers (VALUE/VALUES entries)
    std::uint64_t returned = 0;    ///< deliveries given back (RETURN)
    std::uint64_t errors = 0;      ///< ERROR answers: refused dials, undecodable values, ...

    template <class Archive>
    void serialize(Archive& ar) {
        ar(name, type, len, cap, closed, sessions, senders, receivers, values_in, values_out,
           returned, errors);
    }
};

/// A server's answer on "$stat" (protocol.md §17.2).
struct server_stats {
    static constexpr const char* zchan_type_name = "zchan.stats/2";
    std::string endpoint;
    std::uint64_t sessions = 0;           ///< every live session (the "$stat" ones included)
    std::uint64_t malformed_frames = 0;   ///< protocol.md §11.1
    std::vector<channel_stats> channels;  ///< sorted by name; "$..." names are not listed
    /// HELLOs refused because their channel does not exist and was not
    /// created: no capacity given, creation off, or a hub limit reached.
    std::uint64_t refused_dials = 0;

    template <class Archive>
    void serialize(Archive& ar) {
        ar(endpoint, sessions, malformed_frames, channels, refused_dials);
    }
};

/// The reserved channel name a server answers introspection on (protocol.md §17.2).
inline constexpr const char* stats_channel = "$stat";

/// Dials `endpoint`'s "$stat" channel and returns one snapshot.
/// Throws: connect_error, peer_lost (as zchan::dial and recv).
/// Example: for (auto& c : zchan::stats(ep).channels) std::cout << c.name << '\n';
[[nodiscard]] server_stats stats(const std::string& endpoint, const net_options& opts = {});

/// Hub settings. The limits bound what dialers can make a hub allocate
/// (see the top of this file); add_channel is not limited.
struct hub_options {
    net_options net;
    /// Largest capacity a dialer may create a channel with (a buffered
    /// channel preallocates its slots, ~40 bytes each: 65536 is ~2.6 MB).
    std::uint64_t max_create_capacity = 1u << 16;
    /// Most channels created on dial that exist at once.
    std::size_t max_channels = 1024;
    /// Largest sum of the capacities of the channels created on dial
    /// (2^20 slots: ~41 MB of slots).
    std::uint64_t max_total_capacity = 1u << 20;
    /// A channel created on dial that is empty and has had no session for
    /// this long is removed (0: never).
    std::chrono::milliseconds idle_timeout{60'000};
    /// false: only channels added with add_channel exist.
    bool create_on_dial = true;
};

/// A server for channels of opaque values (see the top of this file).
///
/// Destroying the hub ends every session (peers see peer_lost) and drops
/// the values its channels hold.
///
/// Thread safety: add_channel and the accessors are safe from any thread.
///
/// Example:
///   zchan::hub h("tcp://127.0.0.1:*");
///   h.add_channel("jobs", 64, "string");
///   std::cout << h.endpoint() << '\n';
class hub {
public:
    /// Binds `endpoint`. Throws: transport_error if it cannot be bound.
    explicit hub(const std::string& endpoint, const hub_options& opts = {});
    ~hub();
    hub(const hub&) = delete;
    hub& operator=(const hub&) = delete;

    /// Creates the channel `name` with `capacity` (0: unbuffered). `type`:
    /// the type identity dialers must present (e.g. "string", "i32",
    /// protocol.md §7.4); empty: the first dialer's.
    /// Throws: std::invalid_argument if the name is taken or invalid.
    void add_channel(const std::string& name, std::uint64_t capacity, const std::string& type = {});

    /// The bound address, with the port filled in for "tcp://host:*".
    [[nodiscard]] std::string endpoint() const;
    /// Number of live sessions.
    [[nodiscard]] std::size_t sessions() const noexcept;
    /// Channels created on dial that exist now, and the sum of their capacities.
    [[nodiscard]] std::size_t created_channels() const noexcept;
    [[nodiscard]] std::uint64_t created_capacity() const noexcept;

    struct budget;  // hub.cpp

private:
    hub_options opts_;
    std::shared_ptr<budget> budget_;
    server srv_;
};

}  // namespace zchan

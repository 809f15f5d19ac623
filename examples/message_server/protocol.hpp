// The values the message_server processes exchange (message_server.hpp explains who is the
// home of which channel, and why). Any struct with a
// cereal serialize function can cross a process boundary; zchan_type_name is the identity
// both ends compare at dial, so a client built from another version of this header fails at
// dial (zchan::type_mismatch) instead of misreading values.
//
//   channel    home     carries        direction
//   join       server   join_request   client -> server, once per client
//   welcome    client   std::string    server -> client, once: the name of the client's inbox
//   commands   client   command        client -> server (the server dials it with prefetch)
//   inbox/<n>  server   event          server -> client (the client dials it with prefetch)
#pragma once

#include <cstdint>
#include <string>

namespace message_server {

/// A client asks to join: the server dials `endpoint` for the client's "commands" and
/// "welcome" channels. `name` is how the server and other clients know it.
struct join_request {
    static constexpr const char* zchan_type_name = "zchan.examples.message_server.join/1";
    std::string name;
    std::string endpoint;

    template <class Archive>
    void serialize(Archive& ar) {
        ar(name, endpoint);
    }
};

enum class command_kind : std::uint8_t { subscribe, unsubscribe, publish };

/// What a client asks the dispatcher to do. Commands of one client are handled in the order
/// it sent them (one channel, one dispatcher), so a subscribe followed by a publish needs no
/// acknowledgement in between.
struct command {
    static constexpr const char* zchan_type_name = "zchan.examples.message_server.command/1";
    command_kind kind = command_kind::publish;
    std::string topic;
    std::string body;  ///< publish only

    template <class Archive>
    void serialize(Archive& ar) {
        ar(kind, topic, body);
    }
};

enum class event_kind : std::uint8_t { message, subscribed, unsubscribed };

/// What the dispatcher sends to a client's inbox: a message published to one of its topics,
/// or the confirmation that a subscribe / unsubscribe took effect (every message published
/// to the topic after the confirmation was sent reaches the client, and none before it did).
struct event {
    static constexpr const char* zchan_type_name = "zchan.examples.message_server.event/1";
    event_kind kind = event_kind::message;
    std::string topic;
    std::string from;  ///< message only: the publisher's name, as the server knows it
    std::string body;  ///< message only

    template <class Archive>
    void serialize(Archive& ar) {
        ar(kind, topic, from, body);
    }
};

}  // namespace message_server

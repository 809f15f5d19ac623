// A client's end of the message server (message_server.hpp explains the layout): it is home
// of its "commands" and "welcome" channels, joins through the server's "join" channel, and
// receives its events from the inbox the server serves for it. examples/message_server/
// client.cpp uses it, and so does the benchmark client in bench/net_message_server.hpp.
//
// In Go terms:
//
//     commands := make(chan command, 1024); welcome := make(chan string, 1)
//     serve("commands", commands); serve("welcome", welcome)
//     dial(server, "join") <- join_request{name, myEndpoint}
//     inbox := dial(server, <-welcome)
//     commands <- command{subscribe, "news", ""}          // subscribe / publish: local sends
//     for ev := range inbox { ... }                      // ends once the server closed it
//     close(commands)                                    // leave
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include <zchan/zchan.hpp>
#include "protocol.hpp"

namespace message_server {

/// One client's connection to a message server.
///
/// Thread safety: subscribe/unsubscribe/publish/leave and inbox() are safe from any thread
/// (they are channel operations); commands sent from one thread are handled in the order sent.
/// Example:
///   message_server::client c("tcp://127.0.0.1:40123", "alice", {});
///   c.subscribe("news");
///   c.publish("news", "hello");
///   for (auto&& ev : c.inbox()) { ... }  // after leave(), until the server closed the inbox
class client {
public:
    struct options {
        /// Where this client serves its own channels; the server must be able to reach it.
        std::string bind = "tcp://127.0.0.1:*";
        /// Commands the server has not read yet before publish() blocks.
        std::size_t commands_capacity = 1024;
        /// Prefetch window of the inbox handle (protocol.md §9.2).
        std::uint32_t inbox_prefetch = 1024;
        /// For dialing the server and for its welcome.
        std::chrono::milliseconds connect_timeout{10000};
        /// The server silent this long is lost (protocol.md §12.1).
        std::chrono::milliseconds heartbeat_timeout{3000};
    };

    /// Serves this client's channels, joins and waits for the welcome.
    /// Throws: zchan::transport_error (connect_error if the server does not answer),
    /// std::runtime_error if the welcome does not come within connect_timeout.
    client(const std::string& server_endpoint, const std::string& name, const options& opt)
        : commands_(opt.commands_capacity), welcome_(1), srv_(opt.bind, net_options(opt)) {
        srv_.serve("commands", commands_);
        srv_.serve("welcome", welcome_);
        zchan::net_options net = net_options(opt);
        {
            auto join = zchan::dial<join_request>(server_endpoint, "join", net);
            if (join.send_for(join_request{name, srv_.endpoint()}, opt.connect_timeout) !=
                zchan::send_status::ok) {
                throw std::runtime_error("the server did not take the join request");
            }
        }
        auto w = welcome_.recv_for(opt.connect_timeout);
        if (!w) throw std::runtime_error("no welcome from the server");
        inbox_name_ = std::move(*w);
        net.prefetch = opt.inbox_prefetch;
        inbox_ = zchan::dial<event>(server_endpoint, inbox_name_, net);
    }

    client(const client&) = delete;
    client& operator=(const client&) = delete;

    /// Leaves if leave() was not called. Does not wait for the inbox to close: a client that
    /// wants every command handled ranges over inbox() after leave() before destroying this.
    ~client() { leave(); }

    /// Local sends into this client's commands channel: they return once the command is in
    /// its buffer. Throw zchan::channel_closed after leave().
    void subscribe(std::string topic) const {
        commands_.send(command{command_kind::subscribe, std::move(topic), {}});
    }
    void unsubscribe(std::string topic) const {
        commands_.send(command{command_kind::unsubscribe, std::move(topic), {}});
    }
    void publish(std::string topic, std::string body) const {
        commands_.send(command{command_kind::publish, std::move(topic), std::move(body)});
    }

    /// Closes the commands channel: the server handles what was sent before, then closes the
    /// inbox. Idempotent.
    void leave() const {
        try {
            commands_.close();
        } catch (const zchan::channel_closed&) {
        }
    }

    /// After leave() and the end of inbox(): waits, up to `timeout`, until the server's side
    /// has let go of this client's channels (its reader saw the commands channel closed), so
    /// that exiting now cannot make the server see this client as lost. zchan has no
    /// notification for "no sessions left", hence the bounded polling. False on timeout.
    bool wait_released(std::chrono::milliseconds timeout) const {
        const auto until = std::chrono::steady_clock::now() + timeout;
        while (srv_.sessions() > 0) {
            if (std::chrono::steady_clock::now() >= until) return false;
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        return true;
    }

    /// The events the server sends this client; closed (range ends) after leave() once every
    /// command was handled, or when the server shuts down.
    [[nodiscard]] const zchan::channel<event>& inbox() const { return inbox_; }
    [[nodiscard]] const std::string& inbox_name() const { return inbox_name_; }
    /// Where this client serves its channels.
    [[nodiscard]] std::string endpoint() const { return srv_.endpoint(); }

private:
    static zchan::net_options net_options(const options& opt) {
        zchan::net_options net;
        net.connect_timeout = opt.connect_timeout;
        net.heartbeat_timeout = opt.heartbeat_timeout;
        return net;
    }

    zchan::channel<command> commands_;
    zchan::channel<std::string> welcome_;
    zchan::server srv_;  // after the channels it serves: destroyed before them
    std::string inbox_name_;
    zchan::channel<event> inbox_ = zchan::channel<event>::nil();
};

}  // namespace message_server

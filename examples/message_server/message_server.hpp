// The seed article's message server (a Python programmer's first Go program: clients subscribe
// to named topics and publish messages; a dispatcher goroutine owns the subscription table and
// every other part of the program talks to it over channels), on zchan channels with the
// clients in other processes. examples/message_server/server.cpp runs it; bench/
// net_message_server.hpp runs the same class in zchan_bench_net.
//
// Threads and channels of the server process, in Go terms:
//
//     commands := make(chan dispatch, 1024)       // the dispatcher's only input
//     go dispatcher(commands)                     // owns clients and topics; nobody else does
//     for j := range join {                       // the acceptor (one thread)
//         inbox := make(chan event, 1024); serve("inbox/<n>", inbox)
//         cmds := dial(j.endpoint, "commands")    // the client's command stream
//         commands <- attach{n, j.name, inbox, cmds}
//         go func() {                             // one reader per client
//             for c := range cmds { commands <- from{n, c} }
//             commands <- detach{n}
//         }()
//         dial(j.endpoint, "welcome") <- "inbox/<n>"
//     }
//
// Which process is the home of which channel, and why. Exact Go semantics across processes
// cost one round trip per remote *send* (SEND -> SEND_OK: the home must say it accepted the
// value), while a remote *receiver* that dials with net_options::prefetch has values streamed
// to it without a round trip each (docs/protocol.md §9.2). So every stream here flows from
// its home to a prefetching dialer:
//   - a client's commands: the client is home of its "commands" channel and publishes with a
//     local send (no round trip; it blocks only when 1024 commands are unread); the server's
//     reader dials it with a prefetch window;
//   - a client's deliveries: the server is home of the client's inbox, the dispatcher's send
//     is local (try_send: a full inbox never stalls the dispatcher), and the client dials the
//     inbox with a prefetch window.
// Had the server been home of one shared command channel (the obvious layout), each publish
// would be a round trip, and a client could never have more than one command in flight per
// thread: 100 in flight would need 100 threads. The price of this layout: each client runs a
// zchan::server and must be reachable from the server (join_request::endpoint), and the
// server needs a third channel, "welcome", to tell the client which inbox to dial (it is
// served only once the join is handled).
//
// Slow and lost clients. The dispatcher never blocks on a client: a delivery to a full inbox
// is dropped and counted (as the raw cppzmq twin in bench/net_raw.hpp does with a full pipe).
// A client whose process dies is noticed by its reader (zchan::peer_lost within the heartbeat
// timeout), which detaches it like a client that left.
//
// Ending. A client leaves by closing its commands channel: its reader drains what is left,
// then detaches it, and the dispatcher closes its inbox; the client's range over the inbox
// ends, and only then may it exit (its commands channel lives in its process). The server
// ends after max_clients clients have left, or on shutdown(): it stops accepting, closes every
// inbox so that clients leave, and ends once all have (after `grace`, it closes the remaining
// command channels itself, from its side).
//
// Not here (zchan has no API for it): zchan::server cannot stop serving a name, so a left
// client's inbox stays served (closed, empty) until the server ends.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <zchan/zchan.hpp>
#include "protocol.hpp"

namespace message_server {

/// The seed's message server: binds `endpoint`, serves "join", and runs the acceptor and the
/// dispatcher threads until it ends (see the file comment).
///
/// Thread safety: shutdown(), endpoint() and the counters are safe from any thread; wait() is
/// for one thread. The destructor shuts down and waits.
/// Example:
///   message_server::server srv("tcp://127.0.0.1:*", {});
///   std::cout << srv.endpoint() << '\n';
///   srv.wait();  // until shutdown() or max_clients have left
class server {
public:
    struct options {
        std::size_t inbox_capacity = 1024;
        /// Prefetch window of the server's handle on each client's commands (protocol.md §9.2).
        std::uint32_t command_prefetch = 1024;
        /// End after this many clients have left; 0: only on shutdown().
        long max_clients = 0;
        /// After shutdown, how long clients get to leave before their commands are closed.
        std::chrono::milliseconds grace{5000};
        /// How long the acceptor waits for a joining client (dial, welcome).
        std::chrono::milliseconds connect_timeout{5000};
        /// A client (or its reader's session) silent this long is lost (protocol.md §12.1).
        std::chrono::milliseconds heartbeat_timeout{3000};
        /// Receives one line per event worth logging (joins, subscriptions, leaves, drops);
        /// never per message. Called from the dispatcher and acceptor threads.
        std::function<void(const std::string&)> log;
    };

    /// Throws: zchan::transport_error if `endpoint` cannot be bound.
    server(const std::string& endpoint, options opt)
        : opt_(std::move(opt)), join_(16), commands_(1024), srv_(endpoint, net_options()) {
        srv_.serve("join", join_);
        dispatcher_ = std::thread([this] { dispatch(); });
        acceptor_ = std::thread([this] { accept(); });
    }

    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // NOLINTNEXTLINE(bugprone-exception-escape): shutdown() cannot throw (see there)
    ~server() {
        shutdown();
        wait();
    }

    [[nodiscard]] std::string endpoint() const { return srv_.endpoint(); }

    /// Stops accepting and asks every client to leave (their inboxes close). Idempotent.
    void shutdown() {
        // commands_ is never closed, so this send cannot throw; it waits only while the
        // dispatcher has 1024 commands to catch up with.
        commands_.send(signal_cmd(dispatch_kind::stop));
    }

    /// Blocks until the server has ended (max_clients have left, or shutdown() and every
    /// client gone), then joins its threads.
    void wait() {
        if (dispatcher_.joinable()) dispatcher_.join();
        if (acceptor_.joinable()) acceptor_.join();
        for (auto& r : readers_) r.join();  // each has sent its detach, which the dispatcher got
        readers_.clear();
        // A client learns that it may exit from its inbox being closed (CLOSED answers its
        // handle's pending RECVs; a handle with none asks again later). Exiting before every
        // client had that answer would turn a clean leave into peer_lost for it, so wait, up
        // to `grace`, until every client's handle on this server is gone. zchan has no
        // notification for "no sessions left", hence the bounded polling.
        const auto until = std::chrono::steady_clock::now() + opt_.grace;
        while (srv_.sessions() > 0 && std::chrono::steady_clock::now() < until) {
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    }

    /// Deliveries dropped because an inbox was full.
    [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_.load(); }

private:
    enum class dispatch_kind : std::uint8_t { attach, from_client, detach, stop, acceptor_done };

    /// The dispatcher's input: one channel, several kinds (a Go select over typed channels
    /// would do too; one channel keeps every client's commands in one order).
    struct dispatch_cmd {
        dispatch_kind kind = dispatch_kind::stop;
        std::uint64_t client = 0;
        command cmd;                                                    // from_client
        std::string name;                                               // attach; detach: why
        zchan::channel<event> inbox = zchan::channel<event>::nil();     // attach
        zchan::channel<command> from = zchan::channel<command>::nil();  // attach
    };

    static dispatch_cmd signal_cmd(dispatch_kind k) {
        dispatch_cmd d;
        d.kind = k;
        return d;
    }

    struct client_entry {
        std::string name;
        zchan::channel<event> inbox;
        zchan::channel<command> commands;  // the dialed handle, to close it at a forced end
        std::set<std::string> topics;
    };

    [[nodiscard]] zchan::net_options net_options() const {
        zchan::net_options net;
        net.connect_timeout = opt_.connect_timeout;
        net.heartbeat_timeout = opt_.heartbeat_timeout;
        return net;
    }

    void log(const std::string& line) const {
        if (opt_.log) opt_.log(line);
    }

    // ---- dispatcher thread: the only code that touches clients_ and topics_ ----------------

    void dispatch() {
        bool stopping = false;
        bool acceptor_done = false;
        bool forced = false;
        long left = 0;
        auto force_at = std::chrono::steady_clock::time_point::max();
        const auto begin_stop = [&] {
            if (stopping) return;
            stopping = true;
            try {
                join_.close();  // the acceptor's range ends once it has drained it
            } catch (const zchan::channel_closed&) {
            }
            for (auto& [id, c] : clients_) close_inbox(c);
            force_at = std::chrono::steady_clock::now() + opt_.grace;
        };
        for (;;) {
            if (stopping && acceptor_done && clients_.empty()) return;
            auto r = commands_.recv_until(stopping ? force_at
                                                   : std::chrono::steady_clock::time_point::max());
            if (r.status == zchan::recv_status::timeout) {
                if (!forced) {
                    forced = true;
                    log("Closing the commands of " + std::to_string(clients_.size()) +
                        " client(s) that did not leave");
                    for (auto& [id, c] : clients_) close_quietly(c.commands);
                }
                force_at = std::chrono::steady_clock::time_point::max();
                continue;
            }
            if (!r) return;  // not reached: commands_ is never closed
            dispatch_cmd& d = *r;
            switch (d.kind) {
                case dispatch_kind::attach: {
                    auto& c = clients_[d.client];
                    c = client_entry{std::move(d.name), std::move(d.inbox), std::move(d.from), {}};
                    log(c.name + " joined (client " + std::to_string(d.client) + ")");
                    if (stopping) close_inbox(c);
                    break;
                }
                case dispatch_kind::from_client:
                    handle(d.client, std::move(d.cmd));
                    break;
                case dispatch_kind::detach: {
                    const auto it = clients_.find(d.client);
                    if (it == clients_.end()) break;
                    for (const auto& t : it->second.topics) unsubscribe(d.client, t);
                    close_inbox(it->second);
                    log(it->second.name + " " + d.name);
                    clients_.erase(it);
                    if (opt_.max_clients > 0 && ++left >= opt_.max_clients) begin_stop();
                    break;
                }
                case dispatch_kind::stop:
                    begin_stop();
                    break;
                case dispatch_kind::acceptor_done:
                    acceptor_done = true;
                    break;
            }
        }
    }

    void handle(std::uint64_t id, command cmd) {
        const auto it = clients_.find(id);
        if (it == clients_.end()) return;
        client_entry& c = it->second;
        switch (cmd.kind) {
            case command_kind::subscribe: {
                auto& subs = topics_[cmd.topic];
                if (std::find(subs.begin(), subs.end(), id) == subs.end()) subs.push_back(id);
                c.topics.insert(cmd.topic);
                log(c.name + " subscribed to " + cmd.topic);
                deliver(c, event{event_kind::subscribed, std::move(cmd.topic), {}, {}});
                break;
            }
            case command_kind::unsubscribe:
                unsubscribe(id, cmd.topic);
                c.topics.erase(cmd.topic);
                log(c.name + " unsubscribed from " + cmd.topic);
                deliver(c, event{event_kind::unsubscribed, std::move(cmd.topic), {}, {}});
                break;
            case command_kind::publish: {
                const auto t = topics_.find(cmd.topic);
                if (t == topics_.end()) break;
                const std::vector<std::uint64_t>& subs = t->second;
                for (std::size_t i = 0; i < subs.size(); ++i) {
                    const auto s = clients_.find(subs[i]);
                    if (s == clients_.end()) continue;
                    if (i + 1 == subs.size()) {  // the last subscriber takes the strings
                        deliver(s->second, event{event_kind::message, std::move(cmd.topic), c.name,
                                                 std::move(cmd.body)});
                    } else {
                        deliver(s->second, event{event_kind::message, cmd.topic, c.name, cmd.body});
                    }
                }
                break;
            }
            default:
                log(c.name + " sent an unknown command; ignored");
        }
    }

    void unsubscribe(std::uint64_t id, const std::string& topic) {
        const auto t = topics_.find(topic);
        if (t == topics_.end()) return;
        std::erase(t->second, id);
        if (t->second.empty()) topics_.erase(t);
    }

    /// Never blocks: a full inbox loses the event (counted), a closed one ignores it.
    void deliver(client_entry& c, event ev) {
        if (c.inbox.is_nil()) return;
        if (c.inbox.try_send(std::move(ev)) == zchan::send_status::full) {
            const auto n = ++dropped_;
            if ((n & (n - 1)) == 0) {  // 1, 2, 4, 8, ...: a log line, not a flood
                log("Dropped a delivery to " + c.name + " (inbox full; " + std::to_string(n) +
                    " dropped in all)");
            }
        }
    }

    static void close_inbox(client_entry& c) {
        close_quietly(c.inbox);
        c.inbox = zchan::channel<event>::nil();  // later deliveries are skipped
    }

    template <class T>
    static void close_quietly(const zchan::channel<T>& ch) {
        if (ch.is_nil()) return;
        try {
            ch.close();
        } catch (const zchan::channel_closed&) {
        } catch (const zchan::transport_error&) {  // a remote handle whose client is gone
        }
    }

    // ---- acceptor thread --------------------------------------------------------------------

    void accept() {
        std::uint64_t next_id = 0;
        const zchan::net_options net = net_options();
        zchan::net_options prefetch = net;
        prefetch.prefetch = opt_.command_prefetch;
        for (join_request& j : join_) {  // ends once begin_stop() closed join_ and it is drained
            const std::uint64_t id = ++next_id;
            const std::string inbox_name = "inbox/" + std::to_string(id);
            try {
                auto from = zchan::dial<command>(j.endpoint, "commands", prefetch);
                auto welcome = zchan::dial<std::string>(j.endpoint, "welcome", net);
                zchan::channel<event> inbox(opt_.inbox_capacity);
                srv_.serve(inbox_name, inbox);
                // attach goes into commands_ before the reader's first command can.
                commands_.send(dispatch_cmd{dispatch_kind::attach, id, {}, j.name, inbox, from});
                readers_.emplace_back([this, id, from] { read(id, from); });
                if (welcome.send_for(inbox_name, opt_.connect_timeout) != zchan::send_status::ok) {
                    log(j.name + " did not take its welcome");
                    close_quietly(from);  // its reader then detaches it
                }
            } catch (const std::exception& e) {
                log("Could not accept " + j.name + " at " + j.endpoint + ": " + e.what());
            }
        }
        commands_.send(signal_cmd(dispatch_kind::acceptor_done));
    }

    // ---- reader threads, one per client -----------------------------------------------------

    void read(std::uint64_t id, const zchan::channel<command>& from) {
        std::string why = "left";
        try {
            for (command& c : from) {  // for c := range cmds
                commands_.send(dispatch_cmd{dispatch_kind::from_client,
                                            id,
                                            std::move(c),
                                            {},
                                            zchan::channel<event>::nil(),
                                            zchan::channel<command>::nil()});
            }
        } catch (const zchan::peer_lost&) {
            why = "was lost";
        } catch (const std::exception& e) {
            why = std::string("failed: ") + e.what();
        }
        commands_.send(dispatch_cmd{dispatch_kind::detach,
                                    id,
                                    {},
                                    why,
                                    zchan::channel<event>::nil(),
                                    zchan::channel<command>::nil()});
    }

    const options opt_;
    zchan::channel<join_request> join_;
    zchan::channel<dispatch_cmd> commands_;
    zchan::server srv_;  // after the channels it serves: destroyed before them
    // Dispatcher thread only.
    std::unordered_map<std::uint64_t, client_entry> clients_;
    std::unordered_map<std::string, std::vector<std::uint64_t>> topics_;  // in subscribe order
    std::atomic<std::uint64_t> dropped_{0};
    // Acceptor thread only, then wait() once the acceptor has been joined.
    std::vector<std::thread> readers_;
    std::thread dispatcher_;
    std::thread acceptor_;
};

}  // namespace message_server

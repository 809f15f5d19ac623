// message_server client: joins a message server (examples/message_server/server.cpp),
// subscribes to topics, publishes messages, logs what it receives, and leaves cleanly:
// unsubscribes, closes its commands channel, and exits once the server has closed its inbox
// (by then the server has handled every command it sent). In Go terms:
//
//     for _, t := range subscribe { commands <- command{subscribe, t} }   // wait for each ack
//     for i := 1; i <= count; i++ { commands <- command{publish, topic, body(i)} }
//     for received < expect { ev := <-inbox; log.Println("Received", ...) }
//     for _, t := range subscribe { commands <- command{unsubscribe, t} }
//     close(commands)
//     for ev := range inbox { ... }                                     // until the server closes
//     it
//
// Usage: client ENDPOINT [--name NAME] [--subscribe TOPIC]... [--publish TOPIC] [--count N]
//               [--expect M] [--wait-ms MS] [--bind ADDR] [--connect-timeout-ms MS]
//               [--heartbeat-timeout-ms MS]
//   ENDPOINT     the server's "listening on" address
//   --name       how the server and the other clients know this one (default "client")
//   --subscribe  a topic to subscribe to (repeatable); logs "Subscribed to TOPIC" once the
//                server confirmed it: every message published after that reaches this client
//   --publish    publish --count messages "TOPIC message <i>" (i = 1..N) to TOPIC
//   --expect     leave after receiving M messages (default: 0 with --publish, that is leave
//                once published; else stay until SIGINT/SIGTERM or until the server shuts down)
//   --wait-ms    give up (and leave) if the subscriptions are not confirmed or the expected
//                messages have not all come by then (default 30000)
//   --bind       where this client serves its own channels (default tcp://127.0.0.1:*); the
//                server must be able to reach it
//   --heartbeat-timeout-ms  the server silent this long is lost (default 3000)
// Exit status: 0 left cleanly with every expected message; 1 gave up, lost the server or could
// not join; 2 usage.
#include <chrono>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <zchan/zchan.hpp>
#include "../go_log.hpp"
#include "cli_args/cli_args.hpp"
#include "message_client.hpp"
#include "signals.hpp"

namespace {

using go_log::log_println;
using message_server::event_kind;

struct options {
    std::string endpoint;
    std::string name = "client";
    std::vector<std::string> subscribe;
    std::string publish;
    long count = 0;
    long expect = -2;  // -1: until the inbox closes; -2: not given
    std::chrono::milliseconds wait{30000};
    message_server::client::options net;
};

const zchan_cli::command_spec spec{
    "client",
    "ENDPOINT",
    1,
    1,
    "Joins a message server, subscribes, publishes, logs what it receives, leaves cleanly.",
    {
        {"name", 0, true, false, "NAME", "how the others know this client (default client)"},
        {"subscribe", 0, true, true, "TOPIC", "a topic to subscribe to (repeatable)"},
        {"publish", 0, true, false, "TOPIC", "publish --count messages to TOPIC"},
        {"count", 0, true, false, "N", "messages to publish (needs --publish)"},
        {"expect", 0, true, false, "M", "leave after receiving M messages"},
        {"wait-ms", 0, true, false, "MS", "give up after MS ms (default 30000)"},
        {"bind", 0, true, false, "ADDR",
         "where this client serves its own channels (default tcp://127.0.0.1:*)"},
        {"connect-timeout-ms", 0, true, false, "MS", "how long dial waits for the server"},
        {"heartbeat-timeout-ms", 0, true, false, "MS",
         "the server silent this long is lost; above 1000 (default 3000)"},
    },
    "",
};

options parse(int argc, char** argv) {
    return zchan_cli::parse_or_exit(spec, argc, argv, [](const zchan_cli::args& a) {
        options o;
        o.endpoint = a.positional()[0];
        auto text = [&](const char* name, std::string& out) {
            if (auto v = a.value(name)) {
                if (v->empty()) throw zchan_cli::usage_error(std::string("--") + name + ": empty");
                out = *v;
            }
        };
        text("name", o.name);
        text("publish", o.publish);
        text("bind", o.net.bind);
        for (const auto& t : a.values("subscribe")) {
            if (t.empty()) throw zchan_cli::usage_error("--subscribe: empty");
            o.subscribe.push_back(t);
        }
        o.count = static_cast<long>(a.number("count", 0, LONG_MAX));
        if (a.value("expect")) o.expect = static_cast<long>(a.number("expect", 0, LONG_MAX));
        o.wait = std::chrono::milliseconds(a.number("wait-ms", 30000));
        if (a.value("connect-timeout-ms")) {
            o.net.connect_timeout = std::chrono::milliseconds(a.number("connect-timeout-ms", 0));
        }
        if (a.value("heartbeat-timeout-ms")) {
            const auto ms = a.number("heartbeat-timeout-ms", 0);
            if (ms <= 1000)
                throw zchan_cli::usage_error("--heartbeat-timeout-ms: expected above 1000");
            o.net.heartbeat_timeout = std::chrono::milliseconds(ms);
        }
        if (o.count > 0 && o.publish.empty())
            throw zchan_cli::usage_error("--count needs --publish");
        if (o.expect == -2) o.expect = o.publish.empty() ? -1 : 0;
        return o;
    });
}

}  // namespace

int main(int argc, char** argv) {
    const options opt = parse(argc, argv);
    std::mutex mu;
    const message_server::client* joined = nullptr;  // guarded by mu; set while c exists
    bool signalled = false;                          // guarded by mu
    message_server::signal_watch signals([&](int sig) {
        log_println("Got", sig == SIGINT ? "SIGINT;" : "SIGTERM;", "leaving");
        const std::lock_guard<std::mutex> lock(mu);
        signalled = true;
        if (joined != nullptr) joined->leave();  // our range over the inbox then ends
    });
    try {
        message_server::client c(opt.endpoint, opt.name, opt.net);
        struct unregister {  // before c is destroyed, on every path
            std::mutex& mu;
            const message_server::client*& joined;
            ~unregister() {
                const std::lock_guard<std::mutex> lock(mu);
                joined = nullptr;
            }
        } guard{mu, joined};
        {
            const std::lock_guard<std::mutex> lock(mu);
            joined = &c;
            if (signalled) c.leave();
        }
        log_println("Joined", opt.endpoint, "as", opt.name, "with inbox", c.inbox_name());

        long received = 0;
        std::size_t confirmed = 0;
        bool inbox_closed = false;
        // Receives and logs one event; false once the inbox is closed (we left, or the server
        // shut down) or at the deadline. Throws zchan::peer_lost if the server is gone.
        const auto next_event = [&](std::chrono::steady_clock::time_point deadline) {
            auto r = c.inbox().recv_until(deadline);
            if (r.status == zchan::recv_status::peer_lost) throw zchan::peer_lost();
            if (r.status == zchan::recv_status::closed) inbox_closed = true;
            if (!r) return false;
            switch (r->kind) {
                case event_kind::message:
                    ++received;
                    log_println("Received", r->topic, "from", r->from + ":", r->body);
                    break;
                case event_kind::subscribed:
                    ++confirmed;
                    log_println("Subscribed to", r->topic);
                    break;
                case event_kind::unsubscribed:
                    log_println("Unsubscribed from", r->topic);
                    break;
            }
            return true;
        };

        const auto deadline = std::chrono::steady_clock::now() + opt.wait;
        bool ok = true;
        try {
            for (const auto& t : opt.subscribe) c.subscribe(t);
            while (ok && confirmed < opt.subscribe.size()) ok = next_event(deadline);
            for (long i = 1; ok && i <= opt.count; i++) {
                c.publish(opt.publish, opt.publish + " message " + std::to_string(i));
            }
            if (ok && opt.count > 0)
                log_println("Published", opt.count, "messages to", opt.publish);
            // Without --expect: until a signal makes us leave or the server shuts down.
            const auto until =
                opt.expect < 0 ? std::chrono::steady_clock::time_point::max() : deadline;
            while (ok && (opt.expect < 0 || received < opt.expect)) ok = next_event(until);
            for (const auto& t : opt.subscribe) c.unsubscribe(t);
        } catch (const zchan::channel_closed&) {
            // a signal made us leave while we were sending
        }
        if (!ok && !inbox_closed) {
            log_println("Gave up: received", received, "of", opt.expect, "messages");
        }
        c.leave();
        // The server closes the inbox once it has handled every command we sent; only then
        // may this process (the home of the commands channel) exit.
        const auto drain_deadline = std::chrono::steady_clock::now() + opt.net.connect_timeout;
        while (!inbox_closed && next_event(drain_deadline)) {
        }
        if (!inbox_closed) {
            log_println("The server did not close our inbox in time");
            return 1;
        }
        if (!c.wait_released(opt.net.connect_timeout)) {
            log_println("The server did not let go of our commands channel in time");
            return 1;
        }
        log_println("Left after receiving", received, "messages");
        return opt.expect < 0 || received == opt.expect ? 0 : 1;
    } catch (const zchan::peer_lost& e) {
        log_println("Lost the server:", e.what());
    } catch (const std::exception& e) {
        log_println("error:", e.what());
    }
    return 1;
}

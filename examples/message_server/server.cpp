// message_server server: the seed article's message server (a dispatcher that owns the
// subscription table; clients subscribe to topics and publish messages), with its clients in
// other processes (examples/message_server/client.cpp). message_server.hpp has the design:
// who is home of which channel, and why.
//
// Usage: server [ENDPOINT] [--clients N] [--grace-ms MS] [--heartbeat-timeout-ms MS]
//   ENDPOINT    where to serve (default tcp://127.0.0.1:*); printed as "listening on ..."
//   --clients   end after N clients have joined and left (default 0: run until a signal)
//   --grace-ms  after SIGINT/SIGTERM, how long clients get to leave before the server closes
//               their commands itself (default 5000)
//   --heartbeat-timeout-ms  a client silent this long is lost (default 3000)
// SIGINT or SIGTERM: stop accepting, close every client's inbox, wait for them to leave, exit.
// Exit status: 0 clean end, 1 could not serve, 2 usage.
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <mutex>
#include <string>
#include <string_view>

#include <zchan/zchan.hpp>

#include "../go_log.hpp"
#include "message_server.hpp"
#include "signals.hpp"

namespace {

using go_log::log_println;

[[noreturn]] void usage(const char* argv0) {
    std::cerr << "usage: " << argv0
              << " [ENDPOINT] [--clients N] [--grace-ms MS] [--heartbeat-timeout-ms MS]\n";
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    std::string endpoint = "tcp://127.0.0.1:*";
    message_server::server::options opt;
    bool have_endpoint = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (!arg.starts_with("--")) {
            if (have_endpoint) usage(argv[0]);
            endpoint = arg;
            have_endpoint = true;
            continue;
        }
        long v = 0;
        if (i + 1 >= argc || !go_log::parse_count(argv[++i], v)) usage(argv[0]);
        if (arg == "--clients") {
            opt.max_clients = v;
        } else if (arg == "--grace-ms") {
            opt.grace = std::chrono::milliseconds(v);
        } else if (arg == "--heartbeat-timeout-ms" && v > 1000) {  // > the 1 s heartbeat
            opt.heartbeat_timeout = std::chrono::milliseconds(v);
        } else {
            usage(argv[0]);
        }
    }
    opt.log = [](const std::string& line) { log_println(line); };

    std::mutex running_mu;
    message_server::server* running = nullptr;  // guarded by running_mu; set while srv exists
    bool signalled = false;                     // guarded by running_mu
    message_server::signal_watch signals([&](int sig) {
        log_println("Got", sig == SIGINT ? "SIGINT;" : "SIGTERM;", "shutting down");
        const std::lock_guard<std::mutex> lock(running_mu);
        signalled = true;
        if (running != nullptr) running->shutdown();
    });
    try {
        message_server::server srv(endpoint, opt);
        {
            const std::lock_guard<std::mutex> lock(running_mu);
            running = &srv;
            if (signalled) srv.shutdown();  // the signal came before the server existed
        }
        log_println("listening on", srv.endpoint());
        srv.wait();
        {
            const std::lock_guard<std::mutex> lock(running_mu);
            running = nullptr;
        }
        log_println("All clients gone;", srv.dropped(), "deliveries dropped; exiting");
        return 0;
    } catch (const std::exception& e) {
        log_println("error:", e.what());
        return 1;
    }
}

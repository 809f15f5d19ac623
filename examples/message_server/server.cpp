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
#include <climits>
#include <csignal>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <mutex>
#include <string>
#include <string_view>

#include <zchan/zchan.hpp>
#include "../go_log.hpp"
#include "cli_args/cli_args.hpp"
#include "message_server.hpp"
#include "signals.hpp"

namespace {

using go_log::log_println;

const zchan_cli::command_spec spec{
    "server",
    "[ENDPOINT]",
    0,
    1,
    "The seed article's message server: clients subscribe to topics and publish messages.",
    {
        {"clients", 0, true, false, "N",
         "end after N clients have joined and left (default 0: run until a signal)"},
        {"grace-ms", 0, true, false, "MS",
         "after SIGINT/SIGTERM, how long clients get to leave (default 5000)"},
        {"heartbeat-timeout-ms", 0, true, false, "MS",
         "a client silent this long is lost; above 1000 (default 3000)"},
    },
    "",
};

}  // namespace

int main(int argc, char** argv) {
    std::string endpoint = "tcp://127.0.0.1:*";
    message_server::server::options opt;
    zchan_cli::parse_or_exit(spec, argc, argv, [&](const zchan_cli::args& a) {
        if (!a.positional().empty()) endpoint = a.positional()[0];
        opt.max_clients = static_cast<long>(a.number("clients", 0, LONG_MAX));
        opt.grace = std::chrono::milliseconds(a.number("grace-ms", 5000));
        if (a.value("heartbeat-timeout-ms")) {
            const auto ms = a.number("heartbeat-timeout-ms", 0);
            if (ms <= 1000)
                throw zchan_cli::usage_error("--heartbeat-timeout-ms: expected above 1000");
            opt.heartbeat_timeout = std::chrono::milliseconds(ms);
        }
        return 0;
    });
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

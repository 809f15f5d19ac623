// zchan_bench_net's message server cases: the seed article's benchmark (one client rapid-fires
// 150-byte messages that flow through the server's dispatcher and come back to it) through
// examples/message_server, next to the raw cppzmq server of raw::seed_server (net_raw.hpp).
//
// Cases (parent = the benchmark process, which times; child = a peer process, net_harness.hpp):
//   message_server(size, w)  The child runs examples/message_server's server (the same class
//                           as the example's server program: acceptor, one dispatcher thread
//                           owning the subscription table, one reader per client). The parent
//                           is the benchmark client, a message_server::client exactly as the
//                           example's client program uses it: it joins, subscribes to its own
//                           topic (and waits for the confirmation, before the clock starts),
//                           and publishes `size`-byte payloads to that topic, each coming back
//                           through the dispatcher into its inbox. Timed and counted as
//                           raw::seed_server: w = 1, one in flight, one iteration = one
//                           message; w > 1, batches of raw::seed_batch_items with at most w in
//                           flight; items = messages that came back, each checked for its
//                           sequence number (one dispatcher, one stream each way: in order).
//
// The message server's layout (message_server.hpp explains it) makes both directions streams:
// a publish is a local send into the client's own commands channel, which the server's reader
// has dialed with a prefetch window; the dispatcher's delivery is a local try_send into the
// client's inbox, which the client has dialed with a prefetch window. No operation on the
// measured path waits for a round trip of its own.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <zchan/zchan.hpp>
#include "../examples/message_server/message_client.hpp"
#include "../examples/message_server/message_server.hpp"
#include "net_harness.hpp"
#include "net_raw.hpp"
#include "net_zchan.hpp"

namespace zchan_bench::ms {

// ---- child role -----------------------------------------------------------------------------

/// --bind=<address>: examples/message_server's server, until EOF on stdin.
inline int message_server_main(const child_args& args) {
    message_server::server::options opt;
    opt.grace = std::chrono::milliseconds(1000);  // within child_process's exit_grace
    opt.log = [](const std::string& line) {
        // Drops only: joins and leaves are expected; a drop means the case lost messages.
        if (line.rfind("Dropped", 0) == 0)
            std::fprintf(stderr, "message server: %s\n", line.c_str());
    };
    message_server::server srv(args.str("bind"), opt);
    control_pipe::reply("ready " + srv.endpoint());
    control_pipe ctl;
    while (ctl.next_command()) {
    }
    srv.shutdown();
    srv.wait();
    return 0;
}

inline void add_child_roles(std::vector<child_role>& roles) {
    roles.push_back({"zchan_message_server", &message_server_main});
}

// ---- case (parent side) ---------------------------------------------------------------------

inline void message_server_case(benchmark::State& state, std::size_t size, std::int64_t window) {
    run_case(state, [&] {
        child_process server("zchan_message_server", {"--bind=tcp://127.0.0.1:*"});
        const std::string endpoint = server.expect("ready");
        message_server::client::options opt;
        opt.connect_timeout = io_timeout;
        message_server::client client(endpoint, "bench", opt);
        const std::string topic = "bench/" + std::to_string(::getpid());

        const auto next_event = [&]() -> message_server::event {
            auto r = client.inbox().recv_for(io_timeout);
            if (!r) {
                throw bench_error(std::string("no delivery (recv status ") +
                                  zchan::to_string(r.status) + ")");
            }
            return std::move(*r);
        };
        client.subscribe(topic);
        if (next_event().kind != message_server::event_kind::subscribed) {
            throw bench_error("no subscribe confirmation");
        }

        const auto publish = [&](std::uint64_t seq) {
            client.publish(topic, zc::make_value(size, seq));
        };
        const auto receive = [&](std::uint64_t seq) {
            message_server::event ev = next_event();
            if (ev.kind != message_server::event_kind::message || ev.topic != topic) {
                throw bench_error("malformed delivery");
            }
            zc::check_value(ev.body, size, seq);
        };

        std::uint64_t seq = 0;
        for (int i = 0; i < 10; ++i, ++seq) {  // warm-up, as raw::seed_server
            publish(seq);
            receive(seq);
        }
        if (window <= 1) {
            for (auto _ : state) {
                publish(seq);
                receive(seq);
                ++seq;
            }
            state.SetItemsProcessed(state.iterations());
        } else {
            const std::int64_t n = scaled_items(raw::seed_batch_items, window);
            for (auto _ : state) {
                std::uint64_t sent = seq;
                const std::uint64_t end = seq + static_cast<std::uint64_t>(n);
                const std::uint64_t first_window = seq + static_cast<std::uint64_t>(window);
                while (sent < first_window) {
                    publish(sent++);
                }
                for (; seq < end; ++seq) {
                    receive(seq);
                    if (sent < end) {
                        publish(sent++);
                    }
                }
            }
            state.SetItemsProcessed(state.iterations() * n);
        }
        // Leave cleanly (not timed): the server closes the inbox once it has read every
        // command, so the client's commands channel is not destroyed under its reader.
        client.leave();
        const auto until = std::chrono::steady_clock::now() + io_timeout;
        while (client.inbox().recv_until(until)) {
        }
        (void)client.wait_released(io_timeout);
    });
}

}  // namespace zchan_bench::ms

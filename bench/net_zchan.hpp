// zchan_bench_net's zchan cases: the same measurements as net_raw.hpp, on zchan channels served
// by a zchan::server in one process and dialed from another (docs/protocol.md). Each case
// mirrors its raw twin: what is timed, what counts as an item, the payload sizes and the
// sequence-number check are the same, so that zchan/raw is a fair ratio.
//
// Cases (parent = the benchmark process, which times; child = a peer process, net_harness.hpp):
//   throughput(size)        A channel<std::string> of capacity 1024 whose home is the parent
//                           (the consumer): the deployment of a collector or work queue, where
//                           the process that drains a channel serves it and any number of
//                           producers dial it. The child dials and, on "send <n>", sends n
//                           values of `size` bytes; the parent recv()s them from its local
//                           channel. An iteration runs from that command to the last value
//                           received; items = values received. Exact Go semantics (no send
//                           window, protocol.md §9): each remote send is one round trip
//                           (SEND -> SEND_OK), so this measures the round trip, not a stream.
//   throughput_prefetch(size)  The other natural deployment, with the opt-in prefetch window
//                           (protocol.md §9.2, net_options::prefetch = the capacity): the
//                           child, the producer, is home of the channel (capacity 1024) and a
//                           local thread sends n values into it on "send <n>"; the parent, the
//                           consumer, dials with the window and recv()s them. Values stream
//                           into the parent's handle ahead of its recv()s, so most recv()s
//                           cost no round trip; Go semantics are relaxed as §9.2 says (the
//                           channel holds up to capacity + window values). Same timing and
//                           items as throughput(size).
//   roundtrip(150)          A remote receive round trip: the child is home of a buffered
//                           channel (capacity 1024) that a local thread keeps full; the parent
//                           dials it and each iteration is one recv() on the remote handle
//                           (RECV -> VALUE, then an ACK that needs no answer). One item each.
//   unbuffered_send(150)    The child is home of an unbuffered channel with a thread looping
//                           recv(); the parent dials it and each iteration is one send(), which
//                           returns once that receiver has taken the value (rendezvous across
//                           processes: SEND -> handoff -> SEND_OK). One item each.
//
// Every value is a std::string whose first 8 bytes are a sequence number (put_seq), checked
// on receipt by whichever side receives: a lost, duplicated or reordered value fails the case
// (a child that sees one reports it on stderr and exits 1, which the parent's next step or
// child_process::stop() reports).
//
// CURVE: with ZCHAN_BENCH_CURVE=1 in the environment (children inherit it) every zchan server
// and dial of these cases uses CurveZMQ (docs/protocol.md §14) with fixed bench keys, so the
// same cases measure what security costs; the raw cases stay plaintext.
//
// Children must exit on EOF on stdin even while a channel call blocks: the blocking loops run
// on a std::jthread and every channel call has a deadline (io_timeout); the main thread reads
// the control pipe and, at EOF, closes the channel, which ends the loop at once.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

#include <zchan/zchan.hpp>
#include "latency_counters.hpp"
#include "net_harness.hpp"
#include "net_raw.hpp"

namespace zchan_bench::zc {

/// Capacity of the throughput and round-trip channels (issue 3 section 6).
inline constexpr std::size_t bench_capacity = 1024;
/// Values per throughput batch. Each is a round trip with exact semantics, so far fewer
/// than raw's batch; the rate, not the batch size, is what is compared.
inline constexpr std::int64_t throughput_items = 20'000;

/// ZCHAN_BENCH_CURVE is set and not "0" (see the top).
inline bool bench_curve() {
    static const bool on = [] {
        const char* v = std::getenv("ZCHAN_BENCH_CURVE");
        return v != nullptr && *v != '\0' && std::string_view(v) != "0";
    }();
    return on;
}

/// Fixed secret keys for the bench only (public in this file: never use them elsewhere).
inline const zchan::curve::key& bench_home_secret() {
    static const zchan::curve::key k("g4S.8UWm+gO!Nwho[$TkjWOcdWYu={/hyr?C((xD");
    return k;
}
inline const zchan::curve::key& bench_client_secret() {
    static const zchan::curve::key k("rv:0M[uc/MT<&4qY)3B5MlgEWa>&#q]Q{)icY5Sv");
    return k;
}

/// Options of every bench server: CURVE admitting the bench client when bench_curve().
inline zchan::net_options server_options() {
    zchan::net_options o;
    if (bench_curve()) {
        o.curve_server = zchan::curve::server_options{
            bench_home_secret(), {zchan::curve::public_key_of(bench_client_secret())}};
    }
    return o;
}

/// Options of every bench dial: a CURVE client of the bench home when bench_curve().
inline zchan::net_options client_options() {
    zchan::net_options o;
    if (bench_curve()) {
        o.curve_client = zchan::curve::client_options{
            bench_client_secret(), zchan::curve::public_key_of(bench_home_secret())};
    }
    return o;
}

/// A value of `size` bytes whose first 8 bytes are `seq`.
inline std::string make_value(std::size_t size, std::uint64_t seq) {
    std::string v(size, 'z');
    std::memcpy(v.data(), &seq, sizeof seq);
    return v;
}

inline std::uint64_t value_seq(const std::string& v) {
    std::uint64_t seq = 0;
    if (v.size() >= sizeof seq) {
        std::memcpy(&seq, v.data(), sizeof seq);
    }
    return seq;
}

/// Throws bench_error unless `v` is `size` bytes carrying `seq`.
inline void check_value(const std::string& v, std::size_t size, std::uint64_t seq) {
    if (v.size() != size || value_seq(v) != seq) {
        throw bench_error("wrong value: got " + std::to_string(v.size()) + " bytes, seq " +
                          std::to_string(value_seq(v)) + "; want " + std::to_string(size) +
                          " bytes, seq " + std::to_string(seq));
    }
}

/// recv_for(io_timeout) that throws unless a value came.
inline std::string recv_or_throw(const zchan::channel<std::string>& ch, const char* what) {
    auto r = ch.recv_for(io_timeout);
    if (r.status != zchan::recv_status::ok || !r.value) {
        throw bench_error(std::string("no ") + what + " (recv status " +
                          std::to_string(static_cast<int>(r.status)) + ")");
    }
    return std::move(*r.value);
}

/// send_for(io_timeout) that throws unless the value was taken.
inline void send_or_throw(const zchan::channel<std::string>& ch, std::string v, const char* what) {
    const auto st = ch.send_for(std::move(v), io_timeout);
    if (st != zchan::send_status::ok) {
        throw bench_error(std::string("could not send ") + what + " (send status " +
                          std::to_string(static_cast<int>(st)) + ")");
    }
}

// ---- child roles ----------------------------------------------------------------------------

/// --connect=<endpoint> --name=<channel> --size=<bytes>: dials the channel and sends n values
/// on each "send <n>". The sends run on the main thread: each has a deadline, and a parent
/// that is gone makes them fail (peer lost) well within it.
inline int sender_main(const child_args& args) {
    const auto size = static_cast<std::size_t>(args.num("size"));
    if (size < sizeof(std::uint64_t)) {
        throw bench_error("--size must be at least 8");
    }
    zchan::net_options opts = client_options();
    opts.send_window = static_cast<std::uint32_t>(args.num("window"));
    auto ch = zchan::dial<std::string>(args.str("connect"), args.str("name"), opts);
    std::uint64_t seq = 0;
    control_pipe ctl;
    control_pipe::reply("ready");
    while (auto cmd = ctl.next_command()) {
        constexpr std::string_view send_cmd = "send ";
        if (cmd->compare(0, send_cmd.size(), send_cmd) != 0) {
            throw bench_error("unknown command '" + *cmd + "'");
        }
        const std::int64_t n = std::stoll(cmd->substr(send_cmd.size()));
        for (std::int64_t i = 0; i < n; ++i) {
            send_or_throw(ch, make_value(size, seq++), "a value");
        }
    }
    if (ch.flush() != zchan::send_status::ok) throw bench_error("values not confirmed");
    return 0;
}

/// Serves `ch` as "bench" on --bind=<address>, runs `loop(ch, stop)` on a thread, prints
/// "ready <endpoint>", passes each command line to `on_command`, and at EOF on stdin calls
/// `on_eof`, closes the channel and joins the loop. Returns 1 if the loop reported a failure.
template <class Loop, class OnCommand = void (*)(const std::string&), class OnEof = void (*)()>
int serve_with_loop(
    const child_args& args, const zchan::channel<std::string>& ch, Loop loop,
    OnCommand on_command = [](const std::string&) {}, OnEof on_eof = [] {}) {
    zchan::server srv(args.str("bind"), server_options());
    srv.serve("bench", ch);
    std::atomic<bool> failed{false};
    std::jthread worker([&](const std::stop_token& st) {
        try {
            loop(st);
        } catch (const zchan::channel_closed&) {
            // closed at EOF: the normal end
        } catch (const std::exception& e) {
            if (!st.stop_requested()) {
                std::fprintf(stderr, "zchan bench child: %s\n", e.what());
                failed = true;
            }
        }
    });
    control_pipe::reply("ready " + srv.endpoint());
    control_pipe ctl;
    while (auto cmd = ctl.next_command()) {
        on_command(*cmd);
    }
    on_eof();
    worker.request_stop();
    try {
        ch.close();
    } catch (const zchan::channel_closed&) {
    }
    worker.join();
    return failed ? 1 : 0;
}

/// --bind=<address> --size=<bytes> [--topup_ms=<ms>]: home of a buffered channel that a local
/// thread keeps non-empty with `size`-byte values numbered 0, 1, 2, ...
///
/// With --topup_ms=0 the thread blocks in send() while the channel is full, so every remote
/// recv also wakes it (a futex wake-up and a context switch on the home, on a 2-core machine
/// in competition with the round trip being measured). Otherwise it tops the channel up with
/// try_send every <ms> milliseconds: at most a few hundred values go per top-up period, far
/// fewer than the capacity, so the channel never runs dry and a recv wakes nobody on the
/// home: the case then measures the remote round trip alone.
inline int full_home_main(const child_args& args) {
    const auto size = static_cast<std::size_t>(args.num("size"));
    const auto topup = std::chrono::milliseconds(args.num("topup_ms"));
    zchan::channel<std::string> ch(bench_capacity);
    return serve_with_loop(args, ch, [&](const std::stop_token& st) {
        std::uint64_t seq = 0;
        std::string next = make_value(size, seq);
        while (!st.stop_requested()) {
            if (topup.count() == 0) {
                // NOLINTNEXTLINE(bugprone-use-after-move): next is refilled after each send
                ch.send(std::move(next));  // blocks while full; throws once closed
            } else {
                // NOLINTNEXTLINE(bugprone-use-after-move): try_send moves only on success
                switch (ch.try_send(std::move(next))) {
                    case zchan::send_status::ok:
                        break;
                    case zchan::send_status::closed:
                        return;
                    default:  // full: not moved from; try again after a while
                        std::this_thread::sleep_for(topup);
                        continue;
                }
            }
            next = make_value(size, ++seq);
        }
    });
}

/// --bind=<address> --size=<bytes>: home of an unbuffered channel whose local thread loops
/// recv() and checks the sequence numbers.
inline int waiting_home_main(const child_args& args) {
    const auto size = static_cast<std::size_t>(args.num("size"));
    zchan::channel<std::string> ch;  // unbuffered
    return serve_with_loop(args, ch, [&](const std::stop_token&) {
        std::uint64_t seq = 0;
        while (auto v = ch.recv()) {  // nullopt once closed
            check_value(*v, size, seq++);
        }
    });
}

/// --bind=<address> --size=<bytes>: home of a channel of capacity 1024 whose local thread,
/// on each "send <n>", sends n values into it (a producer serving its output).
inline int producer_home_main(const child_args& args) {
    const auto size = static_cast<std::size_t>(args.num("size"));
    zchan::channel<std::string> ch(bench_capacity);
    zchan::channel<std::int64_t> batches(16);  // main thread -> producer thread
    const int rc = serve_with_loop(
        args, ch,
        [&](const std::stop_token&) {
            std::uint64_t seq = 0;
            while (auto n = batches.recv()) {
                for (std::int64_t i = 0; i < *n; ++i) {
                    ch.send(make_value(size, seq++));  // throws once ch is closed
                }
            }
        },
        [&](const std::string& cmd) {
            constexpr std::string_view send_cmd = "send ";
            if (cmd.compare(0, send_cmd.size(), send_cmd) != 0) {
                throw bench_error("unknown command '" + cmd + "'");
            }
            batches.send(std::stoll(cmd.substr(send_cmd.size())));
        },
        [&] { batches.close(); });
    return rc;
}

/// The zchan roles, for main()'s role table.
inline void add_child_roles(std::vector<child_role>& roles) {
    roles.push_back({"zchan_sender", &sender_main});
    roles.push_back({"zchan_full_home", &full_home_main});
    roles.push_back({"zchan_waiting_home", &waiting_home_main});
    roles.push_back({"zchan_producer_home", &producer_home_main});
}

// ---- cases (parent side) --------------------------------------------------------------------

/// `window`: the producer's send window (protocol.md §9.1); 0: exact semantics.
inline void throughput(benchmark::State& state, transport t, std::size_t size,
                       std::uint32_t window = 0) {
    run_case(state, [&] {
        // With a window the batch is raw's (a stream); exact sends are a round trip each.
        const std::int64_t n = scaled_items(window != 0 ? raw::throughput_items : throughput_items);
        const bind_address where(t, "throughput");  // outlives the server (ipc directory)
        zchan::channel<std::string> ch(bench_capacity);
        zchan::server srv(where.str(), server_options());
        srv.serve("bench", ch);
        child_process sender("zchan_sender", {"--connect=" + srv.endpoint(), "--name=bench",
                                              "--size=" + std::to_string(size),
                                              "--window=" + std::to_string(window)});
        sender.expect("ready");
        std::uint64_t seq = 0;
        // One value before the clock starts, so that the session is up.
        sender.send_line("send 1");
        check_value(recv_or_throw(ch, "warm-up value"), size, seq++);
        const std::string batch = "send " + std::to_string(n);
        for (auto _ : state) {
            sender.send_line(batch);
            for (std::int64_t i = 0; i < n; ++i) {
                check_value(recv_or_throw(ch, "value"), size, seq++);
            }
        }
        state.SetItemsProcessed(state.iterations() * n);
        state.SetBytesProcessed(state.iterations() * n * static_cast<std::int64_t>(size));
    });
}

/// `items`: values per batch before scaling, as raw::throughput's.
inline void throughput_prefetch(benchmark::State& state, transport t, std::size_t size,
                                std::int64_t items = raw::throughput_items) {
    run_case(state, [&] {
        const std::int64_t n = scaled_items(items);
        const bind_address where(t, "throughput");
        child_process home("zchan_producer_home",
                           {"--bind=" + where.str(), "--size=" + std::to_string(size)});
        const std::string endpoint = home.expect("ready");
        zchan::net_options opts = client_options();
        opts.prefetch = bench_capacity;
        auto ch = zchan::dial<std::string>(endpoint, "bench", opts);
        std::uint64_t seq = 0;
        home.send_line("send 1");  // warm-up: the session is up and the window open
        check_value(recv_or_throw(ch, "warm-up value"), size, seq++);
        const std::string batch = "send " + std::to_string(n);
        for (auto _ : state) {
            home.send_line(batch);
            for (std::int64_t i = 0; i < n; ++i) {
                check_value(recv_or_throw(ch, "value"), size, seq++);
            }
        }
        state.SetItemsProcessed(state.iterations() * n);
        state.SetBytesProcessed(state.iterations() * n * static_cast<std::int64_t>(size));
    });
}

/// `latency`: also time each recv() on its own and report the percentiles
/// (latency_counters.hpp); the case is otherwise the same.
inline void roundtrip(benchmark::State& state, std::size_t size, int topup_ms,
                      bool latency = false) {
    run_case(state, [&] {
        child_process home("zchan_full_home",
                           {"--bind=tcp://127.0.0.1:*", "--size=" + std::to_string(size),
                            "--topup_ms=" + std::to_string(topup_ms)});
        const std::string endpoint = home.expect("ready");
        auto ch = zchan::dial<std::string>(endpoint, "bench", client_options());
        std::uint64_t seq = 0;
        for (int i = 0; i < 10; ++i) {  // warm-up: session up, caches warm
            check_value(recv_or_throw(ch, "value"), size, seq++);
        }
        if (latency) {
            latency_samples samples(static_cast<std::size_t>(state.max_iterations));
            for (auto _ : state) {
                const auto t0 = latency_samples::clock_type::now();
                std::string v = recv_or_throw(ch, "value");
                samples.add(latency_samples::clock_type::now() - t0);
                check_value(v, size, seq++);
            }
            samples.report(state);
        } else {
            for (auto _ : state) {
                check_value(recv_or_throw(ch, "value"), size, seq++);
            }
        }
        state.SetItemsProcessed(state.iterations());
    });
}

inline void unbuffered_send(benchmark::State& state, std::size_t size) {
    run_case(state, [&] {
        child_process home("zchan_waiting_home",
                           {"--bind=tcp://127.0.0.1:*", "--size=" + std::to_string(size)});
        const std::string endpoint = home.expect("ready");
        auto ch = zchan::dial<std::string>(endpoint, "bench", client_options());
        std::uint64_t seq = 0;
        for (int i = 0; i < 10; ++i) {  // warm-up
            send_or_throw(ch, make_value(size, seq++), "a value");
        }
        for (auto _ : state) {
            send_or_throw(ch, make_value(size, seq++), "a value");
        }
        state.SetItemsProcessed(state.iterations());
    });
}

}  // namespace zchan_bench::zc

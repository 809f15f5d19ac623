// zchan_bench_net's raw cppzmq baselines: what a competent ZeroMQ programmer gets from plain
// sockets, measured in the same run as zchan so that the bars are ratios, not
// absolute figures from another day.
//
// Cases (parent = the benchmark process, which times; child = a peer process, net_harness.hpp):
//   throughput(t, size)     PUSH/PULL. The parent binds PULL (tcp://127.0.0.1:* or ipc://),
//                           the child connects PUSH and, per iteration, sends a batch of
//                           throughput_items messages of `size` bytes on "send <n>"; the
//                           iteration runs from that command to the last message received.
//                           Default high-water marks (1000 each side). items = messages received.
//   roundtrip(size)         DEALER (parent) -> ROUTER echo server (child) -> DEALER, one
//                           request in flight; one iteration = one round trip = one item.
//   seed_server(size, w)    The seed article's message server: the child runs it (ROUTER, one
//                           thread owning the socket and the subscription table, i.e. the
//                           dispatcher); the parent is the benchmark client: a DEALER that
//                           subscribes to its own topic and publishes `size`-byte payloads to
//                           it, each coming back through the dispatcher. w = 1: one in flight,
//                           one iteration = one message. w > 1: batches of seed_batch_items
//                           messages with at most w in flight. items = messages that came back.
//
// Every payload starts with a 64-bit sequence number, checked on receipt: a lost, duplicated
// or reordered message fails the case instead of flattering it.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <benchmark/benchmark.h>
#include <unistd.h>
#include <zmq.hpp>

#include "latency_counters.hpp"
#include "net_harness.hpp"

namespace zchan_bench::raw {

/// Messages per throughput iteration (before --zchan_items_scale).
inline constexpr std::int64_t throughput_items = 200'000;
/// Messages per iteration of the seed server case with a window (before scaling).
inline constexpr std::int64_t seed_batch_items = 20'000;

// ---- wire of the seed message server --------------------------------------------------------
//
// client -> server (DEALER -> ROUTER):  ["SUB", topic] | ["UNSUB", topic] | ["PUB", topic, payload]
// server -> client (ROUTER -> DEALER):  [topic, payload], once per subscriber of the topic
//
// Commands from one client are handled in the order sent (one pipe, one dispatcher), so a
// SUB followed by a PUB needs no acknowledgement.
inline constexpr std::string_view verb_sub = "SUB";
inline constexpr std::string_view verb_unsub = "UNSUB";
inline constexpr std::string_view verb_pub = "PUB";

/// Hash that lets the subscription table be searched with the topic frame's bytes directly.
struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
        return std::hash<std::string_view>{}(s);
    }
};

/// The seed's dispatcher: owns the subscription table and the ROUTER socket, and is the only
/// code that touches either (one thread; ZeroMQ sockets are not thread safe).
///
/// A subscriber that has gone (ROUTER_MANDATORY: EHOSTUNREACH) is dropped from the table. A
/// subscriber whose pipe is full (high-water mark) misses that message rather than stalling
/// every other client: the server never blocks on one slow reader. Both are counted.
/// Thread safety: unsafe; the server thread owns it.
class seed_dispatcher {
public:
    explicit seed_dispatcher(zmq::socket_t& router) : router_(router) {}

    /// Handles every command already waiting on the socket; returns when none is left.
    void drain() {
        while (recv_command()) {
        }
    }

    [[nodiscard]] std::uint64_t dropped() const { return dropped_; }
    [[nodiscard]] std::uint64_t malformed() const { return malformed_; }

private:
    /// Receives and handles one command; false if none was waiting.
    bool recv_command() {
        if (!router_.recv(identity_, zmq::recv_flags::dontwait)) {
            return false;
        }
        // A multipart message arrives whole, so once its first frame is here the rest are.
        const std::array<zmq::message_t*, 3> slots = {&verb_, &topic_, &payload_};
        std::size_t parts = 0;
        bool more = identity_.more();
        while (more) {
            zmq::message_t& dst = parts < slots.size() ? *slots[parts] : scratch_;
            recv_or_throw(router_, dst, "the rest of a command");
            ++parts;
            more = dst.more();
        }
        const std::string_view verb = verb_.to_string_view();
        if (parts == 3 && verb == verb_pub) {
            publish();
        } else if (parts == 2 && verb == verb_sub) {
            subscribe();
        } else if (parts == 2 && verb == verb_unsub) {
            unsubscribe();
        } else {
            ++malformed_;
        }
        return true;
    }

    void subscribe() {
        auto& ids = subscribers_[topic_.to_string()];
        std::string id = identity_.to_string();
        if (std::find(ids.begin(), ids.end(), id) == ids.end()) {
            ids.push_back(std::move(id));
        }
    }

    void unsubscribe() {
        const auto it = subscribers_.find(topic_.to_string_view());
        if (it == subscribers_.end()) {
            return;
        }
        std::erase(it->second, identity_.to_string_view());
        if (it->second.empty()) {
            subscribers_.erase(it);
        }
    }

    /// Sends [topic, payload] to every subscriber of the topic.
    void publish() {
        const auto it = subscribers_.find(topic_.to_string_view());
        if (it == subscribers_.end()) {
            return;
        }
        auto& ids = it->second;
        for (std::size_t i = 0; i < ids.size();) {
            const std::string& id = ids[i];
            try {
                // dontwait + ROUTER_MANDATORY: a full pipe is EAGAIN (empty result), a peer
                // that has gone is EHOSTUNREACH (thrown). Once the identity frame is accepted,
                // the rest of the message is (the high-water mark counts whole messages).
                if (!router_.send(zmq::buffer(id),
                                  zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
                    ++dropped_;
                    ++i;
                    continue;
                }
            } catch (const zmq::error_t& e) {
                if (e.num() != EHOSTUNREACH) {
                    throw;
                }
                ids[i] = std::move(ids.back());
                ids.pop_back();
                continue;
            }
            zmq::message_t topic;
            topic.copy(topic_);
            send_msg(topic, zmq::send_flags::sndmore);
            if (i + 1 == ids.size()) {
                send_msg(payload_, zmq::send_flags::none);  // the last subscriber takes it
            } else {
                zmq::message_t copy;
                copy.copy(payload_);  // shares the buffer (reference counted) above 33 bytes
                send_msg(copy, zmq::send_flags::none);
            }
            ++i;
        }
        if (ids.empty()) {
            subscribers_.erase(it);
        }
    }

    void send_msg(zmq::message_t& msg, zmq::send_flags flags) {
        send_or_throw(router_, msg, flags, "a delivery");
    }

    zmq::socket_t& router_;
    std::unordered_map<std::string, std::vector<std::string>, string_hash, std::equal_to<>>
        subscribers_;  // topic -> identities of its subscribers
    // Frames of the command being handled, reused from one command to the next.
    zmq::message_t identity_, verb_, topic_, payload_, scratch_;
    std::uint64_t dropped_ = 0;
    std::uint64_t malformed_ = 0;
};

// ---- child roles ----------------------------------------------------------------------------

/// --connect=<endpoint> --size=<bytes>: a PUSH that sends <n> messages on each "send <n>".
inline int push_sender_main(const child_args& args) {
    const auto size = static_cast<std::size_t>(args.num("size"));
    if (size < sizeof(std::uint64_t)) {
        throw bench_error("--size must be at least 8");
    }
    zmq::context_t ctx(1);
    zmq::socket_t push(ctx, zmq::socket_type::push);
    configure_socket(push);
    push.connect(args.str("connect"));
    std::vector<char> buf(size, 'x');
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
            put_seq(buf.data(), seq++);
            send_or_throw(push, zmq::const_buffer(buf.data(), size), zmq::send_flags::none,
                          "a message");
        }
    }
    return 0;
}

/// Runs `on_socket` whenever `sock` is readable, until the control pipe reaches EOF.
template <class OnSocket>
void serve_until_eof(zmq::socket_t& sock, OnSocket&& on_socket) {
    control_pipe ctl;
    std::array<zmq_pollitem_t, 2> items = {zmq_pollitem_t{sock.handle(), 0, ZMQ_POLLIN, 0},
                                           control_pipe::poll_item()};
    for (;;) {
        zmq::poll(items);  // no timeout needed: EOF on fd 0 wakes it
        // A pipe at EOF polls as POLLHUP, which zmq_poll reports as ZMQ_POLLERR.
        if ((items[1].revents & (ZMQ_POLLIN | ZMQ_POLLERR)) != 0 && !ctl.on_readable()) {
            return;
        }
        if ((items[0].revents & ZMQ_POLLIN) != 0) {
            on_socket();
        }
    }
}

/// --bind=<address>: a ROUTER that echoes each [identity, payload] back.
inline int echo_server_main(const child_args& args) {
    zmq::context_t ctx(1);
    zmq::socket_t router(ctx, zmq::socket_type::router);
    configure_socket(router);
    router.bind(args.str("bind"));
    control_pipe::reply("ready " + router.get(zmq::sockopt::last_endpoint));
    zmq::message_t identity, payload;
    serve_until_eof(router, [&] {
        while (router.recv(identity, zmq::recv_flags::dontwait)) {
            if (!identity.more()) {
                continue;
            }
            recv_or_throw(router, payload, "a request");
            if (payload.more()) {  // not a request of ours: drop all of it
                while (payload.more()) {
                    recv_or_throw(router, payload, "a stray frame");
                }
                continue;
            }
            send_or_throw(router, identity, zmq::send_flags::sndmore, "an echo");
            send_or_throw(router, payload, zmq::send_flags::none, "an echo");
        }
    });
    return 0;
}

/// --bind=<address>: the seed's message server (see seed_dispatcher).
inline int seed_server_main(const child_args& args) {
    zmq::context_t ctx(1);
    zmq::socket_t router(ctx, zmq::socket_type::router);
    configure_socket(router);
    router.set(zmq::sockopt::router_mandatory, true);
    router.bind(args.str("bind"));
    control_pipe::reply("ready " + router.get(zmq::sockopt::last_endpoint));
    seed_dispatcher dispatcher(router);
    serve_until_eof(router, [&] { dispatcher.drain(); });
    if (dispatcher.dropped() != 0 || dispatcher.malformed() != 0) {
        std::fprintf(stderr, "raw seed server: %llu deliveries dropped, %llu bad commands\n",
                     static_cast<unsigned long long>(dispatcher.dropped()),
                     static_cast<unsigned long long>(dispatcher.malformed()));
    }
    return 0;
}

/// The raw roles, for main()'s role table.
inline void add_child_roles(std::vector<child_role>& roles) {
    roles.push_back({"raw_push_sender", &push_sender_main});
    roles.push_back({"raw_echo_server", &echo_server_main});
    roles.push_back({"raw_seed_server", &seed_server_main});
}

// ---- cases (parent side) --------------------------------------------------------------------

/// `items`: messages per batch before scaling (the 4 KiB chart cases send fewer).
inline void throughput(benchmark::State& state, transport t, std::size_t size,
                       std::int64_t items = throughput_items) {
    run_case(state, [&] {
        const std::int64_t n = scaled_items(items);
        const bind_address where(t, "throughput");  // outlives the socket (ipc directory)
        zmq::socket_t pull(parent_context(), zmq::socket_type::pull);
        configure_socket(pull);
        pull.bind(where.str());
        child_process sender("raw_push_sender",
                             {"--connect=" + pull.get(zmq::sockopt::last_endpoint),
                              "--size=" + std::to_string(size)});
        sender.expect("ready");
        zmq::message_t msg;
        std::uint64_t seq = 0;
        // One message before the clock starts, so that the connection is up.
        sender.send_line("send 1");
        recv_or_throw(pull, msg, "the warm-up message");
        check_payload(msg, size, seq++);
        const std::string batch = "send " + std::to_string(n);
        for (auto _ : state) {
            sender.send_line(batch);
            for (std::int64_t i = 0; i < n; ++i) {
                recv_or_throw(pull, msg, "a message");
                check_payload(msg, size, seq++);
            }
        }
        state.SetItemsProcessed(state.iterations() * n);
        state.SetBytesProcessed(state.iterations() * n * static_cast<std::int64_t>(size));
    });
}

/// `latency`: also time each round trip on its own and report the percentiles
/// (latency_counters.hpp); the case is otherwise the same.
inline void roundtrip(benchmark::State& state, std::size_t size, bool latency = false) {
    run_case(state, [&] {
        child_process server("raw_echo_server", {"--bind=tcp://127.0.0.1:*"});
        const std::string endpoint = server.expect("ready");
        zmq::socket_t dealer(parent_context(), zmq::socket_type::dealer);
        configure_socket(dealer);
        dealer.connect(endpoint);
        std::vector<char> buf(size, 'r');
        zmq::message_t reply;
        std::uint64_t seq = 0;
        const auto one = [&] {
            put_seq(buf.data(), seq);
            send_or_throw(dealer, zmq::const_buffer(buf.data(), size), zmq::send_flags::none,
                          "a request");
            recv_or_throw(dealer, reply, "a reply");
            check_payload(reply, size, seq++);
        };
        for (int i = 0; i < 10; ++i) {  // warm-up: connection up, caches warm
            one();
        }
        if (latency) {
            latency_samples samples(static_cast<std::size_t>(state.max_iterations));
            for (auto _ : state) {
                const auto t0 = latency_samples::clock_type::now();
                one();
                samples.add(latency_samples::clock_type::now() - t0);
            }
            samples.report(state);
        } else {
            for (auto _ : state) {
                one();
            }
        }
        state.SetItemsProcessed(state.iterations());
    });
}

inline void seed_server(benchmark::State& state, std::size_t size, std::int64_t window) {
    run_case(state, [&] {
        child_process server("raw_seed_server", {"--bind=tcp://127.0.0.1:*"});
        const std::string endpoint = server.expect("ready");
        zmq::socket_t dealer(parent_context(), zmq::socket_type::dealer);
        configure_socket(dealer);
        dealer.connect(endpoint);

        const std::string topic = "bench/" + std::to_string(::getpid());
        send_or_throw(dealer, zmq::buffer(verb_sub), zmq::send_flags::sndmore, "SUB");
        send_or_throw(dealer, zmq::buffer(topic), zmq::send_flags::none, "SUB");

        std::vector<char> buf(size, 'p');
        zmq::message_t got_topic, got_payload;
        const auto publish = [&](std::uint64_t seq) {
            put_seq(buf.data(), seq);
            send_or_throw(dealer, zmq::buffer(verb_pub), zmq::send_flags::sndmore, "PUB");
            send_or_throw(dealer, zmq::buffer(topic), zmq::send_flags::sndmore, "PUB");
            send_or_throw(dealer, zmq::const_buffer(buf.data(), size), zmq::send_flags::none,
                          "PUB");
        };
        const auto receive = [&](std::uint64_t seq) {
            recv_or_throw(dealer, got_topic, "a delivery");
            if (!got_topic.more() || got_topic.to_string_view() != topic) {
                throw bench_error("malformed delivery");
            }
            recv_or_throw(dealer, got_payload, "a delivery");
            if (got_payload.more()) {
                throw bench_error("malformed delivery");
            }
            check_payload(got_payload, size, seq);
        };

        std::uint64_t seq = 0;
        for (int i = 0; i < 10; ++i, ++seq) {  // warm-up; also proves the SUB took effect
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
            return;
        }
        const std::int64_t n = scaled_items(seed_batch_items, window);
        for (auto _ : state) {
            std::uint64_t sent = seq;
            const std::uint64_t end = seq + static_cast<std::uint64_t>(n);
            const std::uint64_t first_window = seq + static_cast<std::uint64_t>(window);
            while (sent < first_window) {
                publish(sent++);
            }
            // One server thread and one pipe each way: deliveries come back in order.
            for (; seq < end; ++seq) {
                receive(seq);
                if (sent < end) {
                    publish(sent++);
                }
            }
        }
        state.SetItemsProcessed(state.iterations() * n);
    });
}

}  // namespace zchan_bench::raw

// Hostile input at a live server's port (issue 4 §3, protocol.md §1 goal 6, §6, §11.1, §12.3).
//
// The test process is the home: one zchan::server on tcp://127.0.0.1:* serving
//   "stream" (long, capacity 16): a producer and a consumer, each a separate
//            process (this binary re-executed with --zchan-child=<role>), stream
//            0..n-1 through it with exact semantics;
//   "gate"   (int, unbuffered): the producer stops half way until the test has
//            finished one full attack round, so the attack provably overlaps
//            the stream;
//   "decoy"  (string, capacity 64): the channel the attacker opens sessions on
//            (replays), so that nothing it does can legitimately touch "stream".
// While the pair runs, rounds of attacks hit the same port:
//   * raw TCP (below ZeroMQ): random bytes; a truncated ZMTP greeting; a greeting
//     followed by a megabyte of junk; a full ZMTP 3.0 NULL handshake and then a
//     message frame claiming 8 GiB, and one claiming 2^63 octets;
//   * a DEALER speaking ZCHAN (encoded by hand from protocol.md only, raw_peer.hpp):
//     empty, truncated, wrong-version, unknown-type and 1 MiB random frames,
//     multipart messages, a HELLO whose name-len claims more than the frame, an
//     ACK whose count claims 2^40 entries, HELLOs for an unknown channel, with
//     the wrong type and with no common version, RECV and CLOSE for every
//     session id the pair could have (from a DEALER that owns none of them),
//     a SEND whose cereal size tag claims 8 GiB, and replayed SEND seqs, ACKs
//     and RETURNs on a real session.
// Checks: the pair finishes, every value received exactly once and in order;
// malformed_frames() grew by at least the frames sent that §6 rejects; each
// HELLO got its ERROR code; replays enqueued each value once; this process's
// peak RSS stayed within a generous bound; and a new dialer is served after.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.hpp>

#include "child_process.hpp"
#include "net_test_support.hpp"
#include "raw_peer.hpp"
#include "zchan/channel.hpp"
#include "zchan/net.hpp"
#include "zchan_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using zchan_test::clock;
using zchan_test::deadline_after;
using zchan_test::generous;
using zchan_test::say;
using zchan_test::self_exe;

zchan::net_options fast() { return zchan_test::heartbeat_options(200ms, 2000ms); }

// ---- child roles -------------------------------------------------------------------------

int producer_main(const std::string& ep, long n) {
    auto stream = zchan::dial<long>(ep, "stream", fast());
    auto gate = zchan::dial<int>(ep, "gate", fast());
    for (long i = 0; i < n / 2; ++i) stream.send(i);
    say("half");
    if (!gate.recv()) return 5;
    for (long i = n / 2; i < n; ++i) stream.send(i);
    stream.close();
    say("done");
    return 0;
}

int consumer_main(const std::string& ep) {
    auto stream = zchan::dial<long>(ep, "stream", fast());
    long expected = 0;
    for (long v : stream) {
        if (v != expected) {
            say("out of order: expected " + std::to_string(expected) + " got " + std::to_string(v));
            return 6;
        }
        ++expected;
    }
    say("received " + std::to_string(expected));
    return 0;
}

int child_main(const std::string& role, const std::string& ep, long n) {
    try {
        if (role == "producer") return producer_main(ep, n);
        if (role == "consumer") return consumer_main(ep);
    } catch (const std::exception& e) {
        say(std::string("error ") + e.what());
        return 2;
    }
    return 1;
}

// ---- ZCHAN/1 frames, encoded from protocol.md §4-§5 (tests/support/raw_peer.hpp) -----------

using namespace zchan_test::raw;

// ---- raw TCP --------------------------------------------------------------------------------

int tcp_port(const std::string& endpoint) {
    return std::stoi(endpoint.substr(endpoint.rfind(':') + 1));
}

class tcp_conn {
public:
    explicit tcp_conn(int port) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<std::uint16_t>(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    }
    ~tcp_conn() { ::close(fd_); }
    tcp_conn(const tcp_conn&) = delete;
    tcp_conn& operator=(const tcp_conn&) = delete;

    [[nodiscard]] bool connected() const { return connected_; }
    /// Best effort: the server may hang up half way, which is fine.
    void write(const std::string& bytes) {
        std::size_t off = 0;
        while (off < bytes.size()) {
            const auto n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
            if (n <= 0) return;
            off += static_cast<std::size_t>(n);
        }
    }
    /// Reads (and discards) until the server closes the connection; false at the deadline.
    [[nodiscard]] bool closed_by_peer(clock::time_point deadline) {
        char buf[4096];
        while (clock::now() < deadline) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 50) <= 0) continue;
            const auto n = ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) return true;
        }
        return false;
    }

private:
    int fd_ = -1;
    bool connected_ = false;
};

/// A ZMTP 3.0 greeting (RFC 23/37) for the NULL mechanism, as a client.
std::string zmtp_greeting() {
    std::string g(64, '\0');
    g[0] = static_cast<char>(0xff);
    g[9] = 0x7f;
    g[10] = 3;  // major
    g[11] = 0;  // minor
    std::memcpy(g.data() + 12, "NULL", 4);
    return g;
}

/// The READY command of a DEALER (ZMTP 3.0 NULL handshake).
std::string zmtp_ready() {
    std::string body = "\x05READY";
    body += '\x0b';
    body += "Socket-Type";
    body += std::string("\x00\x00\x00\x06", 4);
    body += "DEALER";
    std::string cmd;
    cmd += '\x04';  // command, short
    cmd += static_cast<char>(body.size());
    return cmd + body;
}

/// A long message frame header claiming `size` octets (big-endian, ZMTP 3.0).
std::string zmtp_long_frame(std::uint64_t size) {
    std::string f;
    f += '\x02';
    for (int i = 7; i >= 0; --i) f += static_cast<char>((size >> (8 * i)) & 0xff);
    return f + "only a few octets follow";
}

// ---- the attack -----------------------------------------------------------------------------

struct attacker {
    zmq::context_t ctx;
    std::string ep;
    int port;
    zchan::channel<std::string> decoy;
    std::mt19937_64 rng{20240611};
    std::uint64_t malformed_sent = 0;  // frames sent that protocol.md §6 rejects
    int rounds = 0;

    std::string random_bytes(std::size_t n) {
        std::string s(n, '\0');
        for (auto& c : s) c = static_cast<char>(rng());
        return s;
    }

    void zmtp_round() {
        {  // random bytes, then hang up
            tcp_conn c(port);
            ASSERT_TRUE(c.connected());
            c.write(random_bytes(4096));
        }
        {  // greeting cut off after the signature
            tcp_conn c(port);
            c.write(zmtp_greeting().substr(0, 11));
        }
        {  // a greeting followed by a megabyte of junk
            tcp_conn c(port);
            c.write(zmtp_greeting() + random_bytes(1 << 20));
        }
        // A complete handshake, then frames claiming 8 GiB and 2^63 octets: the home's
        // ZMQ_MAXMSGSIZE (protocol.md §3) must make libzmq hang up instead of allocating.
        for (std::uint64_t claim : {std::uint64_t{8} << 30, std::uint64_t{1} << 63}) {
            tcp_conn c(port);
            c.write(zmtp_greeting() + zmtp_ready() + zmtp_long_frame(claim));
            EXPECT_TRUE(c.closed_by_peer(deadline_after(generous)))
                << "the home kept a connection open after a frame claiming " << claim;
        }
    }

    void zchan_round() {
        // Frames from a DEALER that has no session.
        raw_peer stranger(ctx, ep);
        const std::vector<std::string> invalid = {
            std::string(),                            // empty
            header(t_recv, 1, 1).substr(0, 10),       // truncated header
            header(t_recv, 1, 1, 0, /*version=*/2),   // wrong version
            header(t_ping, 0, 1, 0, /*version=*/0),   // version 0
            header(0x7f, 1, 1),                       // unknown type
            header(t_welcome, 0, 1),                  // wrong direction
            header(t_recv, 1, 1, /*flags=*/0x8000),   // undefined flag
            header(t_recv, 1, 0),                     // request id 0
            hello("stream", "i64", 1).substr(0, 40),  // truncated HELLO
            hello("stream", "i64", 1) + "trailing",   // HELLO longer than it says
            header(t_ack, 1, std::uint64_t{1} << 40) + std::string(8, '\1'),  // 2^40 ACKs
            random_bytes(1 << 20),                                            // 1 MiB of noise
        };
        for (const auto& f : invalid) stranger.send(f);
        // name-len claims 65535 octets of name in a frame of 64
        std::string lying = hello("stream", "i64", 2);
        lying[18] = '\xff';
        lying[19] = '\xff';
        stranger.send(lying);
        stranger.send_multipart(header(t_ping, 0, 3), header(t_ping, 0, 4));
        malformed_sent += invalid.size() + 2;
        auto answers = stranger.sync();
        ASSERT_TRUE(answers) << "the home stopped answering PING after malformed frames";
        EXPECT_TRUE(answers->empty()) << "the home answered a frame §6 rejects";

        // Someone else's sessions: RECV would steal the consumer's values, CLOSE would end
        // the stream early. Every id the pair's sessions can have (ids start at 1 and the
        // attacker's own sessions come later).
        for (std::uint32_t sid = 1; sid <= 8; ++sid) {
            stranger.send(header(t_recv, sid, 1));
            stranger.send(header(t_close, sid, 2));
            stranger.send(header(t_return, sid, 1));
        }
        malformed_sent += 24;  // 3 frames of 8 bytes
        answers = stranger.sync();
        ASSERT_TRUE(answers);
        ASSERT_EQ(answers->size(), 3u * 8u);
        for (const auto& r : *answers) {
            EXPECT_EQ(r.type, t_error);
            EXPECT_EQ(r.error_code(), e_unknown_session);
        }

        // HELLOs the home refuses, each with its code (protocol.md §7.2).
        stranger.send(hello("no-such-channel", "i64", 11));
        stranger.send(hello("stream", "string", 12));
        stranger.send(hello("stream", "i64", 13, {.min_version = 7, .max_version = 9}));
        answers = stranger.sync();
        ASSERT_TRUE(answers);
        ASSERT_EQ(answers->size(), 3u);
        const std::uint16_t codes[] = {e_unknown_channel, e_type_mismatch, e_unsupported_version};
        for (std::size_t i = 0; i < 3; ++i) {
            EXPECT_EQ((*answers)[i].type, t_error);
            EXPECT_EQ((*answers)[i].id, 11 + i);
            EXPECT_EQ((*answers)[i].error_code(), codes[i]);
        }

        // A real session on "decoy": a value claiming 8 GiB, then replays (§12.3).
        raw_peer d(ctx, ep);
        d.send(hello("decoy", "string", 21));
        answers = d.sync();
        ASSERT_TRUE(answers);
        ASSERT_EQ(answers->size(), 1u);
        ASSERT_EQ((*answers)[0].type, t_welcome);
        const auto sid = (*answers)[0].welcome_channel();

        std::string huge = header(t_send, sid, 1);
        put<std::uint64_t>(huge, std::uint64_t{8} << 30);
        huge += "abc";
        d.send(huge);
        ++malformed_sent;  // counted as a payload that does not decode
        d.send(header(t_send, sid, 2) + encoded("a"));
        d.send(header(t_send, sid, 2) + encoded("a"));  // replay: the recorded SEND_OK again
        d.send(header(t_send, sid, 3) + encoded("b"));
        d.send(header(t_send, sid, 3) + encoded("b"));
        d.send(header(t_send, sid, 2) + encoded("a"));
        std::string acks = header(t_ack, sid, 2);
        put<std::uint64_t>(acks, 9999);  // deliveries that never happened: ignored
        put<std::uint64_t>(acks, 9999);
        d.send(acks);
        d.send(header(t_return, sid, 12345));
        d.send(header(t_query, sid, 4));
        answers = d.sync();
        ASSERT_TRUE(answers);
        std::vector<std::pair<std::uint8_t, std::uint64_t>> got;
        std::uint64_t length = ~std::uint64_t{0};
        for (const auto& r : *answers) {
            got.emplace_back(r.type, r.id);
            if (r.type == t_error) {
                EXPECT_EQ(r.error_code(), e_decode_error);
            }
            if (r.type == t_status) length = get<std::uint64_t>(r.frame, 16);
        }
        const std::vector<std::pair<std::uint8_t, std::uint64_t>> want = {
            {t_error, 1},   {t_send_ok, 2}, {t_send_ok, 2}, {t_send_ok, 3},
            {t_send_ok, 3}, {t_send_ok, 2}, {t_status, 4}};
        EXPECT_EQ(got, want);
        EXPECT_EQ(length, 2u) << "a replayed SEND was enqueued twice";
        d.send(header(t_bye, sid, 0));
        ASSERT_TRUE(d.sync());
        // Exactly one of each, in order.
        auto a = decoy.try_recv();
        auto b = decoy.try_recv();
        ASSERT_TRUE(a.ok() && b.ok());
        EXPECT_EQ(*a, "a");
        EXPECT_EQ(*b, "b");
        EXPECT_EQ(decoy.try_recv().status, zchan::recv_status::empty);
    }

    void round() {
        zmtp_round();
        zchan_round();
        ++rounds;
    }
};

// Regression (protocol.md §8.2 rule 5, §12.3): the home used to enqueue a replayed SEND
// again; it must answer it with the recorded outcome, and a seq it has forgotten (evicted
// from its bounded record) with ERROR protocol_error, never enqueue it.
TEST(HostileInput, ReplayedSendSeqIsAnsweredAgainAndEnqueuedOnce) {
    zchan::channel<std::string> ch(2048);
    zchan::server srv("tcp://127.0.0.1:*", fast());
    srv.serve("ch", ch);
    zmq::context_t ctx;
    raw_peer d(ctx, srv.endpoint());
    d.send(hello("ch", "string", 1));
    auto answers = d.sync();
    ASSERT_TRUE(answers);
    ASSERT_EQ(answers->size(), 1u);
    ASSERT_EQ((*answers)[0].type, t_welcome);
    const auto sid = (*answers)[0].welcome_channel();

    d.send(header(t_send, sid, 1) + encoded("a"));
    d.send(header(t_send, sid, 1) + encoded("a"));
    d.send(header(t_send, sid, 2, f_try) + encoded("b"));
    d.send(header(t_send, sid, 2, f_try) + encoded("b"));
    d.send(header(t_send, sid, 1) + encoded("a"));
    answers = d.sync();
    ASSERT_TRUE(answers);
    ASSERT_EQ(answers->size(), 5u);
    const std::uint64_t ids[] = {1, 1, 2, 2, 1};
    for (std::size_t i = 0; i < 5; ++i) {
        EXPECT_EQ((*answers)[i].type, t_send_ok) << i;
        EXPECT_EQ((*answers)[i].id, ids[i]) << i;
    }
    EXPECT_EQ(ch.len(), 2u);

    // More resolved seqs than the home records (1024): seq 1 is forgotten.
    constexpr std::uint64_t last = 1100;
    for (std::uint64_t seq = 3; seq <= last; ++seq) d.send(header(t_send, sid, seq) + encoded("x"));
    answers = d.sync();
    ASSERT_TRUE(answers);
    EXPECT_EQ(answers->size(), last - 2);
    d.send(header(t_send, sid, 1) + encoded("a"));
    d.send(header(t_send, sid, last) + encoded("x"));
    answers = d.sync();
    ASSERT_TRUE(answers);
    ASSERT_EQ(answers->size(), 2u);
    EXPECT_EQ((*answers)[0].type, t_error);
    EXPECT_EQ((*answers)[0].id, 1u);
    EXPECT_EQ((*answers)[0].error_code(), 1u);  // protocol_error
    EXPECT_EQ((*answers)[1].type, t_send_ok);
    EXPECT_EQ((*answers)[1].id, last);
    EXPECT_EQ(ch.len(), last);
    EXPECT_EQ(*ch.recv(), "a");
    EXPECT_EQ(*ch.recv(), "b");
}

TEST(HostileInput, LivePairStreamsThroughGarbageAtTheSamePort) {
    const long n = static_cast<long>(zchan_test::scale(4000));
    zchan::channel<long> stream(16);
    zchan::channel<int> gate;
    zchan::channel<std::string> decoy(64);
    zchan::server srv("tcp://127.0.0.1:*", fast());
    srv.serve("stream", stream);
    srv.serve("gate", gate);
    srv.serve("decoy", decoy);
    const std::string ep = srv.endpoint();

    zchan_test::child_process consumer({self_exe(), "--zchan-child=consumer", ep, "0"});
    zchan_test::child_process producer(
        {self_exe(), "--zchan-child=producer", ep, std::to_string(n)});
    ASSERT_TRUE(consumer.spawned() && producer.spawned());
    ASSERT_TRUE(producer.wait_for_text("half")) << producer.output();

    const long rss_before_kb = zchan_test::status_kb("VmRSS");
    const auto malformed_before = srv.malformed_frames();
    attacker att{zmq::context_t(), ep, tcp_port(ep), decoy};

    // One whole round while the producer waits half way, then more rounds while the pair
    // streams the second half.
    att.round();
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_EQ(gate.send_for(1, generous), zchan::send_status::ok);
    const auto deadline = deadline_after(4 * generous);
    std::optional<int> consumer_rc;
    while (!consumer_rc && clock::now() < deadline) {
        att.round();
        ASSERT_FALSE(HasFatalFailure());
        consumer_rc = consumer.wait_exit(clock::now());
    }
    if (!consumer_rc) consumer_rc = consumer.wait_exit(deadline_after(generous));
    const auto producer_rc = producer.wait_exit(deadline_after(generous));

    ASSERT_EQ(producer_rc, 0) << producer.output();
    ASSERT_EQ(consumer_rc, 0) << consumer.output();
    EXPECT_TRUE(consumer.wait_for_text("received " + std::to_string(n))) << consumer.output();
    EXPECT_GE(att.rounds, 2);

    // Counted (protocol.md §11.1): at least every frame the attacker sent that §6 rejects;
    // raw TCP noise can add more (libzmq may parse it as frames of an old ZMTP version).
    EXPECT_GE(srv.malformed_frames() - malformed_before, att.malformed_sent);

    // Bounded memory: nothing on the wire may make the home allocate what a length claims.
    // Each round sends a few MiB in total; the bound is far below one honoured 8 GiB claim,
    // and generous for the allocator's and the sanitizers' caches.
    const long hwm_kb = zchan_test::status_kb("VmHWM");
    const long bound_kb = (zchan_test::sanitized ? 512L : 128L) * 1024;
    EXPECT_LT(hwm_kb - rss_before_kb, bound_kb)
        << "VmRSS before the attack " << rss_before_kb << " kB, peak " << hwm_kb << " kB";
    std::printf(
        "hostile: %d rounds, %llu malformed frames counted, VmRSS before %ld kB, VmHWM %ld kB\n",
        att.rounds, static_cast<unsigned long long>(srv.malformed_frames() - malformed_before),
        rss_before_kb, hwm_kb);

    // The server still serves a new dialer.
    auto fresh = zchan::dial<std::string>(ep, "decoy", fast());
    ASSERT_EQ(fresh.send_for(std::string("after"), generous), zchan::send_status::ok);
    auto v = decoy.recv_for(generous);
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(*v, "after");
    EXPECT_TRUE(stream.is_closed());
}

}  // namespace

int main(int argc, char** argv) {
    if (argc >= 4 && std::string(argv[1]).rfind("--zchan-child=", 0) == 0) {
        return child_main(std::string(argv[1]).substr(14), argv[2], std::stol(argv[3]));
    }
    ::signal(SIGPIPE, SIG_IGN);
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}

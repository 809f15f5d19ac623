// libFuzzer target: the ZCHAN/1 handshake (docs/protocol.md §5.2, §6.2, §7).
//
// Each input is used three ways:
//   1. decoded as a frame a peer receives: an accepted WELCOME or ERROR must
//      satisfy what §6/§7.3 promise to the peer (channel id >= 1, timeout >
//      interval, text <= 1024 octets), or the codec let something through;
//   2. sent, as one ZeroMQ frame, to a live zchan::server over inproc:// from
//      a raw DEALER, followed by a PING on channel 0 (frames of one
//      connection are handled in order, so its PONG proves the server is done
//      with the input). The server must answer exactly as §7.2 says: a HELLO
//      gets one WELCOME or one ERROR with the right code and the HELLO's
//      nonce; any other frame gets nothing or ERROR unknown_session; an
//      invalid frame is counted in malformed_frames(). A WELCOME'd session is
//      ended with BYE, so sessions() must be back to 0 after every input;
//   3. answered, nonce patched in, as the home's reply to a real dial()
//      (a fake home: a ROUTER on inproc://), followed by a valid ERROR
//      unknown_channel: dial must either accept a WELCOME, or ignore the
//      frame and fail on that ERROR (or fail on the input if it is an
//      ERROR). It must never hang (bounded by its connect timeout) or crash.
//
// Every check aborts, which libFuzzer reports as a crash with the input saved.
// Thread safety: libFuzzer calls LLVMFuzzerTestOneInput from one thread.
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include <zmq.hpp>

#include "../src/codec.hpp"
#include "../src/net_context.hpp"
#include "zchan/channel.hpp"
#include "zchan/errors.hpp"
#include "zchan/net.hpp"

namespace w = zchan::detail::wire;
using namespace std::chrono_literals;

namespace {

[[noreturn]] void fail(const char* why) {
    std::fprintf(stderr, "handshake_fuzz: %s\n", why);
    std::abort();
}

constexpr const char* served_name = "numbers";
constexpr const char* fake_home = "inproc://zchan-handshake-fuzz-fake-home";

/// Process-wide fixture, built on the first input and deliberately never
/// destroyed (libFuzzer exits with _exit-like paths; a static destructor
/// racing the zchan exit flush would only add noise).
struct fixture {
    zchan::channel<int> ch{4};
    zchan::server srv{"inproc://zchan-handshake-fuzz"};
    zmq::socket_t dealer{zchan::detail::net_context(), zmq::socket_type::dealer};
    zmq::socket_t router{zchan::detail::net_context(), zmq::socket_type::router};
    std::uint64_t ping_nonce = 0xF0220000'00000000ULL;

    fixture() {
        srv.serve(served_name, ch);
        dealer.set(zmq::sockopt::linger, 0);
        dealer.connect(srv.endpoint());
        router.set(zmq::sockopt::linger, 0);
        router.bind(fake_home);
    }
};

fixture& fx() {
    static fixture* f = new fixture();  // intentionally leaked, see above
    return *f;
}

/// Receives one message on the DEALER within the deadline, or aborts: the
/// server must never go silent on a PING.
zmq::message_t recv_or_die(zmq::socket_t& s) {
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    for (;;) {
        zmq::message_t m;
        if (s.recv(m, zmq::recv_flags::dontwait)) return m;
        if (std::chrono::steady_clock::now() >= deadline) fail("server went silent");
        // libFuzzer's -timeout runs a SIGALRM timer: EINTR is expected here.
        try {
            zmq::poll(&item, 1, 100ms);
        } catch (const zmq::error_t& e) {
            if (e.num() != EINTR) throw;
        }
    }
}

/// Sends PING(nonce) on channel 0 and collects every frame the server sends
/// before the matching PONG. Each must decode as a frame a peer accepts.
template <class F>
void ping_and_collect(fixture& f, F&& on_frame) {
    const std::uint64_t nonce = ++f.ping_nonce;
    std::string ping;
    w::encode_header(ping, w::header{w::version, w::msg::ping, 0, 0, nonce});
    f.dealer.send(zmq::buffer(ping), zmq::send_flags::none);
    for (;;) {
        zmq::message_t m = recv_or_die(f.dealer);
        w::frame r;
        if (w::decode({m.data<unsigned char>(), m.size()}, w::side::peer, r)) {
            fail("the server sent a frame its own codec rejects");
        }
        if (r.h.type == w::msg::pong && r.h.id == nonce) return;
        if (r.h.type == w::msg::pong) continue;  // the input was itself a PING on channel 0
        on_frame(r);
    }
}

/// What §7.2 says the home answers to a valid HELLO.
w::msg expected_answer(const w::frame& hello, w::error_code& code) {
    if (w::negotiate(hello.hello) == 0) {
        code = w::error_code::unsupported_version;
        return w::msg::error;
    }
    if (hello.hello.name != served_name) {
        code = w::error_code::unknown_channel;
        return w::msg::error;
    }
    if (hello.hello.type_name != zchan::type_name<int>::value()) {
        code = w::error_code::type_mismatch;
        return w::msg::error;
    }
    return w::msg::welcome;
}

void check_peer_decoding(const std::uint8_t* data, std::size_t size) {
    w::frame f;
    if (w::decode({data, size}, w::side::peer, f)) return;
    if (f.h.type == w::msg::welcome) {
        if (f.h.channel != 0 || f.welcome.channel == 0) fail("WELCOME channel ids");
        if (f.welcome.timeout_ms <= f.welcome.heartbeat_ms) fail("WELCOME timeout <= interval");
        if (size != w::welcome_size) fail("WELCOME size");
    } else if (f.h.type == w::msg::error) {
        if (f.error.text.size() > w::max_error_text) fail("ERROR text too long");
        if (size != w::header_size + 4 + f.error.text.size()) fail("ERROR size");
    }
}

void check_server(fixture& f, const std::uint8_t* data, std::size_t size) {
    w::frame in;
    const bool valid = !w::decode({data, size}, w::side::home, in);
    const auto malformed_before = f.srv.malformed_frames();

    f.dealer.send(zmq::buffer(data, size), zmq::send_flags::none);
    int answers = 0;
    std::uint32_t session = 0;
    bool window = false;  // a send window was granted: its CREDIT follows the WELCOME (§9.1)
    ping_and_collect(f, [&](const w::frame& r) {
        if (window && r.h.type == w::msg::credit) {
            if (r.h.channel != session) fail("CREDIT on another channel than the session's");
            if (r.h.id > in.hello.send_window) fail("CREDIT beyond the window granted");
            window = false;
            return;
        }
        ++answers;
        if (!valid) fail("the server answered an invalid frame");
        if (in.h.type == w::msg::hello) {
            w::error_code code{};
            const w::msg want = expected_answer(in, code);
            if (r.h.type != want || r.h.id != in.h.id) fail("wrong answer to a HELLO");
            if (want == w::msg::error && r.error.code != code) fail("wrong ERROR code for a HELLO");
            if (want == w::msg::welcome) {
                if (r.welcome.capacity != 4) fail("WELCOME capacity");
                if (r.welcome.prefetch > in.hello.prefetch) fail("WELCOME granted > requested");
                if (r.welcome.send_window > in.hello.send_window)
                    fail("window granted > requested");
                session = r.welcome.channel;
                window = r.welcome.send_window != 0;
            }
        } else if (r.h.type != w::msg::error || r.error.code != w::error_code::unknown_session) {
            fail("a frame outside a session got an answer other than unknown_session");
        }
    });
    if (answers > 1) fail("more than one answer to one frame");
    if (valid && in.h.type == w::msg::hello && answers != 1) fail("a HELLO went unanswered");
    if (!valid && f.srv.malformed_frames() == malformed_before) fail("invalid frame not counted");

    if (session != 0) {
        std::string bye;
        w::encode_header(bye, w::header{w::version, w::msg::bye, 0, session, 0});
        f.dealer.send(zmq::buffer(bye), zmq::send_flags::none);
        ping_and_collect(f, [](const w::frame&) { fail("an answer to BYE"); });
    }
    if (f.srv.sessions() != 0) fail("a session outlived its BYE");
}

void check_dial(fixture& f, const std::uint8_t* data, std::size_t size) {
    zchan::net_options o;
    o.connect_timeout = 5000ms;
    // Any zchan error is a valid answer to a fuzzed WELCOME: a refused or mistyped dial, or
    // peer_lost when the WELCOME grants a heartbeat timeout shorter than this process can keep
    // (protocol.md §12.1). Anything else escapes the thread: std::terminate, a crash.
    std::thread dialer([&] {
        try {
            auto ch = zchan::dial<int>(fake_home, served_name, o);
            (void)ch.cap();
        } catch (const zchan::transport_error&) {
        }
    });
    // The dialer's HELLO; skip whatever earlier dialers left (BYE, PING, PONG).
    std::string rid;
    std::uint64_t nonce = 0;
    for (;;) {
        zmq::message_t id = recv_or_die(f.router);
        zmq::message_t body = recv_or_die(f.router);
        w::frame h;
        if (!w::decode({body.data<unsigned char>(), body.size()}, w::side::home, h) &&
            h.h.type == w::msg::hello) {
            rid.assign(id.data<char>(), id.size());
            nonce = h.h.id;
            break;
        }
    }
    std::string reply(reinterpret_cast<const char*>(data), size);
    if (reply.size() >= w::header_size) std::memcpy(reply.data() + 8, &nonce, sizeof nonce);
    f.router.send(zmq::buffer(rid), zmq::send_flags::sndmore);
    f.router.send(zmq::buffer(reply), zmq::send_flags::none);
    std::string err;
    w::encode_error(err, 0, nonce, w::error_code::unknown_channel, "fuzz");
    f.router.send(zmq::buffer(rid), zmq::send_flags::sndmore);
    f.router.send(zmq::buffer(err), zmq::send_flags::none);
    dialer.join();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    fixture& f = fx();
    check_peer_decoding(data, size);
    check_server(f, data, size);
    check_dial(f, data, size);
    return 0;
}

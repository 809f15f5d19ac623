// The child roles of the fault tests (see fault_support.hpp): the test binary
// runs itself with ZCHAN_FAULT_ROLE set, and main() calls run_fault_role().
// Every role talks over zchan on a channel of std::string values made by
// make_value(), and reports on stdout, one line per event:
//
//   home     serves "ch" (capacity ZCHAN_CAP, pre-filled with ZCHAN_FILL values
//            9*value_base+i) and "aux" (same capacity, empty) at ZCHAN_EP; prints
//            "endpoint <ep>", then obeys stdin: "close", "drain" (prints "left <n>"
//            for every value still in "ch", then "drained"), "no-sessions" (waits
//            until every session is gone, then prints "sessions 0"), "rss" (prints
//            "rss <peak KiB>"); exits 0 at EOF.
//   produce  dials "ch", sends ZCHAN_N values ZCHAN_ID*value_base+i of ZCHAN_SIZE
//            pattern bytes, printing "sent <i>" after each send returned; "done".
//            With a send window (ZCHAN_SEND_WINDOW) it flushes before "done" and
//            prints "flushed", or "unconfirmed <n>" (exit 4) if the session is lost.
//   consume  dials "ch" (prefetch ZCHAN_PREFETCH) and ranges, printing "got <n>"
//            per value and "end" when the range ends. ZCHAN_STALL_AFTER=k: after k
//            values, makes its ACKs reach the home (a QUERY round trip: frames of
//            one connection are processed in order), prints "stalled <k>" and
//            waits for "go" on stdin. ZCHAN_RELEASE_AFTER=k: after k values, the
//            same, then destroys its handle, prints "released" and exits 0.
//            ZCHAN_SELF_STOP_AFTER=k: after k values, sends a QUERY (so that its
//            last frame left just now), prints "stopping" and stops itself
//            (SIGSTOP); the test decides how long it stays stopped.
//            ZCHAN_SUMMARY=1: prints "count <n> sum <s>" before "end" instead of a
//            line per value.
//
// Failures: "lost" (exit 4) on peer_lost, "closed" (exit 3) on channel_closed,
// "bad <text>" (exit 5) for a value that is not a whole make_value() value,
// "error <what>" (exit 2) otherwise.
#pragma once

#include <chrono>
#include <csignal>
#include <iostream>
#include <optional>
#include <string>

#include "fault_support.hpp"
#include "zchan/channel.hpp"
#include "zchan/net.hpp"

namespace zchan_test {

/// Heartbeat settings for every fault test: ZCHAN_HB / ZCHAN_TIMEOUT (ms) or 100 / 500 ms.
[[nodiscard]] inline zchan::net_options fault_options() {
    zchan::net_options o;
    o.connect_timeout = std::chrono::milliseconds(5000);
    o.heartbeat = std::chrono::milliseconds(std::stol(env_or("ZCHAN_HB", "100")));
    o.heartbeat_timeout = std::chrono::milliseconds(std::stol(env_or("ZCHAN_TIMEOUT", "500")));
    o.prefetch = static_cast<std::uint32_t>(std::stoul(env_or("ZCHAN_PREFETCH", "0")));
    o.send_window = static_cast<std::uint32_t>(std::stoul(env_or("ZCHAN_SEND_WINDOW", "0")));
    return o;
}

/// Blocks until stdin has the line `word` (true) or reaches EOF (false).
inline bool wait_stdin(const std::string& word) {
    std::string line;
    while (std::getline(std::cin, line)) {
        if (line == word) return true;
    }
    return false;
}

inline int role_home() {
    const auto cap = static_cast<std::size_t>(std::stoul(env_or("ZCHAN_CAP", "8")));
    const long fill = std::stol(env_or("ZCHAN_FILL", "0"));
    zchan::channel<std::string> ch(cap);
    zchan::channel<std::string> aux(cap);
    zchan::server srv(env_or("ZCHAN_EP", "tcp://127.0.0.1:*"), fault_options());
    srv.serve("ch", ch);
    srv.serve("aux", aux);
    for (long i = 0; i < fill; ++i) ch.send(make_value(9 * value_base + i));
    say("endpoint " + srv.endpoint());
    std::string line;
    while (std::getline(std::cin, line)) {
        if (line == "close") {
            ch.close();
            say("closed");
        } else if (line == "drain") {
            for (;;) {
                auto r = ch.try_recv();
                if (!r.ok()) break;
                const auto n = parse_value(
                    *r.value, static_cast<std::size_t>(std::stoul(env_or("ZCHAN_SIZE", "0"))));
                say(n ? "left " + std::to_string(*n) : "bad " + r.value->substr(0, 40));
            }
            say("drained");
        } else if (line == "no-sessions") {
            // Until the server has dropped every session (lost peers included).
            const bool none =
                wait_until([&] { return srv.sessions() == 0; }, deadline_after(generous));
            say(none ? "sessions 0" : "sessions left " + std::to_string(srv.sessions()));
        } else if (line == "rss") {
            say("rss " + std::to_string(peak_rss_kib()));
        }
    }
    return 0;
}

inline int role_produce() {
    const long n = std::stol(env_or("ZCHAN_N", "0"));
    const long id = std::stol(env_or("ZCHAN_ID", "1"));
    const auto size = static_cast<std::size_t>(std::stoul(env_or("ZCHAN_SIZE", "0")));
    auto ch = zchan::dial<std::string>(env_or("ZCHAN_EP"), "ch", fault_options());
    say("dialed");
    for (long i = 0; i < n; ++i) {
        ch.send(make_value(id * value_base + i, size));
        say("sent " + std::to_string(i));
    }
    if (ch.flush() != zchan::send_status::ok) {
        say("unconfirmed " + std::to_string(ch.unconfirmed_sends()));
        return 4;
    }
    if (fault_options().send_window != 0) say("flushed");
    say("done rss " + std::to_string(peak_rss_kib()));
    return 0;
}

inline int role_consume() {
    const auto size = static_cast<std::size_t>(std::stoul(env_or("ZCHAN_SIZE", "0")));
    const long stall_after = std::stol(env_or("ZCHAN_STALL_AFTER", "0"));
    const long release_after = std::stol(env_or("ZCHAN_RELEASE_AFTER", "0"));
    const long self_stop_after = std::stol(env_or("ZCHAN_SELF_STOP_AFTER", "0"));
    // ZCHAN_SUMMARY=1: no line per value (a consumer that waits for the test to
    // read its output is not running at its own speed), "count <n> sum <s>" at the end.
    const bool summary = env_or("ZCHAN_SUMMARY") == "1";
    long count = 0;
    long sum = 0;
    std::optional<zchan::channel<std::string>> ch =
        zchan::dial<std::string>(env_or("ZCHAN_EP"), "ch", fault_options());
    say("dialed");
    long k = 0;
    for (;;) {
        if (k > 0 && k == self_stop_after) {
            (void)ch->len();
            say("stopping");
            ::raise(SIGSTOP);
        }
        if (k > 0 && (k == stall_after || k == release_after)) {
            try {
                (void)ch->len();  // the ACKs leave ahead of the QUERY; STATUS proves them processed
            } catch (const zchan::peer_lost&) {
                // A stopped or dead home: nothing to prove; releasing the handle still must
                // not hang (len() reports the loss since it no longer pretends 0).
                if (k != release_after) throw;
            }
            if (k == release_after) {
                ch.reset();  // BYE: the prefetched values go back to the channel
                say("released");
                return 0;
            }
            say("stalled " + std::to_string(k));
            if (!wait_stdin("go")) return 0;
        }
        std::optional<std::string> v = ch->recv();
        if (!v) break;
        const auto n = parse_value(*v, size);
        if (!n) {
            say("bad " + v->substr(0, 40));
            return 5;
        }
        if (summary) {
            ++count;
            sum += *n;
        } else {
            say("got " + std::to_string(*n));
        }
        ++k;
    }
    if (summary) say("count " + std::to_string(count) + " sum " + std::to_string(sum));
    say("end");
    return 0;
}

/// Runs the role named by ZCHAN_FAULT_ROLE; -1 if none is set (run the tests).
inline int run_fault_role() {
    const std::string role = env_or("ZCHAN_FAULT_ROLE");
    if (role.empty()) return -1;
    return run_role([&] {
        if (role == "home") return role_home();
        if (role == "produce") return role_produce();
        if (role == "consume") return role_consume();
        say("error unknown role " + role);
        return 2;
    });
}

}  // namespace zchan_test

// The rendezvous across processes (docs/protocol.md §8.3): on an unbuffered
// channel a send completes only when a receiver takes the value; for a
// remote receiver that is its peer's ACK, and a value the remote receiver
// does not take (its select chose another case) goes back to its sender,
// never into the capacity-0 channel. Home and dialer share this process over
// tcp://127.0.0.1:* (the peer and the home are separate sessions on a real
// socket; the fault tests run them as separate processes).
#include <atomic>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <sys/resource.h>

#include "net_test_support.hpp"
#include "zchan/channel.hpp"
#include "zchan/net.hpp"
#include "zchan/select.hpp"
#include "zchan_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using zchan::send_status;
using zchan_test::background_call;
using zchan_test::deadline_after;
using zchan_test::generous;

zchan::net_options opts() { return zchan_test::heartbeat_options(100ms, 3000ms, 3000ms); }

// The program: a thread selects over two dialed unbuffered channels;
// the home then sends on both with deadlines. In Go exactly one send finds
// the receiver and the other times out; before claims both returned ok, the
// second value requeued into the capacity-0 channel (len() == 1).
TEST(NetRendezvous, ARemoteSelectOverTwoChannelsTakesExactlyOneOfTwoSends) {
    zchan::channel<int> c;
    zchan::channel<int> d;
    zchan::server srv("tcp://127.0.0.1:*", opts());
    srv.serve("c", c);
    srv.serve("d", d);
    auto rc = zchan::dial<int>(srv.endpoint(), "c", opts());
    auto rd = zchan::dial<int>(srv.endpoint(), "d", opts());
    const int rounds = static_cast<int>(zchan_test::scale(20));
    for (int round = 0; round < rounds; ++round) {
        std::optional<int> got;
        std::size_t which = 99;
        background_call sel([&] {
            which = zchan::select(zchan::recv_case(rc, [&](std::optional<int> v) { got = v; }),
                                  zchan::recv_case(rd, [&](std::optional<int> v) { got = v; }));
        });
        // The first send waits for the select's RECV to reach the home; the
        // second comes while the select's other RECV may still be there.
        const bool d_first = round % 2 == 0;
        zchan::channel<int>& first = d_first ? d : c;
        zchan::channel<int>& second = d_first ? c : d;
        ASSERT_EQ(first.send_for(1, generous), send_status::ok) << "round " << round;
        EXPECT_EQ(second.send_for(42, 200ms), send_status::timeout) << "round " << round;
        ASSERT_TRUE(sel.wait_done());
        EXPECT_EQ(which, d_first ? 1U : 0U) << "round " << round;
        EXPECT_EQ(got, 1) << "round " << round;
        EXPECT_EQ(c.len(), 0U) << "round " << round;
        EXPECT_EQ(d.len(), 0U) << "round " << round;
    }
}

// Go runs this program: two goroutines, each in a loop of
// select { case c <- mine: case v := <-c: }, on one unbuffered channel (here
// one dialed handle shared by both threads). Every select completes by
// pairing with the other thread's: one sends, the other receives. Nobody
// receives its own value, and neither deadlocks.
TEST(NetRendezvous, TwoSelectsThatSendAndReceiveOnOneDialedChannelPairUp) {
    zchan::channel<int> home;
    zchan::server srv("tcp://127.0.0.1:*", opts());
    srv.serve("c", home);
    auto ch = zchan::dial<int>(srv.endpoint(), "c", opts());
    const int rounds = static_cast<int>(zchan_test::scale(100));
    std::vector<int> got_a;
    std::vector<int> got_b;
    std::atomic<int> sent_a{0};
    std::atomic<int> sent_b{0};
    auto player = [&](int mine, std::vector<int>& got, std::atomic<int>& sent) {
        return [&, mine] {
            for (int i = 0; i < rounds; ++i) {
                const std::size_t k = zchan::select(zchan::send_case(ch, mine),
                                                    zchan::recv_case(ch, [&](std::optional<int> v) {
                                                        got.push_back(v.value_or(-1));
                                                    }));
                if (k == 0) ++sent;
            }
        };
    };
    {
        background_call a(player(1, got_a, sent_a));
        background_call b(player(2, got_b, sent_b));
        ASSERT_TRUE(a.wait_done(deadline_after(4 * generous))) << "deadlock";
        ASSERT_TRUE(b.wait_done(deadline_after(4 * generous))) << "deadlock";
    }
    for (int v : got_a) EXPECT_EQ(v, 2) << "A received its own value";
    for (int v : got_b) EXPECT_EQ(v, 1) << "B received its own value";
    EXPECT_EQ(static_cast<int>(got_a.size()), sent_b.load());
    EXPECT_EQ(static_cast<int>(got_b.size()), sent_a.load());
    EXPECT_EQ(home.len(), 0U);
}

/// CPU time (user + system) this process has used so far.
std::chrono::microseconds cpu_used() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return std::chrono::seconds(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           std::chrono::microseconds(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// A select {send c; recv c} on a dialed unbuffered channel with nobody else
// there waits quietly (protocol.md §8.6.1): its own receiver does not make
// its watch READY. Before, the two woke each other: the select and the home
// spun through round trips, a CPU and more for the whole wait.
TEST(NetRendezvous, ALoneSelectThatSendsAndReceivesWaitsWithoutSpinning) {
    zchan::channel<int> home;
    zchan::server srv("tcp://127.0.0.1:*", opts());
    srv.serve("c", home);
    auto ch = zchan::dial<int>(srv.endpoint(), "c", opts());
    const auto wait = 600ms;
    const auto before = cpu_used();
    const std::size_t k =
        zchan::select(zchan::send_case(ch, 1), zchan::recv_case(ch), zchan::timeout_case(wait));
    const auto spent = cpu_used() - before;
    EXPECT_EQ(k, 2U);
    // Heartbeats and the select's registrations cost a few milliseconds;
    // spinning costs about the whole wait, per spinning thread.
    EXPECT_LT(spent, wait / 4) << "CPU used while the select waited";
    EXPECT_EQ(home.len(), 0U);
}

// A remote receiver whose select gives the value back: the local sender is
// still waiting (its value went back to it), and the next receiver gets it
// from the sender, not from the channel.
TEST(NetRendezvous, AValueARemoteSelectDidNotTakeGoesBackToItsSender) {
    zchan::channel<std::string> home;
    zchan::channel<std::string> other;
    zchan::server srv("tcp://127.0.0.1:*", opts());
    srv.serve("u", home);
    auto remote = zchan::dial<std::string>(srv.endpoint(), "u", opts());
    // The remote select waits on `remote` and on a local channel; a local
    // value wins while the home's value is on its way.
    std::size_t which = 99;
    background_call sel(
        [&] { which = zchan::select(zchan::recv_case(other), zchan::recv_case(remote)); });
    ASSERT_EQ(other.send_for("local", generous), send_status::ok);
    ASSERT_TRUE(sel.wait_done());
    EXPECT_EQ(which, 0U);
    // A sender that finds the select's RECV (if still at the home) is claimed
    // and then given back: it times out, nothing in the channel.
    EXPECT_EQ(home.send_for("late", 300ms), send_status::timeout);
    EXPECT_EQ(home.len(), 0U);
    // A later receiver still gets a later value through the rendezvous.
    background_call sender([&] { EXPECT_EQ(home.send_for("next", generous), send_status::ok); });
    EXPECT_EQ(remote.recv_for(generous).value.value_or(""), "next");
}

}  // namespace

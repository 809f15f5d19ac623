// A remote select's requests on one unbuffered channel at its home
// (protocol.md §8.6.1), driven by hand-written peers: raw DEALERs speaking
// ZCHAN/1 encoded from protocol.md (tests/support/raw_peer.hpp) against a
// real zchan::server on tcp://127.0.0.1:*. The RECV and WATCH_SEND of one
// select carry one tag: the select's own RECV never makes its watch READY,
// and once the home told a select READY, that select's RECV no longer wakes
// others, so the select told to send finds the other select's receiver.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include "raw_peer.hpp"
#include "zchan/channel.hpp"
#include "zchan/net.hpp"
#include "zchan_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using namespace zchan_test::raw;

class NetSelectGroups : public ::testing::Test {
protected:
    NetSelectGroups() {
        zchan::net_options o;
        o.heartbeat = 1000ms;
        o.heartbeat_timeout = 10000ms;  // no session is lost by a slow (sanitized) run
        srv_.emplace("tcp://127.0.0.1:*", o);
        srv_->serve("c", ch_);
    }

    /// A raw peer with a session on "c"; its channel id in `id`.
    raw_peer& peer(std::uint32_t& id) {
        peers_.emplace_back(std::make_unique<raw_peer>(ctx_, srv_->endpoint()));
        const auto w = peers_.back()->open("c", "string", {.instance = next_instance_});
        next_instance_ = static_cast<std::uint8_t>(next_instance_ + 16);
        EXPECT_TRUE(w.has_value());
        id = w ? w->welcome_channel() : 0;
        return *peers_.back();
    }

    static std::vector<answer> sync(raw_peer& p) {
        auto got = p.sync();
        EXPECT_TRUE(got.has_value()) << "no PONG";
        return got.value_or(std::vector<answer>{});
    }

    /// Answers until `want` holds for what has arrived: the home sends some
    /// answers from its loop after a wake-up (a claimed receiver's VALUE, the
    /// SEND_OK after an ACK), not while it handles the frame, so one PING may
    /// overtake them.
    template <class F>
    static std::vector<answer> sync_until(raw_peer& p, F want) {
        std::vector<answer> all;
        const auto deadline = zchan_test::deadline_after(zchan_test::generous);
        while (!want(all) && zchan_test::clock::now() < deadline) {
            auto more = sync(p);
            all.insert(all.end(), more.begin(), more.end());
        }
        return all;
    }

    static std::string describe(const std::vector<answer>& got) {
        std::string s;
        for (const auto& a : got) {
            s += " type=" + std::to_string(a.type) + " id=" + std::to_string(a.id);
        }
        return s.empty() ? " nothing" : s;
    }

    static bool has(const std::vector<answer>& got, std::uint8_t type, std::uint64_t id) {
        return std::any_of(got.begin(), got.end(),
                           [&](const answer& a) { return a.type == type && a.id == id; });
    }

    zmq::context_t ctx_;
    zchan::channel<std::string> ch_;  // unbuffered
    std::optional<zchan::server> srv_;
    std::vector<std::unique_ptr<raw_peer>> peers_;
    std::uint8_t next_instance_ = 1;
};

// A lone select {send c; recv c}: before tags, its RECV made its own watch
// READY, the select retried, found nobody, registered again: a busy loop of
// round trips. With the tag the home sees that the receiver is its own.
TEST_F(NetSelectGroups, ASelectsOwnReceiveDoesNotMakeItsWatchReady) {
    std::uint32_t c = 0;
    raw_peer& a = peer(c);
    // Receive first: the watch would be READY at once, answered before the PONG.
    a.send(select_request(t_recv, c, 1, 7));
    a.send(select_request(t_watch_send, c, 2, 7));
    auto got = sync(a);
    EXPECT_TRUE(got.empty()) << "answered:" << describe(got);
    a.send(header(t_cancel_recv, c, 1));
    a.send(header(t_cancel_watch, c, 2));
    got = sync(a);
    EXPECT_EQ(got.size(), 2U) << describe(got);
    EXPECT_TRUE(has(got, t_recv_cancelled, 1)) << describe(got);
    EXPECT_TRUE(has(got, t_watch_cancelled, 2)) << describe(got);

    // Watch first: the receiver would wake it (READY from the home's loop).
    a.send(select_request(t_watch_send, c, 3, 8));
    a.send(select_request(t_recv, c, 4, 8));
    got = sync(a);
    auto more = sync(a);
    got.insert(got.end(), more.begin(), more.end());
    EXPECT_TRUE(got.empty()) << "answered:" << describe(got);
    a.send(header(t_cancel_watch, c, 3));
    a.send(header(t_cancel_recv, c, 4));
    got = sync(a);
    EXPECT_EQ(got.size(), 2U) << describe(got);
    EXPECT_TRUE(has(got, t_watch_cancelled, 3)) << describe(got);
    EXPECT_TRUE(has(got, t_recv_cancelled, 4)) << describe(got);

    // A peer that sends no tags (SELECT is optional) gets the hint, as §8.6
    // has it: a receiver is there.
    a.send(header(t_recv, c, 5));
    a.send(header(t_watch_send, c, 6));
    got = sync(a);
    EXPECT_TRUE(has(got, t_ready, 6)) << describe(got);
    a.send(header(t_cancel_recv, c, 5));
    got = sync(a);
    EXPECT_TRUE(has(got, t_recv_cancelled, 5)) << describe(got);
}

// Two selects {send c; recv c}, A waiting, B arriving: B's watch is READY at
// once (A's receiver is there). B's RECV, sent right after, must not make
// A's watch READY too: then both would cancel their receivers and send into
// nothing, again and again. It is parked; B sends to A's receiver.
TEST_F(NetSelectGroups, TheSelectToldToSendFindsTheOtherSelectsReceiverStillThere) {
    std::uint32_t ca = 0;
    std::uint32_t cb = 0;
    raw_peer& a = peer(ca);
    raw_peer& b = peer(cb);
    a.send(select_request(t_watch_send, ca, 1, 7));
    a.send(select_request(t_recv, ca, 2, 7));
    auto got = sync(a);
    ASSERT_TRUE(got.empty()) << describe(got);

    b.send(select_request(t_watch_send, cb, 1, 9));
    got = sync(b);
    ASSERT_TRUE(has(got, t_ready, 1)) << describe(got);
    b.send(select_request(t_recv, cb, 2, 9));
    got = sync(b);
    EXPECT_TRUE(got.empty()) << "B's parked RECV was answered:" << describe(got);
    got = sync(a);
    EXPECT_TRUE(got.empty()) << "A was told READY by B's receiver:" << describe(got);

    // B's select, woken by READY, withdraws its RECV and tries its send.
    b.send(header(t_cancel_recv, cb, 2));
    got = sync(b);
    EXPECT_TRUE(has(got, t_recv_cancelled, 2)) << describe(got);
    b.send(header(t_send, cb, 3, f_try) + encoded("hi"));
    got = sync(b);
    EXPECT_TRUE(got.empty()) << "the TRY SEND waits for A's verdict:" << describe(got);
    got = sync_until(a, [](const std::vector<answer>& g) { return !g.empty(); });
    ASSERT_EQ(got.size(), 1U) << describe(got);
    ASSERT_EQ(got[0].type, t_value);
    EXPECT_EQ(got[0].id, 2U);
    EXPECT_EQ(got[0].payload, encoded("hi"));
    a.send(ack(ca, got[0].delivery));  // A's select took it: the rendezvous completes (§8.3)
    (void)sync(a);
    got = sync_until(b, [](const std::vector<answer>& g) { return has(g, t_send_ok, 3); });
    EXPECT_TRUE(has(got, t_send_ok, 3)) << describe(got);

    a.send(header(t_cancel_watch, ca, 1));
    got = sync(a);
    EXPECT_TRUE(has(got, t_watch_cancelled, 1)) << describe(got);
    EXPECT_EQ(ch_.len(), 0U);
}

// The tag groups one session's requests only: another session using the
// same number is another select.
TEST_F(NetSelectGroups, TagsOfDifferentSessionsAreDifferentSelects) {
    std::uint32_t ca = 0;
    std::uint32_t cb = 0;
    raw_peer& a = peer(ca);
    raw_peer& b = peer(cb);
    a.send(select_request(t_recv, ca, 1, 5));
    (void)sync(a);
    b.send(select_request(t_watch_send, cb, 1, 5));
    auto got = sync(b);
    EXPECT_TRUE(has(got, t_ready, 1)) << describe(got);
    a.send(header(t_cancel_recv, ca, 1));
    got = sync(a);
    EXPECT_TRUE(has(got, t_recv_cancelled, 1)) << describe(got);
}

}  // namespace

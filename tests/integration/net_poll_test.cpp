// The home's side of POLL (protocol.md §8.9), driven by hand-written peers:
// raw DEALERs speaking ZCHAN/1 encoded from protocol.md
// (tests/support/raw_peer.hpp) against a real zchan::server on
// tcp://127.0.0.1:*. POLL is answered EMPTY only if none of its cases was
// ready, counting a session's unresolved deliveries as ready receives; it
// moves nothing; a case naming another connection's session makes it READY.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "raw_peer.hpp"
#include "zchan/zchan.hpp"
#include "zchan_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using namespace zchan_test::raw;

constexpr std::uint8_t op_recv = 1;
constexpr std::uint8_t op_send = 2;

class NetPoll : public ::testing::Test {
protected:
    NetPoll() {
        zchan::net_options o;
        o.heartbeat = 1000ms;
        o.heartbeat_timeout = 10000ms;  // no session is lost by a slow (sanitized) run
        srv_.emplace("tcp://127.0.0.1:*", o);
        srv_->serve("b", b_);
        srv_->serve("u", u_);
    }

    raw_peer& connect() {
        peers_.emplace_back(std::make_unique<raw_peer>(ctx_, srv_->endpoint()));
        return *peers_.back();
    }

    /// A session of `p` on `name`: its channel id.
    std::uint32_t open(raw_peer& p, const std::string& name) {
        const auto w = p.open(name, "string", {.instance = next_instance_});
        next_instance_ = static_cast<std::uint8_t>(next_instance_ + 16);
        EXPECT_TRUE(w.has_value());
        return w ? w->welcome_channel() : 0;
    }

    /// The answer to request `id` among what `p` got back before a PONG.
    static std::uint8_t answer_to(raw_peer& p, std::uint64_t id) {
        const auto got = p.sync();
        EXPECT_TRUE(got.has_value()) << "no PONG";
        for (const auto& a : got.value_or(std::vector<answer>{})) {
            if (a.id == id && a.type != t_pong) return a.type;
        }
        return 0;
    }

    static std::uint8_t poll_answer(raw_peer& p, std::uint32_t channel, std::uint64_t id,
                                    const std::vector<std::pair<std::uint32_t, std::uint8_t>>& c) {
        p.send(poll(channel, id, c));
        return answer_to(p, id);
    }

    zchan::channel<std::string> b_{2};
    zchan::channel<std::string> u_;  // unbuffered
    zmq::context_t ctx_;
    std::optional<zchan::server> srv_;
    std::vector<std::unique_ptr<raw_peer>> peers_;
    std::uint8_t next_instance_ = 1;
};

TEST_F(NetPoll, EmptyOnlyWhileNoCaseIsReady) {
    raw_peer& p = connect();
    const std::uint32_t b = open(p, "b");
    const std::uint32_t u = open(p, "u");
    // Nothing to receive on either; b has room, so a send to b is ready.
    EXPECT_EQ(poll_answer(p, b, 1, {{b, op_recv}, {u, op_recv}}), t_empty);
    EXPECT_EQ(poll_answer(p, b, 2, {{b, op_recv}, {b, op_send}}), t_ready);
    b_.send("x");
    EXPECT_EQ(poll_answer(p, u, 1, {{u, op_recv}, {b, op_recv}}), t_ready);
    b_.send("y");  // full
    EXPECT_EQ(poll_answer(p, b, 3, {{b, op_send}, {u, op_send}}), t_empty);
    // POLL moved nothing.
    EXPECT_EQ(b_.len(), 2u);
    (void)b_.recv();
    EXPECT_EQ(poll_answer(p, b, 4, {{b, op_send}}), t_ready);
}

TEST_F(NetPoll, AValueOnItsWayToTheSessionIsReady) {
    raw_peer& p = connect();
    const std::uint32_t b = open(p, "b");
    b_.send("x");
    p.send(header(t_recv, b, 1));
    const auto got = p.sync();
    ASSERT_TRUE(got.has_value());
    std::uint64_t delivery = 0;
    for (const auto& a : *got) {
        if (a.type == t_value && a.id == 1) delivery = a.delivery;
    }
    ASSERT_NE(delivery, 0u) << "no VALUE";
    // The channel is empty, but the value is this session's until its ACK.
    EXPECT_EQ(b_.len(), 0u);
    EXPECT_EQ(poll_answer(p, b, 2, {{b, op_recv}}), t_ready);
    p.send(ack(b, delivery));
    EXPECT_EQ(poll_answer(p, b, 3, {{b, op_recv}}), t_empty);
}

TEST_F(NetPoll, ABlockedSenderIsReadyAndAWatchIsNot) {
    raw_peer& p = connect();
    const std::uint32_t u = open(p, "u");
    raw_peer& q = connect();
    const std::uint32_t qu = open(q, "u");
    q.send(header(t_watch_send, qu, 1));  // a remote select's send case: no value
    ASSERT_TRUE(q.sync().has_value());
    EXPECT_EQ(poll_answer(p, u, 1, {{u, op_recv}}), t_empty);
    // A receive waiting at the home makes a send ready (a TRY SEND finds it).
    p.send(header(t_recv, u, 2));
    ASSERT_TRUE(p.sync().has_value());
    EXPECT_EQ(poll_answer(q, qu, 2, {{qu, op_send}}), t_ready);
    p.send(header(t_cancel_recv, u, 2));
    ASSERT_TRUE(p.sync().has_value());
    EXPECT_EQ(poll_answer(q, qu, 3, {{qu, op_send}}), t_empty);
    // A thread blocked sending at the home makes a receive ready.
    zchan_test::background_call sender([&] { u_.send("v"); });
    bool ready = false;
    for (std::uint64_t id = 10; !ready && id < 10'000; ++id) {
        ready = poll_answer(p, u, id, {{u, op_recv}}) == t_ready;
    }
    EXPECT_TRUE(ready);
    EXPECT_EQ(*u_.recv(), "v");
    ASSERT_TRUE(sender.wait_done());
    EXPECT_EQ(poll_answer(p, u, 10'001, {{u, op_recv}}), t_empty);
}

TEST_F(NetPoll, AClosedChannelIsReadyToReceiveAndToSend) {
    raw_peer& p = connect();
    const std::uint32_t b = open(p, "b");
    b_.close();
    EXPECT_EQ(poll_answer(p, b, 1, {{b, op_recv}}), t_ready);
    EXPECT_EQ(poll_answer(p, b, 2, {{b, op_send}}), t_ready);
}

TEST_F(NetPoll, ACaseOfAnotherConnectionsSessionIsUnsure) {
    raw_peer& p = connect();
    const std::uint32_t b = open(p, "b");
    raw_peer& q = connect();
    const std::uint32_t qb = open(q, "b");
    // q's session, named from p's connection: READY, however things stand.
    EXPECT_EQ(poll_answer(p, b, 1, {{b, op_recv}, {qb, op_recv}}), t_ready);
    EXPECT_EQ(poll_answer(p, b, 2, {{b, op_recv}, {0x7fff'ffff, op_recv}}), t_ready);
    // Both sessions keep working.
    EXPECT_EQ(poll_answer(p, b, 3, {{b, op_recv}}), t_empty);
    EXPECT_EQ(poll_answer(q, qb, 1, {{qb, op_recv}}), t_empty);
}

TEST_F(NetPoll, AMalformedPollIsDroppedAndTheSessionGoesOn) {
    raw_peer& p = connect();
    const std::uint32_t b = open(p, "b");
    const std::uint64_t before = srv_->malformed_frames();
    p.send(poll(b, 1, {}));              // no cases
    p.send(poll(b, 2, {{b, 3}}));        // an operation neither receive nor send
    p.send(poll(b, 3, {{0, op_recv}}));  // channel 0
    const auto got = p.sync();
    ASSERT_TRUE(got.has_value());
    EXPECT_TRUE(got->empty()) << "a malformed POLL was answered";
    EXPECT_EQ(srv_->malformed_frames(), before + 3);
    EXPECT_EQ(poll_answer(p, b, 4, {{b, op_recv}}), t_empty);
}

}  // namespace

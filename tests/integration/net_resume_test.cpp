// The home's side of resume (protocol.md §12.2, §12.3), driven by a
// hand-written peer: raw DEALERs speaking ZCHAN/1 encoded from protocol.md
// (tests/support/raw_peer.hpp), against a real zchan::server on tcp://127.0.0.1:*. A second
// DEALER presenting the first one's instance id in HELLO RESUME stands for
// the peer's reconnect after a reset (it has another routing id, as a peer
// without a stable one would); requests re-sent on it must get the answers
// of §12.3, and the channel must see each value once.
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
using zchan_test::deadline_after;
using zchan_test::generous;

using namespace zchan_test::raw;

constexpr std::uint8_t t_closed = 0x27;  // CLOSED (protocol.md §5.2)

/// The peer of these tests: it opens std::string channels ("string", §7.4)
/// under an instance id it names, with RESUME when it stands for a reconnect.
class resume_peer : public raw_peer {
public:
    using raw_peer::raw_peer;
    std::optional<answer> open(const std::string& name, std::uint8_t instance, bool resume,
                               std::uint32_t prefetch = 0) {
        return raw_peer::open(name, "string",
                              {.flags = resume ? f_resume : std::uint16_t{0},
                               .prefetch = prefetch,
                               .instance = instance});
    }
};

class NetResume : public ::testing::Test {
protected:
    NetResume() {
        zchan::net_options o;
        o.heartbeat = 1000ms;
        o.heartbeat_timeout = 10000ms;  // no session is lost by a slow (sanitized) run
        srv_.emplace("tcp://127.0.0.1:*", o);
        srv_->serve("ch", ch_);
    }
    zmq::context_t ctx_;
    zchan::channel<std::string> ch_{4};
    std::optional<zchan::server> srv_;
};

TEST_F(NetResume, HelloResumeReattachesTheSessionWithTheSameChannelId) {
    resume_peer first(ctx_, srv_->endpoint());
    const auto w1 = first.open("ch", 7, false);
    ASSERT_TRUE(w1.has_value());
    EXPECT_EQ(w1->flags & f_resume, 0);
    resume_peer again(ctx_, srv_->endpoint());
    const auto w2 = again.open("ch", 7, true);
    ASSERT_TRUE(w2.has_value());
    EXPECT_NE(w2->flags & f_resume, 0) << "WELCOME RESUME";
    EXPECT_EQ(w2->welcome_channel(), w1->welcome_channel());
    EXPECT_EQ(srv_->sessions(), 1u);
}

TEST_F(NetResume, HelloResumeForAnUnknownInstanceGetsAFreshWelcome) {
    resume_peer p(ctx_, srv_->endpoint());
    const auto w = p.open("ch", 9, true);
    ASSERT_TRUE(w.has_value());
    EXPECT_EQ(w->flags & f_resume, 0) << "the home has no such session: RESUME clear";
}

TEST_F(NetResume, ResentRecvGetsTheSameValueAgainAndResolutionsAreIdempotent) {
    ch_.send("a");
    ch_.send("b");
    resume_peer first(ctx_, srv_->endpoint());
    const auto w = first.open("ch", 1, false);
    ASSERT_TRUE(w.has_value());
    const std::uint32_t c = w->welcome_channel();
    first.send(header(t_recv, c, 1));
    auto got = first.sync();
    ASSERT_TRUE(got.has_value());
    ASSERT_EQ(got->size(), 1u);
    EXPECT_EQ((*got)[0].type, t_value);
    const std::uint64_t d = (*got)[0].delivery;
    EXPECT_EQ((*got)[0].payload, encoded("a"));

    // The VALUE "was lost with the connection": the peer resumes and re-sends RECV 1.
    resume_peer again(ctx_, srv_->endpoint());
    ASSERT_TRUE(again.open("ch", 1, true).has_value());
    again.send(header(t_recv, c, 1));
    got = again.sync();
    ASSERT_TRUE(got.has_value());
    ASSERT_EQ(got->size(), 1u);
    EXPECT_EQ((*got)[0].type, t_value);
    EXPECT_EQ((*got)[0].id, 1u);
    EXPECT_EQ((*got)[0].delivery, d) << "the same delivery, not a new value";
    EXPECT_EQ((*got)[0].payload, encoded("a"));
    EXPECT_EQ(ch_.len(), 1u) << "only \"b\" left: \"a\" was not taken twice";

    // A late frame on the old connection: not the session's any more.
    first.send(header(t_recv, c, 2));
    got = first.sync();
    ASSERT_TRUE(got.has_value());
    ASSERT_EQ(got->size(), 1u);
    EXPECT_EQ((*got)[0].type, t_error);
    EXPECT_EQ(get<std::uint16_t>((*got)[0].frame, 16), e_unknown_session);
    EXPECT_EQ(ch_.len(), 1u);

    // ACK, its replay, and a RETURN after it: the value stays taken.
    again.send(ack(c, d));
    again.send(ack(c, d));
    again.send(header(t_return, c, d));
    got = again.sync();
    ASSERT_TRUE(got.has_value());
    EXPECT_TRUE(got->empty());
    EXPECT_EQ(ch_.len(), 1u) << "a replayed ACK or a late RETURN gave the value back";
    EXPECT_EQ(ch_.recv(), "b");
    EXPECT_FALSE(ch_.try_recv().ok());
}

TEST_F(NetResume, ResentReturnGivesTheValueBackOnce) {
    ch_.send("a");
    resume_peer p(ctx_, srv_->endpoint());
    const auto w = p.open("ch", 2, false);
    ASSERT_TRUE(w.has_value());
    const std::uint32_t c = w->welcome_channel();
    p.send(header(t_recv, c, 1));
    auto got = p.sync();
    ASSERT_TRUE(got.has_value() && got->size() == 1);
    const std::uint64_t d = (*got)[0].delivery;
    p.send(header(t_return, c, d));
    p.send(header(t_return, c, d));  // re-sent after a resume (§12.5)
    ASSERT_TRUE(p.sync().has_value());
    EXPECT_EQ(ch_.len(), 1u) << "returned once";
}

TEST_F(NetResume, ResentCloseGetsCloseOkAgain) {
    resume_peer first(ctx_, srv_->endpoint());
    const auto w = first.open("ch", 3, false);
    ASSERT_TRUE(w.has_value());
    const std::uint32_t c = w->welcome_channel();
    first.send(header(t_close, c, 5));
    auto got = first.sync();
    ASSERT_TRUE(got.has_value() && got->size() == 1);
    EXPECT_EQ((*got)[0].type, t_close_ok);
    EXPECT_TRUE(ch_.is_closed());

    resume_peer again(ctx_, srv_->endpoint());
    ASSERT_TRUE(again.open("ch", 3, true).has_value());
    again.send(header(t_close, c, 5));  // the re-send: its CLOSE_OK was lost
    again.send(header(t_close, c, 6));  // a new close: Go panics
    got = again.sync();
    ASSERT_TRUE(got.has_value());
    ASSERT_EQ(got->size(), 2u);
    EXPECT_EQ((*got)[0].type, t_close_ok);
    EXPECT_EQ((*got)[0].id, 5u);
    EXPECT_EQ((*got)[1].type, t_error);
    EXPECT_EQ((*got)[1].id, 6u);
    EXPECT_EQ(get<std::uint16_t>((*got)[1].frame, 16), e_already_closed);
}

TEST_F(NetResume, ResentSendIsEnqueuedOnceWhetherPendingOrResolved) {
    for (int i = 0; i < 4; ++i) ch_.send("x");  // full
    resume_peer first(ctx_, srv_->endpoint());
    const auto w = first.open("ch", 4, false);
    ASSERT_TRUE(w.has_value());
    const std::uint32_t c = w->welcome_channel();
    first.send(header(t_send, c, 1) + encoded("v"));
    auto got = first.sync();
    ASSERT_TRUE(got.has_value());
    EXPECT_TRUE(got->empty()) << "the offer waits: the channel is full";

    resume_peer again(ctx_, srv_->endpoint());
    ASSERT_TRUE(again.open("ch", 4, true).has_value());
    again.send(header(t_send, c, 1) + encoded("v"));  // pending: ignored
    got = again.sync();
    ASSERT_TRUE(got.has_value());
    EXPECT_TRUE(got->empty());
    EXPECT_EQ(ch_.recv(), "x");  // a slot: the offer enters the buffer, SEND_OK
    ASSERT_TRUE(zchan_test::wait_until([&] { return ch_.len() == 4; }, deadline_after(generous)));
    again.send(header(t_send, c, 1) + encoded("v"));  // resolved: the recorded answer again
    got = again.sync();
    ASSERT_TRUE(got.has_value());
    std::size_t oks = 0;
    for (const auto& a : *got) oks += (a.type == t_send_ok && a.id == 1) ? 1 : 0;
    EXPECT_GE(oks, 1u);
    std::vector<std::string> left;
    for (;;) {
        auto r = ch_.try_recv();
        if (!r.ok()) break;
        left.push_back(*r.value);
    }
    EXPECT_EQ(left, (std::vector<std::string>{"x", "x", "x", "v"})) << "\"v\" once";
}

TEST_F(NetResume, ResentRecvManyAnswersEachRequestOnce) {
    ch_.send("a");
    ch_.send("b");
    resume_peer first(ctx_, srv_->endpoint());
    const auto w = first.open("ch", 5, false, 8);
    ASSERT_TRUE(w.has_value());
    const std::uint32_t c = w->welcome_channel();
    first.send(recv_many(c, 10, 3));
    auto got = first.sync();
    ASSERT_TRUE(got.has_value());
    ASSERT_EQ(got->size(), 2u);  // 10 and 11 answered, 12 waits
    const std::uint64_t d10 = (*got)[0].delivery;
    const std::uint64_t d11 = (*got)[1].delivery;

    resume_peer again(ctx_, srv_->endpoint());
    ASSERT_TRUE(again.open("ch", 5, true, 8).has_value());
    again.send(recv_many(c, 10, 3));  // all three: the answers "were lost"
    got = again.sync();
    ASSERT_TRUE(got.has_value());
    ASSERT_EQ(got->size(), 2u) << "12 is pending: ignored";
    EXPECT_EQ((*got)[0].id, 10u);
    EXPECT_EQ((*got)[0].delivery, d10);
    EXPECT_EQ((*got)[0].payload, encoded("a"));
    EXPECT_EQ((*got)[1].id, 11u);
    EXPECT_EQ((*got)[1].delivery, d11);
    EXPECT_EQ((*got)[1].payload, encoded("b"));

    ch_.send("c");  // answers 12, once
    got = again.sync_until(1);
    ASSERT_TRUE(got.has_value());
    ASSERT_EQ(got->size(), 1u);
    EXPECT_EQ((*got)[0].id, 12u);
    EXPECT_EQ((*got)[0].payload, encoded("c"));
    EXPECT_GT((*got)[0].delivery, d11);
    // Resolve them (or the server's shutdown waits for them, protocol.md §12.4).
    for (const std::uint64_t d : {d10, d11, (*got)[0].delivery}) again.send(ack(c, d));
    ASSERT_TRUE(again.sync().has_value());
    EXPECT_EQ(ch_.len(), 0u);
}

// A request answered CLOSED whose answer was lost with the connection is re-sent (§12.2) and
// must be answered again, also when a value came back into the closed channel meanwhile (a
// RETURN after the close, §8.4): a resumed prefetching peer waits for every outstanding request
// before it reports closed (§9.2), so an unanswered one hangs it. The home used to answer
// CLOSED again only if the channel was closed and empty.
TEST_F(NetResume, ResentRecvAnsweredClosedIsAnsweredAgainAfterAValueCameBack) {
    ch_.send("a");
    resume_peer first(ctx_, srv_->endpoint());
    const auto w = first.open("ch", 9, false, 8);
    ASSERT_TRUE(w.has_value());
    const std::uint32_t c = w->welcome_channel();
    first.send(recv_many(c, 10, 3));
    auto got = first.sync();
    ASSERT_TRUE(got.has_value());
    ASSERT_EQ(got->size(), 1u);  // 10 gets "a"; 11 and 12 wait
    const std::uint64_t d10 = (*got)[0].delivery;
    ch_.close();
    got = first.sync_until(2);
    ASSERT_TRUE(got.has_value());
    ASSERT_EQ(got->size(), 2u);
    EXPECT_EQ((*got)[0].type, t_closed);
    EXPECT_EQ((*got)[1].type, t_closed);
    first.send(header(t_return, c, d10));  // "a" goes back to the head, after the close
    ASSERT_TRUE(first.sync().has_value());
    ASSERT_EQ(ch_.len(), 1u);

    resume_peer again(ctx_, srv_->endpoint());
    ASSERT_TRUE(again.open("ch", 9, true, 8).has_value());
    again.send(recv_many(c, 11, 2));  // the two CLOSED "were lost"
    got = again.sync();
    ASSERT_TRUE(got.has_value());
    ASSERT_EQ(got->size(), 2u) << "a re-sent request went unanswered";
    EXPECT_EQ((*got)[0].type, t_closed);
    EXPECT_EQ((*got)[0].id, 11u);
    EXPECT_EQ((*got)[1].type, t_closed);
    EXPECT_EQ((*got)[1].id, 12u);
    EXPECT_EQ(ch_.len(), 1u) << "the answer to a request answered CLOSED took a value";
}

TEST_F(NetResume, LateCopyOfARecvWhoseValueWasResolvedTakesNothing) {
    ch_.send("a");
    ch_.send("b");
    resume_peer p(ctx_, srv_->endpoint());
    const auto w = p.open("ch", 6, false);
    ASSERT_TRUE(w.has_value());
    const std::uint32_t c = w->welcome_channel();
    p.send(header(t_recv, c, 1));
    auto got = p.sync();
    ASSERT_TRUE(got.has_value() && got->size() == 1);
    p.send(ack(c, (*got)[0].delivery));
    // The same RECV again, as a copy from the old connection that the home
    // reads late: the peer had its value (it ACKed it), so nothing is taken.
    p.send(header(t_recv, c, 1));
    got = p.sync();
    ASSERT_TRUE(got.has_value());
    EXPECT_TRUE(got->empty());
    EXPECT_EQ(ch_.len(), 1u) << "\"b\" was taken for a request already answered";
}

TEST_F(NetResume, ResentRecvThatNeverArrivedRunsBelowHigherIds) {
    ch_.send("a");
    ch_.send("b");
    resume_peer p(ctx_, srv_->endpoint());
    const auto w = p.open("ch", 7, false);
    ASSERT_TRUE(w.has_value());
    const std::uint32_t c = w->welcome_channel();
    p.send(header(t_recv, c, 3));  // RECV 2 "was lost with the connection"
    auto got = p.sync();
    ASSERT_TRUE(got.has_value() && got->size() == 1);
    const std::uint64_t d3 = (*got)[0].delivery;
    p.send(header(t_recv, c, 2));  // its re-send: below 3, but never seen: it runs
    got = p.sync();
    ASSERT_TRUE(got.has_value());
    ASSERT_EQ(got->size(), 1u);
    EXPECT_EQ((*got)[0].type, t_value);
    EXPECT_EQ((*got)[0].id, 2u);
    EXPECT_EQ((*got)[0].payload, encoded("b"));
    p.send(ack(c, d3));
    p.send(ack(c, (*got)[0].delivery));
    ASSERT_TRUE(p.sync().has_value());
    EXPECT_EQ(ch_.len(), 0u);
}

TEST_F(NetResume, ResentCancelOfACancelledRecvGetsRecvCancelledAgain) {
    resume_peer first(ctx_, srv_->endpoint());
    const auto w = first.open("ch", 8, false);
    ASSERT_TRUE(w.has_value());
    const std::uint32_t c = w->welcome_channel();
    first.send(header(t_recv, c, 1));  // waits: the channel is empty
    first.send(header(t_cancel_recv, c, 1));
    auto got = first.sync();
    ASSERT_TRUE(got.has_value() && got->size() == 1);
    EXPECT_EQ((*got)[0].type, t_recv_cancelled);

    // RECV_CANCELLED "was lost": the peer re-sends the RECV and its CANCEL.
    resume_peer again(ctx_, srv_->endpoint());
    ASSERT_TRUE(again.open("ch", 8, true).has_value());
    again.send(header(t_recv, c, 1));
    again.send(header(t_cancel_recv, c, 1));
    got = again.sync();
    ASSERT_TRUE(got.has_value());
    ASSERT_EQ(got->size(), 1u);
    EXPECT_EQ((*got)[0].type, t_recv_cancelled);
    EXPECT_EQ((*got)[0].id, 1u);
    ch_.send("z");
    ASSERT_TRUE(again.sync().has_value());
    EXPECT_EQ(ch_.len(), 1u) << "the cancelled RECV took a value";
}

}  // namespace

// The home's side of resume (protocol.md §12.2, §12.3), driven by a
// hand-written peer: raw DEALERs speaking ZCHAN/1 encoded here from
// protocol.md, against a real zchan::server on tcp://127.0.0.1:*. A second
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

#include "zchan/channel.hpp"
#include "zchan/net.hpp"
#include "zchan_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using zchan_test::clock;
using zchan_test::deadline_after;
using zchan_test::generous;

enum : std::uint8_t {
    t_hello = 0x01,
    t_welcome = 0x02,
    t_error = 0x03,
    t_send = 0x10,
    t_send_ok = 0x12,
    t_recv = 0x20,
    t_ack = 0x22,
    t_return = 0x23,
    t_recv_many = 0x24,
    t_cancel_recv = 0x21,
    t_recv_cancelled = 0x25,
    t_value = 0x26,
    t_values = 0x29,
    t_close = 0x30,
    t_close_ok = 0x32,
    t_ping = 0x40,
    t_pong = 0x41,
};
constexpr std::uint16_t f_resume = 1u << 1;
constexpr std::uint16_t e_already_closed = 7;
constexpr std::uint16_t e_unknown_session = 9;

template <class U>
void put(std::string& s, U v) {
    for (std::size_t i = 0; i < sizeof(U); ++i) {
        s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    }
}
template <class U>
U get(const std::string& s, std::size_t at) {
    U v = 0;
    for (std::size_t i = 0; i < sizeof(U) && at + i < s.size(); ++i) {
        v |= static_cast<U>(static_cast<unsigned char>(s[at + i])) << (8 * i);
    }
    return v;
}

std::string header(std::uint8_t type, std::uint32_t channel, std::uint64_t id,
                   std::uint16_t flags = 0) {
    std::string s;
    put<std::uint8_t>(s, 1);
    put<std::uint8_t>(s, type);
    put<std::uint16_t>(s, flags);
    put<std::uint32_t>(s, channel);
    put<std::uint64_t>(s, id);
    return s;
}

/// HELLO (protocol.md §5.2) for a std::string channel ("string", §7.4).
std::string hello(const std::string& name, std::uint8_t instance, std::uint64_t nonce,
                  std::uint16_t flags, std::uint32_t prefetch = 0) {
    const std::string type = "string";
    std::string s = header(t_hello, 0, nonce, flags);
    put<std::uint8_t>(s, 1);
    put<std::uint8_t>(s, 1);
    put<std::uint16_t>(s, static_cast<std::uint16_t>(name.size()));
    put<std::uint16_t>(s, static_cast<std::uint16_t>(type.size()));
    put<std::uint16_t>(s, 0);
    put<std::uint32_t>(s, prefetch);
    put<std::uint32_t>(s, 0);  // send window
    put<std::uint32_t>(s, 0);  // heartbeat: the home's
    put<std::uint32_t>(s, 0);
    for (int i = 0; i < 16; ++i) put<std::uint8_t>(s, static_cast<std::uint8_t>(instance + i));
    return s + name + type;
}

std::string recv_many(std::uint32_t channel, std::uint64_t first, std::uint32_t count) {
    std::string s = header(t_recv_many, channel, first);
    put<std::uint32_t>(s, count);
    put<std::uint32_t>(s, 0);
    return s;
}

std::string ack(std::uint32_t channel, std::uint64_t delivery) {
    std::string s = header(t_ack, channel, 1);
    put<std::uint64_t>(s, delivery);
    return s;
}

/// cereal's binary encoding of a std::string (protocol.md §13).
std::string encoded(const std::string& v) {
    std::string s;
    put<std::uint64_t>(s, v.size());
    return s + v;
}

/// One answer as the peer sees it; VALUES are split into the VALUEs they
/// stand for (protocol.md §8.8).
struct answer {
    std::uint8_t type = 0;
    std::uint32_t channel = 0;
    std::uint64_t id = 0;
    std::uint16_t flags = 0;
    std::uint64_t delivery = 0;  // VALUE
    std::string payload;         // VALUE
    std::string frame;
};

/// A raw DEALER: the hand-written peer.
class raw_peer {
public:
    raw_peer(zmq::context_t& ctx, const std::string& ep) : s_(ctx, zmq::socket_type::dealer) {
        s_.set(zmq::sockopt::linger, 0);
        s_.connect(ep);
    }

    void send(const std::string& frame) { s_.send(zmq::buffer(frame), zmq::send_flags::none); }

    /// PINGs on channel 0 and returns every answer the home sent before the
    /// PONG (frames of one connection are handled in order, protocol.md
    /// §12.5), leaving out the home's PINGs; nullopt if no PONG came in time.
    std::optional<std::vector<answer>> sync() {
        const std::uint64_t nonce = 0x5eed0000'00000000ULL + ++pings_;
        send(header(t_ping, 0, nonce));
        std::vector<answer> got;
        const auto deadline = deadline_after(generous);
        zmq::pollitem_t item{s_.handle(), 0, ZMQ_POLLIN, 0};
        while (clock::now() < deadline) {
            zmq::message_t m;
            if (!s_.recv(m, zmq::recv_flags::dontwait)) {
                zmq::poll(&item, 1, 50ms);
                continue;
            }
            answer a;
            a.frame.assign(m.data<char>(), m.size());
            a.type = get<std::uint8_t>(a.frame, 1);
            a.flags = get<std::uint16_t>(a.frame, 2);
            a.channel = get<std::uint32_t>(a.frame, 4);
            a.id = get<std::uint64_t>(a.frame, 8);
            if (a.type == t_pong && a.id == nonce) return got;
            if (a.type == t_ping) continue;
            if (a.type == t_value) {
                a.delivery = get<std::uint64_t>(a.frame, 16);
                a.payload = a.frame.substr(24);
            }
            if (a.type == t_values) {
                const auto first_delivery = get<std::uint64_t>(a.frame, 16);
                const auto count = get<std::uint32_t>(a.frame, 24);
                std::size_t at = 32;
                for (std::uint32_t i = 0; i < count; ++i) {
                    const auto len = get<std::uint32_t>(a.frame, at);
                    answer v;
                    v.type = t_value;
                    v.channel = a.channel;
                    v.id = a.id + i;
                    v.delivery = first_delivery + i;
                    v.payload = a.frame.substr(at + 4, len);
                    at += 4 + len;
                    got.push_back(std::move(v));
                }
                continue;
            }
            got.push_back(std::move(a));
        }
        return std::nullopt;
    }

    /// HELLO (RESUME if `resume`) and its WELCOME; nullopt if none came.
    std::optional<answer> open(const std::string& name, std::uint8_t instance, bool resume,
                               std::uint32_t prefetch = 0) {
        const std::uint64_t nonce = 0x4e11000 + ++hellos_;
        send(hello(name, instance, nonce, resume ? f_resume : 0, prefetch));
        auto got = sync();
        if (!got) return std::nullopt;
        for (auto& a : *got) {
            if (a.type == t_welcome && a.id == nonce) return a;
        }
        return std::nullopt;
    }

private:
    zmq::socket_t s_;
    std::uint64_t pings_ = 0;
    std::uint64_t hellos_ = 0;
};

std::uint32_t channel_of(const answer& welcome) { return get<std::uint32_t>(welcome.frame, 16); }

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
    raw_peer first(ctx_, srv_->endpoint());
    const auto w1 = first.open("ch", 7, false);
    ASSERT_TRUE(w1.has_value());
    EXPECT_EQ(w1->flags & f_resume, 0);
    raw_peer again(ctx_, srv_->endpoint());
    const auto w2 = again.open("ch", 7, true);
    ASSERT_TRUE(w2.has_value());
    EXPECT_NE(w2->flags & f_resume, 0) << "WELCOME RESUME";
    EXPECT_EQ(channel_of(*w2), channel_of(*w1));
    EXPECT_EQ(srv_->sessions(), 1u);
}

TEST_F(NetResume, HelloResumeForAnUnknownInstanceGetsAFreshWelcome) {
    raw_peer p(ctx_, srv_->endpoint());
    const auto w = p.open("ch", 9, true);
    ASSERT_TRUE(w.has_value());
    EXPECT_EQ(w->flags & f_resume, 0) << "the home has no such session: RESUME clear";
}

TEST_F(NetResume, ResentRecvGetsTheSameValueAgainAndResolutionsAreIdempotent) {
    ch_.send("a");
    ch_.send("b");
    raw_peer first(ctx_, srv_->endpoint());
    const auto w = first.open("ch", 1, false);
    ASSERT_TRUE(w.has_value());
    const std::uint32_t c = channel_of(*w);
    first.send(header(t_recv, c, 1));
    auto got = first.sync();
    ASSERT_TRUE(got.has_value());
    ASSERT_EQ(got->size(), 1u);
    EXPECT_EQ((*got)[0].type, t_value);
    const std::uint64_t d = (*got)[0].delivery;
    EXPECT_EQ((*got)[0].payload, encoded("a"));

    // The VALUE "was lost with the connection": the peer resumes and re-sends RECV 1.
    raw_peer again(ctx_, srv_->endpoint());
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
    raw_peer p(ctx_, srv_->endpoint());
    const auto w = p.open("ch", 2, false);
    ASSERT_TRUE(w.has_value());
    const std::uint32_t c = channel_of(*w);
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
    raw_peer first(ctx_, srv_->endpoint());
    const auto w = first.open("ch", 3, false);
    ASSERT_TRUE(w.has_value());
    const std::uint32_t c = channel_of(*w);
    first.send(header(t_close, c, 5));
    auto got = first.sync();
    ASSERT_TRUE(got.has_value() && got->size() == 1);
    EXPECT_EQ((*got)[0].type, t_close_ok);
    EXPECT_TRUE(ch_.is_closed());

    raw_peer again(ctx_, srv_->endpoint());
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
    raw_peer first(ctx_, srv_->endpoint());
    const auto w = first.open("ch", 4, false);
    ASSERT_TRUE(w.has_value());
    const std::uint32_t c = channel_of(*w);
    first.send(header(t_send, c, 1) + encoded("v"));
    auto got = first.sync();
    ASSERT_TRUE(got.has_value());
    EXPECT_TRUE(got->empty()) << "the offer waits: the channel is full";

    raw_peer again(ctx_, srv_->endpoint());
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
    raw_peer first(ctx_, srv_->endpoint());
    const auto w = first.open("ch", 5, false, 8);
    ASSERT_TRUE(w.has_value());
    const std::uint32_t c = channel_of(*w);
    first.send(recv_many(c, 10, 3));
    auto got = first.sync();
    ASSERT_TRUE(got.has_value());
    ASSERT_EQ(got->size(), 2u);  // 10 and 11 answered, 12 waits
    const std::uint64_t d10 = (*got)[0].delivery;
    const std::uint64_t d11 = (*got)[1].delivery;

    raw_peer again(ctx_, srv_->endpoint());
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
    got = again.sync();
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

TEST_F(NetResume, LateCopyOfARecvWhoseValueWasResolvedTakesNothing) {
    ch_.send("a");
    ch_.send("b");
    raw_peer p(ctx_, srv_->endpoint());
    const auto w = p.open("ch", 6, false);
    ASSERT_TRUE(w.has_value());
    const std::uint32_t c = channel_of(*w);
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
    raw_peer p(ctx_, srv_->endpoint());
    const auto w = p.open("ch", 7, false);
    ASSERT_TRUE(w.has_value());
    const std::uint32_t c = channel_of(*w);
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
    raw_peer first(ctx_, srv_->endpoint());
    const auto w = first.open("ch", 8, false);
    ASSERT_TRUE(w.has_value());
    const std::uint32_t c = channel_of(*w);
    first.send(header(t_recv, c, 1));  // waits: the channel is empty
    first.send(header(t_cancel_recv, c, 1));
    auto got = first.sync();
    ASSERT_TRUE(got.has_value() && got->size() == 1);
    EXPECT_EQ((*got)[0].type, t_recv_cancelled);

    // RECV_CANCELLED "was lost": the peer re-sends the RECV and its CANCEL.
    raw_peer again(ctx_, srv_->endpoint());
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

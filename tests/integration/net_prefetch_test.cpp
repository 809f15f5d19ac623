// The opt-in prefetch window (docs/protocol.md §9.2, net_options::prefetch) over tcp: values
// arrive in order and exactly once, close is seen after the queued values, select and
// deadlines work through the local queue, and values prefetched but not taken go back to the
// channel when the handle goes. Prefetch windows travel as RECV_MANY and VALUES (§8.8):
// several prefetching receivers sharing a stream of many senders see each value exactly once
// and each sender's values in order, and the home answers RECV_MANY requests one by one
// (cancelling one of them leaves the others answered in order).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include "../../src/codec.hpp"
#include "net_test_support.hpp"
#include "wait_probe.hpp"
#include "zchan/channel.hpp"
#include "zchan/net.hpp"
#include "zchan/select.hpp"

namespace {

using namespace std::chrono_literals;

zchan::net_options with_prefetch(std::uint32_t p) {
    zchan::net_options o;
    o.connect_timeout = 2000ms;
    o.heartbeat = 100ms;
    // No test here is about a lost peer: a short timeout only turned a slow moment of a loaded
    // (sanitized) run into peer_lost (ValuesArriveInOrder... aborted once so at load 6-8).
    o.heartbeat_timeout = 5000ms;
    o.prefetch = p;
    return o;
}

TEST(NetPrefetch, ValuesArriveInOrderExactlyOnceThenClosed) {
    constexpr int n = 2000;
    zchan::channel<int> home(64);
    zchan::server srv("tcp://127.0.0.1:*", with_prefetch(0));
    srv.serve("p", home);
    auto remote = zchan::dial<int>(srv.endpoint(), "p", with_prefetch(32));
    std::thread producer([&] {
        for (int i = 0; i < n; ++i) home.send(i);
        home.close();
    });
    int expect = 0;
    try {
        for (int v : remote) EXPECT_EQ(v, expect++);
    } catch (const std::exception& e) {
        ADD_FAILURE() << "the range ended with: " << e.what();
        while (home.recv()) {  // let the producer finish, so that it can be joined
        }
    }
    EXPECT_EQ(expect, n);
    producer.join();
    EXPECT_FALSE(remote.recv().has_value());  // closed stays closed
}

TEST(NetPrefetch, TryRecvAndDeadlinesUseTheLocalQueue) {
    zchan::channel<int> home(8);
    zchan::server srv("tcp://127.0.0.1:*");
    srv.serve("p", home);
    auto remote = zchan::dial<int>(srv.endpoint(), "p", with_prefetch(4));
    EXPECT_EQ(remote.recv_for(50ms).status, zchan::recv_status::timeout);
    home.send(7);
    auto r = remote.recv_for(2s);
    ASSERT_EQ(r.status, zchan::recv_status::ok);
    EXPECT_EQ(*r.value, 7);
    EXPECT_EQ(remote.try_recv().status, zchan::recv_status::empty);
}

TEST(NetPrefetch, SelectTakesPrefetchedValuesWithoutLossOrDuplicates) {
    constexpr int n = 300;
    zchan::channel<int> home(16);
    zchan::server srv("tcp://127.0.0.1:*");
    srv.serve("p", home);
    auto remote = zchan::dial<int>(srv.endpoint(), "p", with_prefetch(8));
    zchan_test::expect_select_over_remote_and_local_exactly_once(home, remote, n);
}

// A select polls its cases, then registers them (select.hpp run_select). A prefetching handle
// that became closed and drained in between (the last prefetch answer was dispatched by another
// thread) must say so at registration: register_recv returns "may be ready now" or wakes the
// entry, as every chan_base does. It used to record "closed" in the request and do neither, so
// the select slept forever: a `zchan recv` (try_recv, then select with its interrupt channel)
// that had every value never ended (ZchanToolIntegration.TwoReceiversSplit..., once under ASan).
// Here the handle is drained before the registration, so the window is always hit.
TEST(NetPrefetch, ASelectRegisteringAfterTheHandleDrainedIsTold) {
    zchan::channel<int> home(4);
    zchan::server srv("tcp://127.0.0.1:*");
    srv.serve("p", home);
    auto remote = zchan::dial<int>(srv.endpoint(), "p", with_prefetch(8));
    home.send(1);
    home.close();
    EXPECT_EQ(remote.recv(), std::optional<int>(1));
    EXPECT_FALSE(remote.recv().has_value());  // closed and drained
    // What run_select does once its polls found nothing ready.
    zchan::detail::chan_base<int>* impl = zchan::detail::channel_access<int>::get(remote);
    zchan::detail::context cx;
    zchan::detail::recv_packet<int> packet;
    zchan::detail::wait_entry e{&cx, zchan::detail::sel_first_op, &packet};
    const bool ready = impl->register_recv(e);
    const bool woken = cx.selected() != zchan::detail::sel_waiting;
    impl->unregister_recv(e);
    EXPECT_TRUE(ready || woken) << "a select registering now would wait forever";
    // And through select itself: the closed case fires, the never-ready one does not.
    zchan::channel<int> never(1);
    bool fired_closed = false;
    const std::size_t which =
        zchan::select(zchan::recv_case(remote, [&](std::optional<int> v) { fired_closed = !v; }),
                      zchan::recv_case(never, [](std::optional<int>) {}));
    EXPECT_EQ(which, 0U);
    EXPECT_TRUE(fired_closed);
}

TEST(NetPrefetch, ValuesNotTakenGoBackWhenTheHandleGoes) {
    zchan::channel<int> home(16);
    zchan::server srv("tcp://127.0.0.1:*");
    srv.serve("p", home);
    for (int i = 0; i < 10; ++i) home.send(i);
    {
        auto remote = zchan::dial<int>(srv.endpoint(), "p", with_prefetch(8));
        ASSERT_EQ(remote.recv(), std::optional<int>(0));
        // Values 1.. are now prefetched (out of the channel) or about to be.
    }
    // BYE: the home puts every unacknowledged delivery back at the head. BYE is handled
    // asynchronously, so values still in the channel may come first: check the set.
    std::set<int> rest;
    while (rest.size() < 9) {
        auto r = home.recv_for(2s);
        ASSERT_EQ(r.status, zchan::recv_status::ok) << "after " << rest.size() << " values";
        EXPECT_TRUE(rest.insert(*r.value).second) << "duplicate " << *r.value;
    }
    EXPECT_EQ(*rest.begin(), 1);
    EXPECT_EQ(*rest.rbegin(), 9);
    EXPECT_EQ(home.try_recv().status, zchan::recv_status::empty);
}

// §10: a closed channel is not drained for anyone while a value lent to a remote receiver may
// still come back; the receiver's ACK settles it. A prefetching receiver batches its ACKs, but
// one that goes to wait, or finds its stream ended, sends them at once, not at its next tick
// (heartbeat/4, here 15 s): the home's own receiver sees the close well within the 5 s
// deadline. It waited for that tick before (ranges of 32 remote receivers ended up to a
// quarter of a second after the close with the default heartbeat).
TEST(NetPrefetch, AReceiverThatGoesToWaitAcknowledgesWhatItTookAtOnce) {
    zchan::channel<int> home(16);
    zchan::net_options slow = with_prefetch(8);
    slow.heartbeat = 60s;  // the ticks that would otherwise carry the ACK: every 15 s
    slow.heartbeat_timeout = 180s;
    zchan::server srv("tcp://127.0.0.1:*", slow);
    srv.serve("p", home);
    auto remote = zchan::dial<int>(srv.endpoint(), "p", slow);
    home.send(7);
    ASSERT_EQ(remote.recv(), std::optional<int>(7));  // its ACK is queued: 7 of 8 still asked for
    // Waits for a value, or (if the close comes first) finds the stream ended.
    auto rest = std::async(std::launch::async, [&] { return remote.recv_for(60s); });
    home.close();
    const auto r = home.recv_for(5s);
    EXPECT_EQ(r.status, zchan::recv_status::closed) << "the remote receiver's ACK did not come";
    EXPECT_EQ(rest.get().status, zchan::recv_status::closed);
}

TEST(NetPrefetch, ManyPrefetchingReceiversShareManySendersExactlyOnceInOrder) {
    constexpr int senders = 4;
    constexpr int per_sender = 20000;
    constexpr int receivers = 3;
    zchan::channel<std::uint64_t> home(256);
    zchan::server srv("tcp://127.0.0.1:*");
    srv.serve("p", home);
    std::vector<zchan::channel<std::uint64_t>> handles;
    for (int r = 0; r < receivers; ++r) {
        // Windows of different sizes, one larger than the channel.
        handles.push_back(zchan::dial<std::uint64_t>(srv.endpoint(), "p",
                                                     with_prefetch(r == 0 ? 1000 : 64 << r)));
    }
    std::vector<std::thread> producers;
    for (int s = 0; s < senders; ++s) {
        producers.emplace_back([&home, s] {
            for (std::uint64_t i = 0; i < per_sender; ++i) {
                home.send((static_cast<std::uint64_t>(s) << 32) | i);
            }
        });
    }
    std::vector<std::vector<std::uint64_t>> got(receivers);
    std::vector<std::thread> consumers;
    for (int r = 0; r < receivers; ++r) {
        consumers.emplace_back([&, r] {
            for (auto v : handles[r]) got[r].push_back(v);
        });
    }
    for (auto& t : producers) t.join();
    home.close();
    for (auto& t : consumers) t.join();
    std::vector<std::uint64_t> count(static_cast<std::size_t>(senders) * per_sender, 0);
    for (const auto& mine : got) {
        std::map<std::uint64_t, std::uint64_t> last;  // per sender: last index seen + 1
        for (auto v : mine) {
            const auto s = v >> 32;
            const auto i = v & 0xffffffffu;
            ASSERT_LT(s, static_cast<std::uint64_t>(senders));
            ASSERT_LT(i, static_cast<std::uint64_t>(per_sender));
            EXPECT_GT(i + 1, last[s]) << "sender " << s << " out of order";
            last[s] = i + 1;
            ++count[s * per_sender + i];
        }
    }
    for (std::size_t k = 0; k < count.size(); ++k) {
        ASSERT_EQ(count[k], 1u) << "value " << (k / per_sender) << ":" << (k % per_sender);
    }
}

namespace wire = zchan::detail::wire;

/// Reads frames from a raw DEALER until `want` arrives or 5 s pass.
std::optional<std::string> next_frame(zmq::socket_t& s) {
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(5000)) == 0) return std::nullopt;
    zmq::message_t m;
    if (!s.recv(m)) return std::nullopt;
    return m.to_string();
}

/// A frame from a raw ROUTER: (routing id, body); nullopt if none came in 5 s.
std::optional<std::pair<std::string, std::string>> next_routed(zmq::socket_t& s) {
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(5000)) == 0) return std::nullopt;
    zmq::message_t id;
    zmq::message_t body;
    if (!s.recv(id) || !id.more() || !s.recv(body)) return std::nullopt;
    return std::make_pair(id.to_string(), body.to_string());
}

/// A hand-written home (protocol.md §7, §8): a raw ROUTER that answers one
/// dial with a WELCOME and then sends what a test scripts, so that a test
/// can order the home's frames against what the handle's users do.
class scripted_home {
public:
    static constexpr std::uint32_t ch = 5;

    scripted_home() : sock_(ctx_, zmq::socket_type::router) {
        sock_.set(zmq::sockopt::linger, 0);
        sock_.bind("tcp://127.0.0.1:*");
    }

    /// Dials with a prefetch window of 4 and the home's timing `hb`, `timeout`
    /// on both sides, and answers the HELLO with a WELCOME granting them.
    zchan::channel<int> accept(std::chrono::milliseconds hb, std::chrono::milliseconds timeout) {
        zchan::net_options o = with_prefetch(4);
        o.heartbeat = hb;
        o.heartbeat_timeout = timeout;
        wire::welcome_body b;
        b.heartbeat_ms = static_cast<std::uint32_t>(hb.count());
        b.timeout_ms = static_cast<std::uint32_t>(timeout.count());
        b.capacity = 4;
        b.prefetch = 4;
        b.instance[0] = 9;
        const std::string ep = sock_.get(zmq::sockopt::last_endpoint);
        auto dialing = std::async(std::launch::async, [&] { return zchan::dial<int>(ep, "p", o); });
        auto hello = next_routed(sock_);
        EXPECT_TRUE(hello) << "no HELLO";
        if (!hello) return dialing.get();  // throws: no WELCOME came
        rid_ = hello->first;
        wire::frame f;
        EXPECT_FALSE(wire::decode(
            {reinterpret_cast<const unsigned char*>(hello->second.data()), hello->second.size()},
            wire::side::home, f));
        EXPECT_EQ(f.h.type, wire::msg::hello);
        b.channel = ch;
        tx_.clear();
        wire::encode_welcome(tx_, f.h.id, 0, b);
        to_peer(tx_);
        return dialing.get();
    }

    /// The next frame of `type` from the peer (PINGs, ACKs and the like
    /// before it skipped) in `f`, a view of it kept until the next call;
    /// false if none came within 5 s of the last frame.
    bool next_of(wire::msg type, wire::frame& f) {
        for (;;) {
            auto m = next_routed(sock_);
            if (!m) return false;
            last_ = std::move(m->second);
            if (wire::decode({reinterpret_cast<const unsigned char*>(last_.data()), last_.size()},
                             wire::side::home, f)) {
                ADD_FAILURE() << "the peer sent a malformed frame";
                return false;
            }
            if (f.h.type == type) return true;
        }
    }

    void closed(std::uint64_t id) {
        tx_.clear();
        wire::encode_header(tx_, wire::header{wire::version, wire::msg::closed, 0, ch, id});
        to_peer(tx_);
    }

    void value(std::uint64_t id, std::uint64_t delivery, int v) {
        tx_.clear();
        wire::begin_value(tx_, ch, id, delivery);
        zchan::encode_value(v, tx_);
        to_peer(tx_);
    }

private:
    void to_peer(const std::string& frame) {
        sock_.send(zmq::buffer(rid_), zmq::send_flags::sndmore);
        sock_.send(zmq::buffer(frame));
    }

    zmq::context_t ctx_;
    zmq::socket_t sock_;
    std::string rid_;
    std::string tx_;
    std::string last_;
};

// The handle reports closed only once every prefetch request it sent has its final answer
// (protocol.md §9.2), resumed or not: a request after one answered CLOSED may still bring a
// value (one given back after the close goes to the next request, §8.4). A hand-written home
// answers the window's first request CLOSED and the next ones with values. (Until the select
// wake-up in start_prefetched_locked was found, a handle that was never resumed reported closed
// at the first CLOSED, and lost the values of the later requests to its BYE.)
TEST(NetPrefetch, AValueAnsweringARequestAfterAClosedOneIsStillReceived) {
    scripted_home home;
    auto remote = home.accept(1000ms, 10000ms);  // no loss in a slow (sanitized) run
    // The first recv asks for the window: RECV_MANY(first, 4).
    EXPECT_EQ(remote.try_recv().status, zchan::recv_status::empty);
    wire::frame f;
    ASSERT_TRUE(home.next_of(wire::msg::recv_many, f)) << "no RECV_MANY";
    ASSERT_EQ(f.count, 4u);
    const std::uint64_t first = f.h.id;
    home.closed(first);
    home.value(first + 1, 1, 42);
    EXPECT_EQ(remote.recv(), std::optional<int>(42));  // so the CLOSED before it was handled
    EXPECT_EQ(remote.try_recv().status, zchan::recv_status::empty)
        << "reported closed with two prefetch requests outstanding";
    home.value(first + 2, 2, 43);
    home.closed(first + 3);
    EXPECT_EQ(remote.recv(), std::optional<int>(43));
    EXPECT_FALSE(remote.recv().has_value());  // now every request is answered
}

// The stream of a receiver that is already waiting ends (CLOSED answers the window's last
// requests, §9.2): the ACK it queued for an earlier value leaves at once, as when a receiver
// finds its stream ended (AReceiverThatGoesToWait... above). It was left for the next tick
// (heartbeat/4, here 15 s): that test failed once in a loaded ASan run, when the home's CLOSED
// answers reached a receiver already waiting before its PING asking for resolutions did. Here
// the CLOSED answers are sent only once the second receiver is blocked in its poll, so they
// always reach it waiting.
TEST(NetPrefetch, AReceiverWaitingWhenItsStreamEndsAcknowledgesAtOnce) {
    scripted_home home;
    auto remote = home.accept(60s, 180s);  // the ticks that would otherwise carry the ACK: 15 s
    // First receiver: it waits, and its RECV_MANY(first, 4) says so.
    auto one = std::async(std::launch::async, [&] { return remote.recv_for(60s); });
    wire::frame f;
    ASSERT_TRUE(home.next_of(wire::msg::recv_many, f)) << "no RECV_MANY";
    ASSERT_EQ(f.count, 4u);
    const std::uint64_t first = f.h.id;
    home.value(first, 1, 7);
    const auto got = one.get();
    ASSERT_EQ(got.status, zchan::recv_status::ok);
    EXPECT_EQ(*got.value, 7);  // its ACK is queued; three requests are outstanding (no refill)
    // Second receiver: blocked in its poll means it waits in the handle's queue.
    std::atomic<pid_t> tid{0};
    auto two = std::async(std::launch::async, [&] {
        tid = zchan_test::this_thread_id();
        return remote.recv_for(60s);
    });
    ASSERT_TRUE(zchan_test::wait_until_blocked_in_poll(tid, 30s))
        << "the second receiver never waited";
    for (std::uint64_t id = first + 1; id < first + 4; ++id) home.closed(id);
    ASSERT_TRUE(home.next_of(wire::msg::ack, f)) << "the ACK did not come within 5 s";
    ASSERT_EQ(f.h.id, 1u);
    EXPECT_EQ(f.ack(0), 1u);
    EXPECT_EQ(two.get().status, zchan::recv_status::closed);
}

TEST(NetPrefetch, HomeAnswersRecvManyRequestsOneByOneAndHonoursACancel) {
    zchan::channel<int> home(16);
    zchan::server srv("tcp://127.0.0.1:*");
    srv.serve("p", home);
    // A hand-written peer (protocol.md §7, §8.8): HELLO, then RECV_MANY(1, 4), CANCEL_RECV(2).
    zmq::context_t ctx;
    zmq::socket_t d(ctx, zmq::socket_type::dealer);
    d.set(zmq::sockopt::linger, 0);
    d.connect(srv.endpoint());
    const std::string type = zchan::type_name<int>::value();  // outlives h's view of it
    wire::hello_body h;
    h.instance[0] = 1;
    h.name = "p";
    h.type_name = type;
    std::string tx;
    wire::encode_hello(tx, 77, 0, h);
    d.send(zmq::buffer(tx));
    auto welcome = next_frame(d);
    ASSERT_TRUE(welcome);
    wire::frame f;
    ASSERT_FALSE(
        wire::decode({reinterpret_cast<const unsigned char*>(welcome->data()), welcome->size()},
                     wire::side::peer, f));
    ASSERT_EQ(f.h.type, wire::msg::welcome);
    const std::uint32_t ch = f.welcome.channel;
    tx.clear();
    wire::encode_recv_many(tx, ch, 1, 4);
    d.send(zmq::buffer(tx));
    tx.clear();
    wire::encode_header(tx, wire::header{wire::version, wire::msg::cancel_recv, 0, ch, 2});
    d.send(zmq::buffer(tx));
    auto cancelled = next_frame(d);
    ASSERT_TRUE(cancelled);
    ASSERT_FALSE(
        wire::decode({reinterpret_cast<const unsigned char*>(cancelled->data()), cancelled->size()},
                     wire::side::peer, f));
    EXPECT_EQ(f.h.type, wire::msg::recv_cancelled);
    EXPECT_EQ(f.h.id, 2u);
    for (int i = 0; i < 3; ++i) home.send(10 + i);
    // Requests 1, 3, 4 get 10, 11, 12 with deliveries 1, 2, 3, as VALUE or VALUES frames.
    std::vector<std::pair<std::uint64_t, int>> answers;  // (request, value)
    std::uint64_t next_delivery = 1;
    while (answers.size() < 3) {
        auto m = next_frame(d);
        ASSERT_TRUE(m) << "after " << answers.size() << " answers";
        ASSERT_FALSE(wire::decode({reinterpret_cast<const unsigned char*>(m->data()), m->size()},
                                  wire::side::peer, f));
        if (f.h.type == wire::msg::ping) continue;
        auto take = [&](std::uint64_t request, std::uint64_t delivery, wire::bytes payload) {
            EXPECT_EQ(delivery, next_delivery++);
            std::optional<int> v;
            ASSERT_FALSE(zchan::decode_value(payload.data(), payload.size(), v));
            answers.emplace_back(request, *v);
        };
        if (f.h.type == wire::msg::value) {
            take(f.h.id, f.delivery_seq, f.payload);
        } else {
            ASSERT_EQ(f.h.type, wire::msg::values);
            wire::values_reader r(f);
            for (std::uint32_t i = 0; i < f.count; ++i) {
                take(f.h.id + i, f.delivery_seq + i, r.next());
            }
        }
    }
    EXPECT_EQ(answers, (std::vector<std::pair<std::uint64_t, int>>{{1, 10}, {3, 11}, {4, 12}}));
}

}  // namespace

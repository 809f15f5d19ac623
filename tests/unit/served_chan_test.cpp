// The home side's protocol machine for one served channel, served_chan<T>
// (detail/served_chan.hpp and the served_chan_*.hpp files it includes),
// driven request by request with no socket and no server thread (issue 10):
// requests go in as the calls the server's dispatch makes (on_send, on_recv,
// on_ack...), answers come out through a recording reply_sink, and the
// channel's wake-ups queue in a fake op_notifier whose op ids the test hands
// to on_ready, as the server's event loop does. Every answer is encoded with
// the real codec (src/codec.hpp) and decoded again as the peer decodes it, so
// a frame the peer would reject fails the test. The channel is a real
// in-process zchan::channel<int>, acted on locally from the test thread; only
// the rendezvous tests (§8.3) need a local sender thread, since a claimed
// sender blocks until the remote receiver resolves its delivery.
//
// The rules are those of docs/protocol.md §8 (requests, deliveries, cancels,
// select, streams), §10 (close), §12.3 (idempotency) and §12.4 (a session
// lost); each test cites its own.
#include "zchan/detail/served_chan.hpp"

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "../../src/codec.hpp"
#include "zchan/channel.hpp"
#include "zchan/detail/net_link.hpp"
#include "zchan/serialize.hpp"
#include "zchan_test_support.hpp"

namespace {

namespace zd = zchan::detail;
namespace wire = zchan::detail::wire;
using wire::msg;
using zchan::send_status;
using zchan_test::background_call;
using zchan_test::deadline_after;
using zchan_test::generous;

// ---- frames the home sent, as the peer decodes them --------------------------

struct frame_rec {
    msg type{};
    std::uint32_t session = 0;
    std::uint64_t id = 0;  ///< seq, request id or ref; VALUES: its first request
    std::uint64_t delivery =
        0;                    ///< VALUE: its delivery seq; VALUES: the first one; CREDIT: confirmed
    std::vector<int> values;  ///< VALUE: its value; VALUES: one per entry
    bool operator==(const frame_rec&) const = default;
};
using frames = std::vector<frame_rec>;

void PrintTo(const frame_rec& f, std::ostream* os) {
    *os << wire::to_string(f.type) << "(session " << f.session << ", id " << f.id;
    if (f.delivery != 0) *os << ", delivery " << f.delivery;
    if (!f.values.empty()) {
        *os << ", values";
        for (const int v : f.values) *os << ' ' << v;
    }
    *os << ')';
}

/// An answer without a body: SEND_OK, CLOSED, READY...
frame_rec answer(std::uint32_t session, msg type, std::uint64_t id) {
    return {type, session, id, 0, {}};
}
frame_rec value(std::uint32_t session, std::uint64_t request, std::uint64_t delivery, int v) {
    return {msg::value, session, request, delivery, {v}};
}
frame_rec values(std::uint32_t session, std::uint64_t first_request, std::uint64_t first_delivery,
                 std::vector<int> vs) {
    return {msg::values, session, first_request, first_delivery, std::move(vs)};
}

/// CREDIT(granted, confirmed): both totals (§9.1 rule 1).
frame_rec credit(std::uint32_t session, std::uint64_t granted, std::uint64_t confirmed) {
    return {msg::credit, session, granted, confirmed, {}};
}

/// Frames to several sessions in session order (the home serves them in
/// no particular order).
frames by_session(frames fs) {
    std::stable_sort(fs.begin(), fs.end(),
                     [](const frame_rec& a, const frame_rec& b) { return a.session < b.session; });
    return fs;
}

int decode_int(wire::bytes payload) {
    std::optional<int> v;
    EXPECT_FALSE(zchan::decode_value(payload.data(), payload.size(), v)) << "not an int payload";
    return v.value_or(-1);
}

/// The server's side of reply_sink, with the frames kept instead of sent.
class recording_sink final : public zd::reply_sink {
public:
    void reply(std::uint32_t session, msg type, std::uint64_t id) override {
        buf_.clear();
        wire::encode_header(buf_, wire::header{wire::version, type, 0, session, id});
        record(buf_);
    }
    void reply_value(std::uint32_t session, std::uint64_t request, std::uint64_t delivery,
                     const std::string& payload) override {
        buf_.clear();
        wire::begin_value(buf_, session, request, delivery);
        buf_.append(payload);
        record(buf_);
    }
    void reply_error(std::uint32_t session, std::uint64_t ref, wire::error_code code,
                     std::string_view text) override {
        buf_.clear();
        wire::encode_error(buf_, session, ref, code, text);
        record(buf_);
    }
    std::string& values_begin(std::uint32_t session, std::uint64_t first_request,
                              std::uint64_t first_delivery) override {
        EXPECT_FALSE(in_values_) << "VALUES begun inside another";
        in_values_ = true;
        vbuf_.clear();
        wire::begin_values(vbuf_, session, first_request, first_delivery);
        return vbuf_;
    }
    void values_end(std::uint32_t count) override {
        EXPECT_TRUE(in_values_) << "VALUES ended without a beginning";
        in_values_ = false;
        wire::finish_values(vbuf_, 0, count);
        record(vbuf_);
    }
    void reply_credit(std::uint32_t session, std::uint64_t granted,
                      std::uint64_t confirmed) override {
        buf_.clear();
        wire::encode_credit(buf_, session, granted, confirmed);
        record(buf_);
    }

    /// The frames sent since the last call, oldest first.
    frames take() {
        frames out;
        out.swap(sent_);
        return out;
    }
    [[nodiscard]] bool empty() const noexcept { return sent_.empty(); }

private:
    void record(const std::string& bytes) {
        EXPECT_FALSE(in_values_) << "a reply inside a VALUES frame";
        wire::frame f;
        const std::error_code ec = wire::decode(
            wire::bytes(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()),
            wire::side::peer, f);
        if (ec) {
            ADD_FAILURE() << "the peer rejects the home's frame: " << ec.message();
            return;
        }
        frame_rec r{f.h.type, f.h.channel, f.h.id, 0, {}};
        if (f.h.type == msg::value) {
            r.delivery = f.delivery_seq;
            r.values.push_back(decode_int(f.payload));
        } else if (f.h.type == msg::credit) {
            r.delivery = f.confirmed;
        } else if (f.h.type == msg::values) {
            r.delivery = f.delivery_seq;
            wire::values_reader entries(f);
            for (std::uint32_t i = 0; i < f.count; ++i)
                r.values.push_back(decode_int(entries.next()));
        }
        sent_.push_back(std::move(r));
    }

    std::string buf_;
    std::string vbuf_;
    bool in_values_ = false;
    frames sent_;
};

/// The server's notifier, with the op ids queued for the test to deliver.
/// post() may come from a local sender's thread (the rendezvous tests).
class queued_notifier final : public zd::op_notifier {
public:
    void post(zd::served_base* ch, std::uint64_t op_id) noexcept override {
        const std::lock_guard<std::mutex> g(m_);
        posted_.emplace_back(ch, op_id);
    }
    std::vector<std::pair<zd::served_base*, std::uint64_t>> take() {
        const std::lock_guard<std::mutex> g(m_);
        std::vector<std::pair<zd::served_base*, std::uint64_t>> out;
        out.swap(posted_);
        return out;
    }
    [[nodiscard]] std::size_t pending() const {
        const std::lock_guard<std::mutex> g(m_);
        return posted_.size();
    }

private:
    mutable std::mutex m_;
    std::vector<std::pair<zd::served_base*, std::uint64_t>> posted_;
};

/// A channel of capacity `capacity` served by a served_chan, with sessions
/// 1..`sessions` open: the home of one channel, with the server's event loop
/// run by hand (run()).
class home {
public:
    explicit home(std::size_t capacity, std::uint32_t sessions = 1)
        : ch(capacity), served(ch, notifier) {
        for (std::uint32_t s = 1; s <= sessions; ++s) served.open_session(s);
    }

    zchan::channel<int> ch;
    queued_notifier notifier;  // before `served`, which refers to it
    recording_sink out;
    zd::served_chan<int> served;

    /// The server's loop: hands every queued op id to on_ready until none is
    /// left (handling one may queue more). Returns how many it handed over.
    std::size_t run() {
        std::size_t n = 0;
        for (auto batch = notifier.take(); !batch.empty(); batch = notifier.take()) {
            for (const auto& [ch_of, op_id] : batch) {
                EXPECT_EQ(ch_of, &served);
                served.on_ready(out, op_id);
                if (++n > 100000) {
                    ADD_FAILURE() << "the loop does not settle";
                    return n;
                }
            }
        }
        return n;
    }
    frames sent() { return out.take(); }

    /// Runs the loop until the home answers something, for a partner that
    /// acts on another thread at its own pace. Bounded by `generous`.
    frames next_answer() {
        frames got = out.take();
        const auto deadline = deadline_after(generous);
        while (got.empty() &&
               zchan_test::wait_until([&] { return notifier.pending() != 0; }, deadline)) {
            run();
            got = out.take();
        }
        return got;
    }
    [[nodiscard]] bool wait_for_post() const {
        return zchan_test::wait_until([&] { return notifier.pending() != 0; },
                                      deadline_after(generous));
    }

    // Requests, as the server's dispatch passes them on.
    bool send(std::uint32_t session, std::uint64_t seq, int v, bool try_now = false) {
        std::string payload;
        zchan::encode_value(v, payload);
        return served.on_send(out, session, seq, try_now,
                              reinterpret_cast<const unsigned char*>(payload.data()),
                              payload.size());
    }
    void recv(std::uint32_t session, std::uint64_t request, std::uint64_t select_tag = 0) {
        served.on_recv(out, session, request, false, select_tag);
    }
    void try_recv(std::uint32_t session, std::uint64_t request) {
        served.on_recv(out, session, request, true, 0);
    }
    void recv_many(std::uint32_t session, std::uint64_t first, std::uint32_t count) {
        served.on_recv_many(out, session, first, count);
    }
    void watch(std::uint32_t session, std::uint64_t request, std::uint64_t select_tag = 0) {
        served.on_watch_send(out, session, request, select_tag);
    }
    void cancel_send(std::uint32_t session, std::uint64_t seq) {
        served.on_cancel_send(out, session, seq);
    }
    void cancel_recv(std::uint32_t session, std::uint64_t request) {
        served.on_cancel_recv(out, session, request);
    }
    void cancel_watch(std::uint32_t session, std::uint64_t request) {
        served.on_cancel_watch(out, session, request);
    }
    /// HELLO with send-window `w` and its WELCOME: returns the window granted.
    std::uint32_t open_window(std::uint32_t session, std::uint32_t w) {
        const std::uint32_t granted = served.grant_window(session, w);
        served.welcomed(out, session);
        return granted;
    }
    /// A SEND_MANY of credited values numbered first, first+1, ... (§9.1).
    std::uint32_t credited(std::uint32_t session, std::uint64_t first, const std::vector<int>& vs) {
        std::string entries;
        for (const int v : vs) {
            std::string payload;
            zchan::encode_value(v, payload);
            for (std::size_t b = 0; b < 4; ++b)
                entries.push_back(static_cast<char>((payload.size() >> (8 * b)) & 0xff));
            entries += payload;
        }
        return served.on_credited(out, session, first, static_cast<std::uint32_t>(vs.size()),
                                  reinterpret_cast<const unsigned char*>(entries.data()),
                                  entries.size());
    }
    void ack(std::uint32_t session, std::uint64_t delivery) { served.on_ack(session, delivery); }
    void give_back(std::uint32_t session, std::uint64_t delivery) {  // RETURN
        served.on_return(session, delivery);
    }
    /// What the server does after a frame of ACKs, a RETURN or a dropped session.
    void settle() { served.settle(out); }

    // The channel's local side.
    send_status local_send(int v) const { return ch.try_send(v); }
    std::optional<int> local_recv() const { return ch.try_recv().value; }
    std::vector<int> drain() const {
        std::vector<int> got;
        while (auto v = local_recv()) got.push_back(*v);
        return got;
    }
};

// ---- RECV and deliveries (§8.4) -------------------------------------------

// §8.4: a RECV finding a value is answered VALUE with the session's next
// delivery seq (from 1, increasing); the value has left the channel but the
// home keeps it, unresolved, until the ACK. ACK has no answer.
TEST(ServedChanUnit, RecvOfABufferedValueAnswersValueAndAckResolvesIt) {
    home h(4);
    ASSERT_EQ(h.local_send(7), send_status::ok);
    ASSERT_EQ(h.local_send(8), send_status::ok);
    h.recv(1, 1);
    EXPECT_EQ(h.sent(), (frames{value(1, 1, 1, 7)}));
    EXPECT_EQ(h.served.unresolved(1), 1U);
    EXPECT_EQ(h.ch.len(), 1U);
    h.recv(1, 2);
    EXPECT_EQ(h.sent(), (frames{value(1, 2, 2, 8)}));
    EXPECT_EQ(h.served.unresolved(1), 2U);
    h.ack(1, 1);
    h.ack(1, 2);
    EXPECT_EQ(h.served.unresolved(1), 0U);
    EXPECT_EQ(h.ch.len(), 0U);
    EXPECT_EQ(h.run(), 0U);
    EXPECT_TRUE(h.sent().empty());
}

// §8.4: RETURN puts the value back at the head of the channel: the next
// receive, of any session, gets it before the values behind it. An ACK or
// RETURN of a delivery already resolved (a late frame, §12.5) is ignored.
TEST(ServedChanUnit, ReturnPutsTheValueBackAtTheHeadAndLateResolutionsAreIgnored) {
    home h(4, 2);
    ASSERT_EQ(h.local_send(7), send_status::ok);
    ASSERT_EQ(h.local_send(8), send_status::ok);
    h.recv(1, 1);
    EXPECT_EQ(h.sent(), (frames{value(1, 1, 1, 7)}));
    h.give_back(1, 1);
    EXPECT_EQ(h.served.unresolved(1), 0U);
    EXPECT_EQ(h.ch.len(), 2U);
    h.recv(2, 1);  // session 2 numbers its own deliveries
    EXPECT_EQ(h.sent(), (frames{value(2, 1, 1, 7)}));
    h.ack(2, 1);
    h.give_back(1, 1);  // late copies: nothing goes back twice
    h.give_back(2, 1);
    h.ack(2, 1);
    EXPECT_EQ(h.served.unresolved(1), 0U);
    EXPECT_EQ(h.served.unresolved(2), 0U);
    EXPECT_EQ(h.drain(), (std::vector<int>{8}));
    EXPECT_TRUE(h.sent().empty());
}

// §8.5, §10 item 3: a remote select's RECV was answered VALUE, but the
// select took another case and cancelled it, so the peer gives that value
// back (RETURN). The CANCEL_RECV comes before the select's next RECV on the
// same connection: on a closed channel that RECV waits for the value instead
// of being answered CLOSED, after which the RETURN would have put the value
// into a closed channel its receiver had left (a TSan run of
// NetProcess.SelectOverARemoteAndALocalChannelLosesAndDuplicatesNothing got
// 79 of 80 values so).
TEST(ServedChanUnit, RecvAfterCancellingAnAnsweredRecvWaitsForItsReturnOnAClosedChannel) {
    home h(4);
    ASSERT_EQ(h.local_send(7), send_status::ok);
    h.ch.close();
    h.recv(1, 1);
    EXPECT_EQ(h.sent(), (frames{value(1, 1, 1, 7)}));
    h.cancel_recv(1, 1);  // answered already: no answer; the value will come back
    h.sent();
    h.recv(1, 2);
    // Only the close's request for resolutions (§10), no CLOSED.
    EXPECT_EQ(h.sent(), (frames{answer(1, msg::ping, 0)}))
        << "CLOSED while the cancelled request's value is coming back";
    h.give_back(1, 1);
    h.settle();
    h.run();
    EXPECT_EQ(h.sent(), (frames{value(1, 2, 2, 7)}));
}

// §8.4: a RECV on an empty channel waits, as a receiver registered on the
// channel: no answer. A local send wakes it (the notifier gets its op id), and
// the loop's on_ready answers VALUE; once answered it waits no more.
TEST(ServedChanUnit, RecvOnAnEmptyChannelWaitsUntilALocalSendWakesIt) {
    home h(4);
    h.recv(1, 1);
    EXPECT_TRUE(h.sent().empty());
    EXPECT_EQ(h.notifier.pending(), 0U);
    ASSERT_EQ(h.local_send(5), send_status::ok);
    EXPECT_EQ(h.notifier.pending(), 1U);
    EXPECT_EQ(h.run(), 1U);
    EXPECT_EQ(h.sent(), (frames{value(1, 1, 1, 5)}));
    EXPECT_EQ(h.ch.len(), 0U);
    ASSERT_EQ(h.local_send(6), send_status::ok);
    EXPECT_EQ(h.notifier.pending(), 0U);
    EXPECT_EQ(h.run(), 0U);
    EXPECT_TRUE(h.sent().empty());
    EXPECT_EQ(h.ch.len(), 1U);
}

// §8.4, §10 item 3: a TRY RECV is answered at once: EMPTY on an empty
// channel, VALUE while a value is left, CLOSED once the channel is closed and
// drained (as is a RECV without TRY then).
TEST(ServedChanUnit, TryRecvAnswersEmptyAtOnceAndClosedWhenClosedAndDrained) {
    home h(4);
    h.try_recv(1, 1);
    EXPECT_EQ(h.sent(), (frames{answer(1, msg::empty, 1)}));
    ASSERT_EQ(h.local_send(3), send_status::ok);
    h.ch.close();
    h.try_recv(1, 2);
    EXPECT_EQ(h.sent(), (frames{value(1, 2, 1, 3)}));
    h.ack(1, 1);
    h.try_recv(1, 3);
    EXPECT_EQ(h.sent(), (frames{answer(1, msg::closed, 3)}));
    h.recv(1, 4);
    EXPECT_EQ(h.sent(), (frames{answer(1, msg::closed, 4)}));
    EXPECT_EQ(h.run(), 1U);  // the close watcher: it asks the receiver for resolutions
    EXPECT_EQ(h.sent(), (frames{answer(1, msg::ping, 0)}));
}

// ---- close (§10) -------------------------------------------------------------

/// Session 1 holds delivery 1 (42) of the channel, which is then closed and
/// empty; session 2's RECV 1 arrives and is held behind that delivery.
void hold_a_recv_behind_a_delivery(home& h) {
    ASSERT_EQ(h.local_send(42), send_status::ok);
    h.recv(1, 1);
    EXPECT_EQ(h.sent(), (frames{value(1, 1, 1, 42)}));
    h.ch.close();
    h.recv(2, 1);
    EXPECT_TRUE(h.sent().empty());
}

// §10 item 3: on a closed, empty channel a RECV is answered CLOSED only when
// no *other* session holds an unresolved delivery (that value may still come
// back). Until then it is held (a TRY RECV gets EMPTY), and the settle() after
// the ACK answers it. A session's own unresolved deliveries do not hold its
// RECVs back.
TEST(ServedChanUnit, ClosedChannelHoldsARecvWhileAnotherSessionsDeliveryIsUnresolved) {
    home h(4, 2);
    hold_a_recv_behind_a_delivery(h);
    h.try_recv(2, 2);
    EXPECT_EQ(h.sent(), (frames{answer(2, msg::empty, 2)}));
    h.recv(1, 2);  // session 1's own delivery: no hold
    EXPECT_EQ(h.sent(), (frames{answer(1, msg::closed, 2)}));
    h.settle();              // nothing resolved yet: still held
    EXPECT_EQ(h.run(), 1U);  // the close watcher: both receivers asked for resolutions
    EXPECT_EQ(by_session(h.sent()), (frames{answer(1, msg::ping, 0), answer(2, msg::ping, 0)}));
    h.ack(1, 1);
    h.settle();
    EXPECT_EQ(h.sent(), (frames{answer(2, msg::closed, 1)}));
    h.settle();  // answered once
    EXPECT_TRUE(h.sent().empty());
}

// §10 item 3: at the close the home asks every receiving session once for its
// resolutions, with a PING on its channel (its peer then ACKs whenever a
// receiver waits, so that a close held for the other receivers is not held
// until the peer's next tick); a session that starts receiving after the
// close is asked at its first request. Nothing is asked before the close, and
// a session that only sends is not asked.
TEST(ServedChanUnit, AtTheCloseTheHomeAsksEachReceivingSessionOnceForItsResolutions) {
    home h(4, 4);
    ASSERT_EQ(h.local_send(42), send_status::ok);
    ASSERT_EQ(h.local_send(43), send_status::ok);
    h.recv(1, 1);
    h.recv(2, 1);
    EXPECT_EQ(h.sent(), (frames{value(1, 1, 1, 42), value(2, 1, 1, 43)}));
    EXPECT_TRUE(h.send(3, 1, 5));  // session 3 only sends
    EXPECT_EQ(h.sent(), (frames{answer(3, msg::send_ok, 1)}));
    EXPECT_EQ(h.run(), 0U);  // nothing asked before the close
    h.ch.close();
    EXPECT_EQ(h.run(), 1U);  // the close watcher
    EXPECT_EQ(by_session(h.sent()), (frames{answer(1, msg::ping, 0), answer(2, msg::ping, 0)}));
    h.recv(1, 2);  // asked already: no second PING
    EXPECT_EQ(h.sent(), (frames{value(1, 2, 2, 5)}));
    h.recv(4, 1);  // a receiver after the close, held by the others' deliveries
    EXPECT_EQ(h.sent(), (frames{answer(4, msg::ping, 0)}));
}

// §10 item 3, §8.4: a delivery RETURNed after the close goes to the head of
// the closed channel, and to the RECV held for it there.
TEST(ServedChanUnit, ValueReturnedAfterTheCloseGoesToTheHeldRecv) {
    home h(4, 2);
    hold_a_recv_behind_a_delivery(h);
    h.give_back(1, 1);
    h.settle();
    EXPECT_EQ(h.sent(), (frames{value(2, 1, 1, 42)}));
    EXPECT_EQ(h.served.unresolved(2), 1U);
    EXPECT_EQ(h.ch.len(), 0U);
    h.ack(2, 1);
    h.recv(2, 2);
    EXPECT_EQ(h.sent(), (frames{answer(2, msg::closed, 2)}));
}

// §12.4: a session that ends (lost, BYE) has its pending RECVs cancelled
// (unanswered, off the channel) and its unresolved deliveries put back at the
// head of the channel in delivery order, ahead of what the channel held.
TEST(ServedChanUnit, DroppedSessionGivesItsDeliveriesBackToTheHeadInOrder) {
    home h(8);
    for (int v = 1; v <= 4; ++v) ASSERT_EQ(h.local_send(v), send_status::ok);
    h.recv(1, 1);
    h.recv(1, 2);
    h.recv(1, 3);
    EXPECT_EQ(h.sent(), (frames{value(1, 1, 1, 1), value(1, 2, 2, 2), value(1, 3, 3, 3)}));
    h.ack(1, 2);
    h.recv(1, 4);
    EXPECT_EQ(h.sent(), (frames{value(1, 4, 4, 4)}));
    h.recv(1, 5);                                 // waits on the empty channel
    ASSERT_EQ(h.local_send(5), send_status::ok);  // wakes it; the loop has not run yet
    EXPECT_EQ(h.served.unresolved(1), 3U);
    h.served.drop_session(1);
    EXPECT_EQ(h.served.unresolved(1), 0U);
    EXPECT_EQ(h.run(), 1U);  // the stale wake-up finds nothing
    EXPECT_TRUE(h.sent().empty());
    EXPECT_EQ(h.drain(), (std::vector<int>{1, 3, 4, 5}));
    ASSERT_EQ(h.local_send(6), send_status::ok);  // wakes nobody
    EXPECT_EQ(h.notifier.pending(), 0U);
}

// ---- SEND (§8.2, §8.5) -----------------------------------------------------

// §8.2 rule 4: an offer (SEND without TRY) on a full channel is queued as a
// blocked sender, unanswered; a local receive frees a slot, and the offer is
// answered SEND_OK as its value enters. §8.5: a CANCEL_SEND of a queued offer
// is answered SEND_CANCELLED and its value never enters; a second CANCEL_SEND
// for the resolved seq is ignored.
TEST(ServedChanUnit, OfferOnAFullChannelIsAnsweredWhenSpaceFreesOrCancelled) {
    home h(1);
    ASSERT_EQ(h.local_send(1), send_status::ok);
    ASSERT_TRUE(h.send(1, 1, 10));
    EXPECT_TRUE(h.sent().empty());
    EXPECT_EQ(h.local_recv(), 1);
    EXPECT_EQ(h.run(), 1U);
    EXPECT_EQ(h.sent(), (frames{answer(1, msg::send_ok, 1)}));
    EXPECT_EQ(h.ch.len(), 1U);
    ASSERT_TRUE(h.send(1, 2, 20));
    EXPECT_TRUE(h.sent().empty());
    h.cancel_send(1, 2);
    EXPECT_EQ(h.sent(), (frames{answer(1, msg::send_cancelled, 2)}));
    EXPECT_EQ(h.local_recv(), 10);
    EXPECT_EQ(h.notifier.pending(), 0U);  // the freed slot wakes no cancelled offer
    EXPECT_EQ(h.local_recv(), std::nullopt);
    h.cancel_send(1, 2);
    EXPECT_EQ(h.run(), 0U);
    EXPECT_TRUE(h.sent().empty());
}

// §10 items 1 and 4: a close answers every queued offer SEND_CLOSED, and
// every later SEND, TRY or not; values accepted before it stay receivable.
TEST(ServedChanUnit, CloseAnswersQueuedAndLaterOffersSendClosed) {
    home h(1);
    ASSERT_EQ(h.local_send(1), send_status::ok);
    ASSERT_TRUE(h.send(1, 1, 10));
    EXPECT_TRUE(h.sent().empty());
    h.ch.close();
    EXPECT_EQ(h.run(), 1U);
    EXPECT_EQ(h.sent(), (frames{answer(1, msg::send_closed, 1)}));
    ASSERT_TRUE(h.send(1, 2, 20));
    ASSERT_TRUE(h.send(1, 3, 30, true));
    EXPECT_EQ(h.sent(), (frames{answer(1, msg::send_closed, 2), answer(1, msg::send_closed, 3)}));
    EXPECT_EQ(h.drain(), (std::vector<int>{1}));
}

// §8.2 rule 5, §12.3: a SEND whose seq is already resolved (a re-send after a
// resume) gets the recorded answer again and is never enqueued twice, also
// when the answer would differ now (a TRY that found the channel full); a
// SEND whose seq is pending is ignored.
TEST(ServedChanUnit, DuplicateSendSeqGetsTheRecordedAnswerAndIsEnqueuedOnce) {
    home h(2);
    ASSERT_TRUE(h.send(1, 1, 10));
    EXPECT_EQ(h.sent(), (frames{answer(1, msg::send_ok, 1)}));
    ASSERT_TRUE(h.send(1, 1, 10));
    EXPECT_EQ(h.sent(), (frames{answer(1, msg::send_ok, 1)}));
    EXPECT_EQ(h.ch.len(), 1U);
    ASSERT_TRUE(h.send(1, 2, 20));
    EXPECT_EQ(h.sent(), (frames{answer(1, msg::send_ok, 2)}));
    ASSERT_TRUE(h.send(1, 3, 30));  // full: queued
    ASSERT_TRUE(h.send(1, 3, 30));  // pending: ignored
    ASSERT_TRUE(h.send(1, 4, 40, true));
    EXPECT_EQ(h.sent(), (frames{answer(1, msg::send_full, 4)}));
    EXPECT_EQ(h.local_recv(), 10);
    EXPECT_EQ(h.run(), 1U);
    EXPECT_EQ(h.sent(), (frames{answer(1, msg::send_ok, 3)}));
    EXPECT_EQ(h.local_recv(), 20);  // room now, but SEND 4 was answered
    ASSERT_TRUE(h.send(1, 4, 40, true));
    ASSERT_TRUE(h.send(1, 2, 20));
    EXPECT_EQ(h.sent(), (frames{answer(1, msg::send_full, 4), answer(1, msg::send_ok, 2)}));
    EXPECT_EQ(h.drain(), (std::vector<int>{30}));
}

// §12.3: a re-sent RECV that was answered with a delivery still unresolved
// gets the same VALUE (same delivery seq) again and takes no second value;
// once the delivery is resolved a copy is ignored. A request id the home never
// saw below the highest one (lost with the connection) runs as new.
TEST(ServedChanUnit, ResentRecvGetsItsUnresolvedDeliveryAgain) {
    home h(4);
    ASSERT_EQ(h.local_send(42), send_status::ok);
    ASSERT_EQ(h.local_send(43), send_status::ok);
    h.recv(1, 1);
    EXPECT_EQ(h.sent(), (frames{value(1, 1, 1, 42)}));
    h.recv(1, 1);
    EXPECT_EQ(h.sent(), (frames{value(1, 1, 1, 42)}));
    EXPECT_EQ(h.ch.len(), 1U);
    EXPECT_EQ(h.served.unresolved(1), 1U);
    h.ack(1, 1);
    h.recv(1, 1);
    EXPECT_TRUE(h.sent().empty());
    EXPECT_EQ(h.ch.len(), 1U);
    h.recv(1, 3);
    EXPECT_EQ(h.sent(), (frames{value(1, 3, 2, 43)}));
    h.recv(1, 2);  // never seen: runs, and waits on the empty channel
    EXPECT_TRUE(h.sent().empty());
    ASSERT_EQ(h.local_send(44), send_status::ok);
    EXPECT_EQ(h.run(), 1U);
    EXPECT_EQ(h.sent(), (frames{value(1, 2, 3, 44)}));
}

// ---- WATCH_SEND (§8.6) -------------------------------------------------------

// §8.6 home rules 1-3: a WATCH_SEND on a full channel holds no value and is
// not answered; a freed slot makes it READY, once (a CANCEL_WATCH after READY
// is ignored); on a channel with room it is READY at once; a CANCEL_WATCH of
// a pending watch is answered WATCH_CANCELLED and the watch is gone.
TEST(ServedChanUnit, WatchSendIsReadyWhenSpaceFreesAndCancelWatchAnswersWatchCancelled) {
    home h(1);
    ASSERT_EQ(h.local_send(1), send_status::ok);
    h.watch(1, 1);
    EXPECT_TRUE(h.sent().empty());
    EXPECT_EQ(h.local_recv(), 1);
    EXPECT_EQ(h.run(), 1U);
    EXPECT_EQ(h.sent(), (frames{answer(1, msg::ready, 1)}));
    h.cancel_watch(1, 1);
    EXPECT_TRUE(h.sent().empty());
    EXPECT_EQ(h.ch.len(), 0U);
    h.watch(1, 2);
    EXPECT_EQ(h.sent(), (frames{answer(1, msg::ready, 2)}));
    ASSERT_EQ(h.local_send(2), send_status::ok);
    h.watch(1, 3);
    EXPECT_TRUE(h.sent().empty());
    h.cancel_watch(1, 3);
    EXPECT_EQ(h.sent(), (frames{answer(1, msg::watch_cancelled, 3)}));
    EXPECT_EQ(h.local_recv(), 2);
    EXPECT_EQ(h.notifier.pending(), 0U);
    EXPECT_EQ(h.ch.len(), 0U);
}

// ---- rendezvous (§8.3) ------------------------------------------------------

/// A local sender on its own thread, blocked in send_for(v) until a receiver
/// takes its value (or a generous deadline passes).
struct local_sender {
    local_sender(home& h, int v)
        : call([this, &h, v] { result = static_cast<int>(h.ch.send_for(v, generous)); }) {}
    std::atomic<int> result{-1};  // its send_status, once call is done
    background_call call;         // last: joined before `result` goes
};

/// Session 1's RECV 1 waits on the unbuffered channel and a local sender of
/// `v` arrives: it hands its value to the RECV and is claimed (§8.3); the
/// loop answers VALUE, delivery 1.
void expect_claimed_for_session_1(home& h, int v) {
    ASSERT_TRUE(h.wait_for_post());
    EXPECT_EQ(h.run(), 1U);
    EXPECT_EQ(h.sent(), (frames{value(1, 1, 1, v)}));
}

// §8.3: on an unbuffered channel a remote RECV takes a blocked local sender's
// value for its VALUE, but the sender is only claimed: its send completes at
// the ACK, not at the VALUE.
TEST(ServedChanUnit, UnbufferedRemoteRecvClaimsTheLocalSenderUntilTheAck) {
    home h(0);
    h.recv(1, 1);
    EXPECT_TRUE(h.sent().empty());
    local_sender sender(h, 42);
    expect_claimed_for_session_1(h, 42);
    EXPECT_TRUE(sender.call.still_blocked_after());
    EXPECT_EQ(h.served.unresolved(1), 1U);
    h.ack(1, 1);
    ASSERT_TRUE(sender.call.wait_done());
    EXPECT_EQ(sender.result.load(), static_cast<int>(send_status::ok));
    EXPECT_EQ(h.ch.len(), 0U);
    EXPECT_EQ(h.served.unresolved(1), 0U);
}

// §8.3: a RETURN gives a claimed value back to its sender, not to the channel
// (capacity 0 holds nothing); the sender offers it again and the next remote
// receiver gets it from there; the send completes at that receiver's ACK.
TEST(ServedChanUnit, UnbufferedReturnGivesTheValueBackToItsSender) {
    home h(0, 2);
    h.recv(1, 1);
    local_sender sender(h, 42);
    expect_claimed_for_session_1(h, 42);
    h.give_back(1, 1);
    EXPECT_EQ(h.ch.len(), 0U);
    EXPECT_TRUE(sender.call.still_blocked_after());
    h.recv(2, 1);
    EXPECT_EQ(h.next_answer(), (frames{value(2, 1, 1, 42)}));
    EXPECT_TRUE(sender.call.still_blocked_after());
    h.ack(2, 1);
    ASSERT_TRUE(sender.call.wait_done());
    EXPECT_EQ(sender.result.load(), static_cast<int>(send_status::ok));
    EXPECT_EQ(h.ch.len(), 0U);
}

// §8.2 step 3, §8.3: a TRY SEND that finds only a remote RECV waiting on an
// unbuffered channel hands it the value, and is answered at that receiver's
// resolution: SEND_OK at its ACK; SEND_FULL at its RETURN, the value then in
// no channel. §12.3: a re-sent TRY SEND gets its recorded SEND_FULL.
TEST(ServedChanUnit, TrySendToARemoteReceiverIsAnsweredAtItsAckOrReturn) {
    home h(0, 2);
    h.recv(1, 1);
    ASSERT_TRUE(h.send(2, 1, 7, true));
    EXPECT_TRUE(h.sent().empty());
    EXPECT_EQ(h.run(), 1U);
    EXPECT_EQ(h.sent(), (frames{value(1, 1, 1, 7)}));
    h.ack(1, 1);
    EXPECT_EQ(h.run(), 1U);
    EXPECT_EQ(h.sent(), (frames{answer(2, msg::send_ok, 1)}));
    h.recv(1, 2);
    ASSERT_TRUE(h.send(2, 2, 8, true));
    EXPECT_EQ(h.run(), 1U);
    EXPECT_EQ(h.sent(), (frames{value(1, 2, 2, 8)}));
    h.give_back(1, 2);
    EXPECT_EQ(h.run(), 1U);
    EXPECT_EQ(h.sent(), (frames{answer(2, msg::send_full, 2)}));
    EXPECT_EQ(h.ch.len(), 0U);
    EXPECT_EQ(h.local_recv(), std::nullopt);
    ASSERT_TRUE(h.send(2, 2, 8, true));
    EXPECT_EQ(h.sent(), (frames{answer(2, msg::send_full, 2)}));
}

// ---- select tags (§8.6.1) ---------------------------------------------------

// §8.6.1 home rules 1-2: the RECV of a select's group is no waiting receiver
// for the group's own WATCH_SEND, but it is one for another session's select,
// whose watch is READY at once. That select is then done waiting: its RECV
// arriving later is parked, off the channel (a TRY SEND finds no receiver;
// it makes no third select's watch READY), answered only by its
// CANCEL_RECV; a later watch of the fired group MAY be READY at once.
TEST(ServedChanUnit, SelectGroupRecvIsNoPartnerForItsOwnWatchAndAFiredGroupsRecvIsParked) {
    home h(0, 3);
    h.recv(1, 1, 11);
    h.watch(1, 2, 11);
    EXPECT_TRUE(h.sent().empty());
    EXPECT_EQ(h.run(), 0U);
    h.watch(2, 1, 22);
    EXPECT_EQ(h.sent(), (frames{answer(2, msg::ready, 1)}));
    h.recv(2, 2, 22);
    EXPECT_TRUE(h.sent().empty());
    h.cancel_recv(1, 1);
    h.cancel_watch(1, 2);
    EXPECT_EQ(h.sent(),
              (frames{answer(1, msg::recv_cancelled, 1), answer(1, msg::watch_cancelled, 2)}));
    ASSERT_TRUE(h.send(3, 1, 5, true));  // a TRY SEND: nobody waits to receive
    EXPECT_EQ(h.sent(), (frames{answer(3, msg::send_full, 1)}));
    h.watch(3, 2, 33);
    EXPECT_TRUE(h.sent().empty());
    h.watch(2, 3, 22);
    EXPECT_EQ(h.sent(), (frames{answer(2, msg::ready, 3)}));
    EXPECT_EQ(h.run(), 0U);
    h.cancel_recv(2, 2);
    h.cancel_watch(3, 2);
    EXPECT_EQ(h.sent(),
              (frames{answer(2, msg::recv_cancelled, 2), answer(3, msg::watch_cancelled, 2)}));
}

// §8.6.1 home rules 1-2, the other order: a group's RECV arriving after its
// watch does not wake it; another session's receiver does (READY). The group
// has then fired and its RECV comes off the channel: a TRY SEND that follows
// goes to the other receiver, although the group's RECV waited longer.
TEST(ServedChanUnit, SelectGroupRecvDoesNotWakeItsOwnWatchAndLeavesTheChannelWhenItFires) {
    home h(0, 3);
    h.watch(1, 1, 11);
    h.recv(1, 2, 11);
    EXPECT_TRUE(h.sent().empty());
    EXPECT_EQ(h.notifier.pending(), 0U);
    h.recv(2, 1);
    EXPECT_EQ(h.notifier.pending(), 1U);
    EXPECT_EQ(h.run(), 1U);
    EXPECT_EQ(h.sent(), (frames{answer(1, msg::ready, 1)}));
    ASSERT_TRUE(h.send(3, 1, 9, true));
    EXPECT_EQ(h.run(), 1U);
    EXPECT_EQ(h.sent(), (frames{value(2, 1, 1, 9)}));
    h.ack(2, 1);
    EXPECT_EQ(h.run(), 1U);
    EXPECT_EQ(h.sent(), (frames{answer(3, msg::send_ok, 1)}));
    h.cancel_recv(1, 2);
    EXPECT_EQ(h.sent(), (frames{answer(1, msg::recv_cancelled, 2)}));
}

// ---- streams (§8.8) ---------------------------------------------------------

// §8.8: RECV_MANY(first, n) is n RECVs: the values the channel has answer them
// in request order, packed into one VALUES frame (consecutive requests and
// deliveries); the rest wait and are answered as values arrive. Each entry is
// a delivery of its own, and a waiting request can be cancelled alone.
TEST(ServedChanUnit, RecvManyIsAnsweredWithValuesInRequestOrder) {
    home h(8);
    for (const int v : {10, 20, 30}) ASSERT_EQ(h.local_send(v), send_status::ok);
    h.recv_many(1, 5, 5);
    EXPECT_EQ(h.sent(), (frames{values(1, 5, 1, {10, 20, 30})}));
    EXPECT_EQ(h.ch.len(), 0U);
    EXPECT_EQ(h.served.unresolved(1), 3U);
    ASSERT_EQ(h.local_send(40), send_status::ok);
    EXPECT_EQ(h.run(), 1U);
    EXPECT_EQ(h.sent(), (frames{values(1, 8, 4, {40})}));
    h.cancel_recv(1, 9);
    EXPECT_EQ(h.sent(), (frames{answer(1, msg::recv_cancelled, 9)}));
    ASSERT_EQ(h.local_send(50), send_status::ok);
    EXPECT_EQ(h.notifier.pending(), 0U);
    EXPECT_EQ(h.ch.len(), 1U);
    h.ack(1, 2);
    EXPECT_EQ(h.served.unresolved(1), 3U);
    for (std::uint64_t d : {1, 3, 4}) h.ack(1, d);
    EXPECT_EQ(h.served.unresolved(1), 0U);
}

// §8.8 home rule 4: when values arrive one at a time, the stream that has
// waited longest gets the next one: two sessions' streams take turns.
TEST(ServedChanUnit, StreamsOfTwoSessionsTakeValuesArrivingOneByOneInTurn) {
    home h(8, 2);
    h.recv_many(1, 1, 2);
    h.recv_many(2, 1, 2);
    EXPECT_TRUE(h.sent().empty());
    frames got;
    for (int v = 1; v <= 4; ++v) {
        ASSERT_EQ(h.local_send(v), send_status::ok);
        EXPECT_GE(h.run(), 1U);
        for (auto& f : h.sent()) got.push_back(std::move(f));
    }
    EXPECT_EQ(got, (frames{values(1, 1, 1, {1}), values(2, 1, 1, {2}), values(1, 2, 2, {3}),
                           values(2, 2, 2, {4})}));
    ASSERT_EQ(h.local_send(5), send_status::ok);  // both streams are answered
    EXPECT_EQ(h.notifier.pending(), 0U);
    EXPECT_EQ(h.ch.len(), 1U);
}

// §8.8 home rule 4: while another session's stream waits, a stream takes at
// most 64 values per turn and then yields; the other takes its turn, and the
// rotation goes on, so that no stream takes the whole buffer.
TEST(ServedChanUnit, StreamYieldsItsTurnAfter64ValuesWhileAnotherWaits) {
    home h(200, 2);
    h.recv_many(2, 1, 100);  // waits on the empty channel
    std::vector<int> first_turn;
    std::vector<int> second_turn;
    for (int v = 1; v <= 130; ++v) {
        ASSERT_EQ(h.local_send(v), send_status::ok);
        (v <= 64 ? first_turn : second_turn).push_back(v);
    }
    std::vector<int> third_turn(second_turn.begin() + 64, second_turn.end());
    second_turn.resize(64);
    h.recv_many(1, 1, 100);
    EXPECT_EQ(h.sent(), (frames{values(1, 1, 1, first_turn), values(2, 1, 1, second_turn),
                                values(1, 65, 65, third_turn)}));
    h.run();
    EXPECT_TRUE(h.sent().empty());
    EXPECT_EQ(h.ch.len(), 0U);
    EXPECT_EQ(h.served.unresolved(1), 66U);
    EXPECT_EQ(h.served.unresolved(2), 64U);
}

// ---- send windows (§9.1) --------------------------------------------------

std::vector<int> iota_values(int from, int to) {
    std::vector<int> vs;
    for (int v = from; v <= to; ++v) vs.push_back(v);
    return vs;
}

// §9.1 rule 1: with no receiver, credits are the free slots but one, and no
// more: capacity N still means the (N+1)th send from anywhere blocks, and a
// sender without credits (here a local one) still finds the slot that no
// credit may take.
TEST(ServedChanUnit, WithoutReceiversCreditsAreTheFreeSlotsButOne) {
    home h(4);
    EXPECT_EQ(h.open_window(1, 16), 4U);  // W' <= the capacity
    EXPECT_EQ(h.sent(), (frames{credit(1, 3, 0)}));
    EXPECT_EQ(h.local_send(99), send_status::ok);
    EXPECT_EQ(h.local_send(100), send_status::full);
}

// §9.1 rule 5: stream requests waiting at the home are room too (a Go send
// completes into a waiting receiver whatever the buffer holds), so the home
// grants credits against them, before it reserves slots. Values arriving on
// them go to the streams, in the sender's order; once the demand is met, the
// CREDIT tops the window up from the free slots, at most a sender's share of
// the capacity (here 4 / 2 senders) and never the last free slot (rule 1):
// session 3 gets 2, session 1 the 1 left.
TEST(ServedChanUnit, WaitingStreamsBackCreditsBeforeTheFreeSlots) {
    home h(4, 2);
    h.recv_many(2, 1, 8);
    EXPECT_TRUE(h.sent().empty());
    ASSERT_EQ(h.open_window(1, 4), 4U);
    EXPECT_EQ(h.sent(), (frames{credit(1, 4, 0)}));
    h.served.open_session(3);
    ASSERT_EQ(h.open_window(3, 4), 4U);
    EXPECT_EQ(h.sent(), (frames{credit(3, 4, 0)}));  // 8 requests back both windows

    EXPECT_EQ(h.credited(3, 1, {31, 32, 33, 34}), 4U);
    EXPECT_EQ(h.credited(1, 1, {11, 12, 13, 14}), 4U);
    h.run();
    frames want{values(2, 1, 1, {31, 32, 33, 34}), credit(3, 6, 4),
                values(2, 5, 5, {11, 12, 13, 14}), credit(1, 5, 4)};
    EXPECT_EQ(h.sent(), want);
    EXPECT_EQ(h.ch.len(), 0U);
    EXPECT_EQ(h.served.unresolved(2), 8U);
    // The slots of the top-ups are reserved: a local sender finds the one
    // left, then the channel full, as capacity 4 promises.
    EXPECT_EQ(h.local_send(99), send_status::ok);
    EXPECT_EQ(h.local_send(100), send_status::full);
}

// §9.1 rule 5: if the demand behind credits goes away before their values
// arrive (here the receiving session is lost), the values go into the
// channel as its slots free up, in the order sent; the channel never holds
// more than its capacity meanwhile, and nothing is lost.
TEST(ServedChanUnit, ValuesOnCreditsWhoseReceiverLeftEnterTheChannelInOrder) {
    home h(4, 2);
    h.recv_many(2, 1, 16);
    ASSERT_EQ(h.open_window(1, 16), 4U);  // W' <= the capacity
    EXPECT_EQ(h.sent(), (frames{credit(1, 4, 0)}));
    h.served.open_session(3);
    ASSERT_EQ(h.open_window(3, 4), 4U);
    EXPECT_EQ(h.sent(), (frames{credit(3, 4, 0)}));  // 4 demand-backed
    h.served.drop_session(2);
    h.settle();
    EXPECT_EQ(h.credited(1, 1, {1, 2, 3, 4}), 4U);
    EXPECT_EQ(h.credited(3, 1, {5, 6, 7, 8}), 4U);
    EXPECT_EQ(h.ch.len(), 4U);
    std::vector<int> got;
    for (int i = 0; i < 20 && got.size() < 8; ++i) {
        h.run();
        const auto v = h.local_recv();
        if (v) got.push_back(*v);
        EXPECT_LE(h.ch.len(), 4U);
    }
    EXPECT_EQ(got, iota_values(1, 8));
}

// §9.1 rule 5 and §10: held values arrived before the close of the channel
// was seen by its receivers, so the closed channel is not drained until
// they are received: a local receiver gets every one, in order, then closed.
TEST(ServedChanUnit, AClosedChannelIsNotDrainedWhileValuesOnDemandCreditsAreHeld) {
    home h(4, 2);
    h.recv_many(2, 1, 16);
    ASSERT_EQ(h.open_window(1, 4), 4U);
    h.served.open_session(3);
    ASSERT_EQ(h.open_window(3, 4), 4U);
    (void)h.sent();
    h.served.drop_session(2);
    h.settle();
    EXPECT_EQ(h.credited(1, 1, {1, 2, 3, 4}), 4U);
    EXPECT_EQ(h.credited(3, 1, {5, 6, 7, 8}), 4U);
    h.ch.close();
    h.run();
    std::vector<int> got;
    bool closed = false;
    for (int i = 0; i < 20 && !closed; ++i) {
        h.run();
        const auto r = h.ch.try_recv();
        if (r.value) {
            got.push_back(*r.value);
        } else if (r.status == zchan::recv_status::closed) {
            closed = true;
        }
    }
    EXPECT_TRUE(closed);
    EXPECT_EQ(got, iota_values(1, 8));
}

// §9.1 rule 4, rule 5: a session that ends (BYE, loss) gives back its
// demand-backed credits along with its slots: another sender gets them.
TEST(ServedChanUnit, ALostSendersDemandBackedCreditsGoToTheNextSender) {
    home h(4, 3);
    h.recv_many(3, 1, 8);
    ASSERT_EQ(h.open_window(1, 4), 4U);
    ASSERT_EQ(h.open_window(2, 4), 4U);
    EXPECT_EQ(h.sent(), (frames{credit(1, 4, 0), credit(2, 4, 0)}));
    h.served.drop_session(1);  // 4 demand-backed credits back
    h.served.drop_session(2);  // and 4 more
    h.settle();
    h.served.open_session(4);
    h.served.open_session(5);
    ASSERT_EQ(h.open_window(4, 4), 4U);
    ASSERT_EQ(h.open_window(5, 4), 4U);
    EXPECT_EQ(h.sent(), (frames{credit(4, 4, 0), credit(5, 4, 0)}));
}

/// Sessions 1 and 2 got credits backed by session 3's stream requests, then
/// session 3 was lost: session 1's values 1..4 fill the channel (capacity
/// 4) and session 2's 5..8 are held at the home (§9.1 rule 5), and session
/// 2 has no credit left. The frames so far are taken.
void hold_values_behind_a_full_channel(home& h) {
    h.recv_many(3, 1, 16);
    ASSERT_EQ(h.open_window(1, 4), 4U);
    ASSERT_EQ(h.open_window(2, 4), 4U);
    h.served.drop_session(3);
    h.settle();
    ASSERT_EQ(h.credited(1, 1, {1, 2, 3, 4}), 4U);
    ASSERT_EQ(h.credited(2, 1, {5, 6, 7, 8}), 4U);
    h.run();
    (void)h.sent();
}

/// Receives up to `n` values as a local receiver, running the home's loop
/// between attempts; the channel never holds more than its capacity 4.
std::vector<int> receive_locally(home& h, std::size_t n) {
    std::vector<int> got;
    for (int i = 0; i < 40 && got.size() < n; ++i) {
        h.run();
        if (const auto v = h.local_recv()) got.push_back(*v);
        EXPECT_LE(h.ch.len(), 4U);
    }
    return got;
}

// §9.1 rule 5, FIFO per sender: a sender whose values are held and whose
// credits ran out sends its next value as an offer. The offer must not
// enter the channel ahead of the held values, whichever the home notices
// first when a slot frees up.
TEST(ServedChanUnit, AnOfferWaitsBehindItsSendersHeldValues) {
    home h(4, 3);
    hold_values_behind_a_full_channel(h);
    ASSERT_EQ(h.local_recv(), std::optional<int>(1));  // a slot frees up...
    EXPECT_TRUE(h.send(2, 1, 9));                      // ...and session 2's offer arrives
    EXPECT_EQ(receive_locally(h, 8), iota_values(2, 9));
    EXPECT_EQ(h.sent(), (frames{{msg::send_ok, 2, 1, 0, {}}}));
}

// As above, with the offer waiting in the full channel before the slot
// frees up.
TEST(ServedChanUnit, AWaitingOfferStaysBehindItsSendersHeldValues) {
    home h(4, 3);
    hold_values_behind_a_full_channel(h);
    EXPECT_TRUE(h.send(2, 1, 9));
    h.run();
    EXPECT_TRUE(h.sent().empty());
    EXPECT_EQ(receive_locally(h, 9), iota_values(1, 9));
    EXPECT_EQ(h.sent(), (frames{{msg::send_ok, 2, 1, 0, {}}}));
}

// A TRY send (a select's send case) of a sender whose values are held is
// not ready: it would pass them.
TEST(ServedChanUnit, ATrySendBehindItsSendersHeldValuesIsFull) {
    home h(4, 3);
    hold_values_behind_a_full_channel(h);
    ASSERT_EQ(h.local_recv(), std::optional<int>(1));
    EXPECT_TRUE(h.send(2, 1, 9, true));
    EXPECT_EQ(h.sent(), (frames{{msg::send_full, 2, 1, 0, {}}}));
    EXPECT_EQ(receive_locally(h, 7), iota_values(2, 8));
}

// A cancelled offer that waited behind its sender's held values is
// answered SEND_CANCELLED and never enters the channel.
TEST(ServedChanUnit, AnOfferBehindHeldValuesCanBeCancelled) {
    home h(4, 3);
    hold_values_behind_a_full_channel(h);
    EXPECT_TRUE(h.send(2, 1, 9));
    h.cancel_send(2, 1);
    EXPECT_EQ(h.sent(), (frames{{msg::send_cancelled, 2, 1, 0, {}}}));
    EXPECT_EQ(receive_locally(h, 9), iota_values(1, 8));
    EXPECT_TRUE(h.sent().empty());
}

}  // namespace

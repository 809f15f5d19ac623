// The peer's send window without a socket (src/send_window.hpp, protocol.md
// §9.1): credits and confirmations fed in by hand, as peer_session does after
// decoding a CREDIT, and every SEND_MANY the window builds decoded with the
// home's codec (src/codec.hpp), frame by frame.
//
// The helpers follow peer_session_send.cpp's call sequences: a credited send
// is begin_value, the payload, end_value, then take_batch if should_flush;
// a CREDIT is on_credit, then take_batch if should_flush; a request or a
// REVOKE takes a non-empty batch before it leaves.
#include "../../src/send_window.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "../../src/codec.hpp"

namespace {

namespace wire = zchan::detail::wire;
using zchan::detail::send_window;

constexpr std::uint32_t channel_id = 7;

/// A SEND_MANY as the home decodes it.
struct send_many {
    std::uint32_t channel = 0;
    std::uint64_t first = 0;  // the credited number of its first entry
    std::vector<std::string> values;
};

send_many decode(const std::string& frame) {
    wire::frame f;
    const wire::bytes in{reinterpret_cast<const unsigned char*>(frame.data()), frame.size()};
    const std::error_code ec = wire::decode(in, wire::side::home, f);
    EXPECT_FALSE(ec) << "the window built a frame the home rejects: " << ec.message();
    send_many m;
    if (ec) return m;
    EXPECT_EQ(f.h.type, wire::msg::send_many);
    m.channel = f.h.channel;
    m.first = f.h.id;
    wire::values_reader r(f);
    for (std::uint32_t i = 0; i < f.count; ++i) {
        const wire::bytes v = r.next();
        m.values.emplace_back(reinterpret_cast<const char*>(v.data()), v.size());
    }
    return m;
}

/// Whether `frame` is a SEND_MANY on channel_id whose entries are `values`,
/// numbered from `first`.
testing::AssertionResult is_send_many(const std::string& frame, std::uint64_t first,
                                      const std::vector<std::string>& values) {
    const send_many m = decode(frame);
    if (m.channel == channel_id && m.first == first && m.values == values) {
        return testing::AssertionSuccess();
    }
    testing::AssertionResult r = testing::AssertionFailure();
    r << "SEND_MANY on channel " << m.channel << " from number " << m.first << " with "
      << m.values.size() << " entries";
    for (const std::string& v : m.values) r << " [" << v << "]";
    return r;
}

/// WELCOME granted window `w`; the CREDIT after it granted all of it.
send_window granted(std::uint32_t w) {
    send_window win;
    win.open(w);
    win.on_credit(w, 0);
    return win;
}

/// The frames the session would have handed to its socket, in order.
using sent = std::vector<std::string>;

/// A credited send (peer_session::send_credited). Requires has_credit().
void send_value(send_window& w, const std::string& payload, sent& out) {
    ASSERT_TRUE(w.has_credit());
    w.begin_value(channel_id) += payload;
    w.end_value();
    if (w.should_flush()) out.push_back(w.take_batch());
}

/// A CREDIT frame (peer_session::on_credit_locked).
void credit(send_window& w, std::uint64_t granted, std::uint64_t confirmed, sent& out) {
    w.on_credit(granted, confirmed);
    if (w.should_flush()) out.push_back(w.take_batch());
}

/// Another request leaves: the batch goes first (peer_session::start).
void before_request(send_window& w, sent& out) {
    if (!w.batch_empty()) out.push_back(w.take_batch());
}

/// Sends while credits last; returns how many values were sent.
int send_all_credits(send_window& w, sent& out) {
    int n = 0;
    while (w.has_credit()) {
        send_value(w, "v", out);
        ++n;
    }
    return n;
}

/// Sends four values as frames [1], [2, 3] and [4], none confirmed yet: a
/// lone value, two batched behind it that leave ahead of a request, and one
/// more the same way. Returns the frames.
sent three_frames(send_window& w, const std::string (&values)[4]) {
    sent out;
    send_value(w, values[0], out);
    send_value(w, values[1], out);
    send_value(w, values[2], out);
    before_request(w, out);
    send_value(w, values[3], out);
    before_request(w, out);
    EXPECT_EQ(out.size(), 3u);
    return out;
}

std::vector<std::string> inflight(const send_window& w) {
    std::vector<std::string> frames;
    w.for_each_inflight([&](const std::string& f) { frames.push_back(f); });
    return frames;
}

// §9.1: credits come only with W' > 0 granted in WELCOME and a CREDIT; without
// one no send is credited (it is an offer, a plain SEND).
TEST(SendWindowUnit, NoCreditMeansNoCreditedSend) {
    send_window w;
    EXPECT_FALSE(w.enabled());
    EXPECT_FALSE(w.has_credit());

    send_window none;
    none.open(0);  // WELCOME granted no window
    none.on_credit(5, 0);
    EXPECT_FALSE(none.enabled());
    EXPECT_FALSE(none.has_credit()) << "a CREDIT without a window grants nothing";

    w.open(4);
    EXPECT_TRUE(w.enabled());
    EXPECT_FALSE(w.has_credit()) << "the window is not a credit: the CREDIT after WELCOME is";
    w.on_credit(0, 0);
    EXPECT_FALSE(w.has_credit());
    w.on_credit(1, 0);
    EXPECT_TRUE(w.has_credit());
    EXPECT_EQ(w.unconfirmed(), 0u);
    EXPECT_EQ(w.last_number(), 0u);
}

// §9.1: credited values are numbered 1, 2, 3, ... per session; each uses one
// credit. A lone value leaves at once in its own SEND_MANY (no frame waits for
// its CREDIT); a batch leaves when the credits run out.
TEST(SendWindowUnit, EachCreditedValueUsesOneCreditAndTheNextNumber) {
    send_window w = granted(3);
    sent out;

    send_value(w, "a", out);
    ASSERT_EQ(out.size(), 1u) << "a lone value never waits";
    EXPECT_TRUE(is_send_many(out[0], 1, {"a"}));
    EXPECT_EQ(w.last_number(), 1u);

    send_value(w, "b", out);
    EXPECT_EQ(out.size(), 1u) << "frame 1 waits for its CREDIT: b joins the batch";
    EXPECT_FALSE(w.batch_empty());
    EXPECT_TRUE(w.has_credit());
    send_value(w, "c", out);  // the last credit
    ASSERT_EQ(out.size(), 2u) << "the batch leaves when the credits run out";
    EXPECT_TRUE(is_send_many(out[1], 2, {"b", "c"}));
    EXPECT_EQ(w.last_number(), 3u);
    EXPECT_FALSE(w.has_credit()) << "three credits, three values";
    EXPECT_EQ(w.unconfirmed(), 3u);
}

// §9.1 (batching): values sent while a frame waits for its CREDIT join one
// batch, which leaves as one SEND_MANY when that CREDIT arrives: entry i has
// number first+i, in the order the user sent them.
TEST(SendWindowUnit, ValuesQueuedWhileAFrameWaitsBatchIntoOneSendManyInOrder) {
    send_window w = granted(100);
    sent out;
    send_value(w, "v1", out);
    ASSERT_EQ(out.size(), 1u);
    for (int i = 2; i <= 6; ++i) {
        // Appended, not "v" + std::to_string(i): GCC 12's false -Wrestrict.
        send_value(w, std::string("v").append(std::to_string(i)), out);
    }
    EXPECT_EQ(out.size(), 1u) << "no frame leaves before frame 1's CREDIT";
    EXPECT_EQ(w.unconfirmed(), 6u) << "batched values count as unconfirmed";

    credit(w, 100, 1, out);
    ASSERT_EQ(out.size(), 2u) << "the CREDIT confirming frame 1 sends the batch";
    EXPECT_TRUE(is_send_many(out[1], 2, {"v2", "v3", "v4", "v5", "v6"}));
    EXPECT_TRUE(w.batch_empty());
    EXPECT_EQ(w.last_number(), 6u);
    EXPECT_EQ(w.confirmed(), 1u);
    EXPECT_EQ(w.unconfirmed(), 5u);
}

// §9.1 (batching): a batch waits while any frame of credited values waits
// for its CREDIT; it leaves once none does.
TEST(SendWindowUnit, ABatchWaitsUntilNoFrameAwaitsItsCredit) {
    send_window w = granted(100);
    sent out;
    send_value(w, "1", out);  // frame [1]
    send_value(w, "2", out);  // batched
    before_request(w, out);   // frame [2] leaves ahead of a request
    send_value(w, "3", out);  // batched: frames [1] and [2] wait
    ASSERT_EQ(out.size(), 2u);
    credit(w, 100, 1, out);
    EXPECT_EQ(out.size(), 2u) << "frame [2] still waits for its CREDIT";
    EXPECT_FALSE(w.batch_empty());
    credit(w, 100, 2, out);
    ASSERT_EQ(out.size(), 3u);
    EXPECT_TRUE(is_send_many(out[2], 3, {"3"}));
}

// §9.1 (batching): a batch leaves when it reaches 4096 values or 64 KiB,
// even while a frame waits for its CREDIT.
TEST(SendWindowUnit, ABatchLeavesWhenFull) {
    {
        send_window w = granted(10000);
        sent out;
        send_value(w, "x", out);  // frame [1] waits
        for (std::uint32_t i = 1; i < send_window::batch_values; ++i) send_value(w, "y", out);
        EXPECT_EQ(out.size(), 1u) << "one value short of a full batch";
        send_value(w, "z", out);
        ASSERT_EQ(out.size(), 2u) << "4096 values: the batch leaves";
        std::vector<std::string> want(send_window::batch_values - 1, "y");
        want.emplace_back("z");
        EXPECT_TRUE(is_send_many(out[1], 2, want));
    }
    {
        send_window w = granted(1000);
        sent out;
        send_value(w, "x", out);  // frame [1] waits
        const std::string big(4096, 'b');
        std::size_t batched = 0;
        while (out.size() == 1 && batched < 100) {
            send_value(w, big, out);
            ++batched;
        }
        ASSERT_EQ(out.size(), 2u);
        EXPECT_GE(out[1].size(), send_window::batch_bytes);
        EXPECT_LT(out[1].size() - (4 + big.size()), send_window::batch_bytes)
            << "it left as soon as it reached 64 KiB";
        EXPECT_TRUE(is_send_many(out[1], 2, std::vector<std::string>(batched, big)));
    }
}

// §9.1 rule 1: CREDIT's `granted` is a total and the peer keeps the largest
// seen, so a repeated or stale CREDIT adds nothing and a newer one adds only
// the difference; `confirmed` never goes back either.
TEST(SendWindowUnit, CreditTotalsAddOnlyTheDifference) {
    send_window w;
    w.open(16);
    sent out;
    w.on_credit(4, 0);
    send_value(w, "1", out);
    send_value(w, "2", out);
    credit(w, 4, 1, out);  // the same total again: two credits left, not six
    credit(w, 3, 0, out);  // an older CREDIT, overtaken on the way
    EXPECT_EQ(w.confirmed(), 1u) << "an older confirmation does not go back";
    EXPECT_EQ(send_all_credits(w, out), 2);
    EXPECT_EQ(w.last_number(), 4u);

    credit(w, 10, 1, out);  // six more
    credit(w, 10, 1, out);  // a duplicate
    credit(w, 7, 0, out);   // stale
    EXPECT_EQ(send_all_credits(w, out), 6);
    EXPECT_EQ(w.last_number(), 10u);
    EXPECT_EQ(w.confirmed(), 1u);
}

// §9.1 rule 1 and flush(): CREDIT's `confirmed` releases every frame whose
// values are all confirmed (the rest stay, kept for a resume); flush() waits
// until the last number handed out is confirmed, i.e. nothing is unconfirmed.
TEST(SendWindowUnit, ConfirmationReleasesFramesUpToItAndFlushWaitsForTheLast) {
    send_window w = granted(100);
    sent out = three_frames(w, {"1", "2", "3", "4"});
    send_value(w, "5", out);  // batched, not yet a frame
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(inflight(w), (sent{out[0], out[1], out[2]}));
    EXPECT_EQ(w.last_number(), 5u);
    EXPECT_EQ(w.unconfirmed(), 5u);

    w.on_credit(100, 2);
    EXPECT_EQ(w.confirmed(), 2u);
    EXPECT_EQ(w.unconfirmed(), 3u);
    EXPECT_EQ(inflight(w), (sent{out[1], out[2]})) << "frame [2, 3] is only half confirmed";

    w.on_credit(100, 4);
    EXPECT_EQ(inflight(w), sent{}) << "the batch is not a frame yet";
    ASSERT_TRUE(w.should_flush()) << "no frame waits: the batch may leave";
    before_request(w, out);  // flush() sends the batch first
    EXPECT_EQ(inflight(w), sent{out[3]});
    EXPECT_TRUE(is_send_many(out[3], 5, {"5"}));
    EXPECT_LT(w.confirmed(), w.last_number()) << "flush() still waits";
    EXPECT_EQ(w.unconfirmed(), 1u);

    w.on_credit(100, 5);
    EXPECT_EQ(w.confirmed(), w.last_number()) << "what flush() waits for";
    EXPECT_EQ(w.unconfirmed(), 0u);
    EXPECT_EQ(inflight(w), sent{});
}

// A stream builds its frames in the buffers of confirmed ones: one frame
// waiting for its CREDIT and one batch growing need two buffers, not a new
// one per frame (freeing frames of tens of KiB made malloc shrink and regrow
// the heap at every frame, an eighth of a producer's time).
TEST(SendWindowUnit, AStreamBuildsItsFramesInTheBuffersOfConfirmedOnes) {
    send_window w = granted(1u << 20);
    const std::string value(1000, 'v');
    std::vector<const char*> buffers;
    std::uint64_t confirmed = 0;
    for (int frame = 0; frame < 20; ++frame) {
        // A frame waits; the values sent meanwhile batch up behind it.
        for (int i = 0; i < 40; ++i) {
            w.begin_value(channel_id) += value;
            w.end_value();
        }
        ASSERT_EQ(w.should_flush(), frame == 0);
        if (frame != 0) {
            w.on_credit(1u << 20, confirmed);  // confirms the waiting frame
            ASSERT_TRUE(w.should_flush());
        }
        const std::string& sent_frame = w.take_batch();
        ASSERT_GT(sent_frame.size(), 40 * value.size());
        if (std::find(buffers.begin(), buffers.end(), sent_frame.data()) == buffers.end()) {
            buffers.push_back(sent_frame.data());
        }
        confirmed = w.last_number();
    }
    EXPECT_LE(buffers.size(), 2u) << "a buffer per frame";
}

// §9.1 (invariant of send_window.hpp): the home never confirms what was not
// sent, so a confirmation beyond the last number counts only up to it.
TEST(SendWindowUnit, AConfirmationBeyondTheLastNumberCountsOnlyUpToIt) {
    send_window w = granted(8);
    sent out;
    send_value(w, "1", out);
    send_value(w, "2", out);  // batched
    w.on_credit(8, 50);
    EXPECT_EQ(w.confirmed(), 2u);
    EXPECT_EQ(w.unconfirmed(), 0u);
    EXPECT_EQ(inflight(w), sent{});
}

// A value whose encoding failed, or that is too large (§6.4), is dropped from
// the batch: it uses no credit and no number, and the frame holds only the others.
TEST(SendWindowUnit, ADroppedValueUsesNoCreditAndNoNumber) {
    send_window w = granted(2);
    sent out;
    w.begin_value(channel_id) += "too big";
    EXPECT_EQ(w.value_size(), 7u);
    w.drop_value();
    EXPECT_TRUE(w.batch_empty());
    EXPECT_EQ(w.last_number(), 0u);
    EXPECT_EQ(w.unconfirmed(), 0u);
    send_value(w, "a", out);  // frame [1] leaves; the next one batches
    w.begin_value(channel_id) += "bad";
    w.drop_value();
    send_value(w, "b", out);  // the last credit: the batch leaves
    ASSERT_EQ(out.size(), 2u);
    EXPECT_TRUE(is_send_many(out[0], 1, {"a"}));
    EXPECT_TRUE(is_send_many(out[1], 2, {"b"})) << "number 2 went to b, not to the dropped value";
    EXPECT_FALSE(w.has_credit());
}

// §9.1 rule 4: on REVOKE the peer sends its pending credited values, then
// REVOKED, and uses no credit after it, whatever a later CREDIT grants;
// confirmations of what it sent still count (flush, unconfirmed_sends).
TEST(SendWindowUnit, RevokeEndsTheWindowButConfirmationsStillCount) {
    send_window w = granted(10);
    sent out;
    send_value(w, "1", out);
    send_value(w, "2", out);
    send_value(w, "3", out);
    ASSERT_EQ(out.size(), 1u);
    // peer_session::on_revoke_locked: the batch leaves, then REVOKED.
    before_request(w, out);
    w.revoke();
    ASSERT_EQ(out.size(), 2u);
    EXPECT_TRUE(is_send_many(out[1], 2, {"2", "3"})) << "the batch left before REVOKED";
    EXPECT_TRUE(w.revoked());
    EXPECT_FALSE(w.enabled());
    EXPECT_FALSE(w.has_credit()) << "seven credits left, none usable after REVOKE";
    EXPECT_EQ(w.unconfirmed(), 3u);

    credit(w, 20, 1, out);
    EXPECT_FALSE(w.has_credit()) << "no new credits after REVOKE";
    EXPECT_EQ(out.size(), 2u);
    EXPECT_EQ(w.confirmed(), 1u);
    EXPECT_EQ(inflight(w), sent{out[1]});
    credit(w, 20, 3, out);
    EXPECT_EQ(w.unconfirmed(), 0u);
    EXPECT_EQ(inflight(w), sent{});
}

// §9.1 and §12.2: after a resume the peer re-sends every frame of credited
// values not yet confirmed, in order and unchanged (same numbers), so the home
// can accept each number once; confirmed frames are not re-sent.
TEST(SendWindowUnit, ResumeResendsEveryUnconfirmedFrameUnchanged) {
    send_window w = granted(100);
    const sent out = three_frames(w, {"a", "b", "c", "d"});
    ASSERT_EQ(out.size(), 3u);
    w.on_credit(100, 1);  // the CREDIT for frame [1] arrived; the others were lost

    const sent again = inflight(w);
    ASSERT_EQ(again.size(), 2u);
    EXPECT_EQ(again[0], out[1]);
    EXPECT_EQ(again[1], out[2]);
    EXPECT_TRUE(is_send_many(again[0], 2, {"b", "c"}));
    EXPECT_TRUE(is_send_many(again[1], 4, {"d"}));

    // The CREDIT after the WELCOME RESUME confirms what the home already had.
    w.on_credit(100, 3);
    EXPECT_EQ(inflight(w), sent{out[2]});
    EXPECT_EQ(w.unconfirmed(), 1u);
}

}  // namespace

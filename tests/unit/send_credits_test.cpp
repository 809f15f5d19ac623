// One session's send credits at the home without a socket
// (zchan/detail/send_credits.hpp, protocol.md §9.1): grants, credited
// numbers and confirmations driven by hand in the order served_chan's window
// (served_chan_window.hpp) applies them. The last tests drive a served_chan
// through a recording reply_sink, to see the reserved slots in the channel
// itself: they count against the capacity until filled or released.
#include "zchan/detail/send_credits.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "zchan/channel.hpp"
#include "zchan/detail/served_chan.hpp"
#include "zchan/serialize.hpp"

namespace {

using zchan::detail::send_credits;
using verdict = send_credits::verdict;
namespace wire = zchan::detail::wire;

/// served_chan::top_up: asks for what the credits want, gets at most what
/// the channel has free; returns the credits granted.
std::uint64_t top_up(send_credits& c, std::uint64_t share, std::uint64_t& free_slots) {
    const std::uint64_t got = std::min(c.wanted(share), free_slots);
    free_slots -= got;
    c.granted += got;
    return got;
}

/// served_chan::on_credited for one value: checks its number and, when it
/// is the next one, takes it into its slot.
verdict arrive(send_credits& c, std::uint64_t number) {
    const verdict v = c.check(number);
    if (v == verdict::accept) c.upto = number;
    return v;
}

/// served_chan::release_credits (REVOKED, BYE, loss): returns the slots freed.
std::uint64_t release(send_credits& c) {
    const std::uint64_t freed = c.held();
    c.granted = c.upto;
    c.revoked = true;
    return freed;
}

// §9.1 rule 1: credits only for a session granted a window, and only while
// the channel is open (rule 4: none after REVOKE).
TEST(SendCreditsUnit, NoWindowOrARevokedSessionIsGrantedNothing) {
    send_credits none;
    EXPECT_EQ(none.wanted(100), 0u) << "W' = 0: no credits";
    send_credits c;
    c.window = 8;
    EXPECT_EQ(c.wanted(100), 8u);
    c.revoked = true;
    EXPECT_EQ(c.wanted(100), 0u) << "the channel closed: no more grants";
}

// §9.1 rule 1: never more than W' held at once; with several windowed
// senders, a session's window is at most its share of the channel.
TEST(SendCreditsUnit, TheFirstGrantFillsTheWindowAtMostTheShare) {
    send_credits c;
    c.window = 8;
    EXPECT_EQ(c.wanted(100), 8u);
    EXPECT_EQ(c.wanted(8), 8u);
    EXPECT_EQ(c.wanted(3), 3u);
    std::uint64_t free_slots = 100;
    EXPECT_EQ(top_up(c, 3, free_slots), 3u);
    EXPECT_EQ(c.held(), 3u);
    EXPECT_EQ(c.wanted(3), 0u) << "its whole share is held";
    // The grant is bounded by the free slots too; the rest comes at a later top-up.
    send_credits d;
    d.window = 8;
    free_slots = 5;
    EXPECT_EQ(top_up(d, 100, free_slots), 5u);
    EXPECT_EQ(d.held(), 5u);
    EXPECT_EQ(d.wanted(100), 3u) << "the rest of the window, once slots are free";
    free_slots = 2;
    EXPECT_EQ(top_up(d, 100, free_slots), 2u);
    EXPECT_EQ(d.held(), 7u);
}

// §9.1 rule 1: the window is topped up to the full window at every frame of
// credited values (the CREDIT confirming the frame carries the grant), so a
// stream never runs with half of it; a full window wants nothing.
TEST(SendCreditsUnit, CreditsAreToppedUpToTheFullWindowAtEveryFrame) {
    send_credits c;
    c.window = 8;
    std::uint64_t free_slots = 1000;
    ASSERT_EQ(top_up(c, 100, free_slots), 8u);
    EXPECT_EQ(c.wanted(100), 0u) << "the whole window is held";
    ASSERT_EQ(arrive(c, 1), verdict::accept);
    EXPECT_EQ(c.wanted(100), 1u) << "one value arrived: one credit back";
    for (std::uint64_t n = 2; n <= 4; ++n) ASSERT_EQ(arrive(c, n), verdict::accept);
    EXPECT_EQ(c.held(), 4u);
    EXPECT_EQ(c.wanted(100), 4u) << "a frame of three more: back to the full window";
    EXPECT_EQ(top_up(c, 100, free_slots), 4u);
    EXPECT_EQ(c.granted, 12u) << "granted is a total";
    EXPECT_EQ(c.held(), 8u);
}

// §9.1 rule 1 and send_credits.hpp's invariant: granted - upto (the slots
// held) never exceeds W', however the share moves as windowed senders come
// and go, and upto <= granted.
TEST(SendCreditsUnit, HeldNeverExceedsTheWindow) {
    send_credits c;
    c.window = 8;
    std::uint64_t free_slots = 1u << 20;
    const std::uint64_t shares[] = {100, 5, 3, 16, 8, 2, 64};
    std::uint64_t next = 1;
    for (int step = 0; step < 500; ++step) {
        const std::uint64_t share = shares[step % 7];
        const std::uint64_t before = c.held();
        const std::uint64_t got = top_up(c, share, free_slots);
        if (got != 0) {
            EXPECT_EQ(c.held(), std::min<std::uint64_t>(c.window, share)) << "step " << step;
        } else {
            EXPECT_EQ(c.held(), before);
        }
        EXPECT_LE(c.held(), c.window) << "step " << step;
        EXPECT_LE(c.upto, c.granted);
        for (int i = 0; i < step % 3 + 1 && c.held() != 0; ++i) {
            ASSERT_EQ(arrive(c, next), verdict::accept);
            ++next;
        }
    }
    EXPECT_EQ(c.upto, next - 1);
}

// §9.1 rule 2: the value numbered confirmed+1 is accepted into its reserved
// slot; each acceptance advances the confirmation by one.
TEST(SendCreditsUnit, TheNextNumberIsAcceptedAndConfirmationsAdvance) {
    send_credits c;
    c.window = 4;
    c.granted = 4;
    for (std::uint64_t n = 1; n <= 4; ++n) {
        EXPECT_EQ(c.check(n), verdict::accept) << n;
        c.upto = n;
        EXPECT_EQ(c.held(), 4 - n);
    }
    EXPECT_EQ(c.upto, 4u) << "CREDIT's confirmed";
}

// §9.1 rule 5: of the credits held, `demand` are backed by receivers'
// requests and the rest are reserved slots; an arriving value uses a slot
// while the session holds one (so that the slots, which others wait for,
// are the first to be filled), then the demand.
TEST(SendCreditsUnit, AValueUsesAReservedSlotFirstThenDemand) {
    send_credits c;
    c.window = 4;
    c.granted = 4;
    c.demand = 3;
    EXPECT_EQ(c.slots(), 1u);
    EXPECT_TRUE(c.use());
    EXPECT_EQ(c.slots(), 0u);
    for (std::uint64_t left = 2; left + 1 != 0; --left) {
        EXPECT_FALSE(c.use());
        EXPECT_EQ(c.demand, left);
        EXPECT_EQ(c.slots(), 0u);
    }
    EXPECT_EQ(c.held(), 0u);
    EXPECT_EQ(c.upto, 4u);
}

// §9.1 rule 2 and §12.2: a number at or below `confirmed` is a re-send after
// a resume; it is ignored (the CREDIT confirms it again), changing nothing.
TEST(SendCreditsUnit, ANumberAtOrBelowConfirmedIsADuplicate) {
    send_credits c;
    c.window = 8;
    c.granted = 8;
    // A frame of values 1..3 arrived; its CREDIT was lost with the connection.
    for (std::uint64_t n = 1; n <= 3; ++n) ASSERT_EQ(arrive(c, n), verdict::accept);
    // The peer re-sends frame [2, 3, 4] after its resume.
    EXPECT_EQ(arrive(c, 2), verdict::duplicate);
    EXPECT_EQ(arrive(c, 3), verdict::duplicate);
    EXPECT_EQ(c.upto, 3u);
    EXPECT_EQ(c.held(), 5u);
    EXPECT_EQ(arrive(c, 4), verdict::accept);
    EXPECT_EQ(c.upto, 4u);
    EXPECT_EQ(arrive(c, 1), verdict::duplicate);
}

// §9.1 rule 2: a number above confirmed+1 (within the grant) means an
// earlier one was lost with a connection: it is dropped, not taken out of
// order; the peer re-sends both after its resume.
TEST(SendCreditsUnit, ANumberPastAGapIsDropped) {
    send_credits c;
    c.window = 8;
    c.granted = 8;
    ASSERT_EQ(arrive(c, 1), verdict::accept);
    EXPECT_EQ(arrive(c, 3), verdict::gap);
    EXPECT_EQ(arrive(c, 8), verdict::gap);
    EXPECT_EQ(c.upto, 1u) << "nothing taken out of order";
    EXPECT_EQ(c.held(), 7u);
    EXPECT_EQ(arrive(c, 2), verdict::accept);
    EXPECT_EQ(arrive(c, 3), verdict::accept);
}

// §9.1 rule 2: a value beyond the credits granted is a protocol error,
// whether or not an earlier number is missing.
TEST(SendCreditsUnit, ANumberBeyondTheGrantIsOverGapOrNot) {
    send_credits c;
    c.window = 4;
    EXPECT_EQ(c.check(1), verdict::over) << "nothing granted yet";
    c.granted = 2;
    ASSERT_EQ(arrive(c, 1), verdict::accept);
    ASSERT_EQ(arrive(c, 2), verdict::accept);
    EXPECT_EQ(arrive(c, 3), verdict::over);
    EXPECT_EQ(c.check(10), verdict::over) << "past a gap and past the grant";
    EXPECT_EQ(c.upto, 2u);
    EXPECT_EQ(c.held(), 0u);
}

// §9.1 rules 2 and 4: after a close, values already credited are still
// accepted into their slots, but nothing more is granted; REVOKED (or BYE,
// loss) releases the slots still held, and a value after that is beyond
// the grant.
TEST(SendCreditsUnit, AfterACloseHeldSlotsAreFilledOrReleasedAndNothingIsGranted) {
    send_credits c;
    c.window = 8;
    std::uint64_t free_slots = 8;
    ASSERT_EQ(top_up(c, 8, free_slots), 8u);
    ASSERT_EQ(arrive(c, 1), verdict::accept);
    c.revoked = true;  // REVOKE sent
    EXPECT_EQ(arrive(c, 2), verdict::accept) << "sent before the close: its slot waits for it";
    for (std::uint64_t n = 3; n <= 6; ++n) ASSERT_EQ(arrive(c, n), verdict::accept);
    EXPECT_EQ(c.wanted(8), 0u) << "half the window used, but the channel is closed";
    EXPECT_EQ(top_up(c, 8, free_slots), 0u);
    EXPECT_EQ(c.held(), 2u);

    free_slots += release(c);  // REVOKED
    EXPECT_EQ(free_slots, 2u) << "every slot the session still held";
    EXPECT_EQ(c.held(), 0u);
    EXPECT_EQ(c.granted, c.upto) << "once revoked, granted == upto after the release";
    EXPECT_EQ(c.check(7), verdict::over) << "no credit is used after REVOKED";
    EXPECT_EQ(c.check(6), verdict::duplicate);
}

// ---- through served_chan: the slots in the channel ---------------------------

struct answer {
    wire::msg type;
    std::uint32_t session;
    std::uint64_t id;  // CREDIT: granted; ERROR: ref
    std::uint64_t confirmed = 0;
    wire::error_code code = wire::error_code::protocol_error;

    bool operator==(const answer&) const = default;
};

class recording_sink final : public zchan::detail::reply_sink {
public:
    std::vector<answer> replies;

    void reply(std::uint32_t session, wire::msg type, std::uint64_t id) override {
        replies.push_back({type, session, id});
    }
    void reply_value(std::uint32_t /*session*/, std::uint64_t /*request*/,
                     std::uint64_t /*delivery*/, const std::string& /*payload*/) override {
        ADD_FAILURE() << "no receiver in these tests";
    }
    void reply_error(std::uint32_t session, std::uint64_t ref, wire::error_code code,
                     std::string_view /*text*/) override {
        replies.push_back({wire::msg::error, session, ref, 0, code});
    }
    std::string& values_begin(std::uint32_t /*session*/, std::uint64_t /*first_request*/,
                              std::uint64_t /*first_delivery*/) override {
        ADD_FAILURE() << "no receiver in these tests";
        return values_;
    }
    void values_end(std::uint32_t /*count*/) override {}
    void reply_credit(std::uint32_t session, std::uint64_t granted,
                      std::uint64_t confirmed) override {
        replies.push_back({wire::msg::credit, session, granted, confirmed});
    }

    std::vector<answer> take() { return std::exchange(replies, {}); }

private:
    std::string values_;
};

class recording_notifier final : public zchan::detail::op_notifier {
public:
    std::vector<std::uint64_t> ops;
    void post(zchan::detail::served_base* /*ch*/, std::uint64_t op_id) noexcept override {
        ops.push_back(op_id);
    }
};

/// SEND_MANY's entries (u32 length, payload) for `values`.
std::string entries(const std::vector<int>& values) {
    std::string out;
    for (const int v : values) {
        const std::size_t at = zchan::detail::reply_sink::values_entry_begin(out);
        zchan::encode_value(v, out);
        zchan::detail::reply_sink::values_entry_end(out, at);
    }
    return out;
}

constexpr std::uint32_t sid = 1;  // the session

answer credit_reply(std::uint64_t granted, std::uint64_t confirmed) {
    return {wire::msg::credit, sid, granted, confirmed};
}

/// A channel of capacity 4 served to session `sid`, which asked for a send
/// window of 4 in its HELLO and was WELCOMEd: `window` is W', and `out`
/// holds the replies that followed the WELCOME.
struct windowed_home {
    zchan::channel<int> ch{4};
    recording_notifier n;
    recording_sink out;
    zchan::detail::served_chan<int> home{ch, n};
    std::uint32_t window = 0;

    windowed_home() {
        home.open_session(sid);
        window = home.grant_window(sid, 4);
        home.welcomed(out, sid);
    }

    /// A SEND_MANY of `values` numbered from `first`; returns how many entered the channel.
    std::uint32_t credited(std::uint64_t first, const std::vector<int>& values) {
        const std::string e = entries(values);
        return home.on_credited(out, sid, first, static_cast<std::uint32_t>(values.size()),
                                reinterpret_cast<const unsigned char*>(e.data()), e.size());
    }
};

// §9.1: each credit is a slot reserved in the channel; reserved slots count
// against the capacity (a local sender sees them as full) until a credited
// value fills them or the session releases them (REVOKED, BYE, loss). Rule 1:
// credits never take the last free slot, so the window of 4 starts with 3.
TEST(SendCreditsUnit, ReservedSlotsCountAgainstTheCapacityUntilReleased) {
    windowed_home h;
    ASSERT_EQ(h.window, 4u);
    EXPECT_EQ(h.out.take(), std::vector<answer>{credit_reply(3, 0)}) << "a CREDIT after WELCOME";
    EXPECT_EQ(h.ch.try_send(99), zchan::send_status::ok) << "the slot no credit may take";
    EXPECT_EQ(h.ch.try_send(98), zchan::send_status::full) << "the other three are reserved";

    EXPECT_EQ(h.credited(1, {10, 11}), 2u);
    EXPECT_EQ(h.ch.len(), 3u);
    EXPECT_EQ(h.out.take(), std::vector<answer>{credit_reply(3, 2)})
        << "one CREDIT per frame; no free slot to grant more";
    EXPECT_EQ(h.ch.try_send(98), zchan::send_status::full) << "three values, one reserved";

    h.home.on_revoked(h.out, sid);
    EXPECT_EQ(h.ch.try_send(12), zchan::send_status::ok) << "a released slot is free again";
    EXPECT_EQ(h.ch.try_send(98), zchan::send_status::full);

    // After REVOKED the session holds no credit: a credited value is beyond the grant.
    EXPECT_EQ(h.credited(3, {14}), 0u);
    const std::vector<answer> r = h.out.take();
    ASSERT_FALSE(r.empty());
    EXPECT_EQ(r[0].type, wire::msg::error);
    EXPECT_EQ(r[0].id, 3u) << "ref = its number";
    EXPECT_EQ(r[0].code, wire::error_code::protocol_error);
    for (const int want : {99, 10, 11, 12}) {
        auto got = h.ch.try_recv();
        ASSERT_TRUE(got.ok());
        EXPECT_EQ(*got, want);
    }
}

// §9.1 rule 4 and §10: at a close the home sends REVOKE to a session holding
// credits and grants no more; credited values still arrive into their slots
// (rule 2), and the closed channel is not drained until the slots left are
// released.
TEST(SendCreditsUnit, ACloseRevokesAndTheChannelIsDrainedOnlyAfterTheRelease) {
    windowed_home h;
    ASSERT_EQ(h.window, 4u);
    EXPECT_EQ(h.out.take(), std::vector<answer>{credit_reply(3, 0)});  // never the last slot
    EXPECT_EQ(h.credited(1, {10}), 1u);
    EXPECT_EQ(h.out.take(), std::vector<answer>{credit_reply(4, 1)});  // 3 reserved, 1 value

    h.ch.close();
    ASSERT_EQ(h.n.ops.size(), 1u) << "the close watcher was woken";
    h.home.on_ready(h.out, h.n.ops[0]);
    EXPECT_EQ(h.out.take(), (std::vector<answer>{{wire::msg::revoke, sid, 0}}));

    auto first = h.ch.try_recv();
    ASSERT_TRUE(first.ok());
    EXPECT_EQ(*first, 10);
    EXPECT_EQ(h.ch.try_recv().status, zchan::recv_status::empty)
        << "closed, but three reserved values may still arrive";

    EXPECT_EQ(h.credited(2, {11}), 1u) << "accepted after the close";
    EXPECT_EQ(h.out.take(), std::vector<answer>{credit_reply(4, 2)}) << "confirmed, no new credit";
    auto second = h.ch.try_recv();
    ASSERT_TRUE(second.ok());
    EXPECT_EQ(*second, 11);
    EXPECT_EQ(h.ch.try_recv().status, zchan::recv_status::empty);

    h.home.on_revoked(h.out, sid);  // REVOKED: two slots released
    EXPECT_EQ(h.ch.try_recv().status, zchan::recv_status::closed);
}

}  // namespace

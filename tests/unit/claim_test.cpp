// Claims in the in-process unbuffered channel (detail/unbuffered_chan.hpp,
// detail/chan_base.hpp claim_word): the rendezvous with a remote receiver
// (docs/protocol.md §8.3). The home takes a blocked sender's value for a
// remote receiver's pending RECV; the sender must not complete until that
// receiver ACKs, and a value given back (RETURN, loss) must go back to its
// sender, not into the capacity-0 channel. These tests play the home by
// hand, with event-loop contexts as the server registers them.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "zchan/channel.hpp"
#include "zchan/detail/unbuffered_chan.hpp"
#include "zchan/select.hpp"
#include "zchan_test_support.hpp"

namespace {

using namespace std::chrono_literals;
namespace zd = zchan::detail;
using zchan::recv_status;
using zchan::send_status;
using zchan_test::background_call;
using zchan_test::deadline_after;
using zchan_test::generous;

/// How long a claimed sender is watched for *not* completing: a negative
/// observation, not a synchronisation (the settle that releases it comes
/// after, whatever the timing).
constexpr auto still_blocked = 50ms;

/// A claiming receiver, as the home registers one for a remote RECV.
struct remote_receiver {
    static void on_notify(zd::context& /*cx*/, void* arg) noexcept {
        static_cast<std::atomic<int>*>(arg)->fetch_add(1);
    }
    std::atomic<int> notified{0};
    zd::context cx{&on_notify, &notified};
    zd::recv_packet<std::string> packet;
    zd::wait_entry entry{&cx, zd::sel_first_op, &packet};

    remote_receiver() { packet.claiming = true; }
    [[nodiscard]] bool woken_within(std::chrono::milliseconds ms) const {
        return zchan_test::wait_until([&] { return notified.load() > 0; }, deadline_after(ms));
    }
};

/// The home's claim of a blocked sender: polls until the sender waits.
zd::wait_entry* claim_when_there(zd::unbuffered_chan<std::string>& ch,
                                 std::optional<std::string>& out) {
    zd::wait_entry* claimed = nullptr;
    const bool got =
        zchan_test::wait_until([&] { return ch.try_recv_claim(out, claimed) == recv_status::ok; },
                               deadline_after(generous));
    EXPECT_TRUE(got);
    EXPECT_NE(claimed, nullptr);
    return claimed;
}

TEST(ClaimUnit, AClaimedSenderCompletesOnlyWhenTheRemoteReceiverTakesTheValue) {
    zd::unbuffered_chan<std::string> ch;
    std::atomic<bool> returned{false};
    background_call sender([&] {
        std::string v = "x";
        EXPECT_EQ(ch.send(v, zd::no_deadline), send_status::ok);
        returned = true;
    });
    std::optional<std::string> out;
    zd::wait_entry* claimed = claim_when_there(ch, out);
    ASSERT_NE(claimed, nullptr);
    EXPECT_EQ(out, "x");
    EXPECT_FALSE(sender.wait_done(deadline_after(still_blocked)));
    EXPECT_FALSE(returned.load());
    EXPECT_EQ(ch.len(), 0U);
    ch.settle_claim(*claimed, true, out);  // the ACK
    ASSERT_TRUE(sender.wait_done(deadline_after(generous)));
    EXPECT_TRUE(returned.load());
    EXPECT_EQ(ch.len(), 0U);
}

TEST(ClaimUnit, AValueGivenBackGoesToItsSenderNotIntoTheChannel) {
    zd::unbuffered_chan<std::string> ch;
    background_call sender([&] {
        std::string v = "mine";
        EXPECT_EQ(ch.send(v, zd::no_deadline), send_status::ok);
    });
    std::optional<std::string> out;
    zd::wait_entry* claimed = claim_when_there(ch, out);
    ASSERT_NE(claimed, nullptr);
    ch.settle_claim(*claimed, false, out);  // the RETURN
    EXPECT_FALSE(out.has_value());
    EXPECT_EQ(ch.len(), 0U);  // capacity 0: nothing requeued
    // The sender offers it again: the next receiver gets it from the sender.
    std::optional<std::string> got;
    ASSERT_EQ(ch.recv(got, deadline_after(generous)), recv_status::ok);
    EXPECT_EQ(got, "mine");
    ASSERT_TRUE(sender.wait_done(deadline_after(generous)));
}

TEST(ClaimUnit, AClaimOutlivesTheSendersDeadlineAndAGiveBackThenTimesOut) {
    zd::unbuffered_chan<std::string> ch;
    std::string v = "late";
    std::atomic<int> result{-1};
    background_call sender([&] { result = static_cast<int>(ch.send(v, deadline_after(100ms))); });
    std::optional<std::string> out;
    zd::wait_entry* claimed = claim_when_there(ch, out);
    ASSERT_NE(claimed, nullptr);
    // Well past the deadline: a claimed sender waits for the verdict.
    EXPECT_FALSE(sender.wait_done(deadline_after(300ms)));
    ch.settle_claim(*claimed, false, out);
    ASSERT_TRUE(sender.wait_done(deadline_after(generous)));
    EXPECT_EQ(result.load(), static_cast<int>(send_status::timeout));
    EXPECT_EQ(v, "late");  // not sent: the value is the sender's again
}

TEST(ClaimUnit, ASenderArrivingAtAClaimingReceiverIsClaimedUntilSettled) {
    zd::unbuffered_chan<std::string> ch;
    remote_receiver r;
    EXPECT_FALSE(ch.register_recv(r.entry));
    std::atomic<bool> returned{false};
    background_call sender([&] {
        std::string v = "to-remote";
        EXPECT_EQ(ch.send(v, zd::no_deadline), send_status::ok);
        returned = true;
    });
    ASSERT_TRUE(r.woken_within(generous));
    ch.unregister_recv(r.entry);
    ASSERT_TRUE(r.packet.done);
    EXPECT_EQ(r.packet.value, "to-remote");
    ASSERT_NE(r.packet.claimed, nullptr);
    EXPECT_FALSE(sender.wait_done(deadline_after(still_blocked)));
    ch.settle_claim(*r.packet.claimed, true, r.packet.value);
    ASSERT_TRUE(sender.wait_done(deadline_after(generous)));
    EXPECT_TRUE(returned.load());
}

TEST(ClaimUnit, ATrySendToAClaimingReceiverWaitsForTheVerdict) {
    zd::unbuffered_chan<std::string> ch;
    remote_receiver r;
    EXPECT_FALSE(ch.register_recv(r.entry));
    std::atomic<int> result{-1};
    background_call sender([&] {
        std::string v = "try";
        result = static_cast<int>(ch.try_send(v));
        EXPECT_EQ(v, "try");  // given back: the value is the sender's again
    });
    ASSERT_TRUE(r.woken_within(generous));
    ch.unregister_recv(r.entry);
    ASSERT_NE(r.packet.claimed, nullptr);
    ch.settle_claim(*r.packet.claimed, false, r.packet.value);
    ASSERT_TRUE(sender.wait_done(deadline_after(generous)));
    EXPECT_EQ(result.load(), static_cast<int>(send_status::full));
    EXPECT_EQ(ch.len(), 0U);
}

TEST(ClaimUnit, AClaimingReceiverTakesAValueFromNoSenderPlainly) {
    zd::unbuffered_chan<std::string> ch;
    remote_receiver r;
    EXPECT_FALSE(ch.register_recv(r.entry));
    ch.requeue_front("given back");
    ASSERT_TRUE(r.woken_within(generous));
    ch.unregister_recv(r.entry);
    EXPECT_EQ(r.packet.value, "given back");
    EXPECT_EQ(r.packet.claimed, nullptr);  // nobody to settle
}

TEST(ClaimUnit, ASelectWhoseSendIsClaimedRunsThatCaseOnlyIfTaken) {
    zchan::channel<std::string> c(0);
    zchan::channel<std::string> other(0);
    auto* impl =
        dynamic_cast<zd::unbuffered_chan<std::string>*>(zd::channel_access<std::string>::get(c));
    ASSERT_NE(impl, nullptr);
    std::atomic<int> chose{-1};
    background_call selector([&] {
        chose = static_cast<int>(
            zchan::select(zchan::send_case(c, std::string("s")), zchan::recv_case(other)));
    });
    // Given back first: the select goes on waiting (it has not chosen).
    std::optional<std::string> out;
    zd::wait_entry* claimed = claim_when_there(*impl, out);
    ASSERT_NE(claimed, nullptr);
    EXPECT_EQ(out, "s");
    impl->settle_claim(*claimed, false, out);
    EXPECT_FALSE(selector.wait_done(deadline_after(still_blocked)));
    // Then taken: the send case runs.
    claimed = claim_when_there(*impl, out);
    ASSERT_NE(claimed, nullptr);
    EXPECT_EQ(out, "s");
    impl->settle_claim(*claimed, true, out);
    ASSERT_TRUE(selector.wait_done(deadline_after(generous)));
    EXPECT_EQ(chose.load(), 0);
}

TEST(ClaimUnit, AnOfferFromTheHomeIsClaimedByAClaimingReceiver) {
    zd::unbuffered_chan<std::string> ch;
    remote_receiver r;
    EXPECT_FALSE(ch.register_recv(r.entry));
    // A remote TRY SEND, as the home runs it: an event-loop op with a packet.
    std::atomic<int> offer_woken{0};
    zd::context cx{&remote_receiver::on_notify, &offer_woken};
    std::string value = "offered";
    zd::send_packet<std::string> sp(&value, false);
    zd::wait_entry offer{&cx, zd::sel_first_op, &sp};
    EXPECT_EQ(ch.try_send_nowait(value), send_status::full);  // the nowait path ignores r
    ASSERT_TRUE(ch.offer_to_claiming(offer));
    ASSERT_TRUE(r.woken_within(generous));
    ch.unregister_recv(r.entry);
    ASSERT_EQ(r.packet.claimed, &offer);
    EXPECT_EQ(offer_woken.load(), 0);  // nothing to report until settled
    ch.settle_claim(offer, true, r.packet.value);
    EXPECT_EQ(offer_woken.load(), 1);
    EXPECT_TRUE(sp.done);
}

}  // namespace

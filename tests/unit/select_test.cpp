// Unit tests for zchan::select: one TEST per rule of notes/api.md ("select").
//
// Fairness is checked statistically with bounds many standard deviations wide,
// so a correct uniform choice fails with negligible probability while a biased
// one (e.g. always the first ready case) fails every time.
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include <zchan/zchan.hpp>
#include "zchan_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using zchan::channel;
using zchan::default_case;
using zchan::recv_case;
using zchan::recv_status;
using zchan::select;
using zchan::send_case;
using zchan::send_status;
using zchan::timeout_case;
using zchan_test::background_call;
using zchan_test::deadline_after;

// ------------------------------------------------------------ basic cases

TEST(SelectUnit, RecvCaseReceivesFromTheReadyChannelOfAnotherType) {
    channel<int> ints(1);
    channel<std::string> strings(1);
    strings.send("x");
    bool int_case_ran = false;
    std::optional<std::string> got;
    const std::size_t idx =
        select(recv_case(ints, [&](std::optional<int>) { int_case_ran = true; }),
               recv_case(strings, [&](std::optional<std::string> v) { got = std::move(v); }));
    EXPECT_EQ(idx, 1U);
    EXPECT_FALSE(int_case_ran);
    EXPECT_EQ(got, "x");
}

TEST(SelectUnit, SendCaseSendsToTheReadyChannelOfAnotherType) {
    channel<int> unbuffered_nobody_receiving;
    channel<double> doubles(1);
    bool ran = false;
    const std::size_t idx = select(send_case(unbuffered_nobody_receiving, 1),
                                   send_case(doubles, 2.5, [&] { ran = true; }));
    EXPECT_EQ(idx, 1U);
    EXPECT_TRUE(ran);
    EXPECT_EQ(doubles.recv(), 2.5);
    EXPECT_EQ(unbuffered_nobody_receiving.try_recv().status, recv_status::empty);
}

TEST(SelectUnit, RecvCaseWithoutCallbackConsumesTheValue) {
    channel<int> ch(1);
    ch.send(1);
    EXPECT_EQ(select(recv_case(ch)), 0U);
    EXPECT_EQ(ch.len(), 0U);
}

TEST(SelectUnit, DefaultRunsWhenNothingIsReady) {
    channel<int> empty(1);
    channel<int> full(1);
    full.send(1);
    channel<int> unbuffered;
    bool default_ran = false;
    bool other_ran = false;
    const std::size_t idx = select(recv_case(empty, [&](std::optional<int>) { other_ran = true; }),
                                   send_case(full, 2, [&] { other_ran = true; }),
                                   send_case(unbuffered, 3, [&] { other_ran = true; }),
                                   default_case([&] { default_ran = true; }));
    EXPECT_EQ(idx, 3U);
    EXPECT_TRUE(default_ran);
    EXPECT_FALSE(other_ran);
    EXPECT_EQ(full.len(), 1U) << "a send case that did not run delivered its value";
    EXPECT_EQ(full.recv(), 1);
}

TEST(SelectUnit, DefaultNeverRunsWhenACaseIsReady) {
    channel<int> ch(1);
    for (int i = 0; i < 1000; ++i) {
        ch.send(i);
        ASSERT_EQ(select(default_case(), recv_case(ch)), 1U) << "iteration " << i;
    }
}

TEST(SelectUnit, SelectWithOnlyADefaultRunsIt) {
    bool ran = false;
    EXPECT_EQ(select(default_case([&] { ran = true; })), 0U);
    EXPECT_TRUE(ran);
}

TEST(SelectUnit, TimeoutCaseFiresWhenNothingBecomesReady) {
    channel<int> ch;
    bool fired = false;
    const auto t0 = zchan_test::clock::now();
    const std::size_t idx = select(recv_case(ch), timeout_case(30ms, [&] { fired = true; }));
    EXPECT_GE(zchan_test::clock::now() - t0, 30ms);
    EXPECT_EQ(idx, 1U);
    EXPECT_TRUE(fired);
}

TEST(SelectUnit, TimeoutCaseAcceptsATimePoint) {
    channel<int> ch(1);
    ch.send(0);  // full: the send case is never ready
    const auto deadline = zchan_test::clock::now() + 20ms;
    bool fired = false;
    EXPECT_EQ(select(timeout_case(deadline, [&] { fired = true; }), send_case(ch, 1)), 0U);
    EXPECT_GE(zchan_test::clock::now(), deadline);
    EXPECT_TRUE(fired);
}

TEST(SelectUnit, ACaseThatBecomesReadyBeforeTheTimeoutWins) {
    channel<int> ch;
    std::size_t idx = 99;
    std::optional<int> got;
    bool timed_out = false;
    background_call selector([&] {
        idx = select(timeout_case(1h, [&] { timed_out = true; }),
                     recv_case(ch, [&](std::optional<int> v) { got = v; }));
    });
    EXPECT_TRUE(selector.still_blocked_after());
    ch.send(4);
    ASSERT_TRUE(selector.wait_done());
    EXPECT_EQ(idx, 1U);
    EXPECT_EQ(got, 4);
    EXPECT_FALSE(timed_out);
}

TEST(SelectUnit, ExactlyOneReadyRecvCaseRuns) {
    channel<int> a(1);
    channel<int> b(1);
    channel<int> c(1);
    for (int i = 0; i < 1000; ++i) {
        if (a.len() == 0) a.send(1);
        if (b.len() == 0) b.send(2);
        if (c.len() == 0) c.send(3);
        int ran = 0;
        const std::size_t idx = select(recv_case(a, [&](std::optional<int>) { ++ran; }),
                                       recv_case(b, [&](std::optional<int>) { ++ran; }),
                                       recv_case(c, [&](std::optional<int>) { ++ran; }));
        ASSERT_EQ(ran, 1);
        ASSERT_LT(idx, 3U);
        ASSERT_EQ(a.len() + b.len() + c.len(), 2U) << "more than one channel was drained";
        const channel<int>* chosen[] = {&a, &b, &c};
        ASSERT_EQ(chosen[idx]->len(), 0U) << "the returned index is not the case that ran";
    }
}

TEST(SelectUnit, ExactlyOneReadySendCaseRuns) {
    channel<int> a(1);
    channel<int> b(1);
    for (int i = 0; i < 1000; ++i) {
        int ran = 0;
        const std::size_t idx =
            select(send_case(a, 1, [&] { ++ran; }), send_case(b, 2, [&] { ++ran; }));
        ASSERT_EQ(ran, 1);
        ASSERT_EQ(a.len() + b.len(), 1U) << "more than one send case delivered";
        ASSERT_EQ(idx == 0 ? a.len() : b.len(), 1U)
            << "the returned index is not the case that ran";
        (void)a.try_recv();
        (void)b.try_recv();
    }
}

TEST(SelectUnit, ReturnsTheArgumentPositionOfTheCaseThatRan) {
    channel<int> ready(1);
    channel<int> never;
    for (std::size_t pos = 0; pos < 4; ++pos) {
        ready.send(1);
        std::size_t idx = 99;
        switch (pos) {
            case 0:
                idx = select(recv_case(ready), recv_case(never), send_case(never, 0),
                             recv_case(never));
                break;
            case 1:
                idx = select(recv_case(never), recv_case(ready), send_case(never, 0),
                             recv_case(never));
                break;
            case 2:
                idx = select(recv_case(never), send_case(never, 0), recv_case(ready),
                             recv_case(never));
                break;
            default:
                idx = select(recv_case(never), send_case(never, 0), recv_case(never),
                             recv_case(ready));
                break;
        }
        EXPECT_EQ(idx, pos);
    }
}

// -------------------------------------------------------------------- nil

TEST(SelectUnit, NilCasesNeverFire) {
    auto nil = channel<int>::nil();
    for (int i = 0; i < 1000; ++i) {
        bool nil_ran = false;
        const std::size_t idx = select(recv_case(nil, [&](std::optional<int>) { nil_ran = true; }),
                                       send_case(nil, i, [&] { nil_ran = true; }), default_case());
        ASSERT_EQ(idx, 2U);
        ASSERT_FALSE(nil_ran);
    }
}

TEST(SelectUnit, SelectOfNilCasesAndATimeoutTimesOut) {
    auto nil = channel<int>::nil();
    const auto t0 = zchan_test::clock::now();
    const std::size_t idx = select(recv_case(nil), send_case(nil, 1), timeout_case(20ms, [] {}));
    EXPECT_EQ(idx, 2U);
    EXPECT_GE(zchan_test::clock::now() - t0, 20ms);
}

TEST(SelectUnit, NilCaseDisablesOneArmWhileOthersStillWork) {
    // Go idiom: set a finished channel to nil so its case stops firing.
    channel<int> live(1);
    auto nil = channel<int>::nil();
    live.send(5);
    std::optional<int> got;
    EXPECT_EQ(select(recv_case(nil), recv_case(live, [&](std::optional<int> v) { got = v; })), 1U);
    EXPECT_EQ(got, 5);
}

// ----------------------------------------------------------------- closed

TEST(SelectUnit, RecvCaseOnAClosedChannelFiresWithNullopt) {
    channel<int> ch(1);
    ch.close();
    for (int i = 0; i < 10; ++i) {
        bool called = false;
        std::optional<int> got = 99;
        const std::size_t idx = select(recv_case(ch,
                                                 [&](std::optional<int> v) {
                                                     called = true;
                                                     got = v;
                                                 }),
                                       default_case());
        ASSERT_EQ(idx, 0U) << "a closed channel is always ready";
        ASSERT_TRUE(called);
        ASSERT_EQ(got, std::nullopt);
    }
}

TEST(SelectUnit, RecvCaseOnAClosedChannelDrainsBufferedValuesFirst) {
    channel<int> ch(2);
    ch.send(1);
    ch.close();
    std::optional<int> got;
    EXPECT_EQ(select(recv_case(ch, [&](std::optional<int> v) { got = v; })), 0U);
    EXPECT_EQ(got, 1);
    EXPECT_EQ(select(recv_case(ch, [&](std::optional<int> v) { got = v; })), 0U);
    EXPECT_EQ(got, std::nullopt);
}

TEST(SelectUnit, SendCaseOnAClosedChannelThrowsChannelClosed) {
    channel<int> ch(1);
    ch.close();
    bool ran = false;
    EXPECT_THROW((void)select(send_case(ch, 1, [&] { ran = true; }), default_case()),
                 zchan::channel_closed);
    EXPECT_FALSE(ran);
}

TEST(SelectUnit, CloseWakesABlockedSelectRecvCaseWithNullopt) {
    channel<int> ch;
    channel<int> other;
    std::size_t idx = 99;
    std::optional<int> got = 99;
    background_call selector([&] {
        idx = select(recv_case(other), recv_case(ch, [&](std::optional<int> v) { got = v; }));
    });
    EXPECT_TRUE(selector.still_blocked_after());
    ch.close();
    ASSERT_TRUE(selector.wait_done());
    EXPECT_EQ(idx, 1U);
    EXPECT_EQ(got, std::nullopt);
}

TEST(SelectUnit, CloseMakesABlockedSelectSendCaseThrow) {
    channel<int> ch;
    background_call selector(
        [&] { (void)select(send_case(ch, 1), recv_case(channel<int>::nil())); });
    EXPECT_TRUE(selector.still_blocked_after());
    ch.close();
    ASSERT_TRUE(selector.wait_done());
    EXPECT_TRUE(zchan_test::throws<zchan::channel_closed>([&] { selector.rethrow(); }));
}

TEST(SelectUnit, SendCaseValueIsDroppedWhenTheCaseDoesNotRun) {
    channel<std::shared_ptr<int>> full(1);
    full.send(nullptr);
    auto p = std::make_shared<int>(1);
    std::weak_ptr<int> watch = p;
    EXPECT_EQ(select(send_case(full, std::move(p)), default_case()), 1U);
    EXPECT_TRUE(watch.expired()) << "the unsent value outlived the select";
}

TEST(SelectUnit, CloseMakesABlockedSelectSendCaseOnAFullBufferThrow) {
    channel<int> ch(1);
    ch.send(0);
    background_call selector([&] { (void)select(send_case(ch, 1)); });
    EXPECT_TRUE(selector.still_blocked_after());
    ch.close();
    ASSERT_TRUE(selector.wait_done());
    EXPECT_TRUE(zchan_test::throws<zchan::channel_closed>([&] { selector.rethrow(); }));
    EXPECT_EQ(ch.recv(), 0);
    EXPECT_EQ(ch.recv(), std::nullopt) << "the failed select send delivered its value";
}

TEST(SelectUnit, ZeroOrPastTimeoutActsLikeDefault) {
    channel<int> ch;
    EXPECT_EQ(select(recv_case(ch), timeout_case(0ms, [] {})), 1U);
    EXPECT_EQ(select(recv_case(ch), timeout_case(zchan_test::clock::now() - 1s, [] {})), 1U);
    channel<int> ready(1);
    ready.send(1);
    EXPECT_EQ(select(timeout_case(-1s, [] {}), recv_case(ready)), 1U)
        << "a ready case beats a past deadline";
}

TEST(SelectUnit, ASelectNeverPairsWithItselfOnAnUnbufferedChannel) {
    // Go: a select offering both to send and to receive on one unbuffered
    // channel cannot complete with itself.
    channel<int> ch;
    bool recv_ran = false;
    const std::size_t idx =
        select(send_case(ch, 1), recv_case(ch, [&](std::optional<int>) { recv_ran = true; }),
               timeout_case(30ms, [] {}));
    EXPECT_EQ(idx, 2U);
    EXPECT_FALSE(recv_ran);
    EXPECT_EQ(select(send_case(ch, 1), recv_case(ch), default_case()), 2U);
}

TEST(SelectUnit, ASelectWithSendAndRecvOnOneChannelStillPairsWithOthers) {
    channel<int> ch;
    std::optional<int> got;
    background_call receiver([&] { got = ch.recv(); });
    EXPECT_EQ(select(send_case(ch, 5), recv_case(ch), timeout_case(1h, [] {})), 0U);
    ASSERT_TRUE(receiver.wait_done());
    EXPECT_EQ(got, 5);
}

TEST(SelectUnit, CallbacksMayUseTheSameChannelsAgain) {
    // Callbacks run after the select released the channels: a callback that
    // sends, receives or selects on them must not deadlock.
    channel<int> ch(1);
    ch.send(1);
    bool inner_ran = false;
    background_call outer([&] {
        (void)select(recv_case(ch, [&](std::optional<int>) {
            ch.send(2);
            (void)select(recv_case(ch, [&](std::optional<int> v) { inner_ran = v == 2; }));
        }));
    });
    ASSERT_TRUE(outer.wait_done()) << "a callback deadlocked on the select's channel";
    EXPECT_TRUE(inner_ran);
}

TEST(SelectUnit, ExactlyOneOfTwoBlockedSendersIsTaken) {
    for (int round = 0; round < 100; ++round) {
        channel<int> a;
        channel<int> b;
        background_call sa([&] { a.send(1); });
        background_call sb([&] { b.send(2); });
        std::optional<int> got;
        const std::size_t idx = select(recv_case(a, [&](std::optional<int> v) { got = v; }),
                                       recv_case(b, [&](std::optional<int> v) { got = v; }));
        ASSERT_EQ(got, idx == 0 ? 1 : 2) << "round " << round;
        // The other sender must still be waiting with its value.
        channel<int>& other = idx == 0 ? b : a;
        const auto r = other.recv_for(zchan_test::generous);
        ASSERT_EQ(r.status, recv_status::ok) << "round " << round << ": the other value was lost";
        EXPECT_EQ(r.value, idx == 0 ? 2 : 1);
        ASSERT_TRUE(sa.wait_done());
        ASSERT_TRUE(sb.wait_done());
    }
}

TEST(SelectUnit, ExactlyOneOfTwoBlockedReceiversGetsTheValue) {
    for (int round = 0; round < 100; ++round) {
        channel<int> a;
        channel<int> b;
        std::optional<int> got_a;
        std::optional<int> got_b;
        background_call ra([&] { got_a = a.recv(); });
        background_call rb([&] { got_b = b.recv(); });
        const std::size_t idx = select(send_case(a, 1), send_case(b, 2));
        ASSERT_LT(idx, 2U);
        background_call& taken = idx == 0 ? ra : rb;
        background_call& waiting = idx == 0 ? rb : ra;
        ASSERT_TRUE(taken.wait_done());
        EXPECT_FALSE(waiting.done()) << "round " << round << ": both receivers completed";
        (idx == 0 ? b : a).close();  // release the other receiver with nullopt
        ASSERT_TRUE(waiting.wait_done());
        EXPECT_EQ(idx == 0 ? got_a : got_b, idx == 0 ? 1 : 2);
        EXPECT_EQ(idx == 0 ? got_b : got_a, std::nullopt) << "round " << round;
    }
}

// --------------------------------------------------------------- fairness

TEST(SelectUnit, TwoAlwaysReadyRecvCasesAreChosenEquallyOften) {
    constexpr int n = 20'000;
    channel<int> a(n);
    channel<int> b(n);
    for (int i = 0; i < n; ++i) {
        a.send(i);
        b.send(i);
    }
    std::array<int, 2> hits{};
    for (int i = 0; i < n; ++i) hits.at(select(recv_case(a), recv_case(b)))++;
    // sd = sqrt(n/4) ~ 71, i.e. 0.35%; 3% is ~8.5 sd.
    EXPECT_NEAR(hits[0], n / 2.0, n * 0.03) << hits[0] << " vs " << hits[1];
}

TEST(SelectUnit, TwoClosedChannelsAreChosenEquallyOften) {
    constexpr int n = 20'000;
    channel<int> a;
    channel<std::string> b;
    a.close();
    b.close();
    std::array<int, 2> hits{};
    for (int i = 0; i < n; ++i) hits.at(select(recv_case(b), recv_case(a)))++;
    EXPECT_NEAR(hits[0], n / 2.0, n * 0.03) << hits[0] << " vs " << hits[1];
}

TEST(SelectUnit, TwoAlwaysReadySendCasesAreChosenEquallyOften) {
    constexpr int n = 20'000;
    channel<int> a(n);
    channel<int> b(n);
    std::array<int, 2> hits{};
    for (int i = 0; i < n; ++i) hits.at(select(send_case(a, i), send_case(b, i)))++;
    EXPECT_NEAR(hits[0], n / 2.0, n * 0.03) << hits[0] << " vs " << hits[1];
    EXPECT_EQ(a.len(), static_cast<std::size_t>(hits[0]));
}

TEST(SelectUnit, ThreeReadyCasesPassAChiSquareUniformityBound) {
    constexpr int n = 30'000;
    channel<int> a;
    channel<int> b(n);
    channel<int> c(n);
    a.close();                              // always ready: closed
    for (int i = 0; i < n; ++i) b.send(i);  // always ready: buffered values
    std::array<int, 3> hits{};              // c: send case with room
    for (int i = 0; i < n; ++i) hits.at(select(recv_case(a), recv_case(b), send_case(c, i)))++;
    double chi2 = 0;
    for (int h : hits) chi2 += (h - n / 3.0) * (h - n / 3.0) / (n / 3.0);
    // 2 degrees of freedom: P(chi2 > 30) ~ 3e-7.
    EXPECT_LT(chi2, 30.0) << hits[0] << " " << hits[1] << " " << hits[2];
}

TEST(SelectUnit, TheOnlyReadyCaseRunsWhateverItsPosition) {
    // Only one of three cases ready, in alternating spots: nothing to be fair
    // about, but the select must find it wherever it is and return its index.
    channel<int> ready(1);
    channel<int> never;
    for (int i = 0; i < 400; ++i) {
        ready.send(i);
        const std::size_t idx = (i % 2 == 0)
                                    ? select(recv_case(never), recv_case(never), recv_case(ready))
                                    : select(recv_case(ready), recv_case(never), recv_case(never));
        ASSERT_EQ(idx, (i % 2 == 0) ? 2U : 0U);
    }
}

/// Counts the 1s and 0s that `n` selects {c <- 1, c <- 0} deliver to
/// `receive`, which runs on its own thread and returns one value per call.
template <class Receive>
std::array<int, 2> pseudo_random_send(channel<int> c, int n, Receive receive) {
    std::vector<int> got;
    background_call receiver([&] {
        for (int i = 0; i < n; ++i) got.push_back(receive(c));
    });
    for (int i = 0; i < n; ++i) (void)select(send_case(c, 1), send_case(c, 0));
    EXPECT_TRUE(receiver.wait_done());
    std::array<int, 2> hits{};
    for (int v : got) hits.at(v)++;
    return hits;
}

// Go's TestPseudoRandomSend: a blocked select must not always complete its
// first case. Registering in argument order queued the cases on the same
// channel in that order, and the partner always took the first.
TEST(SelectUnit, BlockedSelectPermutesSendCasesOnTheSameChannel) {
    constexpr int n = 200;
    // try_recv only takes from a blocked sender: each select has registered
    // (at least the case that completes) before its receiver arrives.
    const auto hits = pseudo_random_send(channel<int>(), n, [](channel<int>& c) {
        for (;;) {
            if (auto r = c.try_recv()) return *r.value;
            std::this_thread::yield();
        }
    });
    // Go wants more than n/10 of each; a uniform choice gives n/2 +- 7.
    EXPECT_GT(hits[0], n / 10) << hits[0] << " zeros, " << hits[1] << " ones";
    EXPECT_GT(hits[1], n / 10) << hits[0] << " zeros, " << hits[1] << " ones";
}

TEST(SelectUnit, PseudoRandomSendAsGoTestsIt) {
    constexpr int n = 200;
    for (std::size_t cap : {std::size_t{0}, std::size_t{n}}) {
        const auto hits = pseudo_random_send(channel<int>(cap), n, [](channel<int>& c) {
            std::this_thread::yield();  // as Go's runtime.Gosched(): let the selects block
            return *c.recv();
        });
        EXPECT_GT(hits[0], n / 10) << "cap " << cap << ": " << hits[0] << " zeros";
        EXPECT_GT(hits[1], n / 10) << "cap " << cap << ": " << hits[1] << " ones";
    }
}

TEST(SelectUnit, BlockedSelectPermutesRecvCasesOnTheSameChannel) {
    // The mirror image: two receive cases on one channel, completed by a
    // sender that arrives after the select blocked; the case index must vary.
    constexpr int n = 200;
    channel<int> c;
    std::array<int, 2> hits{};
    background_call sender([&] {
        for (int i = 0; i < n; ++i) {
            while (c.try_send(i) != send_status::ok) std::this_thread::yield();
        }
    });
    for (int i = 0; i < n; ++i) hits.at(select(recv_case(c), recv_case(c)))++;
    EXPECT_TRUE(sender.wait_done());
    EXPECT_GT(hits[0], n / 10) << hits[0] << " vs " << hits[1];
    EXPECT_GT(hits[1], n / 10) << hits[0] << " vs " << hits[1];
}

// ------------------------------------------------ unbuffered partners

TEST(SelectUnit, SelectRecvPairsWithASenderBlockedOnAnUnbufferedChannel) {
    channel<int> ch;
    background_call sender([&] { ch.send(21); });
    // Polling select: succeeds once the sender is parked in send.
    std::optional<int> got;
    ASSERT_TRUE(zchan_test::wait_until(
        [&] {
            return select(recv_case(ch, [&](std::optional<int> v) { got = v; }), default_case()) ==
                   0;
        },
        deadline_after(zchan_test::generous)));
    EXPECT_EQ(got, 21);
    ASSERT_TRUE(sender.wait_done());
}

TEST(SelectUnit, SelectSendPairsWithAReceiverBlockedOnAnUnbufferedChannel) {
    channel<int> ch;
    std::optional<int> got;
    background_call receiver([&] { got = ch.recv(); });
    ASSERT_TRUE(
        zchan_test::wait_until([&] { return select(send_case(ch, 22), default_case()) == 0; },
                               deadline_after(zchan_test::generous)));
    ASSERT_TRUE(receiver.wait_done());
    EXPECT_EQ(got, 22);
}

TEST(SelectUnit, BlockedSelectRecvIsCompletedByALaterPlainSend) {
    channel<int> a;
    channel<int> b;
    std::size_t idx = 99;
    std::optional<int> got;
    background_call selector(
        [&] { idx = select(recv_case(a), recv_case(b, [&](std::optional<int> v) { got = v; })); });
    EXPECT_TRUE(selector.still_blocked_after());
    b.send(23);  // blocks until the select takes it
    ASSERT_TRUE(selector.wait_done());
    EXPECT_EQ(idx, 1U);
    EXPECT_EQ(got, 23);
    EXPECT_EQ(a.try_send(0), send_status::full) << "the select left a receiver registered on a";
}

TEST(SelectUnit, SelectSendCaseRendezvousesWithAPlainRecvInAnotherThread) {
    for (int round = 0; round < 10; ++round) {
        channel<int> ch;
        std::atomic<bool> receiving{false};
        std::atomic<bool> returned_early{false};
        std::size_t idx = 99;
        background_call selector([&] {
            idx = select(send_case(ch, round));
            if (!receiving.load()) returned_early.store(true);
        });
        EXPECT_TRUE(selector.still_blocked_after())
            << "unbuffered select send returned with no receiver";
        receiving.store(true);
        EXPECT_EQ(ch.recv(), round);
        ASSERT_TRUE(selector.wait_done());
        EXPECT_EQ(idx, 0U);
        EXPECT_FALSE(returned_early.load());
        EXPECT_EQ(ch.try_recv().status, recv_status::empty)
            << "the select left a sender registered";
    }
}

TEST(SelectUnit, TwoSelectsRendezvousWithEachOther) {
    // A offers to send on x or receive on y; B offers the mirror. Exactly one
    // pairing happens, and both sides agree which.
    for (int round = 0; round < 200; ++round) {
        channel<int> x;
        channel<int> y;
        std::size_t a_idx = 99;
        std::size_t b_idx = 99;
        std::optional<int> a_got;
        std::optional<int> b_got;
        zchan_test::start_gate gate(2);
        background_call a([&] {
            gate.arrive_and_wait();
            a_idx = select(send_case(x, 1), recv_case(y, [&](std::optional<int> v) { a_got = v; }));
        });
        background_call b([&] {
            gate.arrive_and_wait();
            b_idx = select(recv_case(x, [&](std::optional<int> v) { b_got = v; }), send_case(y, 2));
        });
        gate.open();
        ASSERT_TRUE(a.wait_done()) << "round " << round;
        ASSERT_TRUE(b.wait_done()) << "round " << round;
        if (a_idx == 0) {
            EXPECT_EQ(b_idx, 0U);
            EXPECT_EQ(b_got, 1);
        } else {
            EXPECT_EQ(a_idx, 1U);
            EXPECT_EQ(b_idx, 1U);
            EXPECT_EQ(a_got, 2);
        }
    }
}

// ---------------------------------------------------------- concurrency

TEST(SelectUnit, SelectsTakingOppositeLockOrdersNeverDeadlock) {
    // Two threads repeatedly select-send to each other over two unbuffered
    // channels, naming them in opposite orders; a select that locks channels in
    // argument order instead of a global order deadlocks here.
    const int rounds = static_cast<int>(zchan_test::scale(20'000));
    channel<int> x;
    channel<int> y;
    std::atomic<int> a_done{0};
    std::atomic<int> b_done{0};
    zchan_test::start_gate gate(2);
    background_call a([&] {
        gate.arrive_and_wait();
        for (int i = 0; i < rounds; ++i) {
            (void)select(send_case(x, i), recv_case(y));
            a_done.fetch_add(1);
        }
    });
    background_call b([&] {
        gate.arrive_and_wait();
        for (int i = 0; i < rounds; ++i) {
            (void)select(send_case(y, i), recv_case(x));
            b_done.fetch_add(1);
        }
    });
    gate.open();
    // A deadlock is no progress at all; a loaded machine is slow progress,
    // so wait as long as the rounds keep advancing.
    bool finished = false;
    for (int seen = -1; !finished;) {
        finished = a.wait_done(zchan_test::deadline_after(zchan_test::generous)) &&
                   b.wait_done(zchan_test::deadline_after(zchan_test::generous));
        const int now = a_done.load() + b_done.load();
        if (finished || now == seen) break;
        seen = now;
    }
    ASSERT_TRUE(finished) << "deadlock: a " << a_done.load() << " b " << b_done.load() << " of "
                          << rounds;
}

TEST(SelectUnit, SelectsOnSharedChannelsInOppositeOrderWithFeedersNeverDeadlock) {
    const int n = static_cast<int>(zchan_test::scale(20'000));
    channel<int> p(1);
    channel<int> q;
    std::atomic<long long> sum{0};
    zchan_test::start_gate gate(4);
    auto consumer = [&](bool p_first) {
        return [&, p_first] {
            gate.arrive_and_wait();
            for (int i = 0; i < n; ++i) {
                auto take = [&](std::optional<int> v) { sum.fetch_add(*v); };
                if (p_first)
                    (void)select(recv_case(p, take), recv_case(q, take));
                else
                    (void)select(recv_case(q, take), recv_case(p, take));
            }
        };
    };
    background_call c1(consumer(true));
    background_call c2(consumer(false));
    background_call fp([&] {
        gate.arrive_and_wait();
        for (int i = 1; i <= n; ++i) p.send(i);
    });
    background_call fq([&] {
        gate.arrive_and_wait();
        for (int i = 1; i <= n; ++i) q.send(i);
    });
    gate.open();
    ASSERT_TRUE(fp.wait_done() && fq.wait_done() && c1.wait_done() && c2.wait_done()) << "deadlock";
    const long long expected = 2LL * n * (n + 1) / 2;
    EXPECT_EQ(sum.load(), expected);
}

TEST(SelectUnit, SelectsRacingCloseEitherDeliverOrSeeTheClose) {
    for (int round = 0; round < 20; ++round) {
        channel<int> ch(2);
        constexpr int threads = 4;
        constexpr int per_thread = 500;
        std::atomic<int> sent{0};
        std::atomic<int> threw{0};
        std::vector<int> received;
        background_call receiver([&] {
            for (;;) {
                bool closed = false;
                (void)select(recv_case(ch, [&](std::optional<int> v) {
                    if (v)
                        received.push_back(*v);
                    else
                        closed = true;
                }));
                if (closed) return;
            }
        });
        zchan_test::start_gate gate(threads);
        std::vector<std::unique_ptr<background_call>> senders;
        for (int t = 0; t < threads; ++t) {
            senders.push_back(std::make_unique<background_call>([&] {
                gate.arrive_and_wait();
                for (int i = 0; i < per_thread; ++i) {
                    try {
                        (void)select(send_case(ch, 1));
                        sent.fetch_add(1);
                    } catch (const zchan::channel_closed&) {
                        threw.fetch_add(1);
                    }
                }
            }));
        }
        gate.open();
        ASSERT_TRUE(zchan_test::wait_until([&] { return sent.load() >= round * 50; },
                                           deadline_after(zchan_test::generous)));
        ch.close();
        for (auto& s : senders)
            ASSERT_TRUE(s->wait_done()) << "a select send stayed blocked after close";
        ASSERT_TRUE(receiver.wait_done()) << "the select recv never saw the close";
        EXPECT_EQ(sent.load() + threw.load(), threads * per_thread);
        EXPECT_EQ(static_cast<int>(received.size()), sent.load())
            << "a successful select send was lost, or a failed one delivered";
    }
}

}  // namespace

// Lent values of the buffered channel (servable, protocol.md §10 item 3): a
// value the transport took for a remote receiver may come back until that
// receiver acknowledges it, so a closed channel with values lent out is not
// drained for the home process's own receivers; the transport's own receives
// still see the close (it holds remote receivers back itself).
#include <algorithm>
#include <cstddef>
#include <optional>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <zchan/zchan.hpp>
#include "zchan/detail/buffered_chan.hpp"
#include "zchan_test_support.hpp"

namespace {

using zchan::recv_status;
using zchan::detail::buffered_chan;
using zchan::detail::no_deadline;
using zchan::detail::wait_entry;

/// The transport's receive of one value for a remote receiver (it is lent).
std::optional<int> lend(buffered_chan<int>& ch) {
    std::optional<int> v;
    wait_entry* claimed = nullptr;
    EXPECT_EQ(ch.try_recv_claim(v, claimed), recv_status::ok);
    EXPECT_EQ(claimed, nullptr) << "a buffered channel claims no sender";
    return v;
}

TEST(Lent, AClosedChannelIsNotDrainedWhileAValueIsLent) {
    buffered_chan<int> ch(4);
    int a = 1;
    int b = 2;
    ASSERT_EQ(ch.try_send(a), zchan::send_status::ok);
    ASSERT_EQ(ch.try_send(b), zchan::send_status::ok);
    ch.close();
    std::optional<int> one = lend(ch);
    std::optional<int> out;
    ASSERT_EQ(ch.try_recv(out), recv_status::ok);
    EXPECT_EQ(*out, 2);
    out.reset();
    EXPECT_EQ(ch.try_recv(out), recv_status::empty) << "the lent value may come back";
    EXPECT_EQ(ch.len(), 0U) << "a lent value is not in the channel";
    ch.return_lent(std::move(*one));
    ASSERT_EQ(ch.try_recv(out), recv_status::ok);
    EXPECT_EQ(*out, 1);
    out.reset();
    EXPECT_EQ(ch.try_recv(out), recv_status::closed);
}

TEST(Lent, ASettledValueEndsTheDrain) {
    buffered_chan<int> ch(4);
    int a = 1;
    ASSERT_EQ(ch.try_send(a), zchan::send_status::ok);
    const std::optional<int> one = lend(ch);  // lent before the close
    EXPECT_EQ(one, 1);
    ch.close();
    std::optional<int> out;
    EXPECT_EQ(ch.try_recv(out), recv_status::empty);
    ch.settle_lent();  // its remote receiver took it
    EXPECT_EQ(ch.try_recv(out), recv_status::closed);
}

TEST(Lent, TheTransportsOwnReceiveSeesTheClose) {
    buffered_chan<int> ch(4);
    int a = 1;
    ASSERT_EQ(ch.try_send(a), zchan::send_status::ok);
    ch.close();
    const std::optional<int> one = lend(ch);
    EXPECT_EQ(one, 1);
    std::optional<int> v;
    wait_entry* claimed = nullptr;
    EXPECT_EQ(ch.try_recv_claim(v, claimed), recv_status::closed);
    EXPECT_EQ(ch.try_recv_lent(v), recv_status::closed);
    std::optional<int> out;
    EXPECT_EQ(ch.try_recv(out), recv_status::empty) << "a failed transport receive lends nothing";
    ch.settle_lent();
    EXPECT_EQ(ch.try_recv(out), recv_status::closed);
}

TEST(Lent, AReceiverBlockedOnTheCloseGetsTheValueGivenBackThenTheEnd) {
    buffered_chan<int> ch(4);
    for (int i = 0; i < 3; ++i) {
        int v = i;
        ASSERT_EQ(ch.try_send(v), zchan::send_status::ok);
    }
    std::optional<int> first = lend(ch);
    const std::optional<int> second = lend(ch);
    EXPECT_EQ(second, 1);
    ch.close();
    std::vector<int> got;
    std::thread ranger([&] {
        for (;;) {
            std::optional<int> out;
            if (ch.recv(out, no_deadline) != recv_status::ok) return;
            got.push_back(*out);
        }
    });
    ch.return_lent(std::move(*first));
    ch.settle_lent();                   // `second` was taken remotely
    ranger.join();                      // ends only once nothing lent is left
    std::sort(got.begin(), got.end());  // 2 may come before or after 0 is given back
    EXPECT_EQ(got, (std::vector<int>{0, 2}));
}

TEST(Lent, ASelectWithDefaultTakesTheDefaultWhileAValueIsLentAndSeesTheCloseAfter) {
    zchan::channel<int> ch(2);
    ch.send(7);
    ch.close();
    auto* home = dynamic_cast<buffered_chan<int>*>(zchan::detail::channel_access<int>::get(ch));
    ASSERT_NE(home, nullptr);
    const std::optional<int> seven = lend(*home);
    EXPECT_EQ(seven, 7);
    bool closed_seen = false;
    std::size_t i = zchan::select(
        zchan::recv_case(ch, [&](std::optional<int> v) { closed_seen = !v.has_value(); }),
        zchan::default_case([] {}));
    EXPECT_EQ(i, 1U) << "nothing was ready: the lent value may come back";
    home->settle_lent();
    i = zchan::select(
        zchan::recv_case(ch, [&](std::optional<int> v) { closed_seen = !v.has_value(); }),
        zchan::default_case([] {}));
    EXPECT_EQ(i, 0U);
    EXPECT_TRUE(closed_seen);
}

// A transport that lends every value and gives back every other one, racing
// local receivers across the close: every value reaches exactly one local
// receiver or was settled remotely, and the receivers end only after the last
// value given back.
TEST(Lent, GiveBacksRacingLocalReceiversAcrossACloseLoseNothing) {
    const int n = static_cast<int>(zchan_test::scale(20'000));
    zchan::channel<int> ch(64);
    auto* home = dynamic_cast<buffered_chan<int>*>(zchan::detail::channel_access<int>::get(ch));
    ASSERT_NE(home, nullptr);
    std::vector<std::vector<int>> got(2);
    std::vector<std::thread> receivers;
    for (auto& g : got) {
        receivers.emplace_back([&ch, &g] {
            for (;;) {
                std::optional<int> v = ch.recv();
                if (!v) return;
                g.push_back(*v);
            }
        });
    }
    std::vector<int> settled;
    std::thread transport([&] {
        std::vector<int> held;
        std::vector<char> given_back(static_cast<std::size_t>(n), 0);
        for (;;) {
            std::optional<int> v;
            const recv_status s = home->try_recv_lent(v);
            if (s == recv_status::ok) {
                char& once = given_back[static_cast<std::size_t>(*v)];
                if (*v % 2 == 0 && once == 0) {
                    once = 1;
                    home->return_lent(std::move(*v));  // a local receiver (or we) take it again
                } else {
                    held.push_back(*v);
                }
            }
            if (held.size() >= 8 || (s != recv_status::ok && !held.empty())) {
                for (int x : held) {
                    settled.push_back(x);
                    home->settle_lent();
                }
                held.clear();
            }
            if (s == recv_status::closed) return;
            if (s == recv_status::empty) std::this_thread::yield();
        }
    });
    for (int i = 0; i < n; ++i) ch.send(i);
    ch.close();
    transport.join();
    for (auto& t : receivers) t.join();
    std::vector<int> count(static_cast<std::size_t>(n), 0);
    for (const auto& g : got) {
        for (int x : g) ++count[static_cast<std::size_t>(x)];
    }
    for (int x : settled) ++count[static_cast<std::size_t>(x)];
    for (int i = 0; i < n; ++i) ASSERT_EQ(count[static_cast<std::size_t>(i)], 1) << i;
}

}  // namespace

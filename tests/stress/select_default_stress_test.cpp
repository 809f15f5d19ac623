// Selects with a default case under contention: their atomic poll locks the
// unbuffered channels of the select in address order and validates the
// buffered ones (select.hpp, chan_base.hpp). Threads polling the same
// channels in different argument orders, and with two cases on one channel,
// must never deadlock and never lose or duplicate a value, alongside blocked
// selects that give the unbuffered channels partners. Meant for TSan too:
// sizes shrink under sanitizers (zchan_test::scale).
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <zchan/zchan.hpp>
#include "zchan_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using zchan::channel;
using zchan::default_case;
using zchan::recv_case;
using zchan::select;
using zchan::send_case;
using zchan_test::background_call;

constexpr int pollers = 4;
constexpr long target = static_cast<long>(zchan_test::scale(200'000));  // values received

TEST(SelectDefaultStress, PollersInEveryOrderNeverDeadlockLoseOrDuplicate) {
    std::array<channel<long>, 4> ch{channel<long>(), channel<long>(), channel<long>(1),
                                    channel<long>(4)};
    channel<long> quit;  // closed to end the blocked selects
    std::atomic<bool> stop{false};
    std::atomic<long> received_count{0};
    std::vector<std::vector<long>> sent(pollers + 1);
    std::vector<std::vector<long>> received(pollers + 1);
    std::array<long, pollers> defaults{};

    auto collect = [&](int who) {
        return [&, who](std::optional<long> v) {
            if (v) {
                received[static_cast<std::size_t>(who)].push_back(*v);
                received_count.fetch_add(1, std::memory_order_relaxed);
            }
        };
    };
    std::vector<std::unique_ptr<background_call>> threads;
    for (int p = 0; p < pollers; ++p) {
        threads.push_back(std::make_unique<background_call>([&, p] {
            // Each poller names the channels in its own rotation; poller 0
            // also sends and receives on one unbuffered channel in one select.
            auto at = [&](int k) -> channel<long>& {
                return ch[static_cast<std::size_t>((k + p) % 4)];
            };
            long next = static_cast<long>(p) * 1'000'000'000L;
            auto& mine = sent[static_cast<std::size_t>(p)];
            while (!stop.load(std::memory_order_relaxed)) {
                bool dflt = false;
                const long v = next;
                auto on_sent = [&] {
                    mine.push_back(v);
                    ++next;
                };
                if (p == 0) {
                    (void)select(send_case(at(0), v, on_sent), recv_case(at(0), collect(p)),
                                 recv_case(at(2), collect(p)), send_case(at(3), v, on_sent),
                                 default_case([&] { dflt = true; }));
                } else {
                    (void)select(send_case(at(0), v, on_sent), recv_case(at(1), collect(p)),
                                 send_case(at(2), v, on_sent), recv_case(at(3), collect(p)),
                                 default_case([&] { dflt = true; }));
                }
                if (dflt) {
                    ++defaults[static_cast<std::size_t>(p)];
                    std::this_thread::yield();
                }
            }
        }));
    }
    // A blocked receiver and a blocked sender over all four: partners for the
    // unbuffered channels, registered in the middle of the pollers' polls.
    threads.push_back(std::make_unique<background_call>([&] {
        bool done = false;
        while (!done) {
            (void)select(recv_case(ch[0], collect(pollers)), recv_case(ch[1], collect(pollers)),
                         recv_case(ch[2], collect(pollers)), recv_case(ch[3], collect(pollers)),
                         recv_case(quit, [&] { done = true; }));
        }
    }));
    threads.push_back(std::make_unique<background_call>([&] {
        auto& mine = sent[pollers];
        long next = 9'000'000'000L;
        bool done = false;
        while (!done) {
            const long v = next;
            auto on_sent = [&] {
                mine.push_back(v);
                ++next;
            };
            (void)select(send_case(ch[3], v, on_sent), send_case(ch[2], v, on_sent),
                         send_case(ch[1], v, on_sent), send_case(ch[0], v, on_sent),
                         recv_case(quit, [&] { done = true; }));
        }
    }));

    // Progress or bust: a deadlock stops received_count.
    long last = -1;
    auto last_change = zchan_test::clock::now();
    while (received_count.load() < target) {
        const long now = received_count.load();
        if (now != last) {
            last = now;
            last_change = zchan_test::clock::now();
        } else if (zchan_test::clock::now() - last_change > zchan_test::generous) {
            ADD_FAILURE() << "no value moved for " << zchan_test::generous.count() << " ms at "
                          << now << " values: deadlock or lost wake-up";
            break;
        }
        std::this_thread::yield();
    }
    stop.store(true);
    for (int p = 0; p < pollers; ++p)
        ASSERT_TRUE(threads[static_cast<std::size_t>(p)]->wait_done());
    quit.close();
    for (auto& t : threads) ASSERT_TRUE(t->wait_done());
    for (auto& t : threads) t->rethrow();

    // What the buffered channels still hold was sent and not yet received.
    std::vector<long> all_received;
    for (auto& r : received) all_received.insert(all_received.end(), r.begin(), r.end());
    for (auto& c : ch) {
        while (auto r = c.try_recv()) all_received.push_back(*r.value);
    }
    std::vector<long> all_sent;
    for (auto& s : sent) all_sent.insert(all_sent.end(), s.begin(), s.end());
    std::sort(all_sent.begin(), all_sent.end());
    std::sort(all_received.begin(), all_received.end());
    EXPECT_EQ(all_sent.size(), all_received.size());
    EXPECT_TRUE(std::adjacent_find(all_sent.begin(), all_sent.end()) == all_sent.end())
        << "a value was sent twice";
    EXPECT_TRUE(all_sent == all_received) << "a value was lost or duplicated";
    long total_defaults = 0;
    for (long d : defaults) total_defaults += d;
    RecordProperty("defaults", static_cast<int>(total_defaults));
}

}  // namespace

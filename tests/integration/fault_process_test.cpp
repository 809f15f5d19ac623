// Issue 4 §1, process faults: a consumer or a producer killed with SIGKILL
// mid-stream, a consumer stopped (SIGSTOP) past the heartbeat timeout and
// resumed, a slow consumer (producers block, memory stays bounded), shutdown
// of a handle or a server with values in flight, and the home process dying.
// Every participant but the test's own home is a separate process (this
// binary in a role, tests/support/fault_roles.hpp) over tcp on loopback.
//
// What "exactly once" means here (protocol.md §8.4, §12.4): every value whose
// send returned is received by a receiver or is still in the channel; no
// value is received twice by receivers that stay alive; nothing is invented
// or torn (every value is checked whole, fault_support.hpp make_value). The
// one allowed overlap is documented: a killed or stopped receiver's last
// values taken by its user whose batched ACK had not left yet (at most half
// its prefetch window, or one without prefetch) go back to the channel and
// reach a live receiver too.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <signal.h>

#include "fault_roles.hpp"
#include "fault_support.hpp"
#include "zchan/channel.hpp"
#include "zchan/net.hpp"
#include "zchan/select.hpp"
#include "zchan_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using zchan_test::clock;
using zchan_test::deadline_after;
using zchan_test::fault_child;
using zchan_test::generous;
using zchan_test::make_value;
using zchan_test::parse_value;
using zchan_test::value_base;

constexpr auto hb_timeout = 500ms;  // fault_options() default

std::map<std::string, std::string> vars(std::map<std::string, std::string> v) { return v; }

std::multiset<long> as_set(const std::vector<long>& v) { return {v.begin(), v.end()}; }

// ---- 1. a consumer killed mid-stream ------------------------------------------------

TEST(FaultProcess, ConsumerKilledMidStreamItsUnacknowledgedValuesGoToOtherReceivers) {
    const long per_sender = static_cast<long>(zchan_test::scale(50'000));
    constexpr long prefetch = 128;
    zchan::channel<std::string> ch(64);
    zchan::server srv("tcp://127.0.0.1:*", zchan_test::fault_options());
    srv.serve("ch", ch);
    std::vector<std::unique_ptr<fault_child>> consumers;
    for (int i = 0; i < 3; ++i) {
        // Two prefetching consumers (the victim is one) and one with exact semantics.
        consumers.push_back(std::make_unique<fault_child>(
            "consume", vars({{"ZCHAN_EP", srv.endpoint()},
                             {"ZCHAN_PREFETCH", i < 2 ? std::to_string(prefetch) : "0"}})));
    }
    for (auto& c : consumers) ASSERT_TRUE(c->wait_for("dialed")) << c->tail();
    fault_child& victim = *consumers[0];

    std::vector<std::thread> senders;
    for (long s = 1; s <= 2; ++s) {
        senders.emplace_back([&, s] {
            for (long i = 0; i < per_sender; ++i) ch.send(make_value(s * value_base + i));
        });
    }
    ASSERT_TRUE(victim.wait_count("got ", static_cast<std::size_t>(per_sender / 10)))
        << victim.tail();
    victim.kill_now();
    const std::vector<long> dead = victim.values("got ");
    // The home notices within the heartbeat timeout and requeues its deliveries.
    EXPECT_TRUE(
        zchan_test::wait_until([&] { return srv.sessions() == 2; }, deadline_after(generous)));
    for (auto& t : senders) t.join();
    ch.close();

    std::vector<std::vector<long>> live;
    for (std::size_t i = 1; i < consumers.size(); ++i) {
        EXPECT_EQ(consumers[i]->wait_exit(deadline_after(4 * generous)), 0) << consumers[i]->tail();
        EXPECT_TRUE(consumers[i]->find("end").has_value()) << "range did not end";
        live.push_back(consumers[i]->values("got "));
    }
    std::multiset<long> live_all;
    for (auto& l : live) live_all.insert(l.begin(), l.end());
    const std::multiset<long> dead_all = as_set(dead);
    // No value twice among live receivers; nothing invented.
    std::size_t live_dups = 0;
    for (auto it = live_all.begin(); it != live_all.end(); it = live_all.upper_bound(*it)) {
        if (live_all.count(*it) > 1) ++live_dups;
        const long s = *it / value_base;
        const long i = *it % value_base;
        ASSERT_TRUE((s == 1 || s == 2) && i < per_sender) << "invented value " << *it;
    }
    EXPECT_EQ(live_dups, 0u);
    // Every value reached a live receiver or the victim's user.
    std::size_t missing = 0;
    std::size_t both = 0;
    for (long s = 1; s <= 2; ++s) {
        for (long i = 0; i < per_sender; ++i) {
            const long v = s * value_base + i;
            const bool at_live = live_all.count(v) != 0;
            const bool at_dead = dead_all.count(v) != 0;
            if (!at_live && !at_dead) ++missing;
            if (at_live && at_dead) ++both;
        }
    }
    // At most the one value the victim's user had taken but not yet printed
    // when SIGKILL landed (and only if its ACK had left): unobservable, not lost.
    EXPECT_LE(missing, 1u);
    // Taken by the victim's user, ACK not yet on the wire: requeued (protocol.md §8.4).
    // ACKs leave with each refill (every P/2 values taken), but the last ACK frame may still
    // sit in the dead process's libzmq queue, unwritten: up to two refills' worth.
    EXPECT_LE(both, static_cast<std::size_t>(prefetch + 1));
    // Order per sender: only the requeued values (at most the victim's window) come late.
    for (auto& l : live) {
        EXPECT_LE(zchan_test::out_of_order(l), static_cast<std::size_t>(prefetch + 1));
    }
    std::printf(
        "[ measured ] victim took %zu, live took %zu, taken twice (victim+live) %zu, "
        "unobserved %zu\n",
        dead.size(), live_all.size(), both, missing);
}

// ---- 2. a producer killed mid-stream --------------------------------------------------

void producer_killed(std::size_t size, long kill_after) {
    zchan::channel<std::string> ch(8);
    zchan::server srv("tcp://127.0.0.1:*", zchan_test::fault_options());
    srv.serve("ch", ch);
    fault_child consumer(
        "consume", vars({{"ZCHAN_EP", srv.endpoint()}, {"ZCHAN_SIZE", std::to_string(size)}}));
    fault_child producer("produce", vars({{"ZCHAN_EP", srv.endpoint()},
                                          {"ZCHAN_N", "1000000"},
                                          {"ZCHAN_ID", "1"},
                                          {"ZCHAN_SIZE", std::to_string(size)}}));
    ASSERT_TRUE(producer.wait_count("sent ", static_cast<std::size_t>(kill_after)))
        << producer.tail();
    producer.kill_now();
    const std::vector<long> sent = producer.values("sent ");
    // The home drops the producer's session within the heartbeat timeout; the
    // consumer meanwhile keeps waiting, as it should: the channel is open.
    EXPECT_TRUE(
        zchan_test::wait_until([&] { return srv.sessions() == 1; }, deadline_after(generous)));
    const auto t0 = clock::now();
    ch.close();
    ASSERT_EQ(consumer.wait_exit(), 0) << consumer.tail();  // "bad ..." would exit 5
    EXPECT_LT(clock::now() - t0, 5s);
    EXPECT_TRUE(consumer.find("end").has_value());
    const std::vector<long> got = consumer.values("got ");
    // Exactly the prefix the producer sent, in order: every send that returned,
    // possibly the one in flight when it died (accepted, reply not yet read),
    // nothing torn, nothing twice.
    ASSERT_GE(got.size(), sent.size());
    ASSERT_LE(got.size(), sent.size() + 1);
    for (std::size_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(got[i], value_base + static_cast<long>(i)) << "at " << i;
    }
    std::printf("[ measured ] producer returned from %zu sends, consumer got %zu\n", sent.size(),
                got.size());
}

TEST(FaultProcess, ProducerKilledEverySentValueArrivesWholeAndReceiversEnd) {
    producer_killed(16, static_cast<long>(zchan_test::scale(2000)));
}

TEST(FaultProcess, ProducerKilledInTheMiddleOfLargeValuesNothingTornArrives) {
    producer_killed(std::size_t{256} * 1024, 40);  // SIGKILL very likely lands mid-frame
}

// ---- 5. a consumer stopped past the heartbeat timeout ----------------------------------

TEST(FaultProcess, ConsumerStoppedPastTheTimeoutIsTreatedAsDeadWhenItResumes) {
    const long n = static_cast<long>(zchan_test::scale(20'000));
    constexpr long prefetch = 64;
    zchan::channel<std::string> ch(16);
    zchan::server srv("tcp://127.0.0.1:*", zchan_test::fault_options());
    srv.serve("ch", ch);
    fault_child victim("consume", vars({{"ZCHAN_EP", srv.endpoint()},
                                        {"ZCHAN_PREFETCH", std::to_string(prefetch)}}));
    fault_child other("consume", vars({{"ZCHAN_EP", srv.endpoint()}, {"ZCHAN_PREFETCH", "16"}}));
    ASSERT_TRUE(victim.wait_for("dialed"));
    ASSERT_TRUE(other.wait_for("dialed"));
    std::atomic<bool> all_sent{false};
    std::thread sender([&] {
        for (long i = 0; i < n; ++i) ch.send(make_value(value_base + i));
        all_sent.store(true);
    });
    ASSERT_TRUE(victim.wait_count("got ", static_cast<std::size_t>(n / 20))) << victim.tail();
    victim.signal(SIGSTOP);
    const auto stopped = clock::now();
    // Declared lost by the home after the timeout: its deliveries are requeued.
    EXPECT_TRUE(
        zchan_test::wait_until([&] { return srv.sessions() == 1; }, deadline_after(generous)));
    EXPECT_GE(clock::now() - stopped, hb_timeout - 50ms);
    // Stay stopped while the stream goes on elsewhere: 100 more values, or
    // (if the sender is done already) everything the victim had not taken,
    // its requeued deliveries included. Its user may hold one more value than
    // it printed: one its recv returned just before the stop (checked below).
    ASSERT_TRUE(victim.wait_read_all());  // it is stopped: this snapshot is complete
    const std::size_t victim_before = victim.count("got ");
    const std::size_t other_before = other.count("got ");
    EXPECT_TRUE(zchan_test::wait_until(
        [&] {
            const std::size_t o = other.count("got ");
            return o >= other_before + 100 ||
                   (all_sent.load() && o + victim_before + 1 >= static_cast<std::size_t>(n));
        },
        deadline_after(generous)))
        << "channel len " << ch.len() << ", sessions " << srv.sessions() << "\n"
        << other.tail();
    victim.signal(SIGCONT);
    // Resumed: its session is gone, so its next recv fails; it must not hand
    // its user the values it was given before (they belong to the channel).
    EXPECT_EQ(victim.wait_exit(), 4) << victim.tail();
    EXPECT_TRUE(victim.find("lost").has_value());
    sender.join();
    ch.close();
    EXPECT_EQ(other.wait_exit(deadline_after(4 * generous)), 0) << other.tail();

    const std::vector<long> v = victim.values("got ");
    const std::vector<long> o = other.values("got ");
    // After SIGCONT at most the one value its user had already taken before the stop.
    EXPECT_LE(v.size() - victim_before, 1u) << "values handed to the user of a lost session";
    const std::multiset<long> vs = as_set(v);
    const std::multiset<long> os = as_set(o);
    std::size_t both = 0;
    for (long i = 0; i < n; ++i) {
        const long x = value_base + i;
        ASSERT_LE(os.count(x), 1u) << x << " twice at the live receiver";
        ASSERT_TRUE(os.count(x) + vs.count(x) >= 1) << x << " lost";
        if (os.count(x) != 0 && vs.count(x) != 0) ++both;
    }
    EXPECT_EQ(vs.size() + os.size() - both, static_cast<std::size_t>(n));  // nothing invented
    // As for a killed consumer: SIGSTOP can freeze an ACK frame in libzmq's queue too.
    EXPECT_LE(both, static_cast<std::size_t>(prefetch + 1));
    std::printf("[ measured ] stopped consumer took %zu (%zu after SIGCONT), other %zu, both %zu\n",
                v.size(), v.size() - victim_before, o.size(), both);
}

// ---- 1b. values given back after a close -----------------------------------------

// Issue 10 item 1 (protocol.md §10 item 3): the channel is full and closed;
// consumer A takes its prefetch window and stalls; consumer B drains the
// rest. B must not be told "closed and drained" while A's window may still
// come back: when A is killed, its unacknowledged values reach B, which is
// still ranging, and every value is received by A's user or by B.
TEST(FaultProcess, ValuesGivenBackAfterACloseReachAReceiverStillRanging) {
    constexpr long n = 1000;
    zchan::channel<std::string> ch(n);
    zchan::server srv("tcp://127.0.0.1:*", zchan_test::fault_options());
    srv.serve("ch", ch);
    for (long i = 0; i < n; ++i) ch.send(make_value(value_base + i));
    ch.close();
    fault_child a("consume", vars({{"ZCHAN_EP", srv.endpoint()},
                                   {"ZCHAN_PREFETCH", "256"},
                                   {"ZCHAN_STALL_AFTER", "10"}}));
    ASSERT_TRUE(a.wait_for("stalled")) << a.tail();
    fault_child b("consume", vars({{"ZCHAN_EP", srv.endpoint()}, {"ZCHAN_PREFETCH", "256"}}));
    // Every value has left the home's buffer: it is at A (taken or in its
    // window) or at B.
    ASSERT_TRUE(zchan_test::wait_until([&] { return ch.len() == 0; }, deadline_after(generous)));
    ASSERT_TRUE(b.wait_count("got ", static_cast<std::size_t>(n - 256)));
    EXPECT_FALSE(b.has_line("end")) << "B was told closed while A's window could come back";
    a.kill_now();
    EXPECT_EQ(b.wait_exit(deadline_after(2 * generous)), 0) << b.tail();
    const std::multiset<long> got_a = as_set(a.values("got "));
    const std::multiset<long> got_b = as_set(b.values("got "));
    for (long i = 0; i < n; ++i) {
        const long x = value_base + i;
        ASSERT_LE(got_b.count(x), 1u) << x << " twice at B";
        ASSERT_EQ(got_a.count(x) + got_b.count(x), 1u) << x << " lost or received twice";
    }
    EXPECT_EQ(ch.len(), 0u);
    EXPECT_TRUE(ch.is_closed());
}

// The same with the receiver in the home process itself: while A's window is
// lent out, the home's own receivers must not see the closed channel drained
// either (protocol.md §10 item 3, servable's lent values). Before, the home's
// try_recv said "closed" here and A's window, given back at its death, was
// stranded in a closed channel nobody ranged over any more.
TEST(FaultProcess, ValuesGivenBackAfterACloseReachAReceiverInTheHomeProcess) {
    constexpr long n = 1000;
    zchan::channel<std::string> ch(n);
    zchan::server srv("tcp://127.0.0.1:*", zchan_test::fault_options());
    srv.serve("ch", ch);
    for (long i = 0; i < n; ++i) ch.send(make_value(value_base + i));
    ch.close();
    fault_child a("consume", vars({{"ZCHAN_EP", srv.endpoint()},
                                   {"ZCHAN_PREFETCH", "256"},
                                   {"ZCHAN_STALL_AFTER", "10"}}));
    // A has taken 10 values and its ACKs have reached the home; its window
    // (up to 256 values) is out at A, unacknowledged.
    ASSERT_TRUE(a.wait_for("stalled")) << a.tail();
    std::vector<long> got_home;
    const auto take = [&](std::optional<std::string>& v) {
        ASSERT_TRUE(v.has_value());
        const std::optional<long> x = zchan_test::parse_value(*v);
        ASSERT_TRUE(x.has_value()) << "torn value";
        got_home.push_back(*x);
    };
    zchan::recv_result<std::string> r;
    for (r = ch.try_recv(); r.status == zchan::recv_status::ok; r = ch.try_recv()) take(r.value);
    EXPECT_EQ(r.status, zchan::recv_status::empty)
        << "the home's receiver was told closed while A's window could come back";
    EXPECT_LT(got_home.size(), static_cast<std::size_t>(n - 10));
    std::atomic<bool> ranged_to_the_end{false};
    std::thread ranger([&] {
        for (;;) {
            std::optional<std::string> v = ch.recv();
            if (!v) break;
            take(v);
        }
        ranged_to_the_end = true;
    });
    a.kill_now();
    ranger.join();  // ends once A's window came back and was received
    EXPECT_TRUE(ranged_to_the_end.load());
    const std::multiset<long> got_a = as_set(a.values("got "));
    const std::multiset<long> home = as_set(got_home);
    for (long i = 0; i < n; ++i) {
        const long x = value_base + i;
        ASSERT_EQ(got_a.count(x) + home.count(x), 1u) << x << " lost or received twice";
    }
    EXPECT_EQ(ch.try_recv().status, zchan::recv_status::closed);
}

// ---- 1c. waiting receivers served in turn --------------------------------------------

// Issue 10 item 5: two equal consumers (separate processes, the default
// prefetch of `zchan recv`) of one live stream each get a fair share. The
// values come from a dialed producer, as `seq | zchan send` into a hub does
// in the issue: each send is a round trip, so the consumers are waiting at
// the home nearly all the time and the split measures how the home serves
// waiting receivers. (With a local producer the consumers are the
// bottleneck and the split measures how the OS shares the CPU between two
// processes: a consumer that does not run has a full window and, rightly,
// gets nothing meanwhile. On a loaded 2-vCPU machine that went to 34%.)
TEST(FaultProcess, TwoEqualConsumersOfOneStreamShareIt) {
    const long n = static_cast<long>(zchan_test::scale(20'000));
    zchan::channel<std::string> ch(64);
    zchan::server srv("tcp://127.0.0.1:*", zchan_test::fault_options());
    srv.serve("ch", ch);
    const auto consumer = [&] {
        return vars(
            {{"ZCHAN_EP", srv.endpoint()}, {"ZCHAN_PREFETCH", "256"}, {"ZCHAN_SUMMARY", "1"}});
    };
    fault_child a("consume", consumer());
    fault_child b("consume", consumer());
    ASSERT_TRUE(a.wait_for("dialed"));
    ASSERT_TRUE(b.wait_for("dialed"));
    {
        auto producer = zchan::dial<std::string>(srv.endpoint(), "ch", zchan_test::fault_options());
        for (long i = 0; i < n; ++i) producer.send(make_value(value_base + i));
        producer.close();
    }
    EXPECT_EQ(a.wait_exit(deadline_after(4 * generous)), 0) << a.tail();
    EXPECT_EQ(b.wait_exit(deadline_after(4 * generous)), 0) << b.tail();
    long count_a = 0, sum_a = 0, count_b = 0, sum_b = 0;
    ASSERT_EQ(std::sscanf(a.find("count ").value_or("").c_str(), "%ld sum %ld", &count_a, &sum_a),
              2)
        << a.tail();
    ASSERT_EQ(std::sscanf(b.find("count ").value_or("").c_str(), "%ld sum %ld", &count_b, &sum_b),
              2)
        << b.tail();
    // Every value once: the counts and the sums of the values add up.
    EXPECT_EQ(count_a + count_b, n);
    EXPECT_EQ(sum_a + sum_b, n * value_base + n * (n - 1) / 2);
    std::printf("[ measured ] shares %ld / %ld\n", count_a, count_b);
    EXPECT_GE(static_cast<double>(count_a) / static_cast<double>(n), 0.35);
    EXPECT_GE(static_cast<double>(count_b) / static_cast<double>(n), 0.35);
}

// ---- 1d. large values -----------------------------------------------------------------

// Issue 10 item 2: a consumer with a prefetch window draining large values
// from a home is busy receiving, not silent. Neither side may give up on the
// other while frames of several MB stream: the home answers in bounded
// turns (its heartbeats and its reading of the peer's frames go on between
// them) and the peer's drain of a long burst still sends its PINGs. Short
// heartbeats (100 ms / 500 ms) make a stall of either side visible.
TEST(FaultProcess, AConsumerOfLargeValuesIsNotDeclaredLost) {
    const long n = zchan_test::sanitized ? 16 : 48;
    constexpr std::size_t size = 8u << 20;
    zchan::channel<std::string> ch(static_cast<std::size_t>(n));
    // A timeout of 15 heartbeats, not 5: the process starved by a loaded
    // machine for half a second is not what this test is about (a 500 ms
    // timeout failed so on a 2-vCPU machine running three builds), and the
    // transfer still takes several timeouts' worth of heartbeats.
    // Under ThreadSanitizer every copy of an 8 MiB frame is instrumented and
    // the mutex it is made under is held ten times longer: 4 s there (a
    // tsan run lost the session once at 1.5 s, with 16 values in 6.8 s).
    const long timeout_ms = zchan_test::sanitized ? 4000 : 1500;
    zchan::net_options opts = zchan_test::fault_options();
    opts.heartbeat_timeout = std::chrono::milliseconds(timeout_ms);
    zchan::server srv("tcp://127.0.0.1:*", opts);
    srv.serve("ch", ch);
    for (long i = 0; i < n; ++i) ch.send(make_value(value_base + i, size));
    ch.close();
    fault_child c("consume", vars({{"ZCHAN_EP", srv.endpoint()},
                                   {"ZCHAN_PREFETCH", "256"},
                                   {"ZCHAN_TIMEOUT", std::to_string(timeout_ms)},
                                   {"ZCHAN_SIZE", std::to_string(size)}}));
    const auto started = std::chrono::steady_clock::now();
    EXPECT_EQ(c.wait_exit(deadline_after(4 * generous)), 0) << c.tail();
    std::printf("[ measured ] %ld x %zu MiB in %lld ms\n", n, size >> 20,
                static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::steady_clock::now() - started)
                                           .count()));
    const std::vector<long> got = c.values("got ");
    ASSERT_EQ(got.size(), static_cast<std::size_t>(n)) << c.tail();
    for (long i = 0; i < n; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], value_base + i);
    EXPECT_EQ(ch.len(), 0u);
}

// ---- 3b. a stop shorter than the timeout ------------------------------------------

/// True once `pid` is stopped (state T in /proc/<pid>/stat).
bool process_stopped(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const auto paren = stat.rfind(')');
    return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'T';
}

// Issue 10 item 3 (protocol.md §12.1): with the default heartbeat (1 s) and
// timeout (3 s), a consumer stopped for 2.2 s right after it sent a frame is
// silent for well under the timeout on both sides, so it carries on and gets
// every value. (The peer used to expire itself after timeout minus heartbeat
// of its own silence: 2 s.)
TEST(FaultProcess, ConsumerStoppedForLessThanTheTimeoutCarriesOn) {
    constexpr long n = 40;
    constexpr long before_stop = 10;
    zchan::channel<std::string> ch(16);
    zchan::server srv("tcp://127.0.0.1:*");  // default heartbeat options
    srv.serve("ch", ch);
    fault_child c("consume", vars({{"ZCHAN_EP", srv.endpoint()},
                                   {"ZCHAN_HB", "1000"},
                                   {"ZCHAN_TIMEOUT", "3000"},
                                   {"ZCHAN_SELF_STOP_AFTER", std::to_string(before_stop)}}));
    ASSERT_TRUE(c.wait_for("dialed"));
    for (long i = 0; i < before_stop; ++i) ch.send(make_value(value_base + i));
    ASSERT_TRUE(c.wait_for("stopping")) << c.tail();
    ASSERT_TRUE(
        zchan_test::wait_until([&] { return process_stopped(c.pid()); }, deadline_after(generous)));
    std::this_thread::sleep_for(2200ms);  // the fault itself: how long the process is stopped
    ASSERT_TRUE(c.signal(SIGCONT));
    for (long i = before_stop; i < n; ++i) {
        // Bounded: a consumer that wrongly gave up leaves nobody to receive.
        ASSERT_EQ(ch.send_until(make_value(value_base + i), deadline_after(generous)),
                  zchan::send_status::ok)
            << c.tail();
    }
    ch.close();
    EXPECT_EQ(c.wait_exit(deadline_after(generous)), 0) << c.tail();
    const std::vector<long> got = c.values("got ");
    ASSERT_EQ(got.size(), static_cast<std::size_t>(n)) << c.tail();
    for (long i = 0; i < n; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], value_base + i);
}

// ---- 6. a slow consumer --------------------------------------------------------------

TEST(FaultProcess, SlowConsumerBlocksProducersAndMemoryStaysBounded) {
    constexpr std::size_t size = std::size_t{256} * 1024;
    constexpr std::size_t cap = 8;
    const long per_producer = zchan_test::sanitized ? 40 : 150;
    fault_child home(
        "home", vars({{"ZCHAN_CAP", std::to_string(cap)}, {"ZCHAN_SIZE", std::to_string(size)}}));
    const auto ep = home.wait_for("endpoint ");
    ASSERT_TRUE(ep.has_value()) << home.tail();
    home.tell("rss");
    const auto rss0 = home.wait_for("rss ");
    ASSERT_TRUE(rss0.has_value());
    std::vector<std::unique_ptr<fault_child>> producers;
    for (int p = 1; p <= 2; ++p) {
        producers.push_back(std::make_unique<fault_child>(
            "produce", vars({{"ZCHAN_EP", *ep},
                             {"ZCHAN_N", std::to_string(per_producer)},
                             {"ZCHAN_ID", std::to_string(p)},
                             {"ZCHAN_SIZE", std::to_string(size)}})));
    }
    auto consumer = zchan::dial<std::string>(*ep, "ch", zchan_test::fault_options());
    auto sent = [&] { return producers[0]->count("sent ") + producers[1]->count("sent "); };
    // Nobody receives yet: the producers fill the capacity and block there.
    ASSERT_TRUE(zchan_test::wait_until([&] { return sent() >= cap; }, deadline_after(generous)));
    EXPECT_TRUE(zchan_test::stays_false_for([&] { return sent() > cap; }, 200ms));
    EXPECT_EQ(consumer.len(), cap);
    // Now a slow consumer (paced on purpose: this is the workload, not a
    // synchronisation): the producers advance only as fast as it takes.
    std::map<long, long> next;  // per producer: the next index expected
    std::size_t max_len = 0;
    for (long k = 0; k < 2 * per_producer; ++k) {
        auto v = consumer.recv();
        ASSERT_TRUE(v.has_value());
        const auto n = parse_value(*v, size);
        ASSERT_TRUE(n.has_value()) << "torn value";
        EXPECT_EQ(*n % value_base, next[*n / value_base]++) << "order per sender";
        if (k % 16 == 0) max_len = std::max(max_len, consumer.len());
        EXPECT_LE(sent(),
                  static_cast<std::size_t>(k) + 1 + cap + 2);  // never ahead of the consumer
        std::this_thread::sleep_for(1ms);
    }
    EXPECT_LE(max_len, cap);
    std::vector<long> producer_rss;
    for (auto& p : producers) {
        EXPECT_EQ(p->wait_exit(), 0) << p->tail();
        const auto r = p->find("done rss ");
        ASSERT_TRUE(r.has_value());
        producer_rss.push_back(std::stol(*r));
    }
    home.tell("rss");
    ASSERT_TRUE(home.wait_count("rss ", 2));
    const long rss_start = std::stol(*rss0);
    const long rss_peak = home.values("rss ").back();
    const long traffic_kib = static_cast<long>(2 * per_producer * size / 1024);
    std::printf(
        "[ measured ] home peak RSS %ld KiB (at start %ld KiB) after %ld KiB of values "
        "through a channel of %zu x %zu KiB; producers' peak RSS %ld / %ld KiB\n",
        rss_peak, rss_start, traffic_kib, cap, size / 1024, producer_rss[0], producer_rss[1]);
    if (!zchan_test::sanitized) {  // ASan's quarantine keeps freed memory resident
        // Bounded by the channel, not by the traffic: capacity + the two blocked
        // offers + codec buffers, far below what went through.
        const long bound_kib = static_cast<long>((cap + 2) * size / 1024) * 4 + 16L * 1024;
        EXPECT_LT(rss_peak - rss_start, bound_kib);
        EXPECT_LT(rss_peak - rss_start, traffic_kib / 2);
        for (long r : producer_rss) EXPECT_LT(r, rss_start + bound_kib);
    }
}

// ---- 7. shutdown with values in flight -------------------------------------------------

TEST(FaultProcess, DestroyingAPrefetchingHandleGivesItsValuesBackAndExitsPromptly) {
    constexpr long n = 100;
    zchan::channel<std::string> ch(static_cast<std::size_t>(n));
    zchan::server srv("tcp://127.0.0.1:*", zchan_test::fault_options());
    srv.serve("ch", ch);
    for (long i = 0; i < n; ++i) ch.send(make_value(value_base + i));
    const auto t0 = clock::now();
    fault_child consumer("consume", vars({{"ZCHAN_EP", srv.endpoint()},
                                          {"ZCHAN_PREFETCH", "32"},
                                          {"ZCHAN_RELEASE_AFTER", "10"}}));
    EXPECT_EQ(consumer.wait_exit(), 0) << consumer.tail();
    EXPECT_LT(clock::now() - t0, 5s) << "exit took too long";
    EXPECT_TRUE(consumer.find("released").has_value());
    EXPECT_EQ(consumer.values("got ").size(), 10u);
    // Its 22 prefetched values went back to the head, in order: nothing lost.
    EXPECT_TRUE(zchan_test::wait_until([&] { return ch.len() == static_cast<std::size_t>(n - 10); },
                                       deadline_after(generous)))
        << ch.len();
    for (long i = 10; i < n; ++i) EXPECT_EQ(parse_value(*ch.recv()), value_base + i);
}

TEST(FaultProcess, DestroyingTheServerLeavesUndeliveredValuesInTheChannelAndPeersLost) {
    constexpr long n = 16;
    zchan::channel<std::string> ch(static_cast<std::size_t>(n));
    std::optional<zchan::server> srv(std::in_place, "tcp://127.0.0.1:*",
                                     zchan_test::fault_options());
    srv->serve("ch", ch);
    for (long i = 0; i < n; ++i) ch.send(make_value(value_base + i));
    fault_child consumer(
        "consume",
        vars({{"ZCHAN_EP", srv->endpoint()}, {"ZCHAN_PREFETCH", "8"}, {"ZCHAN_STALL_AFTER", "3"}}));
    ASSERT_TRUE(consumer.wait_for("stalled ")) << consumer.tail();
    // 3 taken and acknowledged; 5 more prefetched (deliveries in flight); 8 buffered.
    const auto t0 = clock::now();
    srv.reset();
    EXPECT_LT(clock::now() - t0, 2s) << "server destructor took too long";
    // Nothing undelivered is lost: the deliveries in flight are back, in order,
    // and ch.len() says how many values no receiver got.
    EXPECT_EQ(ch.len(), static_cast<std::size_t>(n - 3));
    consumer.tell("go");
    EXPECT_EQ(consumer.wait_exit(), 4) << consumer.tail();  // peer lost (shutting_down)
    EXPECT_EQ(consumer.values("got "),
              (std::vector<long>{value_base, value_base + 1, value_base + 2}));
    for (long i = 3; i < n; ++i) EXPECT_EQ(parse_value(*ch.recv()), value_base + i);
}

TEST(FaultProcess, AHandleOfAStoppedHomeDoesNotHangItsProcessAtExit) {
    fault_child home("home", vars({{"ZCHAN_CAP", "4"}, {"ZCHAN_FILL", "4"}}));
    const auto ep = home.wait_for("endpoint ");
    ASSERT_TRUE(ep.has_value());
    fault_child consumer(
        "consume",
        vars({{"ZCHAN_EP", *ep}, {"ZCHAN_PREFETCH", "4"}, {"ZCHAN_RELEASE_AFTER", "1"}}));
    ASSERT_TRUE(consumer.wait_for("got ")) << consumer.tail();
    // Too late to stop the home before the release? Then the exit is simply quick.
    home.signal(SIGSTOP);
    const auto t0 = clock::now();
    EXPECT_EQ(consumer.wait_exit(), 0) << consumer.tail();
    // BYE cannot be answered: bounded by the socket linger and the exit flush (1 + 1.5 s).
    EXPECT_LT(clock::now() - t0, 4s);
    home.signal(SIGCONT);
}

// ---- 8. the home process dies -----------------------------------------------------------

TEST(FaultProcess, HomeKilledEveryRemoteHandleReportsPeerLostWithinTheTimeout) {
    fault_child home("home", vars({{"ZCHAN_CAP", "2"}, {"ZCHAN_FILL", "2"}}));
    const auto ep = home.wait_for("endpoint ");
    ASSERT_TRUE(ep.has_value()) << home.tail();
    const auto o = zchan_test::fault_options();
    auto full = zchan::dial<std::string>(*ep, "ch", o);    // 2 values buffered at the home
    auto empty = zchan::dial<std::string>(*ep, "aux", o);  // nothing buffered
    auto ranged = zchan::dial<std::string>(*ep, "aux", o);
    auto selected = zchan::dial<std::string>(*ep, "aux", o);
    auto idle = zchan::dial<std::string>(*ep, "aux", o);
    auto po = o;
    po.prefetch = 16;
    auto prefetching = zchan::dial<std::string>(*ep, "aux", po);
    ASSERT_EQ(full.len(), 2u);

    std::atomic<int> lost{0};
    auto expect_lost = [&](auto&& fn) {
        return [&, fn] {
            try {
                fn();
                ADD_FAILURE() << "returned without peer_lost";
            } catch (const zchan::peer_lost&) {
                lost.fetch_add(1);
            }
        };
    };
    zchan_test::background_call send_blocked(expect_lost([&] { full.send(make_value(1)); }));
    zchan_test::background_call recv_blocked(expect_lost([&] { (void)empty.recv(); }));
    zchan_test::background_call range_blocked(expect_lost([&] {
        for (auto& v : ranged) (void)v;
    }));
    zchan_test::background_call select_blocked(expect_lost([&] {
        zchan::select(zchan::recv_case(selected, [](std::optional<std::string>) {}),
                      zchan::send_case(full, make_value(2), [] {}));
    }));
    zchan_test::background_call prefetch_blocked(expect_lost([&] { (void)prefetching.recv(); }));
    EXPECT_TRUE(send_blocked.still_blocked_after());
    EXPECT_TRUE(recv_blocked.still_blocked_after(0ms));
    EXPECT_TRUE(range_blocked.still_blocked_after(0ms));
    EXPECT_TRUE(select_blocked.still_blocked_after(0ms));
    EXPECT_TRUE(prefetch_blocked.still_blocked_after(0ms));
    const auto t0 = clock::now();
    home.kill_now();
    for (auto* b :
         {&send_blocked, &recv_blocked, &range_blocked, &select_blocked, &prefetch_blocked}) {
        EXPECT_TRUE(b->wait_done());
    }
    const auto took = clock::now() - t0;
    EXPECT_EQ(lost.load(), 5);
    // The timeout plus a heartbeat tick, with slack for a busy machine.
    EXPECT_LT(took, hb_timeout + (zchan_test::sanitized ? 3s : 1500ms));
    std::printf(
        "[ measured ] all blocked operations reported peer lost %lld ms after the kill "
        "(timeout %lld ms)\n",
        static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()),
        static_cast<long long>(hb_timeout.count()));
    // The idle handle learns it too (within the same timeout, from its own heartbeats),
    // and every later operation reports it at once.
    EXPECT_TRUE(zchan_test::wait_until(
        [&] { return idle.try_recv().status == zchan::recv_status::peer_lost; },
        deadline_after(generous)));
    EXPECT_EQ(full.try_send(make_value(3)), zchan::send_status::peer_lost);
    EXPECT_EQ(empty.recv_for(10ms).status, zchan::recv_status::peer_lost);
    // The 2 values that were in the home's buffer died with it (README, "Faults").
}

}  // namespace

int main(int argc, char** argv) {
    if (const int rc = zchan_test::run_fault_role(); rc >= 0) return rc;
    ::signal(SIGPIPE, SIG_IGN);
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}

// Issue 3 §2 semantics with separate OS processes: the test binary re-executes
// itself (/proc/self/exe, so every child starts with a fresh ZeroMQ context)
// in a child role chosen by ZCHAN_CHILD_ROLE, and talks to it over tcp:// and
// ipc://. Children report progress as lines on stdout ("sent 3", "got 7",
// "end"), which the test reads with bounded waits: no sleeps.
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include "child_process.hpp"
#include "net_test_support.hpp"
#include "zchan/channel.hpp"
#include "zchan/net.hpp"
#include "zchan/select.hpp"
#include "zchan_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using zchan_test::clock;
using zchan_test::deadline_after;
using zchan_test::env_or;
using zchan_test::generous;
using zchan_test::say;

zchan::net_options fast() { return zchan_test::heartbeat_options(100ms, 500ms, 5000ms); }

// ---- child roles ------------------------------------------------------------------

int child_main(const std::string& role) {
    const std::string ep = env_or("ZCHAN_CHILD_ENDPOINT");
    const std::string name = env_or("ZCHAN_CHILD_NAME", "ch");
    const long n = std::stol(env_or("ZCHAN_CHILD_N", "0"));
    const long id = std::stol(env_or("ZCHAN_CHILD_ID", "0"));
    return zchan_test::run_role([&] {
        if (role == "send") {
            auto ch = zchan::dial<long>(ep, name, fast());
            for (long i = 0; i < n; ++i) {
                ch.send(id * 1'000'000 + i);
                say("sent " + std::to_string(i));
            }
            say("done");
            return 0;
        }
        if (role == "recv") {
            auto ch = zchan::dial<long>(ep, name, fast());
            for (long v : ch) say("got " + std::to_string(v));
            say("end");
            return 0;
        }
        if (role == "close") {
            auto ch = zchan::dial<long>(ep, name, fast());
            ch.close();
            say("closed");
            return 0;
        }
        if (role == "serve") {
            // The home of a channel of capacity n fed with `id` values then
            // closed; lives until its stdin reaches EOF (or it is killed).
            zchan::channel<long> ch(static_cast<std::size_t>(n));
            zchan::server srv(ep, fast());
            srv.serve(name, ch);
            say("endpoint " + srv.endpoint());
            for (long i = 0; i < id; ++i) ch.send(i);
            if (id > 0) ch.close();
            char buf[64];
            while (::read(0, buf, sizeof buf) > 0) {
            }
            return 0;
        }
        return 1;
    });
}

// ---- the parent's view of a child: this binary with ZCHAN_CHILD_ROLE set ---------------

using child = zchan_test::self_child;

std::atomic<int> counter{0};

std::string bind_endpoint(const std::string& transport) {
    if (transport == "ipc") {
        return "ipc:///tmp/zchan-proc-test-" + std::to_string(::getpid()) + "-" +
               std::to_string(counter.fetch_add(1));
    }
    return "tcp://127.0.0.1:*";
}

class NetProcess : public ::testing::TestWithParam<std::string> {};

TEST_P(NetProcess, CapacityIsExactForASenderInAnotherProcess) {
    zchan::channel<long> ch(3);
    zchan::server srv(bind_endpoint(GetParam()), fast());
    srv.serve("ch", ch);
    child producer({{"ZCHAN_CHILD_ROLE", "send"},
                    {"ZCHAN_CHILD_ENDPOINT", srv.endpoint()},
                    {"ZCHAN_CHILD_N", "5"}});
    ASSERT_TRUE(producer.wait_line("sent 2"));
    // The 4th send blocks: nothing is hidden in ZeroMQ queues.
    EXPECT_TRUE(zchan_test::stays_false_for([&] { return producer.has_line("sent 3"); }));
    EXPECT_EQ(ch.len(), 3u);
    EXPECT_EQ(*ch.recv(), 0);
    EXPECT_TRUE(producer.wait_line("sent 3"));
    EXPECT_TRUE(zchan_test::stays_false_for([&] { return producer.has_line("sent 4"); }));
    for (long i = 1; i < 5; ++i) EXPECT_EQ(*ch.recv(), i);
    EXPECT_TRUE(producer.wait_line("done"));
    EXPECT_EQ(producer.wait_exit(deadline_after(generous)), 0);
}

TEST_P(NetProcess, UnbufferedSendInAnotherProcessWaitsForTheReceiver) {
    zchan::channel<long> ch;
    zchan::server srv(bind_endpoint(GetParam()), fast());
    srv.serve("ch", ch);
    child producer({{"ZCHAN_CHILD_ROLE", "send"},
                    {"ZCHAN_CHILD_ENDPOINT", srv.endpoint()},
                    {"ZCHAN_CHILD_N", "2"}});
    EXPECT_TRUE(zchan_test::stays_false_for([&] { return producer.has_line("sent 0"); }, 200ms));
    EXPECT_EQ(*ch.recv(), 0);
    EXPECT_TRUE(producer.wait_line("sent 0"));
    EXPECT_TRUE(zchan_test::stays_false_for([&] { return producer.has_line("sent 1"); }));
    EXPECT_EQ(*ch.recv(), 1);
    EXPECT_EQ(producer.wait_exit(deadline_after(generous)), 0);
}

TEST_P(NetProcess, EachValueReachesExactlyOneReceiverInOrderPerSender) {
    const long n = static_cast<long>(zchan_test::scale(1500));
    zchan::channel<long> ch(16);
    zchan::server srv(bind_endpoint(GetParam()), fast());
    srv.serve("ch", ch);
    std::vector<std::unique_ptr<child>> producers;
    std::vector<std::unique_ptr<child>> consumers;
    for (int i = 1; i <= 2; ++i) {
        producers.push_back(std::make_unique<child>(
            std::map<std::string, std::string>{{"ZCHAN_CHILD_ROLE", "send"},
                                               {"ZCHAN_CHILD_ENDPOINT", srv.endpoint()},
                                               {"ZCHAN_CHILD_N", std::to_string(n)},
                                               {"ZCHAN_CHILD_ID", std::to_string(i)}}));
        consumers.push_back(std::make_unique<child>(std::map<std::string, std::string>{
            {"ZCHAN_CHILD_ROLE", "recv"}, {"ZCHAN_CHILD_ENDPOINT", srv.endpoint()}}));
    }
    // A local receiver and a local sender join in.
    std::vector<long> local_got;
    std::thread local_rx([&] {
        for (long v : ch) local_got.push_back(v);
    });
    for (long i = 0; i < n; ++i) ch.send(3'000'000 + i);
    for (auto& p : producers) EXPECT_EQ(p->wait_exit(deadline_after(4 * generous)), 0);
    ch.close();
    local_rx.join();

    std::vector<std::vector<long>> per_receiver{local_got};
    for (auto& c : consumers) {
        EXPECT_EQ(c->wait_exit(deadline_after(generous)), 0);
        std::vector<long> got;
        for (auto& l : c->lines()) {
            if (l.rfind("got ", 0) == 0) got.push_back(std::stol(l.substr(4)));
        }
        EXPECT_EQ(c->lines().back(), "end");
        per_receiver.push_back(std::move(got));
    }
    std::multiset<long> all;
    for (auto& r : per_receiver) {
        all.insert(r.begin(), r.end());
        // Order per sender as seen by each receiver.
        std::map<long, long> last;
        for (long v : r) {
            const long sender = v / 1'000'000;
            auto it = last.find(sender);
            if (it != last.end()) {
                EXPECT_LT(it->second, v);
            }
            last[sender] = v;
        }
    }
    ASSERT_EQ(all.size(), static_cast<std::size_t>(3 * n));
    for (long s = 1; s <= 3; ++s) {
        for (long i = 0; i < n; ++i) {
            ASSERT_EQ(all.count(s * 1'000'000 + i), 1u) << "value " << s * 1'000'000 + i;
        }
    }
}

TEST_P(NetProcess, CloseFromAnotherProcessDrainsThenEndsEverywhere) {
    zchan::channel<long> ch(8);
    zchan::server srv(bind_endpoint(GetParam()), fast());
    srv.serve("ch", ch);
    for (long i = 1; i <= 3; ++i) ch.send(i);
    {
        child closer({{"ZCHAN_CHILD_ROLE", "close"}, {"ZCHAN_CHILD_ENDPOINT", srv.endpoint()}});
        EXPECT_TRUE(closer.wait_line("closed"));
        EXPECT_EQ(closer.wait_exit(deadline_after(generous)), 0);
    }
    EXPECT_TRUE(zchan_test::throws<zchan::channel_closed>([&] { ch.send(4); }));
    child late_sender({{"ZCHAN_CHILD_ROLE", "send"},
                       {"ZCHAN_CHILD_ENDPOINT", srv.endpoint()},
                       {"ZCHAN_CHILD_N", "1"}});
    EXPECT_EQ(late_sender.wait_exit(deadline_after(generous)), 3);  // channel_closed
    child reader({{"ZCHAN_CHILD_ROLE", "recv"}, {"ZCHAN_CHILD_ENDPOINT", srv.endpoint()}});
    EXPECT_EQ(reader.wait_exit(deadline_after(generous)), 0);
    EXPECT_EQ(reader.lines(), (std::vector<std::string>{"got 1", "got 2", "got 3", "end"}));
    EXPECT_FALSE(ch.recv().has_value());
}

TEST_P(NetProcess, SelectOverARemoteAndALocalChannelLosesAndDuplicatesNothing) {
    const long n = static_cast<long>(zchan_test::scale(400));
    child home({{"ZCHAN_CHILD_ROLE", "serve"},
                {"ZCHAN_CHILD_ENDPOINT", bind_endpoint(GetParam())},
                {"ZCHAN_CHILD_N", "4"},
                {"ZCHAN_CHILD_ID", std::to_string(n)}});
    const auto ep = home.wait_for("endpoint ");
    ASSERT_TRUE(ep.has_value());
    auto remote = zchan::dial<long>(*ep, "ch", fast());
    zchan::channel<long> local(4);
    std::thread feed([&] {
        for (long i = 0; i < n; ++i) local.send(n + i);
        local.close();
    });
    std::multiset<long> got;
    bool remote_open = true;
    bool local_open = true;
    while (remote_open || local_open) {
        auto r = remote_open ? remote : zchan::channel<long>::nil();
        auto l = local_open ? local : zchan::channel<long>::nil();
        zchan::select(zchan::recv_case(r,
                                       [&](std::optional<long> v) {
                                           if (v) {
                                               got.insert(*v);
                                           } else {
                                               remote_open = false;
                                           }
                                       }),
                      zchan::recv_case(l, [&](std::optional<long> v) {
                          if (v) {
                              got.insert(*v);
                          } else {
                              local_open = false;
                          }
                      }));
    }
    feed.join();
    ASSERT_EQ(got.size(), static_cast<std::size_t>(2 * n));
    long expect = 0;
    for (long v : got) EXPECT_EQ(v, expect++);
    home.close_stdin();
    EXPECT_EQ(home.wait_exit(deadline_after(generous)), 0);
}

TEST_P(NetProcess, HomeKilledMeansPeerLostWithinTheHeartbeatTimeout) {
    child home({{"ZCHAN_CHILD_ROLE", "serve"},
                {"ZCHAN_CHILD_ENDPOINT", bind_endpoint(GetParam())},
                {"ZCHAN_CHILD_N", "1"}});
    const auto ep = home.wait_for("endpoint ");
    ASSERT_TRUE(ep.has_value());
    auto remote = zchan::dial<long>(*ep, "ch", fast());
    EXPECT_EQ(remote.recv_for(20ms).status, zchan::recv_status::timeout);
    zchan_test::background_call blocked(
        [&] { EXPECT_TRUE(zchan_test::throws<zchan::peer_lost>([&] { (void)remote.recv(); })); });
    EXPECT_TRUE(blocked.still_blocked_after());
    const auto t0 = clock::now();
    home.kill_now();
    EXPECT_TRUE(blocked.wait_done());
    // Within the timeout (500 ms) plus a heartbeat tick, with slack for a busy machine.
    EXPECT_LT(clock::now() - t0, 3s);
    EXPECT_EQ(remote.send_for(1, 10ms), zchan::send_status::peer_lost);
}

INSTANTIATE_TEST_SUITE_P(Transports, NetProcess, ::testing::Values("tcp", "ipc"));

}  // namespace

int main(int argc, char** argv) {
    const std::string role = env_or("ZCHAN_CHILD_ROLE");
    if (!role.empty()) return child_main(role);
    ::signal(SIGPIPE, SIG_IGN);
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}

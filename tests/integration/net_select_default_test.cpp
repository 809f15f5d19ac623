// A select with a default case over remote (dialed) channels takes the default
// only if at one instant none of its cases was ready: their home polls them
// together (POLL, protocol.md §8.9). Go's TestNonblockSelectRace and
// TestNonblockSelectRace2 with the channels at a home: in this process (over
// inproc:// and tcp://127.0.0.1:*) and in another process. Each iteration
// races a select against a mover at the home that keeps one of its cases
// ready at every instant while moving readiness from c1 to c2; a case-by-case
// poll (one round trip per case) misses both in most runs.
#include <array>
#include <atomic>
#include <csignal>
#include <cstddef>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>

#include <gtest/gtest.h>
#include <unistd.h>

#include "child_process.hpp"
#include "net_test_support.hpp"
#include "wait_probe.hpp"
#include "zchan/zchan.hpp"
#include "zchan_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using zchan::channel;
using zchan::default_case;
using zchan::recv_case;
using zchan::select;
using zchan_test::background_call;
using zchan_test::make_endpoint;
using zchan_test::sender_blocked;

// The dev build runs 2000 iterations (each a few round trips); sanitized a tenth.
constexpr int iterations = static_cast<int>(zchan_test::scale(2000));
// Upper bound of the mover's extra delay, in empty loop turns (~1 ns each):
// its moves then land anywhere inside the select's round trips. A mover in
// another process starts a round trip earlier (the "go" reaches it before
// the select begins), so it waits longer.
constexpr unsigned jitter = 100'000;
constexpr unsigned child_jitter = 600'000;

// A long heartbeat timeout: sanitized runs are slow; loss is not tested here.
zchan::net_options fast() { return zchan_test::heartbeat_options(100ms, 5000ms, 5000ms); }

enum class mover {
    send,   ///< c2 (capacity 1) gets a value: TestNonblockSelectRace
    close,  ///< c2 (unbuffered) is closed: TestNonblockSelectRace2
    /// c1 is unbuffered with a sender blocked on it at the home, c2
    /// (capacity 1) gets a value: c1's readiness is a waiting partner.
    partner,
};

void spin(std::minstd_rand& rng, unsigned turns = jitter) {
    for (unsigned k = static_cast<unsigned>(rng()) % turns; k > 0; --k) {
        asm volatile("");  // a turn the compiler cannot drop
    }
}

/// The mover's part of one iteration, at the home: makes c2 ready, then
/// takes c1's value (or its blocked sender's) if it is still there.
void move(mover how, channel<int>& c1, channel<int>& c2) {
    if (how == mover::close) {
        c2.close();
    } else {
        c2.send(1);
    }
    (void)select(recv_case(c1), default_case());
}

/// Cases that are never ready, polled between c1 and c2 in some orders:
/// they widen the window a case-by-case poll misses both in. Remote ones
/// at the same home (their POLL covers them too) and local ones.
struct never_ready {
    channel<int> empty_home{4};
    channel<int> lonely_home;  // unbuffered, nobody sends
    channel<int> empty_remote;
    channel<int> lonely_remote;
    channel<int> empty_local{1};
    never_ready(zchan::server& srv, const std::string& endpoint) {
        srv.serve("empty", empty_home);
        srv.serve("lonely", lonely_home);
        empty_remote = zchan::dial<int>(endpoint, "empty", fast());
        lonely_remote = zchan::dial<int>(endpoint, "lonely", fast());
    }
};

/// The select under test, over dialed r1 and r2; true if a case ran.
bool select_once(const channel<int>& r1, const channel<int>& r2, never_ready* never) {
    bool took_default = false;
    auto dflt = default_case([&] { took_default = true; });
    if (never != nullptr) {
        (void)select(recv_case(never->empty_remote), recv_case(r1), recv_case(never->lonely_remote),
                     recv_case(never->empty_local), recv_case(r2), dflt);
    } else {
        (void)select(recv_case(r1), recv_case(r2), dflt);
    }
    return !took_default;
}

/// Runs `n` iterations with the home in this process: a worker thread
/// selects over the dialed channels while this thread moves at the home.
/// Returns how often the worker took the default.
int wrong_defaults(const std::string& transport, int n, mover how, bool extra) {
    zchan::server srv(make_endpoint(transport), fast());
    std::optional<never_ready> never;
    if (extra) never.emplace(srv, srv.endpoint());
    // send and partner reuse one pair; close needs a fresh c2 each time.
    channel<int> c1(how == mover::partner ? 0 : 1);
    channel<int> c2(how == mover::close ? 0 : 1);
    channel<int> r1;
    channel<int> r2;
    auto fresh_pair = [&](int i) {
        c1 = channel<int>(how == mover::partner ? 0 : 1);
        c2 = channel<int>(how == mover::close ? 0 : 1);
        const std::string tag = std::to_string(i);
        srv.serve("c1-" + tag, c1);
        srv.serve("c2-" + tag, c2);
        r1 = zchan::dial<int>(srv.endpoint(), "c1-" + tag, fast());
        r2 = zchan::dial<int>(srv.endpoint(), "c2-" + tag, fast());
    };
    if (how != mover::close) fresh_pair(0);

    using job = std::pair<channel<int>, channel<int>>;
    channel<job> jobs;         // unbuffered: the worker starts its select as we go on
    channel<bool> results(1);  // true: a case ran
    std::atomic<int> selecting{0};
    background_call worker([&] {
        for (const job& j : jobs) {
            selecting.fetch_add(1, std::memory_order_release);
            results.send(select_once(j.first, j.second, never ? &*never : nullptr));
        }
    });
    channel<int> to_sender;  // partner: one send on c1 per value
    std::optional<background_call> sender;
    if (how == mover::partner) {
        sender.emplace([&] {
            for (int v : to_sender) c1.send(v);
        });
    }
    std::minstd_rand rng(12345);
    int wrong = 0;
    for (int i = 0; i < n; ++i) {
        if (how == mover::close) {
            fresh_pair(i);
            c1.send(1);
        } else if (how == mover::send) {
            c1.send(1);
        } else {
            to_sender.send(1);
            while (!sender_blocked(c1)) std::this_thread::yield();
        }
        jobs.send(job{r1, r2});
        while (selecting.load(std::memory_order_acquire) == i) std::this_thread::yield();
        spin(rng);
        move(how, c1, c2);
        if (!*results.recv()) ++wrong;
        if (how != mover::close) (void)c2.try_recv();  // the select may have left it
    }
    jobs.close();
    to_sender.close();
    EXPECT_TRUE(worker.wait_done());
    worker.rethrow();
    if (sender) {
        EXPECT_TRUE(sender->wait_done());
        sender->rethrow();
    }
    return wrong;
}

class NetSelectDefault : public ::testing::TestWithParam<std::string> {};

TEST_P(NetSelectDefault, NonblockSelectRaceNeverTakesTheDefault) {
    EXPECT_EQ(wrong_defaults(GetParam(), iterations, mover::send, false), 0);
}

TEST_P(NetSelectDefault, NonblockSelectRaceWithNeverReadyCasesBetweenNeverTakesTheDefault) {
    EXPECT_EQ(wrong_defaults(GetParam(), iterations, mover::send, true), 0);
}

TEST_P(NetSelectDefault, NonblockSelectRace2WithACloseNeverTakesTheDefault) {
    EXPECT_EQ(wrong_defaults(GetParam(), iterations, mover::close, false), 0);
}

TEST_P(NetSelectDefault, NonblockSelectRaceWithABlockedSenderNeverTakesTheDefault) {
    EXPECT_EQ(wrong_defaults(GetParam(), iterations, mover::partner, false), 0);
}

INSTANTIATE_TEST_SUITE_P(Transports, NetSelectDefault, ::testing::Values("inproc", "tcp"));

// ---- the home in another process -------------------------------------------------------

/// Mover role: serves c1 and c2 (and the never-ready ones) with the mode's
/// capacities, and "go" and "done" (unbuffered) to pace the iterations: for
/// each value on "go" it moves, then waits for "done" (the select finished),
/// and sets up the next iteration before it takes the next "go". The Python
/// peer's race tests (python/tests/test_poll.py) run this role too: keep its
/// channel names and pacing as they are.
int child_main(const std::string& role) {
    return zchan_test::run_role([&] {
        const mover how = role == "partner" ? mover::partner : mover::send;
        zchan::server srv("tcp://127.0.0.1:*", fast());
        channel<int> c1(how == mover::partner ? 0 : 1);
        channel<int> c2(1);
        channel<int> go;
        channel<int> done;
        channel<int> empty_home{4};
        channel<int> lonely_home;
        srv.serve("c1", c1);
        srv.serve("c2", c2);
        srv.serve("go", go);
        srv.serve("done", done);
        srv.serve("empty", empty_home);
        srv.serve("lonely", lonely_home);
        channel<int> to_sender;  // partner: one send on c1 per value
        std::optional<std::thread> sender;
        if (how == mover::partner) {
            sender.emplace([&] {
                for (int v : to_sender) c1.send(v);
            });
        } else {
            c1.send(1);
        }
        zchan_test::say("endpoint " + srv.endpoint());
        std::minstd_rand rng(12345);
        for (;;) {
            if (how == mover::partner) {
                to_sender.send(1);
                while (!sender_blocked(c1)) std::this_thread::yield();
            }
            if (!go.recv()) break;
            spin(rng, child_jitter);
            move(how, c1, c2);
            (void)done.recv();
            (void)c2.try_recv();  // the select may have left it
            if (how == mover::send) c1.send(1);
        }
        to_sender.close();
        if (sender) {
            (void)select(recv_case(c1), default_case());  // the send for the "go" never given
            sender->join();
        }
        zchan_test::say("finished");
        std::array<char, 64> buf{};
        while (::read(0, buf.data(), buf.size()) > 0) {
        }
        return 0;
    });
}

/// Runs `n` iterations against the mover role in a child process.
int wrong_defaults_in_another_process(const std::string& role, int n, bool extra) {
    zchan_test::self_child home(std::map<std::string, std::string>{{"ZCHAN_CHILD_ROLE", role}});
    const auto endpoint = home.wait_for("endpoint ");
    EXPECT_TRUE(endpoint.has_value()) << home.output();
    if (!endpoint) return -1;
    auto r1 = zchan::dial<int>(*endpoint, "c1", fast());
    auto r2 = zchan::dial<int>(*endpoint, "c2", fast());
    auto go = zchan::dial<int>(*endpoint, "go", fast());
    auto done = zchan::dial<int>(*endpoint, "done", fast());
    // The never-ready cases: remote ones at the child's home, a local one.
    channel<int> empty_local(1);
    channel<int> empty_remote;
    channel<int> lonely_remote;
    if (extra) {
        empty_remote = zchan::dial<int>(*endpoint, "empty", fast());
        lonely_remote = zchan::dial<int>(*endpoint, "lonely", fast());
    }
    int wrong = 0;
    for (int i = 0; i < n; ++i) {
        go.send(i);  // the mover starts moving as this select starts polling
        bool took_default = false;
        auto dflt = default_case([&] { took_default = true; });
        if (extra) {
            (void)select(recv_case(empty_remote), recv_case(r1), recv_case(lonely_remote),
                         recv_case(empty_local), recv_case(r2), dflt);
        } else {
            (void)select(recv_case(r1), recv_case(r2), dflt);
        }
        if (took_default) ++wrong;
        done.send(i);
    }
    go.close();
    EXPECT_TRUE(home.wait_line("finished")) << home.output();
    home.close_stdin();
    EXPECT_EQ(home.wait_exit(zchan_test::deadline_after(zchan_test::generous)), 0);
    return wrong;
}

TEST(NetSelectDefaultProcess, NonblockSelectRaceAtAHomeInAnotherProcessNeverTakesTheDefault) {
    EXPECT_EQ(wrong_defaults_in_another_process("send", iterations, false), 0);
}

TEST(NetSelectDefaultProcess, NonblockSelectRaceWithNeverReadyCasesAtAHomeInAnotherProcess) {
    EXPECT_EQ(wrong_defaults_in_another_process("send", iterations, true), 0);
}

TEST(NetSelectDefaultProcess, NonblockSelectRaceWithABlockedSenderInAnotherProcess) {
    EXPECT_EQ(wrong_defaults_in_another_process("partner", iterations, false), 0);
}

}  // namespace

int main(int argc, char** argv) {
    const std::string role = zchan_test::env_or("ZCHAN_CHILD_ROLE");
    if (!role.empty()) return child_main(role);
    ::signal(SIGPIPE, SIG_IGN);
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}

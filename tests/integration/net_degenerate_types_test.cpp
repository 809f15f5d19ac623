// Zero-size and empty values over remote channels: std::array<T, 0>, an
// empty struct (Go's struct{}), empty strings and containers. They encode as
// no octets or as a bare size tag (protocol.md §13), and must travel like any
// other value: home and dialer in one process over inproc:// and
// tcp://127.0.0.1:*, and the home in another process (this binary run again
// in the "echo" role).
#include <array>
#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <signal.h>

#include "child_process.hpp"
#include "net_test_support.hpp"
#include "zchan/channel.hpp"
#include "zchan/net.hpp"
#include "zchan/select.hpp"
#include "zchan_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using zchan_test::background_call;
using zchan_test::deadline_after;
using zchan_test::env_or;
using zchan_test::generous;
using zchan_test::make_endpoint;

zchan::net_options fast() { return zchan_test::heartbeat_options(100ms, 500ms, 5000ms); }

/// Go's struct{}: no members, no serialize function.
struct tick {
    static constexpr const char* zchan_type_name = "zchan-test.tick";
};

using arr0 = std::array<int, 0>;
using strings = std::vector<std::string>;

// ---- home and dialer in one process ------------------------------------------------------

class NetDegenerate : public ::testing::TestWithParam<std::string> {};

/// Sends `v` both ways through a buffered channel of capacity 2, then through
/// an unbuffered one, then closes: every value arrives (a copy of `v`, which
/// `same` checks), and the close ends the remote range.
template <class T, class Same>
void carry_both_ways(const std::string& transport, const T& v, Same same) {
    for (std::size_t cap : {std::size_t{2}, std::size_t{0}}) {
        SCOPED_TRACE("capacity " + std::to_string(cap));
        zchan::channel<T> ch(cap);
        zchan::server srv(make_endpoint(transport), fast());
        srv.serve("z", ch);
        auto remote = zchan::dial<T>(srv.endpoint(), "z", fast());
        {
            // Dialer to home.
            background_call sender([&] {
                remote.send(T(v));
                remote.send(T(v));
            });
            for (int i = 0; i < 2; ++i) {
                auto got = ch.recv();
                ASSERT_TRUE(got.has_value());
                EXPECT_TRUE(same(*got));
            }
            ASSERT_TRUE(sender.wait_done());
            sender.rethrow();
        }
        {
            // Home to dialer, the second through a select.
            background_call sender([&] {
                ch.send(T(v));
                ch.send(T(v));
            });
            auto got = remote.recv();
            ASSERT_TRUE(got.has_value());
            EXPECT_TRUE(same(*got));
            std::optional<T> selected;
            zchan::select(
                zchan::recv_case(remote, [&](std::optional<T> x) { selected = std::move(x); }));
            ASSERT_TRUE(selected.has_value());
            EXPECT_TRUE(same(*selected));
            ASSERT_TRUE(sender.wait_done());
            sender.rethrow();
        }
        ch.close();
        EXPECT_FALSE(remote.recv().has_value());
    }
}

TEST_P(NetDegenerate, ZeroSizeArraysTravel) {
    carry_both_ways(GetParam(), arr0{}, [](const arr0&) { return true; });
    carry_both_ways(GetParam(), std::array<std::string, 0>{},
                    [](const std::array<std::string, 0>&) { return true; });
}

TEST_P(NetDegenerate, EmptyStructsTravel) {
    carry_both_ways(GetParam(), tick{}, [](const tick&) { return true; });
}

TEST_P(NetDegenerate, EmptyStringsAndContainersTravel) {
    carry_both_ways(GetParam(), std::string(), [](const std::string& s) { return s.empty(); });
    carry_both_ways(GetParam(), std::vector<int>(),
                    [](const std::vector<int>& x) { return x.empty(); });
    carry_both_ways(GetParam(), strings{"", ""}, [](const strings& x) {
        return x == strings{"", ""};
    });
    using nested = std::map<std::string, std::vector<arr0>>;
    carry_both_ways(GetParam(), nested{{"", {}}}, [](const nested& x) {
        return x == nested{{"", {}}};
    });
}

INSTANTIATE_TEST_SUITE_P(Transports, NetDegenerate, ::testing::Values("inproc", "tcp"));

// ---- the home in another process -------------------------------------------------------

/// Echo role: serves "<kind>-in" and "<kind>-out" for each value kind and moves
/// every value from in to out until in is closed, then closes out. Lives
/// until its stdin reaches EOF.
template <class T>
void echo(zchan::server& srv, const std::string& kind, std::vector<std::thread>& threads) {
    zchan::channel<T> in;
    zchan::channel<T> out(1);
    srv.serve(kind + "-in", in);
    srv.serve(kind + "-out", out);
    threads.emplace_back([in, out] {
        for (T v : in) out.send(std::move(v));
        out.close();
    });
}

int child_main(const std::string& role) {
    return zchan_test::run_role([&] {
        if (role != "echo") return 1;
        zchan::server srv("tcp://127.0.0.1:*", fast());
        std::vector<std::thread> threads;
        echo<arr0>(srv, "arr0", threads);
        echo<tick>(srv, "tick", threads);
        echo<std::string>(srv, "string", threads);
        echo<strings>(srv, "strings", threads);
        zchan_test::say("endpoint " + srv.endpoint());
        for (auto& t : threads) t.join();
        zchan_test::say("drained");
        char buf[64];
        while (::read(0, buf, sizeof buf) > 0) {
        }
        return 0;
    });
}

/// Sends n values into the child's "<kind>-in", closes it, and counts what
/// comes back on "<kind>-out".
template <class T>
void round_trip_through(const std::string& endpoint, const std::string& kind, const T& v, int n) {
    SCOPED_TRACE(kind);
    auto in = zchan::dial<T>(endpoint, kind + "-in", fast());
    auto out = zchan::dial<T>(endpoint, kind + "-out", fast());
    std::thread feed([&] {
        for (int i = 0; i < n; ++i) in.send(T(v));
        in.close();
    });
    int got = 0;
    for (T x : out) {
        EXPECT_TRUE(x == v);
        ++got;
    }
    feed.join();
    EXPECT_EQ(got, n);
}

TEST(NetDegenerateProcess, ZeroSizeAndEmptyValuesReachAHomeInAnotherProcessAndBack) {
    zchan_test::self_child home(std::map<std::string, std::string>{{"ZCHAN_CHILD_ROLE", "echo"}});
    const auto endpoint = home.wait_for("endpoint ");
    ASSERT_TRUE(endpoint.has_value()) << home.output();
    const int n = 50;
    round_trip_through(*endpoint, "arr0", arr0{}, n);
    // tick has no operator==: every tick equals every other.
    {
        auto in = zchan::dial<tick>(*endpoint, "tick-in", fast());
        auto out = zchan::dial<tick>(*endpoint, "tick-out", fast());
        std::thread feed([&] {
            for (int i = 0; i < n; ++i) in.send(tick{});
            in.close();
        });
        int got = 0;
        for (tick t : out) {
            (void)t;
            ++got;
        }
        feed.join();
        EXPECT_EQ(got, n);
    }
    round_trip_through(*endpoint, "string", std::string(), n);
    round_trip_through(*endpoint, "strings", strings{"", {}}, n);
    EXPECT_TRUE(home.wait_line("drained")) << home.output();
    home.close_stdin();
    EXPECT_EQ(home.wait_exit(deadline_after(generous)), 0);
}

}  // namespace

int main(int argc, char** argv) {
    const std::string role = env_or("ZCHAN_CHILD_ROLE");
    if (!role.empty()) return child_main(role);
    ::signal(SIGPIPE, SIG_IGN);
    ::testing::InitGoogleTest(&argc, argv);
    return RUN_ALL_TESTS();
}

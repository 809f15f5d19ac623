// Drives the real `zchan` command-line tool (tools/zchan) as child processes
// over tcp://127.0.0.1:*: hub, send, recv, stat; help and usage errors;
// SIGINT. Shell pipelines (seq | zchan send, zchan recv | wc -l) run under
// bash, exactly as a user would type them. Every wait is bounded.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <signal.h>

#include <zchan/zchan.hpp>
#include "child_process.hpp"
#include "zchan_test_support.hpp"
#include "zchan_tool_support.hpp"

namespace {

using namespace std::chrono_literals;
using zchan_test::child_process;
using zchan_test::deadline_after;
using zchan_test::generous;
using namespace zchan_tool_test;

TEST(ZchanToolIntegration, ToolIsBuilt) {
    EXPECT_TRUE(std::filesystem::exists(tool)) << tool << " is missing: build zchan_tool";
}

TEST(ZchanToolIntegration, HelpExitsZeroForTheToolAndEverySubcommand) {
    {
        child_process p({tool, "--help"});
        EXPECT_EQ(p.wait_exit(), 0) << p.output();
        for (const char* c : {"hub", "send", "recv", "stat"}) EXPECT_TRUE(contains(p, c)) << c;
    }
    for (const char* c : {"hub", "send", "recv", "stat", "keygen"}) {
        child_process p({tool, c, "--help"});
        EXPECT_EQ(p.wait_exit(), 0) << c << ": " << p.output();
        EXPECT_TRUE(contains(p, std::string("Usage: zchan ") + c)) << p.output();
    }
}

TEST(ZchanToolIntegration, BadArgumentsExitTwoWithAMessage) {
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
        {{tool}, "Usage: zchan COMMAND"},
        {{tool, "bogus"}, "unknown command \"bogus\""},
        {{tool, "send", "tcp://127.0.0.1:1"}, "missing arguments"},
        {{tool, "recv", "tcp://127.0.0.1:1", "x", "-n", "many"}, "expected a number"},
        {{tool, "hub", "tcp://127.0.0.1:*", "--channel", "nocap"}, "expected NAME:CAP[:TYPE]"},
        {{tool, "stat", "tcp://127.0.0.1:1", "--frobnicate"}, "unknown option --frobnicate"},
        {{tool, "stat", "a", "b"}, "unexpected argument \"b\""},
    };
    for (const auto& [argv, message] : cases) {
        child_process p(argv);
        EXPECT_EQ(p.wait_exit(), 2) << argv.back() << ": " << p.output();
        EXPECT_TRUE(contains(p, message)) << "want \"" << message << "\" in: " << p.output();
    }
}

TEST(ZchanToolIntegration, SeqThroughSendAndRecvThroughWcAgree) {
    hub_process hub({"--channel", "jobs:64"});
    ASSERT_FALSE(hub.endpoint.empty()) << hub.proc.output();
    const std::string ep = shell_quote(hub.endpoint);
    child_process counter(bash(shell_quote(tool) + " recv " + ep + " jobs | wc -l"));
    const std::string n = std::to_string(pipeline_values);
    child_process sender(
        bash("seq 1 " + n + " | " + shell_quote(tool) + " send " + ep + " jobs --close"));
    const auto long_wait = deadline_after(generous * 6);
    EXPECT_EQ(sender.wait_exit(long_wait), 0) << sender.output();
    EXPECT_EQ(counter.wait_exit(long_wait), 0) << counter.output();  // ended: closed and drained
    ASSERT_EQ(counter.lines().size(), 1U) << counter.output();
    EXPECT_EQ(std::stol(counter.lines()[0]), pipeline_values);
}

// recv --batch into a pipe writes as values come (not one per read of the
// reader): every value still arrives once and in order.
TEST(ZchanToolIntegration, RecvBatchIntoAPipeDeliversEveryValueOnceInOrder) {
    hub_process hub({"--channel", "jobs:64"});
    ASSERT_FALSE(hub.endpoint.empty()) << hub.proc.output();
    const std::string ep = shell_quote(hub.endpoint);
    // Prints the count and how many lines were not their own line number.
    child_process counter(bash(shell_quote(tool) + " recv --batch " + ep +
                               " jobs | awk '$0 != NR { bad++ } END { print NR, bad + 0 }'"));
    const std::string n = std::to_string(pipeline_values);
    child_process sender(
        bash("seq 1 " + n + " | " + shell_quote(tool) + " send " + ep + " jobs --close"));
    const auto long_wait = deadline_after(generous * 6);
    EXPECT_EQ(sender.wait_exit(long_wait), 0) << sender.output();
    EXPECT_EQ(counter.wait_exit(long_wait), 0) << counter.output();
    ASSERT_EQ(counter.lines().size(), 1U) << counter.output();
    EXPECT_EQ(counter.lines()[0], n + " 0");
}

TEST(ZchanToolIntegration, TwoReceiversSplitTheValuesExactlyOnceEachInOrder) {
    hub_process hub({"--channel", "jobs:16"});
    ASSERT_FALSE(hub.endpoint.empty()) << hub.proc.output();
    child_process r1({tool, "recv", hub.endpoint, "jobs"});
    child_process r2({tool, "recv", hub.endpoint, "jobs"});
    // Both attached before the values flow, so that both get some.
    ASSERT_TRUE(stat_until(hub.endpoint, "jobs", [](auto& c) { return c.receivers == 2; }))
        << r1.output() << r2.output();
    constexpr int n = 2000;
    child_process sender(bash("seq 1 " + std::to_string(n) + " | " + shell_quote(tool) + " send " +
                              shell_quote(hub.endpoint) + " jobs --close"));
    const auto long_wait = deadline_after(generous * 3);
    EXPECT_EQ(sender.wait_exit(long_wait), 0) << sender.output();
    EXPECT_EQ(r1.wait_exit(long_wait), 0) << r1.output();
    EXPECT_EQ(r2.wait_exit(long_wait), 0) << r2.output();
    const auto a = numbers(r1);
    const auto b = numbers(r2);
    EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
    EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
    std::vector<long> all(a);
    all.insert(all.end(), b.begin(), b.end());
    std::sort(all.begin(), all.end());
    std::vector<long> want(n);
    for (int i = 0; i < n; ++i) want[static_cast<std::size_t>(i)] = i + 1;
    EXPECT_EQ(all, want) << "received " << a.size() << " + " << b.size();
    const auto row = stat_until(hub.endpoint, "jobs", [](auto& c) { return c.sessions == 0; });
    ASSERT_TRUE(row);
    EXPECT_EQ(row->values_in, static_cast<std::uint64_t>(n));
    EXPECT_TRUE(row->closed);
    EXPECT_EQ(row->len, 0U);
}

TEST(ZchanToolIntegration, ATypeMismatchIsRefusedAtDialWithAClearMessage) {
    hub_process hub({"--channel", "nums:4:i32"});
    ASSERT_FALSE(hub.endpoint.empty()) << hub.proc.output();
    child_process sender({tool, "send", hub.endpoint, "nums"});  // std::string values
    EXPECT_EQ(sender.wait_exit(), 1) << sender.output();
    EXPECT_TRUE(contains(sender, "type mismatch")) << sender.output();
    EXPECT_TRUE(contains(sender, "channel \"nums\" carries i32, not string")) << sender.output();
    // The channel does take its own type.
    auto nums = zchan::dial<int>(hub.endpoint, "nums");
    EXPECT_EQ(nums.try_send(7), zchan::send_status::ok);
    EXPECT_EQ(nums.recv(), std::optional<int>(7));
    // A channel typed by its first dialer refuses the next dialer of another type.
    zchan::net_options create;
    create.create_capacity = 1;
    auto words = zchan::dial<std::string>(hub.endpoint, "words", create);
    EXPECT_THROW((void)zchan::dial<int>(hub.endpoint, "words", create), zchan::type_mismatch);
    const auto row = stat_until(hub.endpoint, "words", [](auto& c) { return c.errors == 1; });
    ASSERT_TRUE(row);
    EXPECT_EQ(row->type, "string");
}

TEST(ZchanToolIntegration, CapacityFromTheCommandLineOrTheFirstDialerIsExact) {
    hub_process hub({"--channel", "jobs:3"});
    ASSERT_FALSE(hub.endpoint.empty()) << hub.proc.output();
    auto jobs = zchan::dial<std::string>(hub.endpoint, "jobs");
    EXPECT_EQ(jobs.cap(), 3U);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(jobs.try_send(std::to_string(i)), zchan::send_status::ok);
    EXPECT_EQ(jobs.try_send(std::string("3")), zchan::send_status::full);
    EXPECT_EQ(jobs.send_for(std::string("3"), 50ms), zchan::send_status::timeout);
    EXPECT_EQ(jobs.recv(), std::optional<std::string>("0"));  // FIFO, and room for one more
    EXPECT_EQ(jobs.try_send(std::string("3")), zchan::send_status::ok);

    // Not there and no capacity given: refused.
    EXPECT_THROW((void)zchan::dial<std::string>(hub.endpoint, "made"), zchan::connect_error);
    zchan::net_options create;
    create.create_capacity = 2;
    auto made = zchan::dial<std::string>(hub.endpoint, "made", create);
    EXPECT_EQ(made.cap(), 2U);
    EXPECT_EQ(made.try_send(std::string("a")), zchan::send_status::ok);
    EXPECT_EQ(made.try_send(std::string("b")), zchan::send_status::ok);
    EXPECT_EQ(made.try_send(std::string("c")), zchan::send_status::full);
    // A later creator does not change an existing channel.
    create.create_capacity = 100;
    EXPECT_EQ(zchan::dial<std::string>(hub.endpoint, "made", create).cap(), 2U);
    // Unbuffered: a rendezvous, no receiver -> a send cannot complete.
    create.create_capacity = 0;
    auto sync = zchan::dial<std::string>(hub.endpoint, "sync", create);
    EXPECT_EQ(sync.cap(), 0U);
    EXPECT_EQ(sync.send_for(std::string("x"), 50ms), zchan::send_status::timeout);
}

TEST(ZchanToolIntegration, StatShowsTheChannelWithLenCapAndClosed) {
    hub_process hub({"--channel", "jobs:8"});
    ASSERT_FALSE(hub.endpoint.empty()) << hub.proc.output();
    {
        auto jobs = zchan::dial<std::string>(hub.endpoint, "jobs");
        for (const char* v : {"a", "b", "c"}) jobs << std::string(v);
        jobs.close();
    }
    child_process stat({tool, "stat", hub.endpoint});
    EXPECT_EQ(stat.wait_exit(), 0) << stat.output();
    std::optional<std::vector<std::string>> row;
    for (const auto& l : stat.lines()) {
        std::istringstream in(l);
        std::vector<std::string> cells;
        for (std::string c; in >> c;) cells.push_back(c);
        if (!cells.empty() && cells[0] == "jobs") row = cells;
    }
    ASSERT_TRUE(row) << stat.output();
    // NAME TYPE LEN/CAP CLOSED SESS SEND RECV IN OUT RET ERR
    ASSERT_EQ(row->size(), 11U) << stat.output();
    EXPECT_EQ((*row)[1], "string");
    EXPECT_EQ((*row)[2], "3/8");
    EXPECT_EQ((*row)[3], "yes");
    EXPECT_EQ((*row)[7], "3");  // values in

    // The values are still there: a recv drains them, then ends (closed).
    child_process recv({tool, "recv", hub.endpoint, "jobs"});
    EXPECT_EQ(recv.wait_exit(), 0) << recv.output();
    EXPECT_EQ(recv.lines(), (std::vector<std::string>{"a", "b", "c"}));
}

TEST(ZchanToolIntegration, RecvStopsAfterNAndLeavesTheRest) {
    hub_process hub({"--channel", "jobs:8"});
    ASSERT_FALSE(hub.endpoint.empty()) << hub.proc.output();
    auto jobs = zchan::dial<std::string>(hub.endpoint, "jobs");
    for (int i = 1; i <= 5; ++i) jobs << std::to_string(i);
    child_process recv({tool, "recv", hub.endpoint, "jobs", "-n", "2"});
    EXPECT_EQ(recv.wait_exit(), 0) << recv.output();
    EXPECT_EQ(recv.lines(), (std::vector<std::string>{"1", "2"}));
    EXPECT_EQ(jobs.recv(), std::optional<std::string>("3"));
}

TEST(ZchanToolIntegration, RecvIntoHeadLosesAtMostTheValueBeingWritten) {
    constexpr int n = 1000;
    hub_process hub({"--channel", "jobs:2000"});
    ASSERT_FALSE(hub.endpoint.empty()) << hub.proc.output();
    {
        auto jobs = zchan::dial<std::string>(hub.endpoint, "jobs");
        for (int i = 1; i <= n; ++i) jobs << std::to_string(i);
    }
    for (int round = 0; round < 3; ++round) {
        const auto before =
            stat_until(hub.endpoint, "jobs", [](auto& c) { return c.sessions == 0; });
        ASSERT_TRUE(before);
        // The pipeline's status is head's; recv's own is printed after it.
        child_process p(bash(shell_quote(tool) + " recv " + shell_quote(hub.endpoint) +
                             " jobs 2>/dev/null | head -3; echo \"recv=${PIPESTATUS[0]}\""));
        EXPECT_EQ(p.wait_exit(deadline_after(generous)), 0) << p.output();
        ASSERT_EQ(p.lines().size(), 4U) << p.output();
        EXPECT_EQ(p.lines()[3], "recv=141") << "exit status 141: stdout closed";
        const long first = std::stol(p.lines()[0]);
        EXPECT_EQ(std::stol(p.lines()[2]), first + 2);
        // Every value after the three printed is still in the channel, but perhaps the one
        // that was being written when head exited.
        const auto after =
            stat_until(hub.endpoint, "jobs", [](auto& c) { return c.sessions == 0; });
        ASSERT_TRUE(after);
        EXPECT_GE(after->len + 4, before->len) << "recv lost more than the value being written";
        EXPECT_LE(after->len + 3, before->len);
        EXPECT_EQ(after->values_in, after->values_out - after->returned + after->len)
            << "in = out - returned + len";
    }
}

// `window`: --window; with one (the default) the third send returns at once,
// and the loss shows when the input ends and send waits for its confirmations.
void send_that_loses_the_hub(const std::string& window) {
    hub_process hub({"--channel", "jobs:16"});
    ASSERT_FALSE(hub.endpoint.empty()) << hub.proc.output();
    zchan_test::child_options o;
    o.stdin_pipe = true;
    child_process send({tool, "send", hub.endpoint, "jobs", "--window", window}, o);
    send.tell("a");
    send.tell("b");
    ASSERT_TRUE(stat_until(hub.endpoint, "jobs", [](auto& c) { return c.values_in == 2; }))
        << send.output();
    hub.proc.kill_now();
    send.tell("c");
    if (window != "0") send.close_stdin();
    EXPECT_EQ(send.wait_exit(deadline_after(generous)), 1) << send.output();
    EXPECT_TRUE(contains(send, "lost the hub (peer lost: ")) << send.output();
    EXPECT_TRUE(contains(send, "; 2 value(s) from here were accepted")) << send.output();
}

TEST(ZchanToolIntegration, SendThatLosesTheHubSaysHowManyValuesWereAccepted) {
    send_that_loses_the_hub("0");
}

TEST(ZchanToolIntegration, SendWithAWindowThatLosesTheHubSaysHowManyWereConfirmed) {
    send_that_loses_the_hub("1024");
}

TEST(ZchanToolIntegration, SigintEndsHubRecvAndABlockedSendCleanly) {
    hub_process hub({"--channel", "full:1", "--channel", "empty:4"});
    ASSERT_FALSE(hub.endpoint.empty()) << hub.proc.output();

    // recv waiting on an empty channel.
    child_process recv({tool, "recv", hub.endpoint, "empty"});
    ASSERT_TRUE(stat_until(hub.endpoint, "empty", [](auto& c) { return c.receivers == 1; }))
        << recv.output();
    recv.signal(SIGINT);
    EXPECT_EQ(recv.wait_exit(deadline_after(generous)), 130) << recv.output();
    EXPECT_TRUE(contains(recv, "zchan recv: interrupted after 0 value(s)")) << recv.output();

    // send blocked on a full channel (capacity 1, five lines, no receiver).
    const auto input = std::filesystem::temp_directory_path() /
                       ("zchan_tool_test_" + std::to_string(::getpid()) + ".txt");
    {
        std::ofstream f(input);
        f << "1\n2\n3\n4\n5\n";
    }
    child_process send(bash("exec " + shell_quote(tool) + " send " + shell_quote(hub.endpoint) +
                            " full < " + shell_quote(input.string())));
    ASSERT_TRUE(stat_until(hub.endpoint, "full", [](auto& c) {
        return c.len == 1 && c.senders == 1;
    })) << send.output();
    send.signal(SIGINT);
    EXPECT_EQ(send.wait_exit(deadline_after(generous)), 130) << send.output();
    EXPECT_TRUE(contains(send, "zchan send: interrupted after 1 value(s)")) << send.output();
    std::filesystem::remove(input);
    // Both said BYE: the hub has no session left for them, and kept the one value.
    const auto row = stat_until(hub.endpoint, "full", [](auto& c) { return c.sessions == 0; });
    ASSERT_TRUE(row);
    EXPECT_EQ(row->len, 1U);
    EXPECT_FALSE(row->closed);

    hub.proc.signal(SIGINT);
    EXPECT_EQ(hub.proc.wait_exit(deadline_after(generous)), 0) << hub.proc.output();
    EXPECT_TRUE(contains(hub.proc, "zchan hub: interrupted")) << hub.proc.output();
}

TEST(ZchanToolIntegration, KeygenKeysTurnOnCurveForHubSendAndRecvThroughTheEnvironment) {
    const auto dir =
        std::filesystem::temp_directory_path() / ("zchan_tool_keys_" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    const std::string home = (dir / "home").string();
    const std::string client = (dir / "client").string();
    for (const auto& prefix : {home, client}) {
        child_process k({tool, "keygen", prefix});
        ASSERT_EQ(k.wait_exit(), 0) << k.output();
        ASSERT_FALSE(k.lines().empty());
        std::ifstream pub(prefix + ".pub");
        std::string line;
        std::getline(pub, line);
        EXPECT_EQ(k.lines()[0], line) << "keygen prints the public key it wrote";
        const auto perms = std::filesystem::status(prefix + ".key").permissions();
        EXPECT_EQ(perms & (std::filesystem::perms::group_all | std::filesystem::perms::others_all),
                  std::filesystem::perms::none);
    }
    {
        child_process again({tool, "keygen", home});  // never overwrites a key
        EXPECT_EQ(again.wait_exit(), 1) << again.output();
    }
    std::filesystem::copy_file(client + ".pub", dir / "allowed");

    child_process hub(bash("ZCHAN_CURVE_SECRET_KEY_FILE=" + shell_quote(home + ".key") +
                           " ZCHAN_CURVE_ALLOW_FILE=" + shell_quote((dir / "allowed").string()) +
                           " exec " + shell_quote(tool) +
                           " hub 'tcp://127.0.0.1:*' --channel "
                           "jobs:16:string"));
    const std::string ep = endpoint_of(hub);
    ASSERT_FALSE(ep.empty()) << hub.output();
    const std::string client_env = "ZCHAN_CURVE_SECRET_KEY_FILE=" + shell_quote(client + ".key") +
                                   " ZCHAN_CURVE_SERVER_KEY_FILE=" + shell_quote(home + ".pub");

    // A plaintext client is refused promptly, and nothing reaches the channel.
    child_process plain(bash("echo sneaky | " + shell_quote(tool) + " send " + shell_quote(ep) +
                             " jobs --connect-timeout 20000"));
    EXPECT_EQ(plain.wait_exit(deadline_after(generous)), 1) << plain.output();
    EXPECT_TRUE(contains(plain, "ZCHAN_CURVE_SERVER_KEY_FILE")) << plain.output();
    EXPECT_FALSE(contains(plain, "net_options")) << plain.output();

    child_process sender(bash("seq 1 100 | " + client_env + " " + shell_quote(tool) + " send " +
                              shell_quote(ep) + " jobs --close"));
    child_process receiver(
        bash(client_env + " " + shell_quote(tool) + " recv " + shell_quote(ep) + " jobs"));
    EXPECT_EQ(sender.wait_exit(deadline_after(generous)), 0) << sender.output();
    EXPECT_EQ(receiver.wait_exit(deadline_after(generous)), 0) << receiver.output();
    std::vector<long> want(100);
    for (long i = 0; i < 100; ++i) want[static_cast<std::size_t>(i)] = i + 1;
    EXPECT_EQ(numbers(receiver), want) << "exactly the encrypted sender's values, in order";

    hub.signal(SIGINT);
    EXPECT_EQ(hub.wait_exit(deadline_after(generous)), 0) << hub.output();
    std::filesystem::remove_all(dir);
}

}  // namespace

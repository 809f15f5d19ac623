// Drives the real `zchan` command-line tool (tools/zchan): what it says when
// something is wrong (in its own terms, not the library's), --version, the
// layout of --help, stat's counters and its --watch into a pipe.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <signal.h>

#include <zchan/zchan.hpp>
#include "child_process.hpp"
#include "zchan_test_support.hpp"
#include "zchan_tool_support.hpp"

namespace {

using namespace zchan_tool_test;

/// Checks the common form of an error line: one "zchan CMD: " prefix, and no
/// C++ names or error-code names the user did not ask for.
void expect_cli_worded(const child_process& p, const std::string& cmd) {
    const std::string out = p.output();
    EXPECT_EQ(out.find("zchan " + cmd + ": zchan:"), std::string::npos) << out;
    EXPECT_EQ(out.find("net_options"), std::string::npos) << out;
    EXPECT_EQ(out.find(": could not connect"), std::string::npos) << out;
    EXPECT_EQ(out.find(": unknown channel\n"), std::string::npos) << out;
}

TEST(ZchanToolCli, ErrorsNameOptionsAndSayWhatFailed) {
    hub_process hub({"--channel", "jobs:4"});
    ASSERT_FALSE(hub.endpoint.empty()) << hub.proc.output();
    {  // no such channel, and no capacity to create it with
        child_process p({tool, "recv", hub.endpoint, "nope"});
        EXPECT_EQ(p.wait_exit(deadline_after(generous)), 1) << p.output();
        EXPECT_TRUE(contains(p, "no channel \"nope\"")) << p.output();
        EXPECT_TRUE(contains(p, "--cap N")) << p.output();
        expect_cli_worded(p, "recv");
    }
    {  // a capacity over the hub's limit is not "unknown channel"
        child_process p({tool, "recv", hub.endpoint, "huge", "--cap", "99999999"});
        EXPECT_EQ(p.wait_exit(deadline_after(generous)), 1) << p.output();
        EXPECT_TRUE(contains(p, "capacity 99999999 exceeds the hub's limit of 65536"))
            << p.output();
        expect_cli_worded(p, "recv");
    }
    {  // the port is taken
        child_process p({tool, "hub", hub.endpoint});
        EXPECT_EQ(p.wait_exit(deadline_after(generous)), 1) << p.output();
        EXPECT_TRUE(contains(p, "zchan hub: cannot bind " + hub.endpoint)) << p.output();
        expect_cli_worded(p, "hub");
    }
    {  // a host that does not resolve
        child_process p(
            {tool, "recv", "tcp://no-such-host.invalid:5555", "x", "--connect-timeout", "1000"});
        EXPECT_EQ(p.wait_exit(deadline_after(generous)), 1) << p.output();
        EXPECT_TRUE(contains(p, "cannot resolve host \"no-such-host.invalid\"")) << p.output();
        expect_cli_worded(p, "recv");
    }
    {  // a value over the frame limit: its size and the limit
        child_process p(bash("head -c 68000000 /dev/zero | tr '\\0' a | " + shell_quote(tool) +
                             " send " + shell_quote(hub.endpoint) + " jobs"));
        EXPECT_EQ(p.wait_exit(deadline_after(generous)), 1) << p.output();
        EXPECT_TRUE(contains(p, "value 1 is 68000000 bytes, over the frame limit of 67108864"))
            << p.output();
        EXPECT_TRUE(contains(p, "0 value(s) from here were accepted")) << p.output();
        expect_cli_worded(p, "send");
    }
    {  // --cap on a channel that exists with another capacity
        child_process p(bash("echo x | " + shell_quote(tool) + " send " +
                             shell_quote(hub.endpoint) + " jobs --cap 8"));
        EXPECT_EQ(p.wait_exit(deadline_after(generous)), 0) << p.output();
        EXPECT_TRUE(contains(p,
                             "channel \"jobs\" already exists with capacity 4; --cap 8 has no "
                             "effect"))
            << p.output();
    }
}

TEST(ZchanToolCli, VersionFromTheToolAndEverySubcommand) {
    for (std::vector<std::string> argv :
         std::vector<std::vector<std::string>>{{tool, "--version"},
                                               {tool, "hub", "--version"},
                                               {tool, "send", "--version"},
                                               {tool, "recv", "--version"},
                                               {tool, "stat", "--version"},
                                               {tool, "keygen", "--version"},
                                               {tool, "close", "--version"}}) {
        child_process p(argv);
        EXPECT_EQ(p.wait_exit(deadline_after(generous)), 0) << argv[1] << ": " << p.output();
        ASSERT_EQ(p.lines().size(), 1U) << p.output();
        EXPECT_EQ(p.lines()[0].rfind("zchan 0.", 0), 0U) << p.output();
    }
}

TEST(ZchanToolCli, HelpFitsOneHundredColumnsWithAlignedOptions) {
    for (const char* c : {"hub", "send", "recv", "stat", "keygen", "close"}) {
        child_process p({tool, c, "--help"});
        EXPECT_EQ(p.wait_exit(deadline_after(generous)), 0) << p.output();
        std::size_t column = 0;
        bool in_options = false;
        for (const auto& l : p.lines()) {
            EXPECT_LE(l.size(), 100U) << c << ": " << l;
            if (l == "Options:") in_options = true;
            if (!in_options || l.empty()) {
                if (l.empty()) in_options = false;
                continue;
            }
            if (l.rfind("  -", 0) == 0 || l.rfind("      --", 0) == 0) {
                // The description starts after the option and two or more blanks.
                const auto gap = l.find("  ", l.find("--"));
                ASSERT_NE(gap, std::string::npos) << l;
                const auto start = l.find_first_not_of(' ', gap);
                if (column == 0) column = start;
                EXPECT_EQ(start, column) << c << ": " << l;
            } else if (l != "Options:") {
                EXPECT_EQ(l.find_first_not_of(' '), column) << c << ": continuation " << l;
            }
        }
    }
}

TEST(ZchanToolCli, StatCountsNotItsOwnSessionAndWatchIntoAPipeIsPlain) {
    hub_process hub({"--channel", "jobs:4"});
    ASSERT_FALSE(hub.endpoint.empty()) << hub.proc.output();
    {
        child_process p({tool, "stat", hub.endpoint});
        EXPECT_EQ(p.wait_exit(deadline_after(generous)), 0) << p.output();
        EXPECT_TRUE(contains(p, "  sessions 0  ")) << p.output();
    }
    child_process w({tool, "stat", hub.endpoint, "--watch", "--interval", "50"});
    EXPECT_TRUE(w.wait_count(hub.endpoint, 3)) << w.output();
    w.signal(SIGINT);
    EXPECT_EQ(w.wait_exit(deadline_after(generous)), 0) << w.output();
    EXPECT_EQ(w.output().find('\033'), std::string::npos) << "no terminal codes into a pipe";
    EXPECT_TRUE(w.has_line("")) << "snapshots are separated by a blank line";
}

TEST(ZchanToolCli, ARestartedHubShowsNoGhostSessions) {
    std::string ep;
    {
        hub_process first(
            {"--channel", "jobs:4", "--heartbeat", "100", "--heartbeat-timeout", "500"});
        ASSERT_FALSE(first.endpoint.empty()) << first.proc.output();
        ep = first.endpoint;
        child_process recv({tool, "recv", ep, "jobs"});
        ASSERT_TRUE(stat_until(ep, "jobs", [](auto& c) { return c.receivers == 1; }));
        first.proc.kill_now();
        EXPECT_EQ(recv.wait_exit(deadline_after(generous)), 1) << recv.output();
    }
    // The same port again: a new hub has no session but the ones that dial it now.
    child_process second({tool, "hub", ep, "--channel", "jobs:4"});
    ASSERT_TRUE(second.wait_for_text(ep)) << second.output();
    child_process stat({tool, "stat", ep});
    EXPECT_EQ(stat.wait_exit(deadline_after(generous)), 0) << stat.output();
    EXPECT_TRUE(contains(stat, "  sessions 0  ")) << stat.output();
    const auto row = stat_until(ep, "jobs", [](auto& c) { return c.sessions == 0; });
    EXPECT_TRUE(row);
}

}  // namespace

// Drives the real `zchan` command-line tool (tools/zchan): stat --json,
// binary-safe framings (-0, netstrings), --timeout, --heartbeat, the close
// subcommand, and closing after the last of N producers (--close-after).
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include <gtest/gtest.h>
#include <signal.h>

#include <zchan/zchan.hpp>
#include "child_process.hpp"
#include "zchan_test_support.hpp"
#include "zchan_tool_support.hpp"

namespace {

using namespace std::chrono_literals;
using namespace zchan_tool_test;

// ---- a small strict JSON parser, enough to check stat --json ------------------

struct json;
using json_object = std::map<std::string, json>;
using json_array = std::vector<json>;
struct json {
    std::variant<std::nullptr_t, bool, double, std::string, json_array, json_object> v;
    [[nodiscard]] const json_object& obj() const { return std::get<json_object>(v); }
    [[nodiscard]] const json_array& arr() const { return std::get<json_array>(v); }
    [[nodiscard]] double num() const { return std::get<double>(v); }
    [[nodiscard]] const std::string& str() const { return std::get<std::string>(v); }
    [[nodiscard]] bool boolean() const { return std::get<bool>(v); }
};

class json_parser {
public:
    explicit json_parser(std::string_view s) : s_(s) {}
    /// The one value `s` holds; throws std::runtime_error if it is not exactly one JSON value.
    json parse() {
        json j = value();
        ws();
        if (i_ != s_.size()) fail("trailing text");
        return j;
    }

private:
    [[noreturn]] void fail(const std::string& why) {
        throw std::runtime_error("JSON: " + why + " at " + std::to_string(i_));
    }
    void ws() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\t')) ++i_;
    }
    bool eat(char c) {
        ws();
        if (i_ < s_.size() && s_[i_] == c) {
            ++i_;
            return true;
        }
        return false;
    }
    json value() {
        ws();
        if (i_ >= s_.size()) fail("end of input");
        const char c = s_[i_];
        if (c == '{') {
            ++i_;
            json_object o;
            if (eat('}')) return {o};
            do {
                ws();
                std::string k = string();
                if (!eat(':')) fail("expected ':'");
                o.emplace(std::move(k), value());
            } while (eat(','));
            if (!eat('}')) fail("expected '}'");
            return {o};
        }
        if (c == '[') {
            ++i_;
            json_array a;
            if (eat(']')) return {a};
            do {
                a.push_back(value());
            } while (eat(','));
            if (!eat(']')) fail("expected ']'");
            return {a};
        }
        if (c == '"') return {string()};
        if (s_.substr(i_, 4) == "true") {
            i_ += 4;
            return {true};
        }
        if (s_.substr(i_, 5) == "false") {
            i_ += 5;
            return {false};
        }
        if (s_.substr(i_, 4) == "null") {
            i_ += 4;
            return {nullptr};
        }
        std::size_t end = i_;
        while (end < s_.size() &&
               (std::isdigit(static_cast<unsigned char>(s_[end])) != 0 || s_[end] == '-' ||
                s_[end] == '.' || s_[end] == 'e' || s_[end] == 'E' || s_[end] == '+')) {
            ++end;
        }
        if (end == i_) fail("unexpected character");
        const double d = std::stod(std::string(s_.substr(i_, end - i_)));
        i_ = end;
        return {d};
    }
    std::string string() {
        if (i_ >= s_.size() || s_[i_] != '"') fail("expected a string");
        ++i_;
        std::string out;
        while (i_ < s_.size() && s_[i_] != '"') {
            if (static_cast<unsigned char>(s_[i_]) < 0x20) fail("raw control character");
            if (s_[i_] == '\\') {
                ++i_;
                if (i_ >= s_.size()) fail("bad escape");
                const char e = s_[i_++];
                if (e == 'u') {
                    const unsigned cp = std::stoul(std::string(s_.substr(i_, 4)), nullptr, 16);
                    i_ += 4;
                    if (cp < 0x80) {
                        out += static_cast<char>(cp);
                    } else {
                        out += "?";  // enough for these tests
                    }
                } else if (e == 'n') {
                    out += '\n';
                } else {
                    out += e;
                }
                continue;
            }
            out += s_[i_++];
        }
        if (i_ >= s_.size()) fail("unterminated string");
        ++i_;
        return out;
    }
    std::string_view s_;
    std::size_t i_ = 0;
};

std::string temp_file(const std::string& tag, const std::string& content) {
    const auto p = std::filesystem::temp_directory_path() /
                   ("zchan_tool_" + tag + "_" + std::to_string(::getpid()));
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
}

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

zchan_test::child_options stdout_only() {
    zchan_test::child_options o;
    o.merge_stderr = false;
    return o;
}

// ---- tests --------------------------------------------------------------------

TEST(ZchanToolFeatures, StatJsonHasStableKeysAndParses) {
    hub_process hub({"--channel", "jobs:8", "--channel", "we\"ird\\name:0"});
    ASSERT_FALSE(hub.endpoint.empty()) << hub.proc.output();
    {
        auto jobs = zchan::dial<std::string>(hub.endpoint, "jobs");
        for (const char* v : {"a", "b", "c"}) jobs << std::string(v);
        ASSERT_EQ(jobs.recv(), std::optional<std::string>("a"));
        jobs.close();
    }
    child_process p({tool, "stat", "--json", hub.endpoint}, stdout_only());
    ASSERT_EQ(p.wait_exit(deadline_after(generous)), 0) << p.output();
    ASSERT_EQ(p.lines().size(), 1U) << "one line per snapshot: " << p.output();
    const json j = json_parser(p.lines()[0]).parse();
    const auto& top = j.obj();
    EXPECT_EQ(top.at("endpoint").str(), hub.endpoint);
    EXPECT_EQ(top.at("sessions").num(), 0) << "stat's own session is not counted";
    EXPECT_EQ(top.at("refused_dials").num(), 0);
    EXPECT_EQ(top.at("malformed_frames").num(), 0);
    const auto& chans = top.at("channels").arr();
    ASSERT_EQ(chans.size(), 2U);
    const auto& jobs = chans[0].obj();
    std::vector<std::string> keys;
    for (const auto& [k, v] : jobs) keys.push_back(k);
    EXPECT_EQ(keys, (std::vector<std::string>{"cap", "closed", "errors", "len", "name", "receivers",
                                              "returned", "senders", "sessions", "type",
                                              "values_in", "values_out"}));
    EXPECT_EQ(jobs.at("name").str(), "jobs");
    EXPECT_EQ(jobs.at("type").str(), "string");
    EXPECT_EQ(jobs.at("len").num(), 2);
    EXPECT_EQ(jobs.at("cap").num(), 8);
    EXPECT_TRUE(jobs.at("closed").boolean());
    EXPECT_EQ(jobs.at("values_in").num(), 3);
    // in = out - returned + len
    EXPECT_EQ(jobs.at("values_in").num(),
              jobs.at("values_out").num() - jobs.at("returned").num() + jobs.at("len").num());
    EXPECT_EQ(chans[1].obj().at("name").str(), "we\"ird\\name");
    EXPECT_EQ(chans[1].obj().at("type").str(), "");

    // --watch --json: one parsable line per snapshot.
    child_process w({tool, "stat", "--json", "--watch", "--interval", "50", hub.endpoint},
                    stdout_only());
    ASSERT_TRUE(w.wait_count("{", 2)) << w.output();
    w.signal(SIGINT);
    EXPECT_EQ(w.wait_exit(deadline_after(generous)), 0);
    for (const auto& l : w.lines()) EXPECT_NO_THROW((void)json_parser(l).parse()) << l;
}

TEST(ZchanToolFeatures, NulAndNetstringFramingCarryAnyBytes) {
    hub_process hub({"--channel", "bin:16"});
    ASSERT_FALSE(hub.endpoint.empty()) << hub.proc.output();
    using namespace std::string_literals;
    const std::vector<std::string> values{"two\nlines", "crlf\r\n", "\xff\xfe not utf-8", "",
                                          "tab\there"};
    // -0: each value ends with NUL (values hold no NUL).
    std::string nul_in;
    for (const auto& v : values) nul_in += v + '\0';
    const auto in0 = temp_file("nul_in", nul_in);
    const auto out0 = temp_file("nul_out", "");
    child_process s0(bash(shell_quote(tool) + " send -0 " + shell_quote(hub.endpoint) + " bin < " +
                          shell_quote(in0)));
    EXPECT_EQ(s0.wait_exit(deadline_after(generous)), 0) << s0.output();
    child_process r0(bash(shell_quote(tool) + " recv -0 -n 5 " + shell_quote(hub.endpoint) +
                          " bin > " + shell_quote(out0)));
    EXPECT_EQ(r0.wait_exit(deadline_after(generous)), 0) << r0.output();
    EXPECT_EQ(read_file(out0), nul_in);

    // netstrings: any bytes, NUL included.
    const std::vector<std::string> binary{"nul\0inside"s, "\0"s, "", "a,b:c\n"};
    std::string ns_in;
    for (const auto& v : binary) ns_in += std::to_string(v.size()) + ":" + v + ",";
    const auto in1 = temp_file("ns_in", ns_in + "\n");  // whitespace between netstrings is fine
    const auto out1 = temp_file("ns_out", "");
    child_process s1(bash(shell_quote(tool) + " send --framing netstring " +
                          shell_quote(hub.endpoint) + " bin --close < " + shell_quote(in1)));
    EXPECT_EQ(s1.wait_exit(deadline_after(generous)), 0) << s1.output();
    child_process r1(bash(shell_quote(tool) + " recv --framing netstring " +
                          shell_quote(hub.endpoint) + " bin > " + shell_quote(out1)));
    EXPECT_EQ(r1.wait_exit(deadline_after(generous)), 0) << r1.output();
    EXPECT_EQ(read_file(out1), ns_in);
    // What a C++ receiver would see is the same bytes (checked through a fresh channel).
    {
        auto ch = zchan::dial<std::string>(hub.endpoint, "bin2", [] {
            zchan::net_options o;
            o.create_capacity = 8;
            return o;
        }());
        child_process s2(bash(shell_quote(tool) + " send --framing netstring " +
                              shell_quote(hub.endpoint) + " bin2 < " + shell_quote(in1)));
        EXPECT_EQ(s2.wait_exit(deadline_after(generous)), 0) << s2.output();
        for (const auto& v : binary) EXPECT_EQ(ch.recv(), std::optional<std::string>(v));
    }
    // A broken netstring is an error that says where it stopped.
    const auto bad = temp_file("ns_bad", "3:abc,5:ab");
    child_process s3(bash(shell_quote(tool) + " send --framing netstring " +
                          shell_quote(hub.endpoint) + " bin2 < " + shell_quote(bad)));
    EXPECT_EQ(s3.wait_exit(deadline_after(generous)), 1) << s3.output();
    EXPECT_TRUE(contains(s3, "input ends inside a netstring; 1 value(s) from here were accepted"))
        << s3.output();
    for (const auto& f : {in0, out0, in1, out1, bad}) std::filesystem::remove(f);
}

// `zchan send` flushes its window before exit 0. Sending the last batch
// drains the socket, which could read and dispatch the CREDIT confirming it
// before flush() listed itself to be woken by it: the send then waited
// forever (about 1 run in 25 when several ran at once). Short bursts, many
// times, two at a time.
TEST(ZchanToolFeatures, ShortBurstsFlushAndExitEveryTime) {
    hub_process hub({"--channel", "a:16", "--channel", "b:16"});
    ASSERT_FALSE(hub.endpoint.empty()) << hub.proc.output();
    const auto in = temp_file("burst_in", "1\n2\n3\n4\n5\n");
    const int rounds = static_cast<int>(zchan_test::scale(40));
    for (int round = 0; round < rounds; ++round) {
        std::vector<std::unique_ptr<child_process>> senders;
        for (const char* name : {"a", "b"}) {
            senders.push_back(std::make_unique<child_process>(
                bash(shell_quote(tool) + " send " + shell_quote(hub.endpoint) + " " + name + " < " +
                     shell_quote(in))));
        }
        for (auto& s : senders) {
            ASSERT_EQ(s->wait_exit(deadline_after(generous)), 0) << "round " << round << "\n"
                                                                 << s->output();
        }
        for (const char* name : {"a", "b"}) {
            child_process r(
                bash(shell_quote(tool) + " recv -n 5 " + shell_quote(hub.endpoint) + " " + name));
            ASSERT_EQ(r.wait_exit(deadline_after(generous)), 0) << r.output();
        }
    }
}

TEST(ZchanToolFeatures, TimeoutsExitWith124AndSayHowFarTheyGot) {
    hub_process hub({"--channel", "empty:4", "--channel", "full:1"});
    ASSERT_FALSE(hub.endpoint.empty()) << hub.proc.output();
    {
        child_process r({tool, "recv", hub.endpoint, "empty", "--timeout", "200"});
        EXPECT_EQ(r.wait_exit(deadline_after(generous)), 124) << r.output();
        EXPECT_TRUE(contains(r, "no value within 200 ms; 0 value(s) received")) << r.output();
    }
    {
        child_process s(bash("printf '1\\n2\\n3\\n' | " + shell_quote(tool) + " send " +
                             shell_quote(hub.endpoint) + " full -t 200"));
        EXPECT_EQ(s.wait_exit(deadline_after(generous)), 124) << s.output();
        EXPECT_TRUE(contains(s, "no room in channel \"full\" within 200 ms; 1 value(s)"))
            << s.output();
    }
    // The value that timed out was not sent: exactly one value is in "full".
    const auto row = stat_until(hub.endpoint, "full", [](auto& c) { return c.sessions == 0; });
    ASSERT_TRUE(row);
    EXPECT_EQ(row->len, 1U);
}

TEST(ZchanToolFeatures, HeartbeatOptionsDetectAStoppedHubSoonerThanTheDefault) {
    // The home's heartbeat settings govern its sessions (protocol.md §12.1).
    hub_process hub({"--channel", "jobs:4", "--heartbeat", "100", "--heartbeat-timeout", "500"});
    ASSERT_FALSE(hub.endpoint.empty()) << hub.proc.output();
    child_process r({tool, "recv", hub.endpoint, "jobs"});
    ASSERT_TRUE(stat_until(hub.endpoint, "jobs", [](auto& c) { return c.receivers == 1; }));
    const auto start = std::chrono::steady_clock::now();
    hub.proc.signal(SIGSTOP);
    EXPECT_EQ(r.wait_exit(deadline_after(generous)), 1) << r.output();
    const auto took = std::chrono::steady_clock::now() - start;
    hub.proc.signal(SIGCONT);
    EXPECT_TRUE(contains(r,
                         "lost the hub (peer lost: nothing heard from the home within the "
                         "heartbeat timeout (500 ms)) after 0 value(s)"))
        << r.output();
    EXPECT_LT(took, 2900ms) << "the default heartbeat timeout is 3000 ms";
    child_process bad(
        {tool, "hub", "tcp://127.0.0.1:*", "--heartbeat", "500", "--heartbeat-timeout", "400"});
    EXPECT_EQ(bad.wait_exit(deadline_after(generous)), 2) << bad.output();
}

TEST(ZchanToolFeatures, CloseSubcommandClosesAChannelOfAnyType) {
    hub_process hub({"--channel", "nums:4:i32"});
    ASSERT_FALSE(hub.endpoint.empty()) << hub.proc.output();
    auto nums = zchan::dial<std::int32_t>(hub.endpoint, "nums");
    nums << 7;
    child_process c({tool, "close", hub.endpoint, "nums"});
    EXPECT_EQ(c.wait_exit(deadline_after(generous)), 0) << c.output();
    EXPECT_EQ(nums.recv(), std::optional<std::int32_t>(7)) << "values in it are still received";
    EXPECT_EQ(nums.recv(), std::nullopt) << "then the range ends";
    child_process again({tool, "close", hub.endpoint, "nums"});
    EXPECT_EQ(again.wait_exit(deadline_after(generous)), 1) << again.output();
    EXPECT_TRUE(contains(again, "was already closed")) << again.output();
    child_process none({tool, "close", hub.endpoint, "nothing"});
    EXPECT_EQ(none.wait_exit(deadline_after(generous)), 1) << none.output();
    EXPECT_TRUE(contains(none, "no channel \"nothing\"")) << none.output();
}

TEST(ZchanToolFeatures, TheLastOfNProducersClosesTheChannel) {
    hub_process hub({});
    ASSERT_FALSE(hub.endpoint.empty()) << hub.proc.output();
    constexpr int producers = 3;
    child_process recv({tool, "recv", hub.endpoint, "work", "--cap", "8"});
    std::vector<std::unique_ptr<child_process>> sends;
    for (int p = 0; p < producers; ++p) {
        sends.push_back(std::make_unique<child_process>(
            bash("seq " + std::to_string(p * 100 + 1) + " " + std::to_string(p * 100 + 50) + " | " +
                 shell_quote(tool) + " send " + shell_quote(hub.endpoint) +
                 " work --cap 8 --close-after " + std::to_string(producers))));
    }
    for (auto& s : sends) EXPECT_EQ(s->wait_exit(deadline_after(generous)), 0) << s->output();
    // recv's range ends because the last producer closed the channel.
    EXPECT_EQ(recv.wait_exit(deadline_after(generous)), 0) << recv.output();
    auto got = numbers(recv);
    std::sort(got.begin(), got.end());
    std::vector<long> want;
    for (int p = 0; p < producers; ++p) {
        for (long v = p * 100 + 1; v <= p * 100 + 50; ++v) want.push_back(v);
    }
    EXPECT_EQ(got, want);
    // The count is reset for the next round.
    const auto done = stat_until(hub.endpoint, "work.done", [](auto& c) { return c.len == 0; });
    EXPECT_TRUE(done);
}

}  // namespace

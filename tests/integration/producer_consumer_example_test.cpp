// Runs examples/producer_consumer (the Go producer/consumer port) and checks its
// log against what the Go program guarantees.
#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include "zchan_test_support.hpp"

namespace {

const std::string example_path = std::string(ZCHAN_BINARY_DIR) + "/examples/producer_consumer";

// Runs the example with `args`, bounded by coreutils `timeout` so a hung child
// fails the test instead of hanging it.
zchan_test::run_result run_example(const std::string& args) {
    return zchan_test::run_program("timeout 60 '" + example_path + "' " + args);
}

// True if `line` starts with Go's log prefix "2026/11/22 10:00:00 ".
bool has_go_log_prefix(const std::string& line) {
    static constexpr std::string_view shape = "dddd/dd/dd dd:dd:dd ";
    if (line.size() < shape.size()) return false;
    for (std::size_t i = 0; i < shape.size(); ++i) {
        const bool digit = line[i] >= '0' && line[i] <= '9';
        if (shape[i] == 'd' ? !digit : line[i] != shape[i]) return false;
    }
    return true;
}

// Strips Go's log prefix; fails if a line lacks it.
std::vector<std::string> messages_of(const zchan_test::run_result& r) {
    std::vector<std::string> out;
    for (const auto& line : r.lines) {
        if (has_go_log_prefix(line)) {
            out.push_back(line.substr(std::string_view("dddd/dd/dd dd:dd:dd ").size()));
        } else {
            ADD_FAILURE() << "line without a Go-style log prefix: '" << line << "'";
        }
    }
    return out;
}

// Position of `msg` in `msgs`; fails (and returns npos) unless it occurs exactly once.
std::size_t index_of(const std::vector<std::string>& msgs, const std::string& msg) {
    const auto n = std::count(msgs.begin(), msgs.end(), msg);
    if (n != 1) {
        ADD_FAILURE() << "'" << msg << "' appears " << n << " times, expected once";
        return std::string::npos;
    }
    return static_cast<std::size_t>(std::find(msgs.begin(), msgs.end(), msg) - msgs.begin());
}

// The orderings every run of the Go program shows, whatever the scheduling.
void check_log(const zchan_test::run_result& r) {
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const auto msgs = messages_of(r);
    ASSERT_EQ(msgs.size(), 5U * 3U + 4U) << r.out;  // Sending/Sent/Received x5 + 4 one-offs

    std::vector<std::size_t> received_at;
    for (int i = 0; i < 5; ++i) {
        const std::string n = std::to_string(i);
        const auto sending = index_of(msgs, "Sending " + n);
        const auto sent = index_of(msgs, "Sent " + n);
        const auto received = index_of(msgs, "Received " + n);
        ASSERT_NE(sending, std::string::npos) << r.out;
        ASSERT_NE(sent, std::string::npos) << r.out;
        ASSERT_NE(received, std::string::npos) << r.out;
        EXPECT_LT(sending, sent) << r.out;
        EXPECT_LT(sending, received) << "value " << i << " received before it was sent\n" << r.out;
        received_at.push_back(received);
    }
    EXPECT_TRUE(std::is_sorted(received_at.begin(), received_at.end())) << "values out of order\n"
                                                                        << r.out;

    const auto finished_producing = index_of(msgs, "Finished producing");
    const auto finished_consuming = index_of(msgs, "Finished consuming");
    const auto waiting = index_of(msgs, "Waiting for everything to complete");
    ASSERT_NE(finished_producing, std::string::npos) << r.out;
    ASSERT_NE(finished_consuming, std::string::npos) << r.out;
    ASSERT_NE(waiting, std::string::npos) << r.out;
    // "Finished producing" may land before or after the last "Received": either is fine.
    EXPECT_LT(index_of(msgs, "Sent 4"), finished_producing) << r.out;
    // The consumer's range ends only after close(ch), i.e. after the producer finished.
    EXPECT_LT(finished_producing, finished_consuming) << r.out;
    EXPECT_LT(received_at.back(), finished_consuming) << r.out;
    EXPECT_EQ(msgs.back(), "All done, exiting!") << r.out;
    EXPECT_LT(waiting, msgs.size() - 1) << r.out;
}

// A log as the example writes it, with "Received 2" moved before "Sending 2".
zchan_test::run_result log_with_early_receive() {
    zchan_test::run_result r;
    r.exit_code = 0;
    const char* msgs[] = {"Waiting for everything to complete",
                          "Sending 0",
                          "Sent 0",
                          "Received 0",
                          "Sending 1",
                          "Sent 1",
                          "Received 1",
                          "Received 2",
                          "Sending 2",
                          "Sent 2",
                          "Sending 3",
                          "Sent 3",
                          "Received 3",
                          "Sending 4",
                          "Sent 4",
                          "Received 4",
                          "Finished producing",
                          "Finished consuming",
                          "All done, exiting!"};
    for (const char* m : msgs) r.lines.push_back(std::string("2026/11/22 10:00:00 ") + m);
    return r;
}

TEST(ProducerConsumerExampleIntegration, LogCheckerRejectsAValueReceivedBeforeItWasSent) {
    EXPECT_NONFATAL_FAILURE(check_log(log_with_early_receive()), "received before it was sent");
}

TEST(ProducerConsumerExampleIntegration, ExampleIsBuilt) {
    ASSERT_TRUE(std::filesystem::exists(example_path))
        << example_path << " is missing: build the producer_consumer target first";
}

TEST(ProducerConsumerExampleIntegration, WithoutDelaySendsAndReceivesAllFiveValuesInOrder) {
    ASSERT_TRUE(std::filesystem::exists(example_path)) << example_path;
    for (int run = 0; run < 20; ++run) {
        SCOPED_TRACE("run " + std::to_string(run));
        check_log(run_example("--delay-ms 0"));
    }
}

TEST(ProducerConsumerExampleIntegration, WithShortDelaySendsAndReceivesAllFiveValuesInOrder) {
    ASSERT_TRUE(std::filesystem::exists(example_path)) << example_path;
    check_log(run_example("--delay-ms 20"));
}

TEST(ProducerConsumerExampleIntegration, RejectsUnknownArguments) {
    ASSERT_TRUE(std::filesystem::exists(example_path)) << example_path;
    const auto r = run_example("--bogus 2>/dev/null");
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_TRUE(r.out.empty()) << r.out;
    EXPECT_EQ(run_example("--delay-ms nope 2>/dev/null").exit_code, 2);
}

}  // namespace

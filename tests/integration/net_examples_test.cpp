// Runs the multi-process examples as separate OS processes over
// tcp://127.0.0.1:* and checks their logs: examples/net_producer +
// examples/net_consumer, and examples/worker_pool (dispatcher + 3 workers).
// Every wait is bounded; child_process kills and reaps a child on failure.
#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "child_process.hpp"
#include "zchan_test_support.hpp"

namespace {

using zchan_test::child_process;
using zchan_test::go_log_messages;

const std::string examples = std::string(ZCHAN_BINARY_DIR) + "/examples";
const std::string producer_bin = examples + "/net_producer";
const std::string consumer_bin = examples + "/net_consumer";
const std::string dispatcher_bin = examples + "/worker_pool/dispatcher";
const std::string worker_bin = examples + "/worker_pool/worker";

// Waits for the "listening on ENDPOINT" line of a serving example.
std::optional<std::string> endpoint_of(const child_process& p) {
    return p.wait_for_text("listening on ");
}

TEST(NetExamplesIntegration, ExamplesAreBuilt) {
    for (const auto& bin : {producer_bin, consumer_bin, dispatcher_bin, worker_bin}) {
        EXPECT_TRUE(std::filesystem::exists(bin)) << bin << " is missing: build the examples";
    }
}

TEST(NetExamplesIntegration, ProducerAndOneConsumerPassAllValuesInOrderThenBothExitZero) {
    child_process producer({producer_bin, "tcp://127.0.0.1:*", "--count", "5", "--delay-ms", "0",
                            "--wait-ms", "10000"});
    const auto ep = endpoint_of(producer);
    ASSERT_TRUE(ep.has_value()) << producer.output();
    ASSERT_EQ(ep->rfind("tcp://127.0.0.1:", 0), 0U) << *ep;
    child_process consumer({consumer_bin, *ep, "--name", "consumer-1"});

    EXPECT_EQ(consumer.wait_exit(), 0) << consumer.output();
    EXPECT_EQ(producer.wait_exit(), 0) << producer.output();

    EXPECT_EQ(go_log_messages(consumer),
              (std::vector<std::string>{"Received 0", "Received 1", "Received 2", "Received 3",
                                        "Received 4", "Finished consuming"}))
        << consumer.output();
    const auto p = go_log_messages(producer);
    ASSERT_FALSE(p.empty()) << producer.output();
    std::vector<std::string> expected{"listening on " + *ep};
    for (int i = 0; i < 5; ++i) {
        expected.push_back("Sending " + std::to_string(i));
        expected.push_back("Sent " + std::to_string(i));
    }
    for (const char* m : {"Finished producing", "Waiting for everything to complete",
                          "consumer-1 finished consuming", "All done, exiting!"}) {
        expected.emplace_back(m);
    }
    EXPECT_EQ(p, expected) << producer.output();
}

TEST(NetExamplesIntegration, ThirdSendWaitsForAConsumerBecauseTheCapacityIsTwo) {
    child_process producer({producer_bin, "--count", "3", "--delay-ms", "0"});
    const auto ep = endpoint_of(producer);
    ASSERT_TRUE(ep.has_value()) << producer.output();
    ASSERT_TRUE(producer.wait_for_text("Sending 2").has_value()) << producer.output();
    // Negative check: no consumer yet, so "Sent 2" must not appear.
    EXPECT_TRUE(zchan_test::stays_false_for(
        [&] {
            const auto m = go_log_messages(producer);
            return std::find(m.begin(), m.end(), "Sent 2") != m.end();
        },
        std::chrono::milliseconds(200)))
        << producer.output();
    child_process consumer({consumer_bin, *ep});
    EXPECT_EQ(consumer.wait_exit(), 0) << consumer.output();
    EXPECT_EQ(producer.wait_exit(), 0) << producer.output();
}

TEST(NetExamplesIntegration, ConsumerWithNothingToDialFailsInsteadOfHanging) {
    // Port 1 (tcpmux) is not served on a test machine; dial gives up after 300 ms.
    child_process consumer({consumer_bin, "tcp://127.0.0.1:1", "--connect-timeout-ms", "300"});
    EXPECT_EQ(consumer.wait_exit(), 1) << consumer.output();
    EXPECT_NE(consumer.output().find("error:"), std::string::npos) << consumer.output();
}

TEST(NetExamplesIntegration, ProducerGivesUpWhenTheExpectedConsumerNeverComes) {
    child_process producer({producer_bin, "--count", "0", "--consumers", "1", "--wait-ms", "200"});
    EXPECT_EQ(producer.wait_exit(), 1) << producer.output();
    const auto m = go_log_messages(producer);
    ASSERT_FALSE(m.empty());
    EXPECT_EQ(m.back(), "Gave up waiting for consumers: 1 did not finish") << producer.output();
}

TEST(NetExamplesIntegration, BadArgumentsExitWithUsage) {
    for (std::vector<std::string> args : {std::vector<std::string>{producer_bin, "--count", "x"},
                                          {producer_bin, "--bogus", "1"},
                                          {consumer_bin},
                                          {consumer_bin, "tcp://127.0.0.1:1", "--name"},
                                          {dispatcher_bin, "--jobs", "-1"},
                                          {worker_bin}}) {
        child_process p(args);
        EXPECT_EQ(p.wait_exit(), 2) << args[0] << "\n" << p.output();
    }
}

TEST(NetExamplesIntegration, WorkerPoolDoesEveryJobExactlyOnceWithThreeWorkers) {
    const int jobs = 30;
    child_process dispatcher(
        {dispatcher_bin, "--jobs", std::to_string(jobs), "--workers", "3", "--wait-ms", "15000"});
    const auto ep = endpoint_of(dispatcher);
    ASSERT_TRUE(ep.has_value()) << dispatcher.output();
    std::vector<std::unique_ptr<child_process>> workers;
    for (int w = 1; w <= 3; ++w) {
        workers.push_back(std::make_unique<child_process>(std::vector<std::string>{
            worker_bin, *ep, "--name", "worker-" + std::to_string(w), "--delay-ms", "1"}));
    }
    for (auto& w : workers) EXPECT_EQ(w->wait_exit(), 0) << w->output();
    EXPECT_EQ(dispatcher.wait_exit(), 0) << dispatcher.output();

    // The workers' logs: each job started and finished by exactly one worker.
    std::multiset<int> started;
    std::multiset<int> finished;
    for (int w = 1; w <= 3; ++w) {
        const std::string name = "worker-" + std::to_string(w);
        const auto msgs = go_log_messages(*workers[static_cast<std::size_t>(w - 1)]);
        ASSERT_FALSE(msgs.empty());
        EXPECT_EQ(msgs.back(), name + " found no more jobs");
        for (const auto& m : msgs) {
            if (m.rfind(name + " started job ", 0) == 0) {
                started.insert(std::stoi(m.substr(name.size() + 13)));
            } else if (m.rfind(name + " finished job ", 0) == 0) {
                finished.insert(std::stoi(m.substr(name.size() + 14)));
            }
        }
    }
    // The dispatcher's log: one checked result per id, then the three workers.
    std::multiset<int> results;
    std::set<std::string> done;
    for (const auto& m : go_log_messages(dispatcher)) {
        if (m.rfind("Result of job ", 0) == 0) {
            const int id = std::stoi(m.substr(14));
            results.insert(id);
            EXPECT_NE(m.find(": PAYLOAD OF JOB " + std::to_string(id)), std::string::npos) << m;
        } else if (m.size() > 9 && m.ends_with(" finished")) {
            done.insert(m.substr(0, m.size() - 9));
        }
        EXPECT_EQ(m.find("Bad result"), std::string::npos) << m;
    }
    std::multiset<int> all;
    for (int id = 1; id <= jobs; ++id) all.insert(id);
    EXPECT_EQ(started, all) << "jobs started per worker log";
    EXPECT_EQ(finished, all);
    EXPECT_EQ(results, all) << dispatcher.output();
    EXPECT_EQ(done, (std::set<std::string>{"worker-1", "worker-2", "worker-3"}));
    const auto msgs = go_log_messages(dispatcher);
    ASSERT_FALSE(msgs.empty());
    EXPECT_EQ(msgs.back(), "All 30 results in, each job exactly once; exiting");
}

}  // namespace

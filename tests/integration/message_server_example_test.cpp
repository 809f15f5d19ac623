// Runs examples/message_server as separate OS processes over tcp://127.0.0.1:*: the server
// and several clients, and checks their logs: subscribers get exactly the messages of their
// topics, in order per publisher; nobody gets another topic's; everyone exits cleanly, also
// on SIGTERM (server) and SIGINT (client), and a killed client is detached as lost.
// Every wait is bounded; child_process kills and reaps a child on failure.
#include <csignal>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "child_process.hpp"
#include "zchan_test_support.hpp"

namespace {

using zchan_test::child_process;
using zchan_test::go_log_messages;

const std::string dir = std::string(ZCHAN_BINARY_DIR) + "/examples/message_server";
const std::string server_bin = dir + "/server";
const std::string client_bin = dir + "/client";

/// `argv` with a heartbeat timeout far above the default 3 s: on a shared 2-core machine
/// running sanitized builds, a process can be starved that long, and these tests are not
/// about loss (KilledClientIsDetachedAndOthersCarryOn is, and keeps the default).
std::vector<std::string> patient(std::vector<std::string> argv) {
    argv.insert(argv.end(), {"--heartbeat-timeout-ms", "20000"});
    return argv;
}

std::unique_ptr<child_process> start(std::vector<std::string> argv) {
    return std::make_unique<child_process>(patient(std::move(argv)));
}

/// One "Received TOPIC from PUBLISHER: BODY" line.
struct received {
    std::string topic, from, body;
};

/// The Received lines of a client's log, in order.
std::vector<received> received_of(const child_process& p) {
    std::vector<received> out;
    static const std::string prefix = "Received ";
    for (const auto& m : go_log_messages(p)) {
        if (m.rfind(prefix, 0) != 0) continue;
        const auto from_at = m.find(" from ", prefix.size());
        const auto colon = m.find(": ", from_at == std::string::npos ? 0 : from_at);
        if (from_at == std::string::npos || colon == std::string::npos) {
            ADD_FAILURE() << "malformed line: " << m;
            continue;
        }
        out.push_back({m.substr(prefix.size(), from_at - prefix.size()),
                       m.substr(from_at + 6, colon - from_at - 6), m.substr(colon + 2)});
    }
    return out;
}

bool contains(const std::vector<std::string>& msgs, const std::string& m) {
    return std::find(msgs.begin(), msgs.end(), m) != msgs.end();
}

TEST(MessageServerExampleIntegration, ProgramsAreBuilt) {
    for (const auto& bin : {server_bin, client_bin}) {
        EXPECT_TRUE(std::filesystem::exists(bin)) << bin << " is missing: build the examples";
    }
}

TEST(MessageServerExampleIntegration, SubscribersGetExactlyTheirTopicsInOrderPerPublisher) {
    constexpr int count = 25;  // messages per publisher
    // name -> topics; publishers: name -> topic. "tech" has a publisher and no subscriber,
    // "weather" a subscriber and no publisher; "news" has two publishers.
    const std::map<std::string, std::vector<std::string>> subscribers = {
        {"ann", {"news", "sport"}}, {"ben", {"sport"}}, {"cat", {"weather", "news"}}};
    const std::map<std::string, std::string> publishers = {
        {"pub-a", "news"}, {"pub-b", "news"}, {"pub-s", "sport"}, {"pub-t", "tech"}};
    const auto clients = subscribers.size() + publishers.size();

    auto server = start({server_bin, "tcp://127.0.0.1:*", "--clients", std::to_string(clients)});
    const auto ep = server->wait_for_text("listening on ");
    ASSERT_TRUE(ep.has_value()) << server->output();
    ASSERT_EQ(ep->rfind("tcp://127.0.0.1:", 0), 0U) << *ep;

    // Expected messages per subscriber: every publisher of each of its topics, count each.
    std::map<std::string, std::set<std::pair<std::string, std::string>>> streams;  // (topic, from)
    std::map<std::string, child_process*> sub_procs;
    std::vector<std::unique_ptr<child_process>> procs;
    for (const auto& [name, topics] : subscribers) {
        for (const auto& [pub, topic] : publishers) {
            if (std::find(topics.begin(), topics.end(), topic) != topics.end()) {
                streams[name].emplace(topic, pub);
            }
        }
        std::vector<std::string> argv = {client_bin, *ep, "--name", name};
        for (const auto& t : topics) {
            argv.insert(argv.end(), {"--subscribe", t});
        }
        argv.insert(argv.end(), {"--expect", std::to_string(streams[name].size() * count),
                                 "--wait-ms", "20000"});
        procs.push_back(start(argv));
        sub_procs[name] = procs.back().get();
    }
    // Publishing starts once every subscription is confirmed, so every message must arrive.
    for (const auto& [name, topics] : subscribers) {
        for (const auto& t : topics) {
            ASSERT_TRUE(sub_procs[name]->wait_for_text("Subscribed to " + t).has_value())
                << name << "\n"
                << sub_procs[name]->output() << server->output();
        }
    }
    std::map<std::string, child_process*> pub_procs;
    for (const auto& [name, topic] : publishers) {
        procs.push_back(start({client_bin, *ep, "--name", name, "--publish", topic, "--count",
                               std::to_string(count)}));
        pub_procs[name] = procs.back().get();
    }

    for (auto& p : procs) EXPECT_EQ(p->wait_exit(), 0) << p->output();
    EXPECT_EQ(server->wait_exit(), 0) << server->output();

    for (const auto& [name, topics] : subscribers) {
        const child_process& p = *sub_procs[name];
        // Per (topic, publisher): bodies "<topic> message 1..count", in that order.
        std::map<std::pair<std::string, std::string>, std::vector<std::string>> got;
        for (const auto& r : received_of(p)) {
            EXPECT_NE(std::find(topics.begin(), topics.end(), r.topic), topics.end())
                << name << " got a message of " << r.topic << ", not one of its topics";
            got[{r.topic, r.from}].push_back(r.body);
        }
        std::set<std::pair<std::string, std::string>> got_streams;
        for (const auto& [stream, bodies] : got) {
            got_streams.insert(stream);
            std::vector<std::string> want;
            for (int i = 1; i <= count; ++i) {
                want.push_back(stream.first + " message " + std::to_string(i));
            }
            EXPECT_EQ(bodies, want) << name << " from " << stream.second << " on " << stream.first;
        }
        EXPECT_EQ(got_streams, streams[name]) << name << "\n" << p.output();
        const auto msgs = go_log_messages(p);
        for (const auto& t : topics) {
            EXPECT_TRUE(contains(msgs, "Unsubscribed from " + t)) << name << "\n" << p.output();
        }
        ASSERT_FALSE(msgs.empty());
        EXPECT_EQ(msgs.back(), "Left after receiving " +
                                   std::to_string(streams[name].size() * count) + " messages");
    }
    for (const auto& [name, topic] : publishers) {
        const auto msgs = go_log_messages(*pub_procs[name]);
        EXPECT_TRUE(contains(msgs, "Published " + std::to_string(count) + " messages to " + topic))
            << pub_procs[name]->output();
        EXPECT_TRUE(received_of(*pub_procs[name]).empty()) << pub_procs[name]->output();
        ASSERT_FALSE(msgs.empty());
        EXPECT_EQ(msgs.back(), "Left after receiving 0 messages");
    }
    const auto s = go_log_messages(*server);
    for (const auto& [name, topics] : subscribers) {
        EXPECT_TRUE(contains(s, name + " left")) << server->output();
        for (const auto& t : topics) EXPECT_TRUE(contains(s, name + " subscribed to " + t));
    }
    for (const auto& [name, topic] : publishers) EXPECT_TRUE(contains(s, name + " left"));
    ASSERT_FALSE(s.empty());
    EXPECT_EQ(s.back(), "All clients gone; 0 deliveries dropped; exiting") << server->output();
}

TEST(MessageServerExampleIntegration, ServerEndsOnSigtermAfterItsClientsLeave) {
    child_process server(patient({server_bin}));
    const auto ep = server.wait_for_text("listening on ");
    ASSERT_TRUE(ep.has_value()) << server.output();
    // No --expect: this client stays until the server closes its inbox.
    child_process listener(patient({client_bin, *ep, "--name", "listener", "--subscribe", "news"}));
    ASSERT_TRUE(listener.wait_for_text("Subscribed to news").has_value()) << listener.output();
    // Negative check first: nothing ends the server but a signal.
    EXPECT_TRUE(zchan_test::stays_false_for(
        [&] {
            return !server.lines().empty() &&
                   server.lines().back().find("exiting") != std::string::npos;
        },
        std::chrono::milliseconds(200)));
    ASSERT_TRUE(server.signal(SIGTERM));
    EXPECT_EQ(listener.wait_exit(), 0) << listener.output();
    EXPECT_EQ(server.wait_exit(), 0) << server.output();
    const auto s = go_log_messages(server);
    EXPECT_TRUE(contains(s, "Got SIGTERM; shutting down")) << server.output();
    EXPECT_TRUE(contains(s, "listener left")) << server.output();
    EXPECT_EQ(go_log_messages(listener).back(), "Left after receiving 0 messages")
        << listener.output();
}

TEST(MessageServerExampleIntegration, ClientLeavesOnSigintAndTheServerCountsIt) {
    child_process server(patient({server_bin, "--clients", "1"}));
    const auto ep = server.wait_for_text("listening on ");
    ASSERT_TRUE(ep.has_value()) << server.output();
    child_process listener(patient({client_bin, *ep, "--name", "listener", "--subscribe", "news"}));
    ASSERT_TRUE(listener.wait_for_text("Subscribed to news").has_value()) << listener.output();
    ASSERT_TRUE(listener.signal(SIGINT));
    EXPECT_EQ(listener.wait_exit(), 0) << listener.output();
    EXPECT_EQ(server.wait_exit(), 0) << server.output();
    EXPECT_TRUE(contains(go_log_messages(listener), "Got SIGINT; leaving")) << listener.output();
    EXPECT_TRUE(contains(go_log_messages(server), "listener left")) << server.output();
}

TEST(MessageServerExampleIntegration, KilledClientIsDetachedAndOthersCarryOn) {
    child_process server({server_bin, "--clients", "2"});
    const auto ep = server.wait_for_text("listening on ");
    ASSERT_TRUE(ep.has_value()) << server.output();
    child_process victim({client_bin, *ep, "--name", "victim", "--subscribe", "news"});
    ASSERT_TRUE(victim.wait_for_text("Subscribed to news").has_value()) << victim.output();
    ASSERT_TRUE(victim.signal(SIGKILL));
    EXPECT_EQ(victim.wait_exit(), -SIGKILL);
    // Its reader sees peer_lost within the heartbeat timeout (3 s by default).
    ASSERT_TRUE(server.wait_for_text("victim was lost").has_value()) << server.output();
    child_process publisher(
        {client_bin, *ep, "--name", "publisher", "--publish", "news", "--count", "5"});
    EXPECT_EQ(publisher.wait_exit(), 0) << publisher.output();
    EXPECT_EQ(server.wait_exit(), 0) << server.output();
}

TEST(MessageServerExampleIntegration, BadArgumentsExitWithUsage) {
    for (const std::vector<std::string>& args :
         {std::vector<std::string>{server_bin, "--clients", "x"},
          {server_bin, "--bogus", "1"},
          {server_bin, "--heartbeat-timeout-ms", "500"},
          {client_bin},
          {client_bin, "tcp://127.0.0.1:1", "--count", "3"},
          {client_bin, "tcp://127.0.0.1:1", "--name"}}) {
        child_process p(args);
        EXPECT_EQ(p.wait_exit(), 2) << args[0] << "\n" << p.output();
    }
}

TEST(MessageServerExampleIntegration, ClientWithNoServerFailsInsteadOfHanging) {
    child_process c({client_bin, "tcp://127.0.0.1:1", "--connect-timeout-ms", "300"});
    EXPECT_EQ(c.wait_exit(), 1) << c.output();
    EXPECT_NE(c.output().find("error:"), std::string::npos) << c.output();
}

}  // namespace

// docker-compose.yml: this machine has no Docker engine, so (a) the file is
// validated with `docker-compose config` (skipped, code 77, when
// docker-compose is not installed) and checked for the services and commands
// the demo needs, and (b) the same topology, a producer and two consumers,
// runs as processes on tcp://127.0.0.1:* (no fixed port: the consumers get
// the endpoint from the producer's "listening on" line).
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "child_process.hpp"
#include "zchan_test_support.hpp"

namespace {

using zchan_test::child_process;
using zchan_test::go_log_messages;

const std::string source_dir = ZCHAN_SOURCE_DIR;
const std::string compose_file = source_dir + "/docker-compose.yml";
const std::string examples = std::string(ZCHAN_BINARY_DIR) + "/examples";

bool have_docker_compose() { return std::system("command -v docker-compose >/dev/null 2>&1") == 0; }

// `docker-compose -f docker-compose.yml ARGS`, bounded by coreutils timeout; stdout only
// (errors go to the test's stderr).
zchan_test::run_result compose(const std::string& args) {
    return zchan_test::run_program("timeout 60 docker-compose -f '" + compose_file + "' " + args);
}

// The service whose block in `config` output follows "  NAME:" up to the next service.
std::string service_block(const std::string& config, const std::string& name) {
    const auto at = config.find("\n  " + name + ":\n");
    if (at == std::string::npos) return {};
    auto end = at + 1;
    // Service keys are indented by two spaces; anything deeper belongs to the block.
    while (true) {
        end = config.find('\n', end);
        if (end == std::string::npos || end + 3 > config.size()) return config.substr(at);
        if (config[end + 1] != ' ' || config[end + 3] != ' ') return config.substr(at, end - at);
        ++end;
    }
}

TEST(ComposeIntegration, ComposeFileIsValidAndRunsAProducerAndTwoConsumers) {
    if (!have_docker_compose()) GTEST_SKIP() << "docker-compose is not installed";
    const auto services = compose("config --services");
    ASSERT_EQ(services.exit_code, 0) << services.out;
    EXPECT_EQ(std::multiset<std::string>(services.lines.begin(), services.lines.end()),
              (std::multiset<std::string>{"producer", "consumer-1", "consumer-2"}))
        << services.out;

    const auto config = compose("config");
    ASSERT_EQ(config.exit_code, 0) << config.out;
    const auto producer = service_block(config.out, "producer");
    EXPECT_NE(producer.find("- net_producer\n    - tcp://*:5555\n    - --consumers\n    - '2'"),
              std::string::npos)
        << producer;
    for (const char* name : {"consumer-1", "consumer-2"}) {
        const auto block = service_block(config.out, name);
        EXPECT_NE(block.find("- net_consumer\n    - tcp://producer:5555\n    - --name\n    - " +
                             std::string(name)),
                  std::string::npos)
            << block;
        EXPECT_NE(block.find("depends_on:\n      producer:"), std::string::npos) << block;
    }
    // One image for all three, built from the Dockerfile next to the compose file.
    for (const char* name : {"producer", "consumer-1", "consumer-2"}) {
        const auto block = service_block(config.out, name);
        EXPECT_NE(block.find("context: " + source_dir + "\n"), std::string::npos) << block;
        EXPECT_NE(block.find("image: zchan-examples"), std::string::npos) << block;
    }
}

TEST(ComposeIntegration, DockerfileBuildsFromDebian12Packages) {
    std::ifstream in(source_dir + "/Dockerfile");
    ASSERT_TRUE(in) << "Dockerfile missing";
    std::stringstream text;
    text << in.rdbuf();
    const std::string df = text.str();
    EXPECT_NE(df.find("FROM debian:bookworm\n"), std::string::npos) << df;
    for (const char* pkg : {"cmake", "libzmq3-dev", "cppzmq-dev", "libcereal-dev"}) {
        EXPECT_NE(df.find(pkg), std::string::npos) << pkg;
    }
    for (const char* target : {"net_producer", "net_consumer"}) {
        EXPECT_NE(df.find(target), std::string::npos) << target;
    }
}

TEST(ComposeIntegration, SameTopologyAsProcessesDeliversEveryValueToExactlyOneConsumer) {
    const int count = 40;
    child_process producer({examples + "/net_producer", "tcp://127.0.0.1:*", "--count",
                            std::to_string(count), "--delay-ms", "2", "--consumers", "2",
                            "--wait-ms", "15000"});
    const auto ep = producer.wait_for_text("listening on ");
    ASSERT_TRUE(ep.has_value()) << producer.output();
    std::vector<std::unique_ptr<child_process>> consumers;
    for (const char* name : {"consumer-1", "consumer-2"}) {
        consumers.push_back(std::make_unique<child_process>(
            std::vector<std::string>{examples + "/net_consumer", *ep, "--name", name}));
    }
    for (auto& c : consumers) EXPECT_EQ(c->wait_exit(), 0) << c->output();
    EXPECT_EQ(producer.wait_exit(), 0) << producer.output();

    std::map<int, int> times_received;
    for (auto& c : consumers) {
        const auto msgs = go_log_messages(*c);
        ASSERT_FALSE(msgs.empty()) << c->output();
        EXPECT_EQ(msgs.back(), "Finished consuming") << c->output();
        int last = -1;
        for (const auto& m : msgs) {
            if (m.rfind("Received ", 0) != 0) continue;
            const int v = std::stoi(m.substr(9));
            EXPECT_LT(last, v) << "one sender's values arrive in order\n" << c->output();
            last = v;
            ++times_received[v];
        }
    }
    ASSERT_EQ(times_received.size(), static_cast<std::size_t>(count)) << producer.output();
    for (int v = 0; v < count; ++v) EXPECT_EQ(times_received[v], 1) << "value " << v;
    const auto p = go_log_messages(producer);
    ASSERT_FALSE(p.empty());
    EXPECT_EQ(p.back(), "All done, exiting!") << producer.output();
}

}  // namespace

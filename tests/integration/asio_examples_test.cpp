// Runs the zchan::asio examples (examples/asio/) and checks what they print:
// the producer/consumer's log keeps Go's orderings, the worker pool hands out
// every job once, and the echo server answers TCP clients through its
// handler threads.
#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/write.hpp>
#include <gtest/gtest.h>

#include "child_process.hpp"
#include "zchan_test_support.hpp"

namespace {

const std::string examples = std::string(ZCHAN_BINARY_DIR) + "/examples/asio/";

zchan_test::run_result run_example(const std::string& name, const std::string& args) {
    return zchan_test::run_program("timeout 60 '" + examples + name + "' " + args);
}

/// The message of a Go log line ("2026/11/22 10:00:00 Sent 3" -> "Sent 3").
std::string message_of(const std::string& line) {
    constexpr std::size_t prefix = std::string_view("dddd/dd/dd dd:dd:dd ").size();
    return line.size() >= prefix ? line.substr(prefix) : std::string();
}

std::size_t index_of(const std::vector<std::string>& msgs, const std::string& msg) {
    EXPECT_EQ(std::count(msgs.begin(), msgs.end(), msg), 1) << msg;
    return static_cast<std::size_t>(std::find(msgs.begin(), msgs.end(), msg) - msgs.begin());
}

TEST(AsioExamplesIntegration, ProducerConsumerKeepsGosOrderings) {
    ASSERT_TRUE(std::filesystem::exists(examples + "producer_consumer"));
    for (const char* delay : {"0", "0", "0", "5"}) {
        SCOPED_TRACE(std::string("--delay-ms ") + delay);
        const auto r = run_example("producer_consumer", std::string("--delay-ms ") + delay);
        ASSERT_EQ(r.exit_code, 0) << r.out;
        std::vector<std::string> msgs;
        for (const auto& line : r.lines) msgs.push_back(message_of(line));
        ASSERT_EQ(msgs.size(), 5U * 3U + 4U) << r.out;
        std::size_t last_received = 0;
        for (int i = 0; i < 5; ++i) {
            const std::string n = std::to_string(i);
            const auto sending = index_of(msgs, "Sending " + n);
            const auto received = index_of(msgs, "Received " + n);
            EXPECT_LT(sending, index_of(msgs, "Sent " + n)) << r.out;
            EXPECT_LT(sending, received) << r.out;
            if (i > 0) {
                EXPECT_LT(last_received, received) << "values out of order\n" << r.out;
            }
            last_received = received;
        }
        const auto produced = index_of(msgs, "Finished producing");
        const auto consumed = index_of(msgs, "Finished consuming");
        EXPECT_LT(index_of(msgs, "Sent 4"), produced) << r.out;
        EXPECT_LT(produced, consumed) << r.out;
        EXPECT_LT(last_received, consumed) << r.out;
        EXPECT_EQ(msgs.back(), "All done, exiting!") << r.out;
    }
}

TEST(AsioExamplesIntegration, WorkerPoolHandsOutEveryJobOnceAndSumsTheResults) {
    ASSERT_TRUE(std::filesystem::exists(examples + "worker_pool"));
    const auto r = run_example("worker_pool", "--workers 4 --jobs 50");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    std::vector<int> jobs;
    for (const auto& line : r.lines) {
        const auto at = line.find(": job ");
        if (line.rfind("worker ", 0) == 0 && at != std::string::npos) {
            jobs.push_back(std::stoi(line.substr(at + 6)));
        }
    }
    std::sort(jobs.begin(), jobs.end());
    ASSERT_EQ(jobs.size(), 50U) << r.out;
    for (int i = 0; i < 50; ++i) EXPECT_EQ(jobs[static_cast<std::size_t>(i)], i + 1);
    ASSERT_FALSE(r.lines.empty());
    EXPECT_EQ(r.lines.back(), "sum 42925") << r.out;  // 1^2 + ... + 50^2
}

TEST(AsioExamplesIntegration, EchoServerAnswersEveryLineThroughItsHandlerThreads) {
    ASSERT_TRUE(std::filesystem::exists(examples + "echo_server"));
    constexpr int clients = 3;
    constexpr int lines_each = 20;
    zchan_test::child_process server({examples + "echo_server", "--handlers", "2", "--requests",
                                      std::to_string(clients * lines_each)});
    const auto port = server.wait_for("listening on 127.0.0.1:");
    ASSERT_TRUE(port) << server.tail();

    asio::io_context io;
    std::vector<asio::ip::tcp::socket> sockets;
    for (int c = 0; c < clients; ++c) {
        sockets.emplace_back(io);
        sockets.back().connect(
            {asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(std::stoi(*port))});
    }
    // Interleave the clients line by line, so their requests share the channel.
    std::vector<std::string> buffers(clients);
    for (int i = 0; i < lines_each; ++i) {
        for (int c = 0; c < clients; ++c) {
            const std::string line =
                "client " + std::to_string(c) + " line " + std::to_string(i) + "\n";
            asio::write(sockets[static_cast<std::size_t>(c)], asio::buffer(line));
            auto& buf = buffers[static_cast<std::size_t>(c)];
            const std::size_t n = asio::read_until(sockets[static_cast<std::size_t>(c)],
                                                   asio::dynamic_buffer(buf), '\n');
            EXPECT_EQ(buf.substr(0, n), line);
            buf.erase(0, n);
        }
    }
    EXPECT_EQ(server.wait_exit(), 0) << server.tail();
    EXPECT_TRUE(server.has_line("stopped")) << server.tail();
}

}  // namespace

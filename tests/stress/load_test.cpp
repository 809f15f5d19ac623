// Load (issue 4 §4): 64 remote clients through one server over tcp loopback.
//
// One zchan::server serves one buffered channel; 32 producer and 32 consumer
// threads each dial it with their own handle (their own DEALER socket and
// background thread), so all 64 are remote clients of the same home. Each
// producer sends (producer id, sequence number, send time); when every producer
// is done the home closes the channel and every consumer's range must end.
// Checks: every (producer, seq) received exactly once, and each consumer sees
// each producer's values in increasing seq order (one sender's order, §8.4).
//
// Size: ZCHAN_LOAD_VALUES values in total (default 100000, a tenth of that
// under sanitizers); ZCHAN_LOAD_PREFETCH=P makes the consumers dial with a
// prefetch window of P (protocol.md §9.2; default 0, exact semantics), and
// ZCHAN_LOAD_WINDOW=W the producers with a send window of W (§9.1). Each run
// prints one line with throughput, p50/p99 latency (send to receive, from the
// timestamp in the value) and this process's peak RSS (server and all 64
// clients together). The second test runs the same with CurveZMQ on, for its
// cost. The figures in README.md "Load" come from:
//   ZCHAN_LOAD_VALUES=1000000 build/release/tests/stress_load_test
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "zchan/channel.hpp"
#include "zchan/net.hpp"
#include "zchan/security.hpp"
#include "zchan_test_support.hpp"

namespace {

using namespace std::chrono_literals;
using value = std::tuple<std::uint32_t, std::uint64_t, std::int64_t>;  // producer, seq, sent ns
using steady = std::chrono::steady_clock;

constexpr std::size_t producers = 32;
constexpr std::size_t consumers = 32;

std::size_t env_size(const char* name, std::size_t fallback) {
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0' ? static_cast<std::size_t>(std::stoull(v)) : fallback;
}

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch())
        .count();
}

struct consumer_result {
    std::vector<std::uint32_t> latency_us;
    // (producer, seq) pairs in arrival order are not kept; instead:
    std::vector<std::uint64_t> last_seq = std::vector<std::uint64_t>(producers, 0);
    std::vector<std::vector<std::uint64_t>> seqs =
        std::vector<std::vector<std::uint64_t>>(producers);
    bool in_order = true;
    std::string error;
};

/// The whole run; with `curve`, CurveZMQ is on (protocol.md §14): the home has
/// its keypair and an allow-list of the 64 clients' public keys, and each
/// client its own keypair, so every frame is encrypted and authenticated.
void run_load(bool curve) {
    const std::size_t total = env_size("ZCHAN_LOAD_VALUES", zchan_test::scale(100'000));
    const auto prefetch = static_cast<std::uint32_t>(env_size("ZCHAN_LOAD_PREFETCH", 0));
    const auto window = static_cast<std::uint32_t>(env_size("ZCHAN_LOAD_WINDOW", 0));
    zchan::net_options opts;
    opts.connect_timeout = 20s;  // 64 dials at once on a busy 2-core machine

    std::vector<zchan::net_options> client_opts(producers + consumers, opts);
    auto server_opts = opts;
    if (curve) {
        const auto home_keys = zchan::curve::generate();
        zchan::curve::allow_list allowed;
        for (std::size_t i = 0; i < client_opts.size(); ++i) {
            const auto mine = zchan::curve::generate();
            allowed.add(mine.public_key);
            client_opts[i].curve_client =
                zchan::curve::client_options{mine.secret_key, home_keys.public_key};
        }
        server_opts.curve_server = zchan::curve::server_options{home_keys.secret_key, allowed};
    }
    for (std::size_t i = producers; i < client_opts.size(); ++i) client_opts[i].prefetch = prefetch;
    for (std::size_t i = 0; i < producers; ++i) client_opts[i].send_window = window;

    zchan::channel<value> home(1024);
    zchan::server srv("tcp://127.0.0.1:*", server_opts);
    srv.serve("load", home);
    const std::string ep = srv.endpoint();

    // Dial every client before the clock starts: the run measures the stream.
    std::vector<zchan::channel<value>> out;
    std::vector<zchan::channel<value>> in;
    for (std::size_t i = 0; i < producers; ++i) {
        out.push_back(zchan::dial<value>(ep, "load", client_opts[i]));
    }
    for (std::size_t i = 0; i < consumers; ++i) {
        in.push_back(zchan::dial<value>(ep, "load", client_opts[producers + i]));
    }
    ASSERT_EQ(srv.sessions(), producers + consumers);

    std::vector<consumer_result> results(consumers);
    zchan_test::start_gate gate(static_cast<std::ptrdiff_t>(producers + consumers));
    std::atomic<std::size_t> producers_left{producers};
    std::atomic<bool> producer_failed{false};
    std::vector<std::thread> threads;
    for (std::size_t c = 0; c < consumers; ++c) {
        threads.emplace_back([&, c] {
            auto& r = results[c];
            r.latency_us.reserve(total / consumers * 2);
            gate.arrive_and_wait();
            try {
                for (auto&& [p, seq, sent] : in[c]) {
                    const auto lat = (now_ns() - sent) / 1000;
                    r.latency_us.push_back(
                        static_cast<std::uint32_t>(std::max<std::int64_t>(0, lat)));
                    if (p >= producers) {
                        r.error = "producer id out of range";
                        return;
                    }
                    if (seq <= r.last_seq[p]) r.in_order = false;
                    r.last_seq[p] = seq;
                    r.seqs[p].push_back(seq);
                }
            } catch (const std::exception& e) {
                r.error = e.what();
            }
        });
    }
    for (std::size_t p = 0; p < producers; ++p) {
        threads.emplace_back([&, p] {
            const std::size_t n = total / producers + (p < total % producers ? 1 : 0);
            gate.arrive_and_wait();
            try {
                for (std::uint64_t seq = 1; seq <= n; ++seq) {
                    out[p].send(value{static_cast<std::uint32_t>(p), seq, now_ns()});
                }
            } catch (const std::exception&) {
                producer_failed = true;
            }
            // The last producer closes the channel at the home: every range then ends.
            if (producers_left.fetch_sub(1) == 1) home.close();
        });
    }
    const auto t0 = steady::now();
    gate.open();
    for (auto& t : threads) t.join();
    const double secs = std::chrono::duration<double>(steady::now() - t0).count();

    ASSERT_FALSE(producer_failed);
    std::vector<std::uint32_t> lat;
    lat.reserve(total);
    std::vector<std::vector<std::uint64_t>> seen(producers);
    for (auto& r : results) {
        EXPECT_TRUE(r.error.empty()) << r.error;
        EXPECT_TRUE(r.in_order) << "a consumer saw one producer's values out of order";
        lat.insert(lat.end(), r.latency_us.begin(), r.latency_us.end());
        for (std::size_t p = 0; p < producers; ++p) {
            seen[p].insert(seen[p].end(), r.seqs[p].begin(), r.seqs[p].end());
        }
    }
    EXPECT_EQ(lat.size(), total) << "values lost or duplicated";
    for (std::size_t p = 0; p < producers; ++p) {
        const std::size_t n = total / producers + (p < total % producers ? 1 : 0);
        auto& s = seen[p];
        std::sort(s.begin(), s.end());
        ASSERT_EQ(s.size(), n) << "producer " << p;
        for (std::size_t i = 0; i < n; ++i) {
            ASSERT_EQ(s[i], i + 1) << "producer " << p << ": lost or duplicated seq";
        }
    }
    ASSERT_FALSE(lat.empty());
    std::sort(lat.begin(), lat.end());
    const auto pct = [&](double q) {
        return lat[std::min(lat.size() - 1,
                            static_cast<std::size_t>(q * static_cast<double>(lat.size())))];
    };
    std::printf(
        "load%s: %zu values, %zu producers + %zu consumers (prefetch %u, send window %u), %.2f s, "
        "%.0f values/s, latency p50 %u us, p99 %u us, peak RSS %ld kB\n",
        curve ? " (CURVE)" : "", total, producers, consumers, prefetch, window, secs,
        static_cast<double>(total) / secs, pct(0.50), pct(0.99), zchan_test::status_kb("VmHWM"));
}

TEST(Load, SixtyFourRemoteClientsThroughOneServerExactlyOnce) { run_load(false); }

TEST(Load, SixtyFourCurveClientsThroughOneServerExactlyOnce) { run_load(true); }

}  // namespace

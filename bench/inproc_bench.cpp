// zchan_bench_inproc: in-process channel throughput, zchan vs a mutex/condvar/deque baseline.
//
// Every case is registered twice, as "zchan/<case>" and "baseline/<case>", and reports
// items_per_second, where an item is one value received (for ping-pong: one round trip).
// bench/go/main.go runs the same cases with Go channels; keep the two in step (item counts,
// who sends and who receives, what is timed) or the comparison means nothing.
//
// Timing: work happens on several threads, so each iteration is timed by hand with
// steady_clock and reported through UseManualTime(). Threads are started before the clock
// and released together through a std::latch, so thread creation is not measured; what is
// measured is first send to last receive. Each iteration uses a fresh channel.
//
// Cases (N = items per iteration, see case_items()):
//   spsc_cap1024         one sender thread, the timing thread receives N; capacity 1024
//   spsc_cap1            same, capacity 1
//   spsc_unbuffered      same, unbuffered (rendezvous)
//   pingpong_unbuffered  two unbuffered channels; the timing thread sends ping, a partner
//                        thread answers pong; N round trips
//   mpmc4x4_cap1024      4 sender threads send N/4 each, 4 receiver threads receive N/4 each
//   range_1m             a channel of capacity 1'000'000 is filled and closed (not timed),
//                        then the timing thread ranges over it until closed and drained
//
// The machine, measured in the same run (see bm_cacheline_roundtrip):
//   machine/cacheline_roundtrip  two threads pinned to two CPUs pass one cache line back and
//                        forth; an item is one round trip. The floor under every hand-off
//                        between threads on different CPUs; bench/run_inproc prints it.
//
// Cases for bench/report's charts only (no Go twin in bench/go, not in bench/run_inproc):
//   throughput_<size>    as spsc_cap1024, but each value is a std::string of <size> bytes
//                        (8, 64, 150, 1024, 4096) whose first 8 bytes are its sequence number;
//                        the sender builds each string (an allocation above 15 bytes, the
//                        same for both implementations). Named like zchan_bench_net's
//                        throughput_<size> so that the charts put them side by side.
//   pingpong_unbuffered_latency  as pingpong_unbuffered with 10k round trips in one
//                        iteration, each timed on its own: reports p50_us/p90_us/p99_us
//                        counters (latency_counters.hpp) besides items_per_second.
//
// Coroutine cases (where zchan::asio is built; bench/asio_cases.hpp): zchan_coro/<case> and
// asio_channel/<case> for spsc_unbuffered, spsc_cap1 and pingpong_unbuffered, as coroutines on
// one io_context thread; bench/run_inproc compares them with Go's same cases.
//
// Select cases (zchan only; for A/B runs of select changes, not in bench/run_inproc):
//   select_default_idle_<kind>   one thread: select {<-a, <-b, default} with a and b empty
//                        (kind: cap1 = capacity 1, unbuffered): the default path
//   select_default_ready_cap1    one thread: a <- i, then select {<-a, <-b, default}
//   select_ready_cap1            one thread: a <- i, then select {<-a, <-b} (no default)
//   select_pingpong_unbuffered   pingpong_unbuffered with every send and receive a
//                        two-case select (the second case on a channel nobody uses): the
//                        blocking path, registration included
//
// Extra flags:
//   --zchan_items_scale=F  multiplies every item count (the ctest smoke run uses a small F so
//                          that it finishes in seconds even where every hand-off sleeps).
//   --zchan_pin            diagnostic: pins the threads of each case round-robin to the CPUs
//                          the process may use (timing thread first), so that the two threads
//                          of an SPSC or ping-pong case never share a CPU. Without it the
//                          scheduler places the threads, as in a real program; comparing the
//                          two separates the channel's own cost from the cost of where the
//                          threads happen to run.
//
// Reading the numbers: with OS threads on a small machine, a hand-off between two threads
// costs ~0.1-0.5 us when they run on different CPUs and several microseconds (a context
// switch) when they share one, and which one you get is up to the scheduler and to whatever
// else runs on the machine. Go hands off between goroutines in user space and does not care.
// bench/run_inproc reports how much other work shared the CPUs during each run.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <latch>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <benchmark/benchmark.h>
#include <pthread.h>
#include <sched.h>

#include <zchan/zchan.hpp>
#include "baseline_queue.hpp"
#include "latency_counters.hpp"
#ifdef ZCHAN_BENCH_ASIO
#include "asio_cases.hpp"
#endif

namespace {

using clock_type = std::chrono::steady_clock;

double g_items_scale = 1.0;  // set once in main() before any benchmark runs
bool g_pin = false;          // --zchan_pin; set once in main()
bool g_failed = false;       // a case saw wrong values; written only by the timing thread

enum class bench_case {
    spsc_cap1024,
    spsc_cap1,
    spsc_unbuffered,
    pingpong,
    mpmc4x4,
    range_1m,
    latency,  // pingpong_unbuffered_latency (no Go twin)
};

// Items per iteration. Same numbers as bench/go/main.go.
std::int64_t case_items(bench_case c) {
    std::int64_t n = 100'000;
    if (c == bench_case::range_1m) {
        n = 1'000'000;
    } else if (c == bench_case::latency) {
        // One iteration; enough round trips for a p99, few enough that the mutex+condvar
        // baseline (~150 us a round trip here) takes a couple of seconds.
        n = 10'000;
    }
    const auto scaled = static_cast<std::int64_t>(static_cast<double>(n) * g_items_scale);
    // mpmc splits the work 4 ways; keep it divisible and never zero.
    return scaled < 4 ? 4 : scaled - scaled % 4;
}

// The two implementations behind one tiny interface, so each case is written once.
// Receivers never see a closed channel except in range_1m, hence recv() returns the value.
// T is int except in the throughput_<size> cases (std::string).
template <class T>
struct zchan_impl_of {
    using chan = zchan::channel<T>;
    static chan make(std::size_t cap) { return chan(cap); }
    static void send(chan& c, T v) { c.send(std::move(v)); }
    static T recv(chan& c) { return *c.recv(); }
    static void close(chan& c) { c.close(); }
    static std::int64_t drain(chan& c) {
        std::int64_t sum = 0;
        for (auto&& v : c) {
            sum += v;
        }
        return sum;
    }
};

template <class T>
struct baseline_impl_of {
    using chan = zchan_bench::baseline_queue<T>;
    // baseline_queue is neither copyable nor movable; the cases hold it in a unique_ptr.
    static std::unique_ptr<chan> make(std::size_t cap) { return std::make_unique<chan>(cap); }
    static void send(std::unique_ptr<chan>& c, T v) { c->send(std::move(v)); }
    static T recv(std::unique_ptr<chan>& c) { return *c->recv(); }
    static void close(std::unique_ptr<chan>& c) { c->close(); }
    static std::int64_t drain(std::unique_ptr<chan>& c) {
        std::int64_t sum = 0;
        while (auto v = c->recv()) {
            sum += *v;
        }
        return sum;
    }
};

using zchan_impl = zchan_impl_of<int>;
using baseline_impl = baseline_impl_of<int>;

// --zchan_pin support. The CPUs the process may use, read once in main().
std::vector<int>& allowed_cpus() {
    static std::vector<int> cpus;
    return cpus;
}

void read_allowed_cpus() {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        return;
    }
    for (int c = 0; c < CPU_SETSIZE; ++c) {
        if (CPU_ISSET(c, &set)) {
            allowed_cpus().push_back(c);
        }
    }
}

// Pins the calling thread to the slot-th allowed CPU (round-robin); no-op without --zchan_pin.
void pin_slot(int slot) {
    const auto& cpus = allowed_cpus();
    if (!g_pin || cpus.empty()) {
        return;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpus[static_cast<std::size_t>(slot) % cpus.size()], &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

// Pins the timing thread (slot 0) for one case and gives it all allowed CPUs back afterwards,
// since Google Benchmark runs every case on that thread.
class timing_thread_pin {
public:
    timing_thread_pin() { pin_slot(0); }
    ~timing_thread_pin() {
        if (!g_pin || allowed_cpus().empty()) {
            return;
        }
        cpu_set_t set;
        CPU_ZERO(&set);
        for (int c : allowed_cpus()) {
            CPU_SET(c, &set);
        }
        pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    }
    timing_thread_pin(const timing_thread_pin&) = delete;
    timing_thread_pin& operator=(const timing_thread_pin&) = delete;
};

double seconds_between(clock_type::time_point a, clock_type::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

// Sum of 0 .. n-1: every case checks that each value arrived exactly once.
std::int64_t triangle(std::int64_t n) { return n * (n - 1) / 2; }

bool check_sum(benchmark::State& state, std::int64_t got, std::int64_t want) {
    if (got != want) {
        state.SkipWithError("received values do not sum to what was sent");
        g_failed = true;
        return false;
    }
    return true;
}

template <class Impl>
void bm_spsc(benchmark::State& state, bench_case c, std::size_t cap) {
    const std::int64_t n = case_items(c);
    const timing_thread_pin pin;
    for (auto _ : state) {
        auto ch = Impl::make(cap);
        std::latch start(2);
        std::jthread sender([&] {
            pin_slot(1);
            start.arrive_and_wait();
            for (std::int64_t i = 0; i < n; ++i) {
                Impl::send(ch, static_cast<int>(i));
            }
        });
        start.arrive_and_wait();
        const auto t0 = clock_type::now();
        std::int64_t sum = 0;
        for (std::int64_t i = 0; i < n; ++i) {
            sum += Impl::recv(ch);
        }
        const auto t1 = clock_type::now();
        sender.join();
        state.SetIterationTime(seconds_between(t0, t1));
        if (!check_sum(state, sum, triangle(n))) {
            break;
        }
    }
    state.SetItemsProcessed(state.iterations() * n);
}

template <class Impl>
void bm_pingpong(benchmark::State& state) {
    const std::int64_t n = case_items(bench_case::pingpong);
    const timing_thread_pin pin;
    for (auto _ : state) {
        auto ping = Impl::make(0);
        auto pong = Impl::make(0);
        std::latch start(2);
        std::jthread partner([&] {
            pin_slot(1);
            start.arrive_and_wait();
            for (std::int64_t i = 0; i < n; ++i) {
                Impl::send(pong, Impl::recv(ping));
            }
        });
        start.arrive_and_wait();
        const auto t0 = clock_type::now();
        std::int64_t sum = 0;
        for (std::int64_t i = 0; i < n; ++i) {
            Impl::send(ping, static_cast<int>(i));
            sum += Impl::recv(pong);
        }
        const auto t1 = clock_type::now();
        partner.join();
        state.SetIterationTime(seconds_between(t0, t1));
        if (!check_sum(state, sum, triangle(n))) {
            break;
        }
    }
    state.SetItemsProcessed(state.iterations() * n);
}

// pingpong_unbuffered with every round trip timed (see the case list at the top).
template <class Impl>
void bm_pingpong_latency(benchmark::State& state) {
    const std::int64_t n = case_items(bench_case::latency);
    const timing_thread_pin pin;
    zchan_bench::latency_samples samples(static_cast<std::size_t>(n));
    for (auto _ : state) {
        auto ping = Impl::make(0);
        auto pong = Impl::make(0);
        std::latch start(2);
        std::jthread partner([&] {
            pin_slot(1);
            start.arrive_and_wait();
            for (std::int64_t i = 0; i < n; ++i) {
                Impl::send(pong, Impl::recv(ping));
            }
        });
        start.arrive_and_wait();
        const auto t0 = clock_type::now();
        std::int64_t sum = 0;
        auto before = t0;
        for (std::int64_t i = 0; i < n; ++i) {
            Impl::send(ping, static_cast<int>(i));
            sum += Impl::recv(pong);
            const auto after = clock_type::now();
            samples.add(after - before);
            before = after;  // one clock read per round trip: the end of one starts the next
        }
        const auto t1 = before;
        partner.join();
        state.SetIterationTime(seconds_between(t0, t1));
        if (!check_sum(state, sum, triangle(n))) {
            break;
        }
    }
    state.SetItemsProcessed(state.iterations() * n);
    samples.report(state);
}

// A std::string of `size` bytes (at least 8) carrying `seq` in its first 8 bytes.
std::string make_value(std::size_t size, std::uint64_t seq) {
    std::string v(size, 's');
    std::memcpy(v.data(), &seq, sizeof seq);
    return v;
}

std::uint64_t value_seq(const std::string& v) {
    std::uint64_t seq = 0;
    std::memcpy(&seq, v.data(), std::min(v.size(), sizeof seq));
    return seq;
}

// throughput_<size>: spsc_cap1024 carrying std::string values of `size` bytes.
template <class Impl>
void bm_spsc_string(benchmark::State& state, std::size_t size) {
    const std::int64_t n = case_items(bench_case::spsc_cap1024);
    const timing_thread_pin pin;
    for (auto _ : state) {
        auto ch = Impl::make(1024);
        std::latch start(2);
        std::jthread sender([&] {
            pin_slot(1);
            start.arrive_and_wait();
            for (std::int64_t i = 0; i < n; ++i) {
                Impl::send(ch, make_value(size, static_cast<std::uint64_t>(i)));
            }
        });
        start.arrive_and_wait();
        const auto t0 = clock_type::now();
        std::int64_t sum = 0;
        bool sizes_ok = true;
        for (std::int64_t i = 0; i < n; ++i) {
            const std::string v = Impl::recv(ch);
            sizes_ok = sizes_ok && v.size() == size;
            sum += static_cast<std::int64_t>(value_seq(v));
        }
        const auto t1 = clock_type::now();
        sender.join();
        state.SetIterationTime(seconds_between(t0, t1));
        if (!check_sum(state, sizes_ok ? sum : -1, triangle(n))) {
            break;
        }
    }
    state.SetItemsProcessed(state.iterations() * n);
    state.SetBytesProcessed(state.iterations() * n * static_cast<std::int64_t>(size));
}

template <class Impl>
void bm_mpmc(benchmark::State& state) {
    constexpr int senders = 4;
    constexpr int receivers = 4;
    const std::int64_t n = case_items(bench_case::mpmc4x4);
    const std::int64_t per_sender = n / senders;
    const std::int64_t per_receiver = n / receivers;
    for (auto _ : state) {
        auto ch = Impl::make(1024);
        std::latch start(senders + receivers + 1);
        std::vector<std::int64_t> sums(receivers, 0);
        std::vector<std::jthread> threads;
        threads.reserve(senders + receivers);
        for (int s = 0; s < senders; ++s) {
            threads.emplace_back([&, s] {
                pin_slot(s);
                start.arrive_and_wait();
                const std::int64_t first = s * per_sender;
                for (std::int64_t i = first; i < first + per_sender; ++i) {
                    Impl::send(ch, static_cast<int>(i));
                }
            });
        }
        for (int r = 0; r < receivers; ++r) {
            threads.emplace_back([&, r] {
                pin_slot(senders + r + 1);  // offset by one: a receiver and "its" sender differ
                start.arrive_and_wait();
                std::int64_t sum = 0;
                for (std::int64_t i = 0; i < per_receiver; ++i) {
                    sum += Impl::recv(ch);
                }
                sums[static_cast<std::size_t>(r)] = sum;
            });
        }
        start.arrive_and_wait();
        const auto t0 = clock_type::now();
        for (auto& t : threads) {
            t.join();
        }
        const auto t1 = clock_type::now();
        state.SetIterationTime(seconds_between(t0, t1));
        std::int64_t sum = 0;
        for (auto s : sums) {
            sum += s;
        }
        if (!check_sum(state, sum, triangle(n))) {
            break;
        }
    }
    state.SetItemsProcessed(state.iterations() * n);
}

template <class Impl>
void bm_range(benchmark::State& state) {
    const std::int64_t n = case_items(bench_case::range_1m);
    for (auto _ : state) {
        auto ch = Impl::make(static_cast<std::size_t>(n));
        for (std::int64_t i = 0; i < n; ++i) {
            Impl::send(ch, static_cast<int>(i));
        }
        Impl::close(ch);
        const auto t0 = clock_type::now();
        const std::int64_t sum = Impl::drain(ch);
        const auto t1 = clock_type::now();
        state.SetIterationTime(seconds_between(t0, t1));
        if (!check_sum(state, sum, triangle(n))) {
            break;
        }
    }
    state.SetItemsProcessed(state.iterations() * n);
}

// ---- select cases (see the list at the top) ----------------------------------------------

enum class select_kind { idle_cap1, idle_unbuffered, default_ready, ready };

void bm_select_one_thread(benchmark::State& state, select_kind kind) {
    const std::size_t cap = kind == select_kind::idle_unbuffered ? 0 : 1;
    zchan::channel<int> a(cap);
    zchan::channel<int> b(cap);
    std::int64_t sum = 0;
    std::int64_t want = 0;
    int i = 0;
    auto take = [&](std::optional<int> v) { sum += *v; };
    for (auto _ : state) {
        switch (kind) {
            case select_kind::idle_cap1:
            case select_kind::idle_unbuffered:
                benchmark::DoNotOptimize(zchan::select(
                    zchan::recv_case(a, take), zchan::recv_case(b, take), zchan::default_case()));
                break;
            case select_kind::default_ready:
                a.send(i);
                want += i++;
                benchmark::DoNotOptimize(zchan::select(
                    zchan::recv_case(a, take), zchan::recv_case(b, take), zchan::default_case()));
                break;
            case select_kind::ready:
                a.send(i);
                want += i++;
                benchmark::DoNotOptimize(
                    zchan::select(zchan::recv_case(a, take), zchan::recv_case(b, take)));
                break;
        }
    }
    if (!check_sum(state, sum, want)) return;
    state.SetItemsProcessed(state.iterations());
}

void bm_select_pingpong(benchmark::State& state) {
    const std::int64_t n = case_items(bench_case::pingpong);
    const timing_thread_pin pin;
    zchan::channel<int> never;
    for (auto _ : state) {
        zchan::channel<int> ping;
        zchan::channel<int> pong;
        std::latch start(2);
        std::jthread partner([&] {
            pin_slot(1);
            start.arrive_and_wait();
            for (std::int64_t i = 0; i < n; ++i) {
                int v = 0;
                (void)zchan::select(zchan::recv_case(ping, [&](std::optional<int> x) { v = *x; }),
                                    zchan::recv_case(never));
                (void)zchan::select(zchan::send_case(pong, v), zchan::recv_case(never));
            }
        });
        start.arrive_and_wait();
        const auto t0 = clock_type::now();
        std::int64_t sum = 0;
        for (std::int64_t i = 0; i < n; ++i) {
            (void)zchan::select(zchan::send_case(ping, static_cast<int>(i)),
                                zchan::recv_case(never));
            (void)zchan::select(zchan::recv_case(pong, [&](std::optional<int> x) { sum += *x; }),
                                zchan::recv_case(never));
        }
        const auto t1 = clock_type::now();
        partner.join();
        state.SetIterationTime(seconds_between(t0, t1));
        if (!check_sum(state, sum, triangle(n))) {
            break;
        }
    }
    state.SetItemsProcessed(state.iterations() * n);
}

// Seconds for n round trips of one cache line between two threads pinned to the first two
// allowed CPUs, passing one atomic counter back and forth by spinning; 0 with fewer than two
// CPUs. The calling thread's affinity is restored afterwards.
double line_roundtrip_seconds(std::int64_t n) {
    const auto& cpus = allowed_cpus();
    if (cpus.size() < 2) {
        return 0;
    }
    const auto pin_to = [&](std::size_t i) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpus[i], &set);
        pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    };
    const auto play = [n](std::atomic<std::int64_t>& ball, std::int64_t first) {
        for (std::int64_t i = first; i < 2 * n; i += 2) {
            while (ball.load(std::memory_order_acquire) != i) {
                zchan::detail::cpu_relax();
            }
            ball.store(i + 1, std::memory_order_release);
        }
    };
    cpu_set_t saved;
    pthread_getaffinity_np(pthread_self(), sizeof saved, &saved);
    pin_to(0);
    alignas(64) std::atomic<std::int64_t> ball{0};
    std::latch start(2);
    std::jthread partner([&] {
        pin_to(1);
        start.arrive_and_wait();
        play(ball, 1);
    });
    start.arrive_and_wait();  // the partner is pinned and running
    const auto t0 = clock_type::now();
    play(ball, 0);
    while (ball.load(std::memory_order_acquire) != 2 * n) {
        zchan::detail::cpu_relax();
    }
    const auto t1 = clock_type::now();
    partner.join();
    pthread_setaffinity_np(pthread_self(), sizeof saved, &saved);
    return seconds_between(t0, t1);
}

// machine/cacheline_roundtrip: the hardware floor under every cross-thread hand-off; an item
// is one round trip of the line (line_roundtrip_seconds). On a virtual machine it depends on
// where the host runs the two vCPUs (the same core complex or not) and changes while the VM
// runs: measured here from ~70 ns to over 450 ns, from one second to the next. A hand-off
// between threads on different CPUs cannot cost less than one such round trip, while Go's
// ping-pong and capacity-1 cases hand off between goroutines on one OS thread and do not pay
// it. Every other case also reports it, probed right before and after the case, as the
// counter line_roundtrip_ns (see register_case).
void bm_cacheline_roundtrip(benchmark::State& state) {
    if (allowed_cpus().size() < 2) {
        state.SkipWithError("needs two CPUs");
        return;
    }
    // Scaled like the cases (the smoke run must not spin for long on a loaded machine).
    const auto n =
        std::max<std::int64_t>(1000, static_cast<std::int64_t>(1'000'000 * g_items_scale));
    double total_seconds = 0;
    for (auto _ : state) {
        const double secs = line_roundtrip_seconds(n);
        state.SetIterationTime(secs);
        total_seconds += secs;
    }
    state.SetItemsProcessed(state.iterations() * n);
    state.counters["ns_per_roundtrip"] =
        1e9 * total_seconds / static_cast<double>(state.iterations() * n);
}

// The mean of a short line_roundtrip_seconds probe before and after a case, in ns: how
// expensive a hand-off between the CPUs was while the case ran.
template <void (*Fn)(benchmark::State&)>
void with_line_probe(benchmark::State& state) {
    const auto n = std::max<std::int64_t>(200, static_cast<std::int64_t>(20'000 * g_items_scale));
    const double before = line_roundtrip_seconds(n);
    Fn(state);
    const double after = line_roundtrip_seconds(n);
    if (before > 0) {
        state.counters["line_roundtrip_ns"] = 1e9 * (before + after) / 2 / static_cast<double>(n);
    }
}

benchmark::internal::Benchmark* register_case(const char* impl, const std::string& name,
                                              void (*fn)(benchmark::State&)) {
    return benchmark::RegisterBenchmark((std::string(impl) + "/" + name).c_str(), fn)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
}

// Registers <impl>/<case> for both implementations, zchan first, case by case, so that the
// two runs of a case sit next to each other in time (the machine is shared and noisy). Each
// also reports the line_roundtrip_ns counter (with_line_probe).
template <template <class> class Case>
void register_both(const char* name) {
    register_case("zchan", name, &with_line_probe<&Case<zchan_impl>::run>);
    register_case("baseline", name, &with_line_probe<&Case<baseline_impl>::run>);
}

template <class Impl>
struct spsc_cap1024_case {
    static void run(benchmark::State& s) { bm_spsc<Impl>(s, bench_case::spsc_cap1024, 1024); }
};
template <class Impl>
struct spsc_cap1_case {
    static void run(benchmark::State& s) { bm_spsc<Impl>(s, bench_case::spsc_cap1, 1); }
};
template <class Impl>
struct spsc_unbuffered_case {
    static void run(benchmark::State& s) { bm_spsc<Impl>(s, bench_case::spsc_unbuffered, 0); }
};
template <class Impl>
struct pingpong_case {
    static void run(benchmark::State& s) { bm_pingpong<Impl>(s); }
};
template <class Impl>
struct mpmc_case {
    static void run(benchmark::State& s) { bm_mpmc<Impl>(s); }
};
template <class Impl>
struct range_case {
    static void run(benchmark::State& s) { bm_range<Impl>(s); }
};
template <class Impl>
struct pingpong_latency_case {
    static void run(benchmark::State& s) { bm_pingpong_latency<Impl>(s); }
};
template <std::size_t Size>
struct string_case {
    template <class Impl>
    static void run(benchmark::State& s) {
        bm_spsc_string<Impl>(s, Size);
    }
};

// throughput_<Size> for both implementations, zchan first (see register_both).
template <std::size_t Size>
void register_string_case() {
    const std::string name = "throughput_" + std::to_string(Size);
    register_case("zchan", name, &string_case<Size>::template run<zchan_impl_of<std::string>>);
    register_case("baseline", name,
                  &string_case<Size>::template run<baseline_impl_of<std::string>>);
}

void register_all() {
    register_case("machine", "cacheline_roundtrip", &bm_cacheline_roundtrip);
    register_both<spsc_cap1024_case>("spsc_cap1024");
    register_both<spsc_cap1_case>("spsc_cap1");
    register_both<spsc_unbuffered_case>("spsc_unbuffered");
    register_both<pingpong_case>("pingpong_unbuffered");
    register_both<mpmc_case>("mpmc4x4_cap1024");
    register_both<range_case>("range_1m");
    // For bench/report's charts (no Go twin).
    register_string_case<8>();
    register_string_case<64>();
    register_string_case<150>();
    register_string_case<1024>();
    register_string_case<4096>();
    // One iteration of 10k timed round trips (case_items): the percentiles need every sample of
    // a run, and one iteration keeps the baseline's run to a couple of seconds.
    register_case("zchan", "pingpong_unbuffered_latency", &pingpong_latency_case<zchan_impl>::run)
        ->Iterations(1);
    register_case("baseline", "pingpong_unbuffered_latency",
                  &pingpong_latency_case<baseline_impl>::run)
        ->Iterations(1);
    // Select cases (zchan only). The one-thread ones time themselves per select.
    const std::pair<const char*, select_kind> one_thread[] = {
        {"zchan/select_default_idle_cap1", select_kind::idle_cap1},
        {"zchan/select_default_idle_unbuffered", select_kind::idle_unbuffered},
        {"zchan/select_default_ready_cap1", select_kind::default_ready},
        {"zchan/select_ready_cap1", select_kind::ready},
    };
    for (const auto& [name, kind] : one_thread) {
        benchmark::RegisterBenchmark(name, [kind = kind](benchmark::State& s) {
            bm_select_one_thread(s, kind);
        })->Unit(benchmark::kNanosecond);
    }
    register_case("zchan", "select_pingpong_unbuffered", &with_line_probe<&bm_select_pingpong>);
#ifdef ZCHAN_BENCH_ASIO
    // The hand-off cases as coroutines on one io_context thread (bench/asio_cases.hpp).
    coro_bench::register_all([](int kind) {
        const bench_case cases[] = {bench_case::spsc_unbuffered, bench_case::spsc_cap1,
                                    bench_case::pingpong};
        return case_items(cases[kind]);
    });
#endif
}

// Removes --zchan_items_scale=F and --zchan_pin from argv (Google Benchmark rejects flags it
// does not know).
void parse_own_flags(int& argc, char** argv) {
    constexpr std::string_view flag = "--zchan_items_scale=";
    int out = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--zchan_pin") {
            g_pin = true;
            continue;
        }
        if (arg.substr(0, flag.size()) == flag) {
            g_items_scale = std::strtod(argv[i] + flag.size(), nullptr);
            if (!(g_items_scale > 0.0)) {
                std::fprintf(stderr, "zchan_bench_inproc: bad %s\n", argv[i]);
                std::exit(2);
            }
            continue;
        }
        argv[out++] = argv[i];
    }
    argc = out;
}

}  // namespace

int main(int argc, char** argv) {
    parse_own_flags(argc, argv);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) {
        return 1;
    }
    read_allowed_cpus();
    benchmark::AddCustomContext("zchan_items_scale", std::to_string(g_items_scale));
    benchmark::AddCustomContext("zchan_pin", g_pin ? "true" : "false");
    benchmark::AddCustomContext("hardware_concurrency",
                                std::to_string(std::thread::hardware_concurrency()));
    register_all();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return g_failed ? 1 : 0;
}

// Per-operation latency percentiles for Google Benchmark cases (bench/report draws them).
//
// Google Benchmark reports one time per iteration, averaged over the run: it cannot say how
// the operations were spread. The latency cases therefore time every operation themselves
// with steady_clock (two clock reads, ~20-50 ns here, next to operations of 0.5 us to 1 ms)
// and report the percentiles as user counters, in microseconds:
//
//   p50_us, p90_us, p99_us   nearest-rank percentiles over every operation the run timed
//   samples                  how many operations that was (p99 means little below ~1000)
//
// Counters are plain values (benchmark::Counter::kDefaults), so with --benchmark_repetitions
// the mean/median rows are the mean/median of each repetition's percentile.
//
// Thread safety: unsafe; one latency_samples belongs to the thread that runs the case.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <vector>

#include <benchmark/benchmark.h>

namespace zchan_bench {

class latency_samples {
public:
    using clock_type = std::chrono::steady_clock;

    /// `expected`: how many samples to make room for up front (capped: an estimate from
    /// Google Benchmark's max_iterations can be huge), so that add() rarely allocates.
    explicit latency_samples(std::size_t expected = 0) {
        ns_.reserve(std::min<std::size_t>(expected, std::size_t{1} << 20));
    }

    void add(clock_type::duration d) {
        ns_.push_back(
            static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()));
    }

    /// Sets p50_us, p90_us, p99_us and samples on `state`; nothing if no sample was taken
    /// (a case that failed before its loop).
    void report(benchmark::State& state) {
        if (ns_.empty()) {
            return;
        }
        std::sort(ns_.begin(), ns_.end());
        state.counters["p50_us"] = percentile(0.50) / 1e3;
        state.counters["p90_us"] = percentile(0.90) / 1e3;
        state.counters["p99_us"] = percentile(0.99) / 1e3;
        state.counters["samples"] = static_cast<double>(ns_.size());
    }

private:
    /// Nearest rank: the smallest sample with at least q of all samples at or below it.
    /// ns_ is sorted and not empty.
    [[nodiscard]] double percentile(double q) const {
        const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(ns_.size())));
        return ns_[std::clamp<std::size_t>(rank, 1, ns_.size()) - 1];
    }

    std::vector<double> ns_;
};

}  // namespace zchan_bench

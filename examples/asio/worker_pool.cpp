// asio_worker_pool: a small worker pool as coroutines on one io_context
// thread. Workers range over `jobs` and send each result on `results`; the
// dispatcher selects between handing out the next job and collecting a
// result (Go's way to keep both channels unbuffered without deadlock):
//
//     for next, got := 1, 0; got < n; {
//         select {
//         case jobs <- next:  next++   // only while next <= n
//         case r := <-results: sum += r; got++
//         }
//     }
//
// Prints "worker W: job J -> R" per job, then "sum S" (the sum of J*J).
//
// Usage: asio_worker_pool [--workers N] [--jobs N]   (defaults 3 and 10)
#include <cstdint>
#include <iostream>
#include <string>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <zchan/asio.hpp>
#include <zchan/zchan.hpp>
#include "cli_args/cli_args.hpp"

namespace {

using asio::use_awaitable;

const zchan_cli::command_spec spec{
    "asio_worker_pool",
    "",
    0,
    0,
    "A worker pool as coroutines on one io_context thread.",
    {{"workers", 0, true, false, "N", "worker coroutines (default 3)"},
     {"jobs", 0, true, false, "N", "jobs to hand out (default 10)"}},
    "",
};

struct options {
    int workers;
    int jobs;
};

asio::awaitable<void> worker(int id, zchan::channel<int> jobs,
                             zchan::channel<std::int64_t> results) {
    while (auto job = co_await zchan::async_recv(jobs, use_awaitable)) {  // for j := range jobs
        const std::int64_t r = std::int64_t{*job} * *job;
        std::cout << "worker " << id << ": job " << *job << " -> " << r << '\n';
        co_await zchan::async_send(results, r, use_awaitable);
    }
}

asio::awaitable<void> dispatcher(options o) {
    zchan::channel<int> jobs;              // unbuffered: a hand-off per job
    zchan::channel<std::int64_t> results;  // unbuffered too
    auto ex = co_await asio::this_coro::executor;
    for (int w = 1; w <= o.workers; ++w)
        asio::co_spawn(ex, worker(w, jobs, results), asio::detached);

    std::int64_t sum = 0;
    for (int next = 1, got = 0; got < o.jobs;) {
        // A nil channel's case never fires: once every job is out, only collect.
        auto out = next <= o.jobs ? jobs : zchan::channel<int>::nil();
        co_await zchan::async_select(use_awaitable, zchan::send_case(out, next, [&] { ++next; }),
                                     zchan::recv_case(results, [&](std::optional<std::int64_t> r) {
                                         sum += *r;
                                         ++got;
                                     }));
    }
    jobs.close();  // the workers' ranges end
    std::cout << "sum " << sum << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
    const auto o = zchan_cli::parse_or_exit(spec, argc, argv, [](const zchan_cli::args& a) {
        return options{static_cast<int>(a.number("workers", 3)),
                       static_cast<int>(a.number("jobs", 10))};
    });
    asio::io_context io(1);
    asio::co_spawn(io, dispatcher(o), asio::detached);
    io.run();
}

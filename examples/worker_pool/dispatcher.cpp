// worker_pool dispatcher: Go by Example's worker pool with the workers in
// other processes (examples/worker_pool/worker.cpp). This process is the
// home of all three channels. In Go:
//
//     jobs := make(chan job, numJobs)
//     results := make(chan result, numJobs)
//     done := make(chan string, numWorkers)     // each worker sends its name when jobs runs dry
//     for j := 1; j <= numJobs; j++ { jobs <- job{j, payload(j)} }
//     close(jobs)
//     for a := 1; a <= numJobs; a++ { r := <-results; check(r) }
//     for w := 1; w <= numWorkers; w++ { <-done }
//
// Waiting on `done` before exiting matters across processes: a worker that
// is between two jobs when the last result arrives would otherwise see its
// next receive fail with zchan::peer_lost (this process, the home, gone)
// instead of the end of the range.
//
// Usage: dispatcher [ENDPOINT] [--jobs M] [--workers N] [--wait-ms MS]
//   ENDPOINT   where to serve (default tcp://127.0.0.1:*); printed as "listening on ..."
//   --jobs     number of jobs, ids 1..M (default 10)
//   --workers  workers to wait for at the end (default 3)
//   --wait-ms  deadline for all results and workers after the jobs are sent (default 30000)
// Exit status: 0 every id came back exactly once with the right output; 1 otherwise; 2 usage.
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include <zchan/zchan.hpp>
#include "../go_log.hpp"
#include "cli_args/cli_args.hpp"
#include "job.hpp"

namespace {

using go_log::log_println;
using worker_pool::job;
using worker_pool::result;

struct options {
    std::string endpoint = "tcp://127.0.0.1:*";
    long jobs = 10;
    long workers = 3;
    std::chrono::milliseconds wait{30000};
};

const zchan_cli::command_spec spec{
    "dispatcher",
    "[ENDPOINT]",
    0,
    1,
    "Serves \"jobs\" and \"results\", hands out M jobs and collects their results.",
    {
        {"jobs", 0, true, false, "M", "jobs to hand out, up to 1000000 (default 10)"},
        {"workers", 0, true, false, "N", "workers to wait for (default 3)"},
        {"wait-ms", 0, true, false, "MS", "how long to wait for the results (default 30000)"},
    },
    "",
};

options parse(int argc, char** argv) {
    return zchan_cli::parse_or_exit(spec, argc, argv, [](const zchan_cli::args& a) {
        options o;
        if (!a.positional().empty()) o.endpoint = a.positional()[0];
        o.jobs = static_cast<long>(a.number("jobs", 10, 1'000'000));
        o.workers = static_cast<long>(a.number("workers", 3, 1'000'000));
        o.wait = std::chrono::milliseconds(a.number("wait-ms", 30000));
        return o;
    });
}

std::string payload_of(int id) { return "payload of job " + std::to_string(id); }

}  // namespace

int main(int argc, char** argv) {
    const options opt = parse(argc, argv);
    try {
        const auto capacity = static_cast<std::size_t>(opt.jobs);
        zchan::channel<job> jobs(capacity);        // jobs := make(chan job, numJobs)
        zchan::channel<result> results(capacity);  // results := make(chan result, numJobs)
        // done := make(chan string, numWorkers); buffered for the reason given
        // in net_producer.cpp: a worker's send completes when queued here.
        zchan::channel<std::string> done(static_cast<std::size_t>(opt.workers));
        zchan::server srv(opt.endpoint);
        srv.serve("jobs", jobs);
        srv.serve("results", results);
        srv.serve("done", done);
        log_println("listening on", srv.endpoint());

        for (int id = 1; id <= opt.jobs; id++) {
            jobs << job{id, payload_of(id)};
        }
        jobs.close();
        log_println("Sent", opt.jobs, "jobs and closed jobs");

        const auto deadline = std::chrono::steady_clock::now() + opt.wait;
        std::vector<int> seen(capacity + 1, 0);  // seen[id]: results received for job id
        bool ok = true;
        for (long a = 0; a < opt.jobs; a++) {
            auto r = results.recv_until(deadline);
            if (!r) {
                log_println("Gave up:", opt.jobs - a, "results missing");
                return 1;
            }
            const bool known = r->id >= 1 && r->id <= opt.jobs;
            if (!known || seen[static_cast<std::size_t>(r->id)]++ != 0 ||
                r->output != worker_pool::work(payload_of(r->id))) {
                log_println("Bad result for job", r->id, "from", r->worker);
                ok = false;
                continue;
            }
            log_println("Result of job", r->id, "from", r->worker + ":", r->output);
        }

        for (long w = 0; w < opt.workers; w++) {
            auto who = done.recv_until(deadline);
            if (!who) {
                log_println("Gave up waiting for workers:", opt.workers - w, "did not finish");
                return 1;
            }
            log_println(*who, "finished");
        }
        if (!ok) return 1;
        log_println("All", opt.jobs, "results in, each job exactly once; exiting");
        return 0;
    } catch (const std::exception& e) {
        log_println("error:", e.what());
        return 1;
    }
}

// worker_pool worker: dials the dispatcher's channels and works until jobs is
// closed and drained. Run as many as you like; each job goes to exactly one.
// In Go (Go by Example's worker):
//
//     for j := range jobs {
//         log.Println(name, "started job", j.id)
//         time.Sleep(delay)
//         results <- result{j.id, name, work(j.payload)}
//         log.Println(name, "finished job", j.id)
//     }
//     done <- name
//
// Usage: worker ENDPOINT [--name NAME] [--delay-ms MS] [--connect-timeout-ms MS]
//   --name                shown in results and logs (default "worker")
//   --delay-ms            pretend each job takes this long (default 200)
//   --connect-timeout-ms  how long dial waits for the dispatcher (default 10000)
// Exit status: 0 done, 1 could not connect or lost the dispatcher, 2 usage.
#include <chrono>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>
#include <thread>

#include <zchan/zchan.hpp>
#include "../go_log.hpp"
#include "cli_args/cli_args.hpp"
#include "job.hpp"

namespace {

using go_log::log_println;
using worker_pool::job;
using worker_pool::result;

struct options {
    std::string endpoint;
    std::string name = "worker";
    std::chrono::milliseconds delay{200};
    std::chrono::milliseconds connect_timeout{10000};
};

const zchan_cli::command_spec spec{
    "worker",
    "ENDPOINT",
    1,
    1,
    "Dials the dispatcher's \"jobs\" and \"results\", does each job it gets.",
    {
        {"name", 0, true, false, "NAME", "shown in results and logs (default worker)"},
        {"delay-ms", 0, true, false, "MS", "pretend each job takes this long (default 200)"},
        {"connect-timeout-ms", 0, true, false, "MS",
         "how long dial waits for the dispatcher (default 10000)"},
    },
    "",
};

options parse(int argc, char** argv) {
    return zchan_cli::parse_or_exit(spec, argc, argv, [](const zchan_cli::args& a) {
        options o;
        o.endpoint = a.positional()[0];
        if (auto name = a.value("name")) {
            if (name->empty()) throw zchan_cli::usage_error("--name: expected a name");
            o.name = *name;
        }
        o.delay = std::chrono::milliseconds(a.number("delay-ms", 200));
        o.connect_timeout = std::chrono::milliseconds(a.number("connect-timeout-ms", 10000));
        return o;
    });
}

}  // namespace

int main(int argc, char** argv) {
    const options opt = parse(argc, argv);
    zchan::net_options net;
    net.connect_timeout = opt.connect_timeout;
    try {
        auto jobs = zchan::dial<job>(opt.endpoint, "jobs", net);
        auto results = zchan::dial<result>(opt.endpoint, "results", net);
        auto done = zchan::dial<std::string>(opt.endpoint, "done", net);

        for (job& j : jobs) {  // for j := range jobs
            log_println(opt.name, "started job", j.id);
            std::this_thread::sleep_for(opt.delay);
            results << result{j.id, opt.name, worker_pool::work(std::move(j.payload))};
            log_println(opt.name, "finished job", j.id);
        }
        log_println(opt.name, "found no more jobs");

        done << opt.name;
        return 0;
    } catch (const zchan::peer_lost& e) {
        log_println("Lost the dispatcher:", e.what());
    } catch (const zchan::transport_error& e) {
        log_println("error:", e.what());
    }
    return 1;
}

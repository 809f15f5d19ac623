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

[[noreturn]] void usage(const char* argv0) {
    std::cerr << "usage: " << argv0
              << " ENDPOINT [--name NAME] [--delay-ms MS] [--connect-timeout-ms MS]\n";
    std::exit(2);
}

options parse(int argc, char** argv) {
    options o;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (!arg.starts_with("--")) {
            if (!o.endpoint.empty()) usage(argv[0]);
            o.endpoint = arg;
            continue;
        }
        if (i + 1 >= argc) usage(argv[0]);
        const char* value = argv[++i];
        long v = 0;
        if (arg == "--name" && *value != '\0') {
            o.name = value;
        } else if (arg == "--delay-ms" && go_log::parse_count(value, v)) {
            o.delay = std::chrono::milliseconds(v);
        } else if (arg == "--connect-timeout-ms" && go_log::parse_count(value, v)) {
            o.connect_timeout = std::chrono::milliseconds(v);
        } else {
            usage(argv[0]);
        }
    }
    if (o.endpoint.empty()) usage(argv[0]);
    return o;
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

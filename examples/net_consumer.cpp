// net_consumer: the consumer half of examples/producer_consumer, in its own
// process. It dials the channels examples/net_producer.cpp serves and gets
// ordinary zchan::channel handles: range works unchanged. In Go:
//
//     for v := range ch { log.Println("Received", v) }
//     log.Println("Finished consuming")
//     done <- name                            // tell the producer it may exit
//
// Several consumers may run at once; each value goes to exactly one of them.
//
// Usage: net_consumer ENDPOINT [--name NAME] [--connect-timeout-ms MS]
//   ENDPOINT              the producer's "listening on" address, e.g. tcp://127.0.0.1:40123
//   --name                sent on "done" when the range ends (default "consumer")
//   --connect-timeout-ms  how long dial waits for the producer (default 10000)
// Exit status: 0 done, 1 could not connect or lost the producer, 2 usage.
#include <chrono>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>

#include <zchan/zchan.hpp>
#include "cli_args/cli_args.hpp"
#include "go_log.hpp"

namespace {

using go_log::log_println;

struct options {
    std::string endpoint;
    std::string name = "consumer";
    std::chrono::milliseconds connect_timeout{10000};
};

const zchan_cli::command_spec spec{
    "net_consumer",
    "ENDPOINT",
    1,
    1,
    "Dials the channels examples/net_producer serves and ranges over \"numbers\".",
    {
        {"name", 0, true, false, "NAME", "sent on \"done\" when the range ends (default consumer)"},
        {"connect-timeout-ms", 0, true, false, "MS",
         "how long dial waits for the producer (default 10000)"},
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
        auto ch = zchan::dial<int>(opt.endpoint, "numbers", net);
        auto done = zchan::dial<std::string>(opt.endpoint, "done", net);

        for (int v : ch) {  // for v := range ch
            log_println("Received", v);
        }
        log_println("Finished consuming");

        done << opt.name;  // done <- name: returns once it is queued at the producer
        return 0;
    } catch (const zchan::peer_lost& e) {
        // The producer died or became unreachable: not the same as close.
        log_println("Lost the producer:", e.what());
    } catch (const zchan::transport_error& e) {  // connect_error, type_mismatch, ...
        log_println("error:", e.what());
    }
    return 1;
}

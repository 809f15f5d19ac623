// net_producer: the producer half of examples/producer_consumer, in its own
// process. It is the home of `ch` and serves it as "numbers"; consumers in
// other processes dial it (examples/net_consumer.cpp). In Go it would read:
//
//     ch := make(chan int, 2)
//     done := make(chan string, consumers)    // each consumer sends its name when its range ends
//     serve("numbers", ch); serve("done", done)
//     for i := 0; i < count; i++ {
//         log.Println("Sending", i); ch <- i; log.Println("Sent", i)
//         time.Sleep(delay)
//     }
//     log.Println("Finished producing"); close(ch)
//     log.Println("Waiting for everything to complete")
//     for i := 0; i < consumers; i++ { log.Println(<-done, "finished consuming") }
//     log.Println("All done, exiting!")
//
// Why wait for `done`: the channel's buffer lives in this process. Values
// still in it when the process exits are lost, and the consumers' blocked
// receives end in zchan::peer_lost rather than end of range. A consumer sends
// on `done` only after its range has ended, that is after the channel was
// closed and drained, so once every consumer has reported nothing is left.
//
// Usage: net_producer [ENDPOINT] [--count N] [--delay-ms MS] [--consumers C] [--wait-ms MS]
//   ENDPOINT     where to serve (default tcp://127.0.0.1:*, a free port); printed as
//                "listening on tcp://127.0.0.1:PORT"
//   --count      values to send, 0..N-1 (default 5)
//   --delay-ms   pause after each send (default 1000, like the Go program)
//   --consumers  consumers to wait for after close (default 1)
//   --wait-ms    how long to wait for them after close before giving up (default 30000)
// Exit status: 0 done, 1 a consumer did not report in time or the transport failed, 2 usage.
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <string_view>
#include <thread>

#include <zchan/zchan.hpp>
#include "cli_args/cli_args.hpp"
#include "go_log.hpp"

namespace {

using go_log::log_println;

struct options {
    std::string endpoint = "tcp://127.0.0.1:*";
    long count = 5;
    std::chrono::milliseconds delay{1000};
    long consumers = 1;
    std::chrono::milliseconds wait{30000};
};

const zchan_cli::command_spec spec{
    "net_producer",
    "[ENDPOINT]",
    0,
    1,
    "Serves \"numbers\" and \"done\", sends COUNT values, closes, waits for the consumers.",
    {
        {"count", 0, true, false, "N", "values to send, 0..N-1 (default 5)"},
        {"delay-ms", 0, true, false, "MS", "pause after each send (default 1000)"},
        {"consumers", 0, true, false, "C", "consumers to wait for after close (default 1)"},
        {"wait-ms", 0, true, false, "MS", "how long to wait for them (default 30000)"},
    },
    "",
};

options parse(int argc, char** argv) {
    return zchan_cli::parse_or_exit(spec, argc, argv, [](const zchan_cli::args& a) {
        options o;
        if (!a.positional().empty()) o.endpoint = a.positional()[0];
        o.count = static_cast<long>(a.number("count", 5, LONG_MAX));
        o.delay = std::chrono::milliseconds(a.number("delay-ms", 1000));
        o.consumers = static_cast<long>(a.number("consumers", 1, LONG_MAX));
        o.wait = std::chrono::milliseconds(a.number("wait-ms", 30000));
        return o;
    });
}

}  // namespace

int main(int argc, char** argv) {
    const options opt = parse(argc, argv);
    try {
        zchan::channel<int> ch(2);  // ch := make(chan int, 2)
        // done := make(chan string, consumers). Buffered, so that a consumer's
        // send completes as soon as it is queued here: were it a rendezvous, this
        // process could take the value and exit before the consumer heard back.
        zchan::channel<std::string> done(static_cast<std::size_t>(opt.consumers));
        zchan::server srv(opt.endpoint);
        srv.serve("numbers", ch);
        srv.serve("done", done);
        log_println("listening on", srv.endpoint());

        for (int i = 0; i < opt.count; i++) {
            log_println("Sending", i);
            ch << i;  // blocks while the buffer holds 2 values nobody has taken
            log_println("Sent", i);

            std::this_thread::sleep_for(opt.delay);  // time.Sleep(delay)
        }

        log_println("Finished producing");

        ch.close();  // close(ch): consumers drain what is left, then their ranges end

        log_println("Waiting for everything to complete");
        const auto deadline = std::chrono::steady_clock::now() + opt.wait;
        for (long i = 0; i < opt.consumers; i++) {
            auto who = done.recv_until(deadline);  // select { case <-done: case <-time.After }
            if (!who) {
                log_println("Gave up waiting for consumers:", opt.consumers - i, "did not finish");
                return 1;
            }
            log_println(*who, "finished consuming");
        }
        log_println("All done, exiting!");
        return 0;
    } catch (const std::exception& e) {
        log_println("error:", e.what());
        return 1;
    }
}

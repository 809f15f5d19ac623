// producer_consumer: the classic Go producer/consumer with an `exit` channel,
// ported line for line to zchan. The Go original:
//
//     ch := make(chan int, 2)
//     exit := make(chan struct{})
//     producer := func() {
//         for i := 0; i < 5; i++ {
//             log.Println("Sending", i); ch <- i; log.Println("Sent", i)
//             time.Sleep(1 * time.Second)
//         }
//         log.Println("Finished producing"); close(ch)
//     }
//     consumer := func() {
//         for v := range ch { log.Println("Received", v) }
//         log.Println("Finished consuming"); close(exit)
//     }
//     go producer(); go consumer()
//     log.Println("Waiting for everything to complete")
//     <-exit
//     log.Println("All done, exiting!")
//
// Usage: producer_consumer [--delay-ms N]   (pause after each send; default 1000, like Go)
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <variant>

#include <zchan/zchan.hpp>
#include "cli_args/cli_args.hpp"
#include "go_log.hpp"

namespace {

using go_log::log_println;  // Go's log.Println (examples/go_log.hpp)

const zchan_cli::command_spec spec{
    "producer_consumer",
    "",
    0,
    0,
    "Go's producer/consumer with an exit channel, in one process.",
    {{"delay-ms", 0, true, false, "MS", "pause after each send (default 1000, like Go)"}},
    "",
};

}  // namespace

int main(int argc, char** argv) {
    const auto delay = zchan_cli::parse_or_exit(spec, argc, argv, [](const zchan_cli::args& a) {
        return std::chrono::milliseconds(a.number("delay-ms", 1000));
    });

    zchan::channel<int> ch(2);                 // ch := make(chan int, 2)
    zchan::channel<std::monostate> exit_chan;  // exit := make(chan struct{})

    auto producer = [&] {
        for (int i = 0; i < 5; i++) {
            log_println("Sending", i);
            ch << i;  // ch <- i
            log_println("Sent", i);

            std::this_thread::sleep_for(delay);  // time.Sleep(1 * time.Second)
        }

        log_println("Finished producing");

        ch.close();  // close(ch)
    };

    auto consumer = [&] {
        for (int v : ch) {  // for v := range ch
            log_println("Received", v);
        }
        log_println("Finished consuming");
        exit_chan.close();  // close(exit)
    };

    std::jthread producer_thread(producer);  // go producer()
    std::jthread consumer_thread(consumer);  // go consumer()

    log_println("Waiting for everything to complete");
    (void)exit_chan.recv();  // <-exit
    log_println("All done, exiting!");
    // The jthreads join here; both have already finished their work.
}

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

#include "go_log.hpp"

namespace {

using go_log::log_println;  // Go's log.Println (examples/go_log.hpp)

// Parses --delay-ms N; exits with a usage message on anything else.
std::chrono::milliseconds parse_delay(int argc, char** argv) {
    std::chrono::milliseconds delay{1000};
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        if (arg == "--delay-ms" && i + 1 < argc) {
            char* end = nullptr;
            const long ms = std::strtol(argv[++i], &end, 10);
            if (*argv[i] != '\0' && *end == '\0' && ms >= 0) {
                delay = std::chrono::milliseconds(ms);
                continue;
            }
        }
        std::cerr << "usage: " << argv[0] << " [--delay-ms N]\n";
        std::exit(2);
    }
    return delay;
}

}  // namespace

int main(int argc, char** argv) {
    const auto delay = parse_delay(argc, argv);

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

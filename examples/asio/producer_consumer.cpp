// asio_producer_consumer: Go's producer/consumer with an `exit` channel
// (examples/producer_consumer.cpp is the thread version), as two coroutines
// on one asio::io_context thread: no thread blocks, the channels hand the
// values between the coroutines. The Go original:
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
// Usage: asio_producer_consumer [--delay-ms N]   (pause after each send; default 1000)
#include <chrono>
#include <variant>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <zchan/asio.hpp>
#include <zchan/zchan.hpp>
#include "../go_log.hpp"
#include "cli_args/cli_args.hpp"

namespace {

using asio::use_awaitable;
using go_log::log_println;  // Go's log.Println (examples/go_log.hpp)

const zchan_cli::command_spec spec{
    "asio_producer_consumer",
    "",
    0,
    0,
    "Go's producer/consumer with an exit channel, as coroutines on one io_context thread.",
    {{"delay-ms", 0, true, false, "MS", "pause after each send (default 1000, like Go)"}},
    "",
};

asio::awaitable<void> producer(zchan::channel<int> ch, std::chrono::milliseconds delay) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (int i = 0; i < 5; i++) {
        log_println("Sending", i);
        co_await zchan::async_send(ch, i, use_awaitable);  // ch <- i
        log_println("Sent", i);

        timer.expires_after(delay);  // time.Sleep(1 * time.Second), without blocking
        co_await timer.async_wait(use_awaitable);
    }
    log_println("Finished producing");
    ch.close();  // close(ch)
}

asio::awaitable<void> consumer(zchan::channel<int> ch, zchan::channel<std::monostate> exit_chan) {
    while (auto v = co_await zchan::async_recv(ch, use_awaitable)) {  // for v := range ch
        log_println("Received", *v);
    }
    log_println("Finished consuming");
    exit_chan.close();  // close(exit)
}

asio::awaitable<void> main_coroutine(std::chrono::milliseconds delay) {
    zchan::channel<int> ch(2);                 // ch := make(chan int, 2)
    zchan::channel<std::monostate> exit_chan;  // exit := make(chan struct{})
    auto ex = co_await asio::this_coro::executor;
    asio::co_spawn(ex, producer(ch, delay), asio::detached);      // go producer()
    asio::co_spawn(ex, consumer(ch, exit_chan), asio::detached);  // go consumer()
    log_println("Waiting for everything to complete");
    (void)co_await zchan::async_recv(exit_chan, use_awaitable);  // <-exit
    log_println("All done, exiting!");
}

}  // namespace

int main(int argc, char** argv) {
    const auto delay = zchan_cli::parse_or_exit(spec, argc, argv, [](const zchan_cli::args& a) {
        return std::chrono::milliseconds(a.number("delay-ms", 1000));
    });
    asio::io_context io(1);  // one thread: every coroutine runs on it
    asio::co_spawn(io, main_coroutine(delay), asio::detached);
    io.run();
}

// asio_echo_server: an Asio TCP server whose connections are coroutines on
// one io_context thread and whose work is done elsewhere: each request line
// goes into one zchan channel, from which a pool of ordinary threads (the
// blocking API) takes requests and answers each on the reply channel that
// came with it. Coroutines and threads meet on the same channels; no
// executor thread ever blocks.
//
//   connection coroutine --(request{line, reply})--> requests --> handler threads
//                        <--------------- reply <----------------
//
// Prints "listening on 127.0.0.1:PORT" once it accepts connections. Each line
// a client sends comes back as it was. With --requests N it stops after
// answering N lines (for tests); without, it runs until killed.
//
// Usage: asio_echo_server [--port P] [--handlers N] [--requests N]
#include <cstdint>
#include <iostream>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <asio/buffer.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/redirect_error.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <zchan/asio.hpp>
#include <zchan/zchan.hpp>
#include "cli_args/cli_args.hpp"

namespace {

using asio::use_awaitable;
using asio::ip::tcp;

const zchan_cli::command_spec spec{
    "asio_echo_server",
    "",
    0,
    0,
    "An Asio TCP echo server that fans its requests into a zchan channel.",
    {{"port", 0, true, false, "P", "TCP port on 127.0.0.1 (default 0: any free port)"},
     {"handlers", 0, true, false, "N", "handler threads (default 2)"},
     {"requests", 0, true, false, "N", "stop after answering N lines (default: never)"}},
    "",
};

struct options {
    std::uint16_t port;
    int handlers;
    std::uint64_t requests;  // 0: never stop
};

/// One line to answer, and where to send the answer.
struct request {
    std::string line;
    zchan::channel<std::string> reply;
};

/// What the connections share; touched only on the io_context's thread.
struct server_state {
    asio::io_context& io;
    tcp::acceptor acceptor;
    zchan::channel<request> requests;
    std::uint64_t stop_after;  // answers; 0: never stop
    std::uint64_t answered = 0;

    /// Counts one answer written; the last one (with --requests) stops the
    /// server: the handlers finish their range and open connections see closed.
    void answer_written() {
        if (++answered != stop_after) return;
        requests.close();
        acceptor.close();
        io.stop();
    }
};

asio::awaitable<void> connection(tcp::socket socket, server_state& state) {
    zchan::channel<std::string> reply(1);  // this connection's answers
    std::string buffer;
    for (;;) {
        std::error_code ec;
        const std::size_t n = co_await asio::async_read_until(
            socket, asio::dynamic_buffer(buffer), '\n', asio::redirect_error(use_awaitable, ec));
        if (ec) co_return;  // the client went away
        request req{buffer.substr(0, n), reply};
        buffer.erase(0, n);
        auto [sent] = co_await zchan::async_send(state.requests, std::move(req),
                                                 asio::experimental::as_tuple(use_awaitable));
        if (sent) co_return;  // closed: the server is stopping
        std::optional<std::string> answer = co_await zchan::async_recv(reply, use_awaitable);
        if (!answer) co_return;
        co_await asio::async_write(socket, asio::buffer(*answer), use_awaitable);
        // Counted once written, not when a handler answered: stopping earlier
        // would drop the last answer on its way to the client.
        state.answer_written();
    }
}

asio::awaitable<void> listener(server_state& state) {
    for (;;) {
        std::error_code ec;
        tcp::socket socket =
            co_await state.acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
        if (ec) co_return;  // the acceptor was closed: stopping
        asio::co_spawn(state.acceptor.get_executor(), connection(std::move(socket), state),
                       asio::detached);
    }
}

}  // namespace

int main(int argc, char** argv) {
    const auto o = zchan_cli::parse_or_exit(spec, argc, argv, [](const zchan_cli::args& a) {
        return options{static_cast<std::uint16_t>(a.number("port", 0, 65535)),
                       static_cast<int>(a.number("handlers", 2, 64)), a.number("requests", 0)};
    });

    asio::io_context io(1);
    server_state state{
        io, tcp::acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), o.port)),
        zchan::channel<request>(16), o.requests};

    // The handlers: plain threads with the blocking API.
    std::vector<std::jthread> handlers;
    for (int h = 0; h < o.handlers; ++h) {
        handlers.emplace_back([requests = state.requests] {
            for (request& r : requests) {  // for r := range requests
                r.reply.send(std::move(r.line));
            }
        });
    }
    asio::co_spawn(io, listener(state), asio::detached);

    std::cout << "listening on 127.0.0.1:" << state.acceptor.local_endpoint().port() << std::endl;
    io.run();
    if (!state.requests.is_closed()) state.requests.close();
    handlers.clear();  // joins
    std::cout << "stopped" << std::endl;
}

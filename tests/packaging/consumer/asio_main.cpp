// Packaging test consumer for zchan::asio: a coroutine hands a value to another on one thread.
#include <iostream>
#include <optional>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>

#include <zchan/asio.hpp>

int main() {
    asio::io_context io(1);
    zchan::channel<int> ch;
    std::optional<int> got;
    asio::co_spawn(
        io,
        [ch]() -> asio::awaitable<void> {
            co_await zchan::async_send(ch, 42, asio::use_awaitable);
        },
        asio::detached);
    asio::co_spawn(
        io,
        [ch, &got]() -> asio::awaitable<void> {
            got = co_await zchan::async_recv(ch, asio::use_awaitable);
        },
        asio::detached);
    io.run();
    if (!got) return 1;
    std::cout << *got << '\n';
    return *got == 42 ? 0 : 1;
}

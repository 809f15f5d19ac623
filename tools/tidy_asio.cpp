// A translation unit for tools/check_tidy: zchan/asio.hpp, with its templates instantiated as a
// coroutine, a callback and a future use them, on a channel of each kind.
#include <future>
#include <optional>
#include <string>
#include <system_error>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include <zchan/asio.hpp>
#include <zchan/net.hpp>

namespace {

asio::awaitable<void> relay(zchan::channel<int> in, zchan::channel<std::string> out) {
    while (std::optional<int> v = co_await zchan::async_recv(in, asio::use_awaitable)) {
        co_await zchan::async_send(out, std::to_string(*v), asio::use_awaitable);
    }
    co_await zchan::async_select(
        asio::use_awaitable, zchan::recv_case(in, [](std::optional<int>) {}),
        zchan::send_case(out, std::string("end"), [] {}), zchan::default_case([] {}));
}

}  // namespace

// Not called: it is here to be compiled.
void zchan_tidy_asio_instantiate();
void zchan_tidy_asio_instantiate() {
    asio::io_context io(1);
    zchan::channel<int> in(1);
    zchan::channel<std::string> out = zchan::dial<std::string>("tcp://127.0.0.1:1", "out");
    asio::co_spawn(io, relay(in, out), asio::detached);
    zchan::async_send(in, 1, [](std::error_code) {});
    std::future<std::optional<int>> f = zchan::async_recv(in, asio::use_future);
    io.run();
}

// Fixtures for the zchan/asio.hpp tests: an io_context on a thread of its
// own, coroutine runners that hand back a std::future, and the channel kinds
// every rule runs on (in process, unbuffered and buffered, and the same
// dialed over tcp://127.0.0.1:* from a real server in this process).
#pragma once

#include <chrono>
#include <cstddef>
#include <future>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <utility>

#include <asio/co_spawn.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>
#include <gtest/gtest.h>

#include "net_test_support.hpp"
#include "zchan/asio.hpp"
#include "zchan/channel.hpp"
#include "zchan/net.hpp"
#include "zchan_test_support.hpp"

namespace zchan_test {

/// An io_context run by one thread for the fixture's lifetime. Thread safety:
/// post work through executor(); destroy from the test's thread.
class executor_thread {
public:
    executor_thread() : work_(asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}
    executor_thread(const executor_thread&) = delete;
    executor_thread& operator=(const executor_thread&) = delete;
    ~executor_thread() {
        work_.reset();
        io_.stop();
        thread_.join();
    }
    asio::io_context& io() noexcept { return io_; }
    asio::io_context::executor_type executor() noexcept { return io_.get_executor(); }

    /// Starts `fn()` (returning an asio::awaitable<R>) as a coroutine on this
    /// thread; the future has its result or exception.
    template <class F>
    auto spawn(F&& fn) {
        return asio::co_spawn(io_, std::forward<F>(fn), asio::use_future);
    }

private:
    asio::io_context io_;
    asio::executor_work_guard<asio::io_context::executor_type> work_;
    std::thread thread_;
};

/// A future's status after `window`: ready means the operation completed.
template <class R>
[[nodiscard]] bool completes_within(std::future<R>& f,
                                    std::chrono::milliseconds window = generous) {
    return f.wait_for(window) == std::future_status::ready;
}
template <class R>
[[nodiscard]] bool still_pending_after(std::future<R>& f,
                                       std::chrono::milliseconds window = ample) {
    return f.wait_for(window) != std::future_status::ready;
}

/// What a parametrised test runs on.
struct chan_kind {
    std::string name;
    std::size_t capacity = 0;
    bool remote = false;
};
inline std::ostream& operator<<(std::ostream& os, const chan_kind& k) { return os << k.name; }
inline std::string kind_name(const ::testing::TestParamInfo<chan_kind>& info) {
    return info.param.name;
}

inline const chan_kind kinds[] = {
    {"InProcUnbuffered", 0, false}, {"InProcBuffered1", 1, false}, {"InProcBuffered3", 3, false},
    {"RemoteUnbuffered", 0, true},  {"RemoteBuffered3", 3, true},
};

/// Options for the remote kinds: no loss detection in these tests.
inline zchan::net_options asio_net_options() {
    using namespace std::chrono_literals;
    return heartbeat_options(100ms, 5000ms, 5000ms);
}

/// A channel of the fixture's kind: `home` is where it lives, `use` the
/// handle the operations under test go through (the same channel in
/// process, a dialed handle for the remote kinds).
template <class T>
struct chan_pair {
    zchan::channel<T> home;
    zchan::channel<T> use;
};

/// Base fixture: makes channels of the parameter's kind; owns their server.
class asio_kind_test : public ::testing::TestWithParam<chan_kind> {
protected:
    template <class T = int>
    chan_pair<T> make() {
        zchan::channel<T> home(GetParam().capacity);
        if (!GetParam().remote) return {home, home};
        if (!server_)
            server_ = std::make_unique<zchan::server>("tcp://127.0.0.1:*", asio_net_options());
        const std::string name = "c" + std::to_string(served_++);
        server_->serve(name, home);
        return {home, zchan::dial<T>(server_->endpoint(), name, asio_net_options())};
    }
    [[nodiscard]] std::size_t cap() const { return GetParam().capacity; }
    [[nodiscard]] bool remote() const { return GetParam().remote; }

    // Declared first: destroyed last, after everything that uses its channels.
    std::unique_ptr<zchan::server> server_;
    int served_ = 0;
    executor_thread ex_;
};

}  // namespace zchan_test

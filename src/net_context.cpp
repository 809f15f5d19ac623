#include "net_context.hpp"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <random>
#include <thread>

namespace zchan::detail {

namespace {

zmq::context_t* the_context = nullptr;
// Trivially destructible, so it stays valid for the helper thread whatever
// exit destroys first (and LeakSanitizer sees nothing leaked).
std::atomic<bool> flush_done{false};

// Terminates the context at exit so that lingering frames are sent; see the
// header. Polls for the helper thread because this runs once, at exit, and
// must give up after exit_flush_timeout_ms.
void flush_at_exit() {
    std::thread([] {
        zmq_ctx_term(the_context->handle());
        flush_done.store(true, std::memory_order_release);
    }).detach();
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(exit_flush_timeout_ms);
    while (!flush_done.load(std::memory_order_acquire) &&
           std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
}

}  // namespace

zmq::context_t& net_context() {
    static zmq::context_t* ctx = [] {
        the_context = new zmq::context_t(1);  // never deleted: see the header
        std::atexit(flush_at_exit);
        return the_context;
    }();
    return *ctx;
}

std::array<std::uint8_t, 16> random_instance_id() {
    std::random_device rd;
    std::array<std::uint8_t, 16> id{};
    for (auto& b : id) b = static_cast<std::uint8_t>(rd());
    id[0] |= 1;  // never all zero
    return id;
}

}  // namespace zchan::detail

#include "net_context.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <random>
#include <thread>

namespace zchan::detail {

namespace {

// Heap-allocated and never freed: the helper thread may outlive the wait.
struct exit_flush_state {
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
};

zmq::context_t* the_context = nullptr;

// Terminates the context at exit so that lingering frames are sent; see the header.
void flush_at_exit() {
    auto* state = new exit_flush_state;
    std::thread([state] {
        zmq_ctx_term(the_context->handle());
        std::lock_guard<std::mutex> lock(state->mutex);
        state->done = true;
        state->done_cv.notify_all();
    }).detach();
    std::unique_lock<std::mutex> lock(state->mutex);
    state->done_cv.wait_for(lock, std::chrono::milliseconds(exit_flush_timeout_ms),
                            [state] { return state->done; });
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

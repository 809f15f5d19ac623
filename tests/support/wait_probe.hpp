// Probes for tests that must know a thread (or a blocked select) is waiting
// before they go on, without sleeping for a guessed time.
//
// An in-process unbuffered channel's wait lists are asked as the transport's
// watchers do: an entry without a packet is never taken as a partner, and
// registering it answers whether a partner waits. Nothing is consumed.
//
// A dialed handle's waiter has no such list to ask: it waits as the poller of
// its connection's socket (src/peer_connection.hpp, leader/followers), so a
// thread seen blocked in poll(2) (Linux: /proc/self/task/TID/syscall) has
// registered its wait, and whatever reaches the socket now reaches it waiting.
//
// Thread safety: any thread, as the channel's register/unregister calls.
#pragma once

#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "zchan/channel.hpp"
#include "zchan/detail/chan_base.hpp"

namespace zchan_test {

/// True if a sender of another thread is blocked on the unbuffered `ch`.
template <class T>
bool sender_blocked(const zchan::channel<T>& ch) {
    namespace zd = zchan::detail;
    zd::context cx{[](zd::context& /*cx*/, void* /*arg*/) noexcept {}, nullptr};
    zd::wait_entry probe{&cx, zd::sel_first_op, nullptr};
    zd::chan_base<T>* c = zd::channel_access<T>::get(ch);
    const bool waiting = c->register_recv(probe);
    c->unregister_recv(probe);
    return waiting;
}

/// True if a receiver of another thread (a blocked select's receive case) is
/// registered on the unbuffered `ch`.
template <class T>
bool receiver_registered(const zchan::channel<T>& ch) {
    namespace zd = zchan::detail;
    zd::context cx{[](zd::context& /*cx*/, void* /*arg*/) noexcept {}, nullptr};
    zd::wait_entry probe{&cx, zd::sel_first_op, nullptr};
    zd::chan_base<T>* c = zd::channel_access<T>::get(ch);
    const bool waiting = c->register_send(probe);
    c->unregister_send(probe);
    return waiting;
}

/// The calling thread's kernel id (for wait_until_blocked_in_poll).
inline pid_t this_thread_id() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

/// True once the thread `tid` (0 until it is known) is seen blocked in
/// poll(2) or ppoll(2); false if `limit` passes first.
inline bool wait_until_blocked_in_poll(const std::atomic<pid_t>& tid,
                                       std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (const pid_t t = tid.load(); t != 0) {
            std::ifstream in("/proc/self/task/" + std::to_string(t) + "/syscall");
            long nr = -1;
            if (in >> nr) {
#ifdef SYS_poll
                if (nr == SYS_poll) return true;
#endif
                if (nr == SYS_ppoll) return true;
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));  // polls a condition
    }
    return false;
}

}  // namespace zchan_test

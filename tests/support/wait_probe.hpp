// Probes of an in-process unbuffered channel's wait lists, for tests that
// must know a thread (or a blocked select) is waiting before they go on,
// without sleeping. They ask as the transport's watchers do: an entry without
// a packet is never taken as a partner, and registering it answers whether a
// partner waits. Nothing is consumed.
//
// Thread safety: any thread, as the channel's register/unregister calls.
#pragma once

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

}  // namespace zchan_test

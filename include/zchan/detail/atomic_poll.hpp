// The atomic poll (chan_base.hpp, "Atomic poll"): whether at one instant none
// of a set of cases was ready. Go's selectgo locks every channel of a select
// and then polls; this does the same with the locked channels' locks, taken
// in address order, and validates the stamped channels' stamps after every
// case was checked. The instant is any point between the last check and the
// first validation: each locked channel held still all along, and each
// stamped one between its check and its validation.
//
// Two users: a select with a default case (select.hpp, async_select.hpp) over
// its channels, and a home answering POLL (protocol.md §8.9) over the cases it
// serves, where readiness is a session's (served_base::poll_ready).
//
// Remote cases (poll_mode::remote) are asked about between the checks and the
// validations, with the locks released: a spin lock is never held across a
// network round trip. So with remote cases at one home and local channels
// that are all stamped (buffered), the home's instant lies between the local
// checks and validations and the whole poll is still at one instant. A locked
// (unbuffered) local channel is then polled at an instant of its own, and
// cases at several homes each at their home's: that is all a select spanning
// processes can promise, and the README's select row says so.
//
// Thread safety: a function over the caller's cases; the channels' own
// thread safety applies.
#pragma once

#include <algorithm>
#include <cstddef>
#include <functional>
#include <span>

#include "zchan/detail/chan_base.hpp"
#include "zchan/detail/sync.hpp"

namespace zchan::detail {

/// True if at one instant none of the cases was ready (see the top); false
/// if one was, or the answer is unsure (the caller polls again).
///   chans[i]       case i's channel; nullptr: a nil case, never ready;
///   ready(i, s)    case i's readiness (send_ready or recv_ready of its
///                  channel, or a session's at a home), filling stamp s;
///   remote()       whether the remote cases (poll_mode::remote, skipped
///                  by `ready`) were all not ready; called only if
///                  `has_remote` and no local case was ready.
/// locks and stamps are scratch space, one element per case.
template <class Ready, class Remote>
bool none_ready_at_one_instant(std::span<const chan_poll* const> chans, std::span<spin_lock*> locks,
                               std::span<poll_stamp> stamps, Ready&& ready, bool has_remote,
                               Remote&& remote) {
    const std::size_t n = chans.size();
    for (std::size_t i = 0; i < n; ++i) {
        locks[i] = nullptr;
        if (chans[i] == nullptr) continue;  // nil: never ready
        const poll_mode kind = chans[i]->poll_kind();
        if (kind == poll_mode::none) return true;  // cannot take part
        if (kind == poll_mode::locked) locks[i] = chans[i]->poll_lock();
    }
    // Address order; two cases on one channel share its lock (adjacent now).
    std::sort(locks.begin(), locks.end(), std::less<>{});
    auto first_of_run = [&](std::size_t k) { return k == 0 || locks[k] != locks[k - 1]; };
    for (std::size_t k = 0; k < n; ++k) {
        if (locks[k] != nullptr && first_of_run(k)) locks[k]->lock();
    }
    bool locked = true;
    auto unlock = [&] {
        if (!locked) return;
        locked = false;
        for (std::size_t k = n; k > 0; --k) {
            if (locks[k - 1] != nullptr && first_of_run(k - 1)) locks[k - 1]->unlock();
        }
    };
    auto local = [&](std::size_t i) {
        return chans[i] != nullptr && chans[i]->poll_kind() != poll_mode::remote;
    };
    bool none = true;
    for (std::size_t i = 0; none && i < n; ++i) {
        if (local(i) && ready(i, stamps[i])) none = false;
    }
    if (none && has_remote) {
        unlock();  // never across a round trip
        none = remote();
    }
    for (std::size_t i = 0; none && i < n; ++i) {
        if (local(i) && !chans[i]->poll_unchanged(stamps[i])) none = false;
    }
    unlock();
    return none;
}

}  // namespace zchan::detail

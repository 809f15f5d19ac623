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

#include "zchan/detail/chan_base.hpp"
#include "zchan/detail/sync.hpp"

namespace zchan::detail {

/// Unlocks what none_ready_at_one_instant locked: `locks` sorted, so that
/// each lock (shared by cases on one channel) is one run, unlocked once.
template <class Locks>
inline void unlock_all(Locks& locks) noexcept {
    for (std::size_t k = locks.size(); k > 0; --k) {
        if (locks[k - 1] != nullptr && (k == 1 || locks[k - 1] != locks[k - 2])) {
            locks[k - 1]->unlock();
        }
    }
}

/// True if at one instant none of the cases was ready (see the top); false
/// if one was, or the answer is unsure (the caller polls again).
///   chans[i]       case i's channel; nullptr: a nil case, never ready;
///   ready(i, s)    case i's readiness (send_ready or recv_ready of its
///                  channel, or a session's at a home), filling stamp s; a
///                  remote channel's says "not ready" (chan_poll's default);
///   remote()       whether the remote cases (poll_mode::remote) were all
///                  not ready; called only if there are some and no local
///                  case was ready.
/// locks and stamps are scratch space, one element per case. The three are
/// std::arrays for a select (so that the loops and the sort know their size
/// at compile time) or std::vectors for a home.
// Inlined: a select's default path runs it on every poll that finds
// nothing, and as a call it cost about 100 instructions more per select
// (callgrind, bench select_default_idle_cap1).
template <class Chans, class Locks, class Stamps, class Ready, class Remote>
[[gnu::always_inline]] inline bool none_ready_at_one_instant(const Chans& chans, Locks& locks,
                                                             Stamps& stamps, Ready&& ready,
                                                             Remote&& remote) {
    const std::size_t n = chans.size();
    bool has_remote = false;
    for (std::size_t i = 0; i < n; ++i) {
        locks[i] = nullptr;
        if (chans[i] == nullptr) continue;  // nil: never ready
        switch (chans[i]->poll_kind()) {
            case poll_mode::none:
                return true;  // cannot take part
            case poll_mode::locked:
                locks[i] = chans[i]->poll_lock();
                break;
            case poll_mode::remote:
                has_remote = true;
                break;
            case poll_mode::stamped:
                break;
        }
    }
    // Address order; two cases on one channel share its lock (adjacent now).
    std::sort(locks.begin(), locks.end(), std::less<>{});
    for (std::size_t k = 0; k < n; ++k) {
        if (locks[k] != nullptr && (k == 0 || locks[k] != locks[k - 1])) locks[k]->lock();
    }
    bool none = true;
    for (std::size_t i = 0; none && i < n; ++i) {
        if (chans[i] != nullptr && ready(i, stamps[i])) none = false;
    }
    if (has_remote) {
        unlock_all(locks);  // never across a round trip
        if (none) none = remote();
    }
    for (std::size_t i = 0; none && i < n; ++i) {
        if (chans[i] != nullptr && !chans[i]->poll_unchanged(stamps[i])) none = false;
    }
    if (!has_remote) unlock_all(locks);
    return none;
}

}  // namespace zchan::detail

// The home's record of remote selects on one unbuffered served channel, per
// session (protocol.md §8.6.1). A select that waits to send and to receive on
// one dialed channel sends a WATCH_SEND and a RECV that carry one select tag;
// the home keeps one select_group per tag for two rules:
//   * Identity: the group's wait entries share one context identity (its
//     address), and the home registers them with that identity lent to the
//     server thread, so the core's wait lists (waker.hpp skips entries of the
//     current identity) never let the select's RECV wake its own watch or
//     count as its partner: a lone select sleeps instead of being told READY
//     by itself in a loop.
//   * Fired: once the home answers one of the group's requests (READY, or a
//     VALUE), the select stops waiting and cancels the rest. Its other RECVs
//     are then parked (off the channel's wait list) and a member that arrives
//     later is parked at once, so they neither take a value the select would
//     give back nor wake other selects' watches. Two selects that each send
//     and receive on one channel therefore cannot keep telling each other
//     READY: the first told sends, the other's RECV stays there for it.
// Both only shorten waits; the exactly-one-case rule does not depend on them.
//
// Invariants:
//   * a group with live requests is never evicted: its address stays the
//     identity of their contexts;
//   * idle groups (no live request) are kept, oldest first evicted, so that a
//     late member of a fired group is still recognized; at most max_groups
//     per session (memory bounded against any peer); when every slot is live
//     a new tag is not grouped (find_or_add returns nullptr).
//
// Thread safety: none; owned by a served session, used on the server thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <unordered_map>

namespace zchan::detail {

struct select_group {
    std::uint32_t live = 0;  // requests of the group the home still holds
    bool fired = false;      // one of its requests was answered READY or VALUE
};

class select_groups {
public:
    static constexpr std::size_t max_groups = 256;

    /// The group for `tag`, created if new; nullptr if the table is full of
    /// live groups (the request is then served ungrouped).
    select_group* find_or_add(std::uint64_t tag) {
        if (auto it = groups_.find(tag); it != groups_.end()) return &it->second;
        if (groups_.size() >= max_groups && !evict_one()) return nullptr;
        order_.push_back(tag);
        return &groups_[tag];
    }

    [[nodiscard]] select_group* find(std::uint64_t tag) noexcept {
        auto it = groups_.find(tag);
        return it == groups_.end() ? nullptr : &it->second;
    }

private:
    /// Drops the oldest idle group; false if none is idle.
    bool evict_one() {
        for (auto it = order_.begin(); it != order_.end(); ++it) {
            if (groups_.at(*it).live == 0) {
                groups_.erase(*it);
                order_.erase(it);
                return true;
            }
        }
        return false;
    }

    std::unordered_map<std::uint64_t, select_group> groups_;  // node-based: stable addresses
    std::deque<std::uint64_t> order_;                         // the tags of groups_, oldest first
};

}  // namespace zchan::detail

// served_chan<T>'s remote selects on an unbuffered channel (protocol.md
// §8.6.1): the RECVs and WATCH_SENDs that carry one select tag form a group
// (select_groups.hpp) that never pairs with or wakes itself, and that stops
// taking values once one of its requests was answered. Part of
// served_chan.hpp (which includes this file at its end); not to be included
// on its own.
//
// Thread safety: as served_chan (the server thread).
#pragma once

#include <cstdint>
#include <vector>

namespace zchan::detail {

template <class T>
select_group* served_chan<T>::group_of(std::uint32_t session, std::uint64_t tag) {
    // On a buffered channel a select that sends and receives on it never
    // waits for itself (one of the two is always possible, or the other
    // becomes so), and its waiters there are woken as event-loop hints
    // (sync_waker::notify), which an identity would change.
    if (tag == 0 || impl_->cap() != 0) return nullptr;
    auto it = sessions_.find(session);
    return it == sessions_.end() ? nullptr : it->second.selects.find_or_add(tag);
}

template <class T>
select_group* served_chan<T>::find_group(std::uint32_t session, std::uint64_t tag) {
    auto it = sessions_.find(session);
    return it == sessions_.end() ? nullptr : it->second.selects.find(tag);
}

template <class T>
void served_chan<T>::join_group(op& o, select_group* g, std::uint64_t tag) {
    if (g == nullptr) return;
    o.select_tag = tag;
    o.cx.set_identity(g);  // not registered yet
    ++g->live;
    o.parked = g->fired;
}

template <class T>
void served_chan<T>::fire_group(reply_sink& out, std::uint32_t session, std::uint64_t tag,
                                select_group& g) {
    g.fired = true;
    std::vector<std::uint64_t> members;
    for (auto it = recv_ops_.lower_bound({session, 0});
         it != recv_ops_.end() && it->first.first == session; ++it) {
        members.push_back(it->second);
    }
    for (const std::uint64_t id : members) {
        auto found = ops_.find(id);
        if (found == ops_.end()) continue;
        op& o = *found->second;
        if (o.select_tag != tag) continue;
        o.parked = true;  // also the one being answered: erased right after
        if (!o.registered) continue;
        unregister(o);
        // A sender handed it a value before it came off the list: that value
        // is answered (the select takes or gives it back, §8.6), never kept.
        if (o.rp.done && o.rp.value) {
            deliver(out, o.session, o.id, o.rp.value, o.rp.claimed);
            erase(o);
        }
    }
}

template <class T>
void served_chan<T>::delivered_to_group(reply_sink& out, op& o) {
    if (o.select_tag == 0) return;
    select_group* g = find_group(o.session, o.select_tag);
    if (g != nullptr && !g->fired) fire_group(out, o.session, o.select_tag, *g);
}

}  // namespace zchan::detail

// served_chan<T>'s send window: credits granted, credited values taken
// into their reserved slots, and the close that revokes them. Part of
// served_chan.hpp (which includes this file at its end); not to be included
// on its own.
//
// Send window (protocol.md §9.1): a session granted a window gets credits,
// each a slot reserved in the channel (servable::reserve), topped up in
// batches (send_credits.hpp); its credited values go straight into their
// slots with no op, a frame's at once (send_reserved_n), in number order, and
// one CREDIT per frame confirms them.
//
// Credits backed by demand (protocol.md §9.1 rule 5): remote receivers'
// stream requests waiting at the home are room too, as a Go receiver waiting
// on a channel is: a send completes into it whatever the buffer holds. So
// the home grants credits against the demand that the values in the
// channel, the reserved slots and the credits already granted against it
// will not meet (spare_demand), and reserves free slots (up to a sender's
// share of the capacity) only for the rest of a window. A value arriving
// on such a credit is held (direct_, lent) and the streams take it after the
// ring's values; if the demand went away meanwhile (a receiver left, a local
// sender's value met it), the held values go into the channel as slots free
// up, or, once it is closed, behind everything when its ring is empty. Until
// then they hold the closed channel open, as lent values do.
//
// FIFO per sender: while a session has values held, its credited values
// join them, and its offers (a SEND once its credits ran out) wait in
// gated_, not registered on the channel, where a freed slot would let them
// pass the held values; take_direct() lets them go (gate_op, ungate()) once
// the last of its held values is taken. Its TRY sends are not ready.
//
// At a close (the close watcher, one op) every session still
// holding credits gets REVOKE; its REVOKED, BYE or loss releases the slots
// it did not fill, and until then the closed channel is not drained.
//
// The same watcher serves the receive side (protocol.md §10 item 3): at the
// close, and at a receiving session's first request after it, the home asks
// each receiving session once for its resolutions (a PING on its channel).
// Its peer then sends its ACKs whenever a receiver waits, so that the close
// held for the other receivers is not held until the peer's next tick;
// before the close it keeps them for its next frame.
//
// Thread safety: as served_chan (the server thread).
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

namespace zchan::detail {

template <class T>
std::uint32_t served_chan<T>::grant_window(std::uint32_t session, std::uint32_t requested) {
    auto it = sessions_.find(session);
    if (it == sessions_.end() || requested == 0 || !back_->can_reserve()) return 0;
    const auto w = static_cast<std::uint32_t>(
        std::min<std::uint64_t>({requested, impl_->cap(), max_send_window}));
    it->second.credits.window = w;
    if (w != 0) ++windowed_;
    return w;
}

template <class T>
void served_chan<T>::welcomed(reply_sink& out, std::uint32_t session) {
    auto it = sessions_.find(session);
    if (it == sessions_.end() || it->second.credits.window == 0) return;
    send_credits& c = it->second.credits;
    c.owed = true;  // a resume: what it had may have been lost
    top_up(out, session, c);
    // A REVOKE lost with the old connection: the closed channel waits
    // for its REVOKED, so ask again.
    if (c.revoked && c.held() != 0) out.reply(session, wire::msg::revoke, 0);
}

template <class T>
std::uint32_t served_chan<T>::on_credited(reply_sink& out, std::uint32_t session,
                                          std::uint64_t first, std::uint32_t count,
                                          const unsigned char* entries, std::size_t size) {
    auto it = sessions_.find(session);
    if (it == sessions_.end()) return 0;
    send_credits& c = it->second.credits;
    // The frame's values bound for their reserved slots go in together
    // (send_reserved_n): a receiver drains them in one go. One buffer per
    // value type and server thread, not per channel: a hub has many. It
    // grows as values are accepted, never by the frame's count (the peer's
    // word), and is let go after a frame larger than a zchan peer sends.
    thread_local std::vector<T> into_slots;
    constexpr std::size_t keep_values = 4096;
    into_slots.clear();
    const auto flush_into_slots = [this] {
        back_->send_reserved_n(into_slots.data(), into_slots.size());
        into_slots.clear();
    };
    std::uint32_t accepted = 0;
    std::size_t at = 0;
    try {
        for (std::uint32_t i = 0; i < count && at + 4 <= size; ++i) {
            const std::uint64_t number = first + i;
            std::uint32_t len = 0;
            for (std::size_t b = 0; b < 4; ++b) len |= std::uint32_t{entries[at + b]} << (8 * b);
            const unsigned char* data = entries + at + 4;
            at += 4 + len;
            const send_credits::verdict v = c.check(number);
            if (v == send_credits::verdict::duplicate) {
                c.owed = true;  // its confirmation was lost: confirm again
                continue;
            }
            if (v == send_credits::verdict::gap) break;  // the resume re-sends it in order
            if (v == send_credits::verdict::over) {
                out.reply_error(session, number, wire::error_code::protocol_error,
                                "credited value beyond the credits granted");
                break;
            }
            const bool slot = c.use();
            if (!slot) --demand_held_;
            c.owed = true;
            std::optional<T> value;
            if (decode_value(data, len, value)) {
                // Sent, but not a T: it cannot enter the channel. Its slot is
                // free again; the peer reports the ERROR.
                if (slot) back_->release(1);
                out.reply_error(session, number, wire::error_code::decode_error,
                                "credited value does not decode as " + type_);
                continue;
            }
            if (slot && direct_.empty()) {
                into_slots.push_back(std::move(*value));
            } else {                 // behind the held values, or on a demand-backed credit
                flush_into_slots();  // the frame's earlier values go first
                if (slot) back_->release(1);
                back_->lend();
                direct_.push_back({std::move(*value), session});
                ++it->second.held;
            }
            ++accepted;
        }
    } catch (...) {
        flush_into_slots();  // the values decoded before it were sent: keep them
        throw;
    }
    flush_into_slots();
    if (into_slots.capacity() > keep_values) into_slots = std::vector<T>();
    if (!direct_.empty()) feed_direct(out);
    top_up(out, session, c);
    return accepted;
}

template <class T>
void served_chan<T>::on_revoked(reply_sink& /*out*/, std::uint32_t session) {
    auto it = sessions_.find(session);
    if (it != sessions_.end()) release_credits(it->second.credits);
}

template <class T>
void served_chan<T>::top_up(reply_sink& out, std::uint32_t session, send_credits& c) {
    if (const std::uint64_t want = c.wanted(share()); want != 0) {
        // Demand first, then slots up to the session's part of the
        // capacity, no more: a slot a sender holds while it is idle is room
        // that nobody else can use (an offer or a local send waits for a
        // free slot), so a sender that took more than its part, or slots
        // where demand would do, could starve the others. Demand held idle
        // makes nobody wait: a receiver it backs is served by other values.
        std::uint64_t got = 0;
        if (!impl_->is_closed()) {
            got = std::min(want, spare_demand());
            c.demand += got;
            demand_held_ += got;
        }
        const std::uint64_t slot_share =
            std::max<std::uint64_t>(1, impl_->cap() / std::max<std::uint64_t>(1, windowed_));
        // And never the last free slot (protocol.md §9.1 rule 1): shares are
        // computed as sessions come, so the first windows can hold the whole
        // capacity, and an idle window keeps its slots. A sender out of
        // credits then offered into a channel whose every slot was reserved
        // and waited forever, with receivers waiting on the empty ring.
        if (got < want && c.slots() < slot_share) {
            if (const std::uint64_t reservable = reservable_slots(); reservable != 0) {
                got += back_->reserve(static_cast<std::size_t>(
                    std::min({want - got, slot_share - c.slots(), reservable})));
            }
        }
        if (got != 0) {
            c.granted += got;
            c.owed = true;
            watch_close(out);
        }
    }
    if (!c.owed) return;
    c.owed = false;
    out.reply_credit(session, c.granted, c.upto);
}

template <class T>
void served_chan<T>::watch_close(reply_sink& out) {
    if (close_watch_ != 0) return;
    auto& o = make_op(0, 0, op_kind::close_watch);
    o.entry = wait_entry{&o.cx, sel_first_op, nullptr};
    o.registered = true;
    close_watch_ = o.hook.op_id;
    if (back_->watch_close(o.entry)) on_closed(out);  // closed already
}

template <class T>
void served_chan<T>::watch_receiver(reply_sink& out, std::uint32_t session, session_state& st) {
    if (closed_seen_) {
        ask_resolutions(out, session, st);
    } else {
        watch_close(out);
    }
}

template <class T>
void served_chan<T>::ask_resolutions(reply_sink& out, std::uint32_t session, session_state& st) {
    if (st.asked_resolutions) return;
    st.asked_resolutions = true;
    out.reply(session, wire::msg::ping, 0);
}

template <class T>
void served_chan<T>::on_closed(reply_sink& out) {
    closed_seen_ = true;
    if (close_watch_ != 0) {
        auto& o = *ops_.at(close_watch_);
        if (o.registered) unregister(o);
        erase(o);
    }
    for (auto& [id, st] : sessions_) {
        // A receiving session (every delivery answers a RECV it sent): its
        // unresolved deliveries hold the close from the other receivers
        // (protocol.md §10 item 3); its peer resolves them at once from now
        // on instead of at its next frame or tick.
        if (st.max_request != 0) ask_resolutions(out, id, st);
        send_credits& c = st.credits;
        if (c.window == 0 || c.revoked) continue;
        c.revoked = true;
        --windowed_;
        if (c.held() != 0) out.reply(id, wire::msg::revoke, 0);
    }
}

template <class T>
void served_chan<T>::release_credits(send_credits& c) {
    if (c.slots() != 0) back_->release(static_cast<std::size_t>(c.slots()));
    demand_held_ -= c.demand;
    c.demand = 0;
    c.granted = c.upto;
    if (c.window != 0 && !c.revoked) --windowed_;
    c.revoked = true;
}

template <class T>
std::uint64_t served_chan<T>::share() const noexcept {
    return (impl_->cap() + stream_demand()) / std::max<std::uint64_t>(1, windowed_);
}

template <class T>
std::uint64_t served_chan<T>::stream_demand() const noexcept {
    std::uint64_t q = 0;
    for (const auto& [id, st] : sessions_) q += st.stream_ranges.size();
    return q;
}

template <class T>
std::uint64_t served_chan<T>::reservable_slots() const {
    const std::uint64_t cap = impl_->cap();
    std::uint64_t reserved = 0;
    for (const auto& [id, st] : sessions_) reserved += st.credits.slots();
    return cap > reserved + 1 ? cap - reserved - 1 : 0;
}

template <class T>
std::uint64_t served_chan<T>::spare_demand() const {
    std::uint64_t q = 0;
    std::uint64_t met = impl_->len() + demand_held_ + direct_.size();
    for (const auto& [id, st] : sessions_) {
        q += st.stream_ranges.size();
        met += st.credits.slots();
    }
    return q > met ? q - met : 0;
}

template <class T>
void served_chan<T>::feed_direct(reply_sink& out) {
    // The waiting streams, longest waiting first (served_chan_streams.hpp);
    // one that yielded its turn takes them in the rotation.
    std::vector<std::pair<std::uint64_t, std::uint32_t>> waiting;  // (since, session)
    for (const auto& [id, st] : sessions_) {
        if (st.stream_ranges.empty()) continue;
        if (st.stream_op == 0 && std::find(turns_.begin(), turns_.end(), id) != turns_.end()) {
            continue;
        }
        waiting.emplace_back(st.waiting_since, id);
    }
    std::sort(waiting.begin(), waiting.end());
    for (const auto& [since, session] : waiting) {
        if (direct_.empty()) break;
        auto it = sessions_.find(session);
        if (it == sessions_.end()) continue;
        session_state& st = it->second;
        std::optional<T> handed;
        if (st.stream_op != 0) {
            auto& o = *ops_.at(st.stream_op);
            if (o.registered) unregister(o);
            if (o.rp.done && o.rp.value) handed = std::move(o.rp.value);
            erase(o);
            st.stream_op = 0;
        }
        pump(out, session, st, std::move(handed));
    }
    if (spill_direct()) settle(out);
}

template <class T>
bool served_chan<T>::spill_direct() {
    if (direct_.empty() || room_op_ != 0) return false;
    for (const auto& [id, st] : sessions_) {
        if (!st.stream_ranges.empty()) return false;  // the streams take them
    }
    while (!direct_.empty()) {
        const send_status s = back_->try_send_nowait(direct_.front().value);
        if (s == send_status::ok) {
            (void)take_direct();   // moved from
            back_->settle_lent();  // after it is in: see buffered_chan's top
            continue;
        }
        auto& o = make_op(0, 0, op_kind::room);
        o.entry = wait_entry{&o.cx, sel_first_op, nullptr};
        o.registered = true;
        room_op_ = o.hook.op_id;
        if (!back_->watch_room(o.entry)) return false;  // on_ready calls again
        unregister(o);
        erase(o);
        if (s == send_status::closed) {  // and nothing left in the ring
            while (!direct_.empty()) back_->return_lent_back(take_direct());
            return true;
        }
    }
    return false;
}

template <class T>
T served_chan<T>::take_direct() {
    held_value h = std::move(direct_.front());
    direct_.pop_front();
    auto it = sessions_.find(h.session);
    if (it != sessions_.end() && --it->second.held == 0 && !gated_.empty() && !gate_posted_) {
        gate_posted_ = true;  // ungate() runs with a reply_sink
        notifier_.post(this, gate_op);
    }
    return std::move(h.value);
}

template <class T>
bool served_chan<T>::holds_values_of(std::uint32_t session) const {
    if (direct_.empty()) return false;
    auto it = sessions_.find(session);
    return it != sessions_.end() && it->second.held != 0;
}

template <class T>
void served_chan<T>::ungate(reply_sink& out) {
    gate_posted_ = false;
    std::vector<std::uint64_t> ids;
    ids.swap(gated_);
    for (const std::uint64_t id : ids) {
        auto it = ops_.find(id);
        if (it == ops_.end()) continue;  // cancelled or its session dropped
        // progress_send gates it again (in order) if its session's values
        // are still held.
        progress_send(out, *it->second);
    }
}

}  // namespace zchan::detail

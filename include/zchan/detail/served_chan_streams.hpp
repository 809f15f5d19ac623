// served_chan<T>'s streams: RECV_MANY requests answered in VALUES frames,
// and the turns that share a channel between streams. Part of served_chan.hpp
// (which includes this file at its end); not to be included on its own.
//
// Streams (protocol.md §8.8): a prefetching peer asks for many values at
// once with RECV_MANY. Its requests wait per session in `stream_ranges`
// (request-id ranges in arrival order), behind ONE registered receive entry
// (the session's stream op) instead of one entry per request; whenever the
// stream can make progress, pump() answers as many of them as the channel
// has values for, packed into VALUES frames.
//
// Turns: streams are greedy (a pump takes every value it has requests for),
// so while another session's stream also wants values, a pump takes at most
// `stream_turn_values` (and in any case at most `stream_turn_bytes`, so that
// large values cannot hold the server thread) and then yields: the
// session goes to the back of `turns_` and the next one in turns_ pumps (its registered stream op,
// if any, taken off the channel first). Waiting receivers are thus served in turn, as Go's FIFO of
// blocked receivers does, instead of by whoever's refill reaches the home first. A rotation runs at
// most one turn per session and continues at the server's next pass (the notifier), so a producer
// that keeps the buffer full cannot hold the server thread. Streams that wait on an empty channel
// are served by seniority: a buffered channel wakes every waiting stream at once for one value, and
// the one that has waited longest (waiting_since; a stream woken for nothing keeps its place) takes
// it, so a slow producer's values alternate between equal consumers instead of going to whichever
// re-registered first.
//
// Thread safety: as served_chan (the server thread).
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace zchan::detail {

template <class T>
void served_chan<T>::on_recv_many(reply_sink& out, std::uint32_t session, std::uint64_t first,
                                  std::uint32_t count) {
    auto it = sessions_.find(session);
    if (it == sessions_.end()) return;
    session_state& st = it->second;
    watch_receiver(out, session, st);
    if (first > st.max_request) {  // the usual case: new requests
        st.stream_ranges.push_back(first, count);
        st.saw(first, count);
    } else {
        // A re-send after a resume (protocol.md §12.3): each id as the
        // RECV it stands for; only the ones that must run join the stream.
        const std::uint64_t seen = st.max_request;
        for (std::uint64_t id = first; id < first + count; ++id) {
            if (id <= seen && replay_recv(out, session, st, id, false)) continue;
            st.stream_ranges.push_back(id, 1);
        }
        if (first + count - 1 > seen) st.saw(seen + 1, first + count - 1 - seen);
    }
    if (st.stream_op == 0 && !st.stream_ranges.empty()) {
        pump(out, session, st, std::nullopt);  // else it waits already
    }
}

template <class T>
void served_chan<T>::pump(reply_sink& out, std::uint32_t session, session_state& st,
                          std::optional<T> first) {
    if (pump_turn(out, session, st, std::move(first))) rotate(out);
    if (!direct_.empty() && spill_direct()) settle(out);  // held values nobody asks for now
}

template <class T>
bool served_chan<T>::other_stream_wants(std::uint32_t session) const {
    for (const auto& [id, st] : sessions_) {
        if (id != session && !st.stream_ranges.empty()) return true;
    }
    return false;
}

template <class T>
void served_chan<T>::queue_waiting_streams(std::uint32_t session) {
    for (const auto& [id, st] : sessions_) {
        if (id == session || st.stream_op == 0 || st.stream_ranges.empty()) continue;
        if (std::find(turns_.begin(), turns_.end(), id) == turns_.end()) turns_.push_back(id);
    }
}

template <class T>
void served_chan<T>::rotate(reply_sink& out) {
    for (std::size_t k = turns_.size(); k != 0 && !turns_.empty(); --k) {
        const std::uint32_t session = turns_.front();
        turns_.pop_front();
        auto it = sessions_.find(session);
        if (it == sessions_.end()) continue;
        session_state& st = it->second;
        std::optional<T> handed;
        if (st.stream_op != 0) {  // waiting on the channel: take it off first
            auto& o = *ops_.at(st.stream_op);
            if (o.registered) unregister(o);
            if (o.rp.done && o.rp.value) handed = std::move(o.rp.value);
            erase(o);
            st.stream_op = 0;
        }
        (void)pump_turn(out, session, st, std::move(handed));
    }
    if (!turns_.empty()) notifier_.post(this, turn_op);
}

template <class T>
bool served_chan<T>::pump_turn(reply_sink& out, std::uint32_t session, session_state& st,
                               std::optional<T> first) {
    std::string* buf = nullptr;
    std::uint64_t batch_request = 0;  // request id of the batch's first entry
    std::uint32_t n = 0;
    std::uint32_t taken = 0;  // values this turn
    std::size_t bytes = 0;    // their encoded size
    const bool share = other_stream_wants(session);
    auto flush = [&] {
        if (n != 0) out.values_end(n);
        n = 0;
        buf = nullptr;
    };
    bool served = false;  // a value went to this stream in this pump
    for (;;) {
        if (st.stream_ranges.empty()) {
            flush();
            st.waiting_since = 0;
            if (first) back_->return_lent(std::move(*first));  // nobody asks any more
            return false;
        }
        std::optional<T> v = std::exchange(first, std::nullopt);
        recv_status s = recv_status::ok;
        if (!v) s = back_->try_recv_lent(v);
        if (s != recv_status::ok && !direct_.empty()) {  // held values, after the ring's
            v = take_direct();
            s = recv_status::ok;
        }
        if (s == recv_status::closed) {
            flush();
            if (recv_held(session)) {  // see the top: settle() retries it
                if (std::find(held_streams_.begin(), held_streams_.end(), session) ==
                    held_streams_.end()) {
                    held_streams_.push_back(session);
                }
                return false;
            }
            st.stream_ranges.for_each(
                [&](std::uint64_t id) { out.reply(session, wire::msg::closed, id); });
            st.stream_ranges.clear();
            return false;
        }
        if (s != recv_status::ok) {
            flush();
            if (wait_stream(session, st, first, served)) return false;
            continue;  // "may be ready now", or a value was handed over
        }
        const std::uint64_t request = st.stream_ranges.front();
        if (n != 0 && (request != batch_request + n || n == stream_frame_values ||
                       buf->size() >= stream_frame_bytes)) {
            flush();
        }
        if (n == 0) {
            buf = &out.values_begin(session, request, st.next_delivery);
            batch_request = request;
        }
        const std::size_t at = reply_sink::values_entry_begin(*buf);
        try {
            encode_value(*v, *buf);
        } catch (...) {
            // The user's serializer threw: the value stays in the channel,
            // this request gets an ERROR, and the stream stops until the
            // peer asks again (no busy loop on a value that cannot encode).
            buf->resize(at);
            flush();
            back_->return_lent(std::move(*v));
            pop_stream_request(st);
            out.reply_error(session, request, wire::error_code::decode_error,
                            "value could not be encoded at the home");
            return false;
        }
        reply_sink::values_entry_end(*buf, at);
        bytes += buf->size() - at;
        ++n;
        served = true;
        st.add_delivery(request, std::move(*v), nullptr);
        ++open_total_;
        pop_stream_request(st);
        const bool turn_over =
            (share && ++taken == stream_turn_values) || bytes >= stream_turn_bytes;
        if (turn_over && !st.stream_ranges.empty()) {
            flush();
            queue_waiting_streams(session);  // their turn comes first
            turns_.push_back(session);
            return true;
        }
    }
}

template <class T>
void served_chan<T>::serve_woken_streams(reply_sink& out) {
    std::vector<std::pair<std::uint64_t, std::uint32_t>> woken;  // (since, session)
    for (const auto& [id, st] : sessions_) {
        if (st.stream_op == 0) continue;
        const op& o = *ops_.at(st.stream_op);
        if (o.registered && o.cx.selected() != sel_waiting)
            woken.emplace_back(st.waiting_since, id);
    }
    std::sort(woken.begin(), woken.end());
    for (const auto& [since, session] : woken) {
        auto it = sessions_.find(session);
        if (it == sessions_.end() || it->second.stream_op == 0) continue;
        session_state& st = it->second;
        auto& o = *ops_.at(st.stream_op);
        unregister(o);  // the barrier that makes a handoff visible (core_hooks)
        std::optional<T> v;
        if (o.rp.done && o.rp.value) v = std::move(o.rp.value);
        erase(o);  // pump() registers a fresh one if it must wait again
        st.stream_op = 0;
        pump(out, session, st, std::move(v));
    }
}

template <class T>
bool served_chan<T>::wait_stream(std::uint32_t session, session_state& st, std::optional<T>& handed,
                                 bool served) {
    if (served || st.waiting_since == 0) st.waiting_since = ++wait_clock_;
    auto& o = make_op(session, 0, op_kind::stream);
    o.rp = recv_packet<T>{};
    o.entry = wait_entry{&o.cx, sel_first_op, &o.rp};
    o.registered = true;
    if (!impl_->register_recv(o.entry)) {
        st.stream_op = o.hook.op_id;
        return true;
    }
    unregister(o);
    if (o.rp.done && o.rp.value) handed = std::move(o.rp.value);
    erase(o);
    return false;
}

template <class T>
void served_chan<T>::cancel_stream_request(reply_sink& out, std::uint32_t session,
                                           std::uint64_t request) {
    auto it = sessions_.find(session);
    if (it == sessions_.end()) return;
    session_state& st = it->second;
    if (!st.stream_ranges.take(request)) {
        // Unknown or answered (§8.5); a re-sent cancel of a RECV answered
        // RECV_CANCELLED (or never run) gets that again, unless a VALUE
        // answered it (§12.3): then the peer gives that value back. A peer
        // ignores an answer it has already.
        if (request > st.max_request) return;
        if (const std::uint64_t d = st.delivery_for(request); d == 0) {
            out.reply(session, wire::msg::recv_cancelled, request);
        } else {
            st.will_return(d);
        }
        return;
    }
    out.reply(session, wire::msg::recv_cancelled, request);
    if (st.stream_ranges.empty() && st.stream_op != 0) {
        auto& o = *ops_.at(st.stream_op);
        if (o.registered) unregister(o);
        if (o.rp.done && o.rp.value) back_->return_lent(std::move(*o.rp.value));
        erase(o);
        st.stream_op = 0;
    }
    if (!direct_.empty() && spill_direct()) settle(out);  // one taker fewer
}

}  // namespace zchan::detail

// served_chan<T>'s deliveries: a value sent to a remote receiver is kept
// until its peer ACKs or RETURNs it, or the session is lost (protocol.md
// §8.4, §12.4); a value claimed from a sender on an unbuffered channel goes
// back to that sender instead (§8.3). Part of served_chan.hpp (which
// includes this file at its end); not to be included on its own.
//
// Close (protocol.md §10 item 3): a receiver learns CLOSED only when the
// channel is closed, empty, and no *other* session holds an unresolved
// delivery: such a value may still come back (RETURN, loss) and must then
// reach a receiver that is still ranging. Until then the request is held
// (`held_`, `held_streams_`: not registered on the channel, which would
// report the close at once), and settle() retries it whenever a delivery is
// resolved. A session's own unresolved deliveries do not hold it back: its
// peer hands them to its user before it reports the close.
//
// Thread safety: as served_chan (the server thread).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace zchan::detail {

template <class T>
void served_chan<T>::drop_session(std::uint32_t session) {
    std::vector<std::uint64_t> mine;
    for (auto& [id, o] : ops_) {
        if (o->session == session) mine.push_back(id);
    }
    for (auto id : mine) {
        auto& o = *ops_.at(id);
        if (o.registered) unregister(o);
        // A handoff that completed just before: the value is ours.
        if ((o.kind == op_kind::recv || o.kind == op_kind::stream) && o.rp.done && o.rp.value) {
            give_back(o.rp.claimed, o.rp.value);
        }
        if (o.kind == op_kind::send && o.sp.claim.pending()) {
            // Its value is out in another session's delivery, which
            // settles the claim through this op: it goes then (see
            // progress_send).
            o.orphan = true;
            continue;
        }
        erase(o);
    }
    auto it = sessions_.find(session);
    if (it == sessions_.end()) return;
    release_credits(it->second.credits);  // protocol.md §12.4
    // protocol.md §12.4: unacknowledged deliveries go back to the head,
    // in delivery order (so requeue the newest first).
    auto& st = it->second;
    for (std::size_t i = st.unacked.size(); i-- != 0;) {
        if (st.unacked[i]) give_back(st.unacked_claim[i], st.unacked[i]);
    }
    open_total_ -= it->second.open;
    sessions_.erase(it);
    // Its streams' demand is gone: the held values it would have taken go
    // into the channel (the server then calls settle()).
    (void)spill_direct();
}

template <class T>
void served_chan<T>::settle(reply_sink& out) {
    if (held_.empty() && held_streams_.empty()) return;
    std::vector<std::uint64_t> ops;
    std::vector<std::uint32_t> streams;
    ops.swap(held_);  // whatever must wait again is held anew
    streams.swap(held_streams_);
    for (const std::uint64_t id : ops) {
        auto it = ops_.find(id);
        if (it != ops_.end()) progress_recv(out, *it->second);  // else cancelled or dropped
    }
    for (const std::uint32_t session : streams) {
        auto it = sessions_.find(session);
        if (it == sessions_.end()) continue;
        session_state& st = it->second;
        if (st.stream_op == 0 && !st.stream_ranges.empty()) {
            pump(out, session, st, std::nullopt);
        }
    }
}

template <class T>
void served_chan<T>::on_ack(std::uint32_t session, std::uint64_t delivery) {
    auto it = sessions_.find(session);
    if (it == sessions_.end()) return;
    if (std::optional<T>* slot = it->second.find(delivery)) {
        if (wait_entry* claimed = it->second.claim_of(delivery)) {
            back_->settle_claim(*claimed, true, *slot);  // the rendezvous (§8.3)
        } else {
            back_->settle_lent();  // it can no longer come back (§10 item 3)
        }
        slot->reset();
        it->second.resolved();
        --open_total_;
    }
}

template <class T>
void served_chan<T>::on_return(std::uint32_t session, std::uint64_t delivery) {
    auto it = sessions_.find(session);
    if (it == sessions_.end()) return;
    std::optional<T>* slot = it->second.find(delivery);
    if (slot == nullptr) return;  // unknown or resolved: ignore (§8.4)
    give_back(it->second.claim_of(delivery), *slot);
    slot->reset();
    it->second.resolved();
    --open_total_;
}

template <class T>
void served_chan<T>::give_back(wait_entry* claimed, std::optional<T>& v) {
    if (claimed != nullptr) {
        back_->settle_claim(*claimed, false, v);
    } else {
        back_->return_lent(std::move(*v));
    }
    v.reset();
}

template <class T>
void served_chan<T>::deliver(reply_sink& out, std::uint32_t session, std::uint64_t request,
                             std::optional<T>& v, wait_entry* claimed) {
    auto it = sessions_.find(session);
    if (it == sessions_.end()) {
        give_back(claimed, v);
        return;
    }
    std::string& payload = enc_;  // reused: no allocation per value
    payload.clear();
    try {
        encode_value(*v, payload);
    } catch (...) {
        // The user's serializer threw: keep the value in the channel (or
        // its sender) and tell the peer (it reports a transport error).
        give_back(claimed, v);
        out.reply_error(session, request, wire::error_code::decode_error,
                        "value could not be encoded at the home");
        return;
    }
    const std::uint64_t d = it->second.next_delivery;
    it->second.add_delivery(request, std::move(*v), claimed);
    v.reset();
    ++open_total_;
    out.reply_value(session, request, d, payload);
}

}  // namespace zchan::detail

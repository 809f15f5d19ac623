// served_chan<T>'s answers to requests re-sent after a resume. Part of
// served_chan.hpp (which includes this file at its end); not to be included
// on its own.
//
// Resume (protocol.md §12.2, §12.3): after a reset connection the peer
// re-sends, with their original ids, every request it has no final answer
// for. A request id at or below the highest one seen on the session is such
// a re-send (ids strictly increase, §8.1), or a late copy from the old
// connection (the ROUTER may still hand over frames it read from it after
// the new one's), and only then are the records consulted: a pending RECV
// (an op, or a stream request) is ignored; one answered with a delivery
// still unresolved gets the same VALUE again (each delivery remembers the
// request it answered); one that never arrived (a gap below the highest id,
// `unseen`) runs as new. One that arrived and was answered otherwise is not
// run again: its VALUE was resolved, so the peer had it (running it again
// would take the next value, and the peer's RETURN of it would reorder the
// channel), or it was answered CLOSED (answered CLOSED again: the channel is
// still closed, even if a value was given back into it since) or
// RECV_CANCELLED (its re-sent CANCEL_RECV gets that again). A TRY RECV runs
// again (it answers at once either way).
//
// Thread safety: as served_chan (the server thread).
#pragma once

#include <cstdint>

namespace zchan::detail {

template <class T>
bool served_chan<T>::replay_recv(reply_sink& out, std::uint32_t session, session_state& st,
                                 std::uint64_t request, bool try_now) {
    if (recv_ops_.count({session, request}) != 0) return true;
    if (st.stream_ranges.contains(request)) return true;
    const std::uint64_t d = st.delivery_for(request);
    if (d == 0) {
        if (st.unseen.take(request)) return false;  // lost on the way: run it now
        if (request < st.unseen_floor || try_now) return false;
        // Answered before. If the answer was CLOSED the peer may never
        // have seen it, and it waits for one (protocol.md §9.2): CLOSED
        // again, also if a value came back after the close (RETURN,
        // §8.4), which must not make the request go unanswered. If it was
        // a VALUE since resolved (or RECV_CANCELLED), the peer had it and
        // ignores a second answer (§12.2).
        if (impl_->is_closed()) out.reply(session, wire::msg::closed, request);
        return true;  // see the top
    }
    enc_.clear();
    try {
        encode_value(*st.unacked[static_cast<std::size_t>(d - st.base)], enc_);
    } catch (...) {
        out.reply_error(session, request, wire::error_code::decode_error,
                        "value could not be encoded at the home");
        return true;  // it encoded once; the delivery stays until RETURN or loss
    }
    out.reply_value(session, request, d, enc_);
    return true;
}

}  // namespace zchan::detail

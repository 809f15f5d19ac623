// served_chan<T>'s answers to the requests of remote peers (protocol.md §8):
// SEND (an offer, or a TRY that the home executes atomically, §8.2), RECV
// (§8.4), WATCH_SEND (§8.6) and their cancels (§8.5). Part of
// served_chan.hpp (which includes this file at its end); not to be included
// on its own.
//
// Thread safety: as served_chan (the server thread).
#pragma once

#include <cstdint>
#include <optional>

namespace zchan::detail {

template <class T>
bool served_chan<T>::on_send(reply_sink& out, std::uint32_t session, std::uint64_t seq,
                             bool try_now, const unsigned char* data, std::size_t size) {
    // protocol.md §8.2 rule 5, §12.3: a seq already resolved gets its recorded answer
    // again and is never enqueued twice; a pending one is ignored.
    if (send_ops_.count({session, seq}) != 0) return true;  // duplicate of a pending offer
    if (auto it = sessions_.find(session); it != sessions_.end()) {
        if (const wire::msg answer = it->second.recorded(seq); answer != wire::msg{}) {
            out.reply(session, answer, seq);
            return true;
        }
        if (seq <= it->second.forgotten_upto) {
            out.reply_error(session, seq, wire::error_code::protocol_error,
                            "SEND seq already resolved and forgotten");
            return true;
        }
    }
    std::optional<T> v;
    if (decode_value(data, size, v)) return false;  // protocol.md §8.2 rule 1
    // §9.1: an offer from a session holding credits crossed their CREDIT
    // on the wire; as an offer it would wait for a slot its own credits
    // keep reserved. SEND_FULL sends it back to use them.
    if (auto it = sessions_.find(session);
        it != sessions_.end() && it->second.credits.held() != 0 && !impl_->is_closed()) {
        answer_send(out, session, seq, wire::msg::send_full);
        return true;
    }
    if (try_now) {
        if (holds_values_of(session)) {  // it would pass them (§9.1 rule 5)
            answer_send(out, session, seq, wire::msg::send_full);
            return true;
        }
        switch (back_->try_send_nowait(*v)) {
            case send_status::ok:
                answer_send(out, session, seq, wire::msg::send_ok);
                return true;
            case send_status::closed:
                answer_send(out, session, seq, wire::msg::send_closed);
                return true;
            default:
                break;
        }
        // A remote receiver waiting on an unbuffered channel: the value
        // goes to it, and the answer waits for its ACK or RETURN (the
        // rendezvous, protocol.md §8.2 step 3, §8.3).
        if (impl_->cap() == 0) {
            auto& o = make_op(session, seq, op_kind::send);
            o.value = std::move(v);
            o.try_only = true;
            arm_send(o);
            if (back_->offer_to_claiming(o.entry)) {
                send_ops_[{session, seq}] = o.hook.op_id;
                return true;
            }
            o.registered = false;
            erase(o);
        }
        answer_send(out, session, seq, wire::msg::send_full);
        return true;
    }
    auto& o = make_op(session, seq, op_kind::send);
    o.value = std::move(v);
    send_ops_[{session, seq}] = o.hook.op_id;
    progress_send(out, o);
    return true;
}

template <class T>
void served_chan<T>::on_cancel_send(reply_sink& out, std::uint32_t session, std::uint64_t seq) {
    auto it = send_ops_.find({session, seq});
    if (it == send_ops_.end()) return;  // already answered (protocol.md §8.5)
    auto& o = *ops_.at(it->second);
    if (o.sp.claim.pending()) {
        // Its value is with a remote receiver: the verdict is that
        // receiver's (progress_send answers once the claim is settled).
        o.cancelled = true;
        return;
    }
    if (o.registered) unregister(o);
    answer_send(out, session, seq, o.sp.done ? wire::msg::send_ok : wire::msg::send_cancelled);
    erase(o);
}

template <class T>
void served_chan<T>::on_recv(reply_sink& out, std::uint32_t session, std::uint64_t request,
                             bool try_now, std::uint64_t select_tag) {
    if (auto it = sessions_.find(session); it != sessions_.end()) {
        session_state& st = it->second;
        watch_receiver(out, session, st);
        if (request <= st.max_request) {
            if (replay_recv(out, session, st, request, try_now)) return;  // §12.3
        } else {
            st.saw(request, 1);
        }
    }
    if (try_now) {
        std::optional<T> v;
        wait_entry* claimed = nullptr;
        switch (back_->try_recv_claim(v, claimed)) {
            case recv_status::ok:
                deliver(out, session, request, v, claimed);
                break;
            case recv_status::closed:  // EMPTY while a value may still come back
                out.reply(session, recv_held(session) ? wire::msg::empty : wire::msg::closed,
                          request);
                break;
            default:
                out.reply(session, wire::msg::empty, request);
                break;
        }
        return;
    }
    if (recv_ops_.count({session, request}) != 0) return;
    select_group* g = group_of(session, select_tag);
    if (g == nullptr || !g->fired) {
        // Fast path, the first step of progress_recv without an op
        // object: a value (or a close) is there now.
        identity_scope as_group(g);
        std::optional<T> v;
        wait_entry* claimed = nullptr;
        const recv_status s = back_->try_recv_claim(v, claimed);
        if (s == recv_status::ok) {
            if (g != nullptr) fire_group(out, session, select_tag, *g);
            deliver(out, session, request, v, claimed);
            return;
        }
        if (s == recv_status::closed && !recv_held(session)) {
            out.reply(session, wire::msg::closed, request);
            return;
        }
    }
    auto& o = make_op(session, request, op_kind::recv);
    recv_ops_[{session, request}] = o.hook.op_id;
    join_group(o, g, select_tag);
    if (o.parked) return;  // its select is done waiting: only CANCEL_RECV answers it
    progress_recv(out, o);
}

template <class T>
void served_chan<T>::on_cancel_recv(reply_sink& out, std::uint32_t session, std::uint64_t request) {
    auto it = recv_ops_.find({session, request});
    if (it == recv_ops_.end()) {
        cancel_stream_request(out, session, request);
        return;
    }
    auto& o = *ops_.at(it->second);
    if (o.registered) unregister(o);
    if (o.rp.done && o.rp.value) {
        // Crossed on the wire: deliver; the peer gives it back (§8.5).
        deliver(out, session, request, o.rp.value, o.rp.claimed);
        if (auto st = sessions_.find(session); st != sessions_.end()) {
            st->second.will_return(st->second.next_delivery - 1);
        }
    } else {
        out.reply(session, wire::msg::recv_cancelled, request);
    }
    erase(o);
}

template <class T>
void served_chan<T>::on_watch_send(reply_sink& out, std::uint32_t session, std::uint64_t request,
                                   std::uint64_t select_tag) {
    if (watch_ops_.count({session, request}) != 0) return;  // duplicate of a pending watch
    select_group* g = group_of(session, select_tag);
    if (g != nullptr && g->fired) {
        // Its select is done waiting (§8.6.1): a hint costs nothing.
        out.reply(session, wire::msg::ready, request);
        return;
    }
    auto& o = make_op(session, request, op_kind::watch);
    watch_ops_[{session, request}] = o.hook.op_id;
    join_group(o, g, select_tag);
    o.entry = wait_entry{&o.cx, sel_first_op, nullptr};  // a watcher: no packet
    o.registered = true;
    // Ready now (a partner or space, or closed): answer at once. Its
    // own select's RECVs are no partner (select_groups.hpp).
    bool ready = false;
    {
        identity_scope as_group(g);
        ready = impl_->register_send(o.entry);
    }
    if (ready) fire_watch(out, o);
}

}  // namespace zchan::detail

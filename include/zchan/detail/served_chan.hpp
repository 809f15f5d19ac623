// The home side of a served channel (docs/protocol.md §8, §10, §12.4): turns
// requests from remote peers into non-blocking operations on the local
// channel, driven by the server thread.
//
// Model (the one the in-process core supports, protocol.md §8.4): a remote
// RECV takes the value out of the channel (try_recv, or a handoff into a
// registered receive entry) and the home keeps it until the peer ACKs it; a
// RETURN or a lost peer puts it back at the head with requeue_front. A remote
// SEND is a registered send entry holding the decoded value (an offer). A
// WATCH_SEND (a remote select's send case, protocol.md §8.6) is a registered
// send entry without a packet (a watcher): it carries no value, and when it
// is woken the home answers READY and forgets it; the peer's select then
// retries with a TRY SEND, which is atomic here.
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
// large values cannot hold the server thread) and then yields: the session goes to the back of
// `turns_` and the next one in turns_ pumps (its registered stream op, if
// any, taken off the channel first). Waiting receivers are thus served in
// turn, as Go's FIFO of blocked receivers does, instead of by whoever's
// refill reaches the home first. A rotation runs at most one turn per
// session and continues at the server's next pass (the notifier), so a
// producer that keeps the buffer full cannot hold the server thread.
// Streams that wait on an empty channel are served by seniority: a buffered
// channel wakes every waiting stream at once for one value, and the one that
// has waited longest (waiting_since; a stream woken for nothing keeps its
// place) takes it, so a slow producer's values alternate between equal
// consumers instead of going to whichever re-registered first.
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
// Send window (protocol.md §9.1): a session granted a window gets credits,
// each a slot reserved in the channel (servable::reserve), topped up in
// batches (send_credits.hpp); its credited values go straight into their
// slots (send_reserved) with no op, in number order, and one CREDIT per frame
// confirms them. At a close (the close watcher, one op) every session still
// holding credits gets REVOKE; its REVOKED, BYE or loss releases the slots
// it did not fill, and until then the closed channel is not drained.
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
// Invariants:
//   * an op is registered on the channel iff op.registered; it is unregistered
//     before its memory is released, so no notification can reach a dead op
//     (a notification already queued names it by id and finds nothing);
//   * every value taken out of the channel is either in a session's
//     `unacked` window, or was handed to requeue_front: never dropped.
//
// Thread safety: every member runs on the server thread (served_base
// contract), except that the channel may call op_hook_notify from any thread
// under its own lock; that only posts the op id to the server.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "zchan/channel.hpp"
#include "zchan/detail/chan_base.hpp"
#include "zchan/detail/id_ranges.hpp"
#include "zchan/detail/net_link.hpp"
#include "zchan/detail/send_credits.hpp"
#include "zchan/serialize.hpp"

namespace zchan::detail {

template <class T>
class served_chan final : public served_base {
public:
    /// `type`: the type identity peers must present (protocol.md §7.2);
    /// empty means "the first dialer's" (a hub's channel, protocol.md §17).
    served_chan(channel<T> ch, op_notifier& notifier,
                std::string type = zchan::type_name<T>::value())
        : ch_(std::move(ch)),
          impl_(channel_access<T>::get(ch_)),
          back_(dynamic_cast<servable<T>*>(impl_)),
          type_(std::move(type)),
          notifier_(notifier) {
        if (back_ == nullptr) {
            throw std::invalid_argument(
                "zchan: cannot serve a dialed channel; serve it from its home process");
        }
    }

    ~served_chan() override {
        // The server drops every session first; this is the backstop.
        std::vector<std::uint32_t> ids;
        for (auto& [id, s] : sessions_) ids.push_back(id);
        for (auto id : ids) drop_session(id);
        if (close_watch_ != 0) {
            auto& o = *ops_.at(close_watch_);
            if (o.registered) unregister(o);
            erase(o);
        }
    }

    const std::string& type_name() const noexcept override { return type_; }
    bool adopt_type(std::string_view type) override {
        if (!type_.empty()) return false;
        type_ = type;
        return true;
    }
    std::uint64_t capacity() const override { return impl_->cap(); }

    void open_session(std::uint32_t session) override { sessions_[session]; }

    void drop_session(std::uint32_t session) override {
        std::vector<std::uint64_t> mine;
        for (auto& [id, o] : ops_) {
            if (o->session == session) mine.push_back(id);
        }
        for (auto id : mine) {
            auto& o = *ops_.at(id);
            if (o.registered) unregister(o);
            // A handoff that completed just before: the value is ours.
            if ((o.kind == op_kind::recv || o.kind == op_kind::stream) && o.rp.done && o.rp.value) {
                back_->requeue_front(std::move(*o.rp.value));
            }
            erase(o);
        }
        auto it = sessions_.find(session);
        if (it == sessions_.end()) return;
        release_credits(it->second.credits);  // protocol.md §12.4
        // protocol.md §12.4: unacknowledged deliveries go back to the head,
        // in delivery order (so requeue the newest first).
        auto& unacked = it->second.unacked;
        for (auto d = unacked.rbegin(); d != unacked.rend(); ++d) {
            if (*d) back_->requeue_front(std::move(**d));
        }
        open_total_ -= it->second.open;
        sessions_.erase(it);
    }

    std::size_t unresolved(std::uint32_t session) const override {
        auto it = sessions_.find(session);
        return it == sessions_.end() ? 0 : it->second.open;
    }

    void settle(reply_sink& out) override {
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

    bool on_send(reply_sink& out, std::uint32_t session, std::uint64_t seq, bool try_now,
                 const unsigned char* data, std::size_t size) override {
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
            switch (impl_->try_send(*v)) {
                case send_status::ok:
                    answer_send(out, session, seq, wire::msg::send_ok);
                    break;
                case send_status::closed:
                    answer_send(out, session, seq, wire::msg::send_closed);
                    break;
                default:
                    answer_send(out, session, seq, wire::msg::send_full);
                    break;
            }
            return true;
        }
        auto& o = make_op(session, seq, op_kind::send);
        o.value = std::move(v);
        send_ops_[{session, seq}] = o.hook.op_id;
        progress_send(out, o);
        return true;
    }

    void on_cancel_send(reply_sink& out, std::uint32_t session, std::uint64_t seq) override {
        auto it = send_ops_.find({session, seq});
        if (it == send_ops_.end()) return;  // already answered (protocol.md §8.5)
        auto& o = *ops_.at(it->second);
        if (o.registered) unregister(o);
        answer_send(out, session, seq, o.sp.done ? wire::msg::send_ok : wire::msg::send_cancelled);
        erase(o);
    }

    void on_recv(reply_sink& out, std::uint32_t session, std::uint64_t request,
                 bool try_now) override {
        if (auto it = sessions_.find(session); it != sessions_.end()) {
            session_state& st = it->second;
            if (request <= st.max_request) {
                if (replay_recv(out, session, st, request, try_now)) return;  // §12.3
            } else {
                st.saw(request, 1);
            }
        }
        if (try_now) {
            std::optional<T> v;
            switch (impl_->try_recv(v)) {
                case recv_status::ok:
                    deliver(out, session, request, std::move(*v));
                    break;
                case recv_status::closed:  // EMPTY while a value may still come back
                    out.reply(session,
                              others_unresolved(session) ? wire::msg::empty : wire::msg::closed,
                              request);
                    break;
                default:
                    out.reply(session, wire::msg::empty, request);
                    break;
            }
            return;
        }
        if (recv_ops_.count({session, request}) != 0) return;
        {
            // Fast path, the first step of progress_recv without an op
            // object: a value (or a close) is there now.
            std::optional<T> v;
            const recv_status s = impl_->try_recv(v);
            if (s == recv_status::ok) {
                deliver(out, session, request, std::move(*v));
                return;
            }
            if (s == recv_status::closed && !others_unresolved(session)) {
                out.reply(session, wire::msg::closed, request);
                return;
            }
        }
        auto& o = make_op(session, request, op_kind::recv);
        recv_ops_[{session, request}] = o.hook.op_id;
        progress_recv(out, o);
    }

    void on_cancel_recv(reply_sink& out, std::uint32_t session, std::uint64_t request) override {
        auto it = recv_ops_.find({session, request});
        if (it == recv_ops_.end()) {
            cancel_stream_request(out, session, request);
            return;
        }
        auto& o = *ops_.at(it->second);
        if (o.registered) unregister(o);
        if (o.rp.done && o.rp.value) {
            // Crossed on the wire: deliver; the peer gives it back (§8.5).
            deliver(out, session, request, std::move(*o.rp.value));
        } else {
            out.reply(session, wire::msg::recv_cancelled, request);
        }
        erase(o);
    }

    void on_recv_many(reply_sink& out, std::uint32_t session, std::uint64_t first,
                      std::uint32_t count) override {
        auto it = sessions_.find(session);
        if (it == sessions_.end()) return;
        session_state& st = it->second;
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

    void on_watch_send(reply_sink& out, std::uint32_t session, std::uint64_t request) override {
        if (watch_ops_.count({session, request}) != 0) return;  // duplicate of a pending watch
        auto& o = make_op(session, request, op_kind::watch);
        watch_ops_[{session, request}] = o.hook.op_id;
        o.entry = wait_entry{&o.cx, sel_first_op, nullptr};  // a watcher: no packet
        o.registered = true;
        // Ready now (a partner or space, or closed): answer at once.
        if (impl_->register_send(o.entry)) fire_watch(out, o);
    }

    void on_cancel_watch(reply_sink& out, std::uint32_t session, std::uint64_t request) override {
        auto it = watch_ops_.find({session, request});
        if (it == watch_ops_.end()) return;  // READY already sent: the final answer (§8.6)
        auto& o = *ops_.at(it->second);
        if (o.registered) unregister(o);
        out.reply(session, wire::msg::watch_cancelled, request);
        erase(o);
    }

    void on_ack(std::uint32_t session, std::uint64_t delivery) override {
        auto it = sessions_.find(session);
        if (it == sessions_.end()) return;
        if (std::optional<T>* slot = it->second.find(delivery)) {
            slot->reset();
            it->second.resolved();
            --open_total_;
        }
    }

    void on_return(std::uint32_t session, std::uint64_t delivery) override {
        auto it = sessions_.find(session);
        if (it == sessions_.end()) return;
        std::optional<T>* slot = it->second.find(delivery);
        if (slot == nullptr) return;  // unknown or resolved: ignore (§8.4)
        back_->requeue_front(std::move(**slot));
        slot->reset();
        it->second.resolved();
        --open_total_;
    }

    bool on_close() override {
        try {
            impl_->close();
            return true;
        } catch (const channel_closed&) {
            return false;
        }
    }

    void on_query(std::uint64_t& length, bool& closed) override {
        length = impl_->len();
        closed = impl_->is_closed();
    }

    void on_ready(reply_sink& out, std::uint64_t op_id) override {
        if (op_id == turn_op) {
            rotate(out);
            return;
        }
        auto it = ops_.find(op_id);
        if (it == ops_.end()) return;  // cancelled or dropped since
        auto& o = *it->second;
        if (!o.registered) return;
        if (o.kind == op_kind::close_watch) {
            revoke_all(out);
            return;
        }
        if (o.kind == op_kind::stream) {
            serve_woken_streams(out);
            return;
        }
        unregister(o);  // the barrier that makes a handoff visible (core_hooks)
        switch (o.kind) {
            case op_kind::send:
                progress_send(out, o);
                break;
            case op_kind::recv:
                progress_recv(out, o);
                break;
            case op_kind::watch:
                fire_watch(out, o);
                break;
            case op_kind::stream:
            case op_kind::close_watch:
                break;  // above
        }
    }

    std::uint32_t grant_window(std::uint32_t session, std::uint32_t requested) override {
        auto it = sessions_.find(session);
        if (it == sessions_.end() || requested == 0 || !back_->can_reserve()) return 0;
        const auto w = static_cast<std::uint32_t>(
            std::min<std::uint64_t>({requested, impl_->cap(), max_send_window}));
        it->second.credits.window = w;
        if (w != 0) ++windowed_;
        return w;
    }

    void welcomed(reply_sink& out, std::uint32_t session) override {
        auto it = sessions_.find(session);
        if (it == sessions_.end() || it->second.credits.window == 0) return;
        send_credits& c = it->second.credits;
        c.owed = true;  // a resume: what it had may have been lost
        top_up(out, session, c);
        // A REVOKE lost with the old connection: the closed channel waits
        // for its REVOKED, so ask again.
        if (c.revoked && c.held() != 0) out.reply(session, wire::msg::revoke, 0);
    }

    std::uint32_t on_credited(reply_sink& out, std::uint32_t session, std::uint64_t first,
                              std::uint32_t count, const unsigned char* entries,
                              std::size_t size) override {
        auto it = sessions_.find(session);
        if (it == sessions_.end()) return 0;
        send_credits& c = it->second.credits;
        std::uint32_t accepted = 0;
        std::size_t at = 0;
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
            c.upto = number;
            c.owed = true;
            std::optional<T> value;
            if (decode_value(data, len, value)) {
                // Sent, but not a T: it cannot enter the channel. Its slot is
                // free again; the peer reports the ERROR.
                back_->release(1);
                out.reply_error(session, number, wire::error_code::decode_error,
                                "credited value does not decode as " + type_);
                continue;
            }
            back_->send_reserved(std::move(*value));
            ++accepted;
        }
        top_up(out, session, c);
        return accepted;
    }

    void on_revoked(reply_sink& /*out*/, std::uint32_t session) override {
        auto it = sessions_.find(session);
        if (it != sessions_.end()) release_credits(it->second.credits);
    }

private:
    /// stream: a session's one receive entry for its RECV_MANY requests (§8.8).
    /// close_watch: the one watcher of the channel's close (send windows, §9.1).
    enum class op_kind : std::uint8_t { send, recv, watch, stream, close_watch };

    /// Largest VALUES frame pump() builds before starting another: big enough
    /// to amortize the per-frame cost, small enough to keep latency and the
    /// peer's memory per frame modest.
    static constexpr std::size_t stream_frame_bytes = 64 * 1024;
    static constexpr std::uint32_t stream_frame_values = 4096;
    /// Values a stream takes in one turn while another stream waits (see the top).
    static constexpr std::uint32_t stream_turn_values = 64;
    /// Bytes a stream sends in one turn in any case: between turns the server
    /// reads frames and runs heartbeats, so large values cannot stall it for
    /// a heartbeat timeout (a peer busy receiving is not a silent one).
    static constexpr std::size_t stream_turn_bytes = 8u << 20;
    /// on_ready's op id for "continue the rotation"; make_op's ids start at 1.
    static constexpr std::uint64_t turn_op = 0;
    /// The largest send window granted (protocol.md §9.1).
    static constexpr std::uint64_t max_send_window = 65536;

    struct op {
        op_hook hook;
        context cx{&op_hook_notify, &hook};
        wait_entry entry{};
        send_packet<T> sp{};
        recv_packet<T> rp{};
        std::optional<T> value;  // send: the offered value
        std::uint32_t session = 0;
        std::uint64_t id = 0;  // seq or request id
        op_kind kind = op_kind::recv;
        bool registered = false;
    };

    /// Unacknowledged deliveries (protocol.md §8.4). Delivery seqs are
    /// sequential per session, so they live in a window: unacked[i] holds
    /// delivery base + i, empty once resolved; resolved slots at the front
    /// are trimmed. No allocation per value (a deque grows in blocks).
    struct session_state {
        std::uint64_t next_delivery = 1;
        std::uint64_t base = 1;                // delivery seq of unacked.front()
        std::deque<std::optional<T>> unacked;  // [base, next_delivery)
        /// unacked_req[i]: the request delivery base + i answered (§12.3).
        std::deque<std::uint64_t> unacked_req;
        /// The highest RECV / RECV_MANY request id seen: anything at or below
        /// it is a re-send after a resume (§12.3) or a late frame.
        std::uint64_t max_request = 0;
        /// Ids below max_request that never arrived as RECVs (most are the
        /// peer's SEND seqs or other requests: one counter, §8.1), at most
        /// max_unseen_runs runs; below unseen_floor nothing is known.
        id_ranges unseen;
        std::uint64_t unseen_floor = 0;
        static constexpr std::size_t max_unseen_runs = 4096;

        /// RECV ids first..first+count-1 arrived, first > max_request.
        void saw(std::uint64_t first, std::uint64_t count) {
            if (first > max_request + 1) {
                unseen.push_back(max_request + 1, first - max_request - 1);
                if (unseen.runs() > max_unseen_runs) unseen_floor = unseen.pop_front_run();
            }
            max_request = first + count - 1;
        }
        /// RECV_MANY requests not yet answered: (first id, count), in order.
        id_ranges stream_ranges;
        /// The registered stream op's id while the stream waits, else 0.
        std::uint64_t stream_op = 0;
        /// When the stream started waiting (wait_clock_), kept while it is
        /// woken and finds nothing; 0 while it wants nothing. See the top.
        std::uint64_t waiting_since = 0;
        /// The session's send window (protocol.md §9.1).
        send_credits credits;

        /// The final answers of the last send_records resolved SEND seqs, a ring
        /// (protocol.md §12.3). Bounded by count rather than by time: a peer
        /// re-sends only what was outstanding at a cut, far fewer. A seq at or
        /// below forgotten_upto that is not recorded was evicted.
        struct send_record {
            std::uint64_t seq = 0;
            wire::msg answer{};  // msg{} (0): none
        };
        static constexpr std::size_t send_records = 1024;
        std::vector<send_record> sent;  // grows to send_records once, then overwritten
        std::size_t sent_next = 0;
        std::uint64_t max_resolved = 0;
        std::uint64_t forgotten_upto = 0;

        void record(std::uint64_t seq, wire::msg answer) {
            if (sent.size() < send_records) {
                sent.push_back({seq, answer});
            } else {
                forgotten_upto = std::max(forgotten_upto, sent[sent_next].seq);
                sent[sent_next] = {seq, answer};
                sent_next = (sent_next + 1) % send_records;
            }
            max_resolved = std::max(max_resolved, seq);
        }
        /// The recorded answer for `seq`, or msg{} (none). Seqs increase
        /// (§8.1), so a new seq is above max_resolved and costs no search.
        [[nodiscard]] wire::msg recorded(std::uint64_t seq) const {
            if (seq > max_resolved) return wire::msg{};
            for (const auto& r : sent) {
                if (r.seq == seq) return r.answer;
            }
            return wire::msg{};
        }

        /// The pending value of `delivery`, or nullptr (unknown or resolved).
        std::optional<T>* find(std::uint64_t delivery) {
            if (delivery < base || delivery - base >= unacked.size()) return nullptr;
            std::optional<T>& slot = unacked[static_cast<std::size_t>(delivery - base)];
            return slot ? &slot : nullptr;
        }
        /// Unresolved deliveries: the set slots of unacked.
        std::size_t open = 0;
        /// A slot was just reset (ACK or RETURN).
        void resolved() {
            --open;
            trim();
        }
        void trim() {
            while (!unacked.empty() && !unacked.front()) {
                unacked.pop_front();
                unacked_req.pop_front();
                ++base;
            }
        }
        void add_delivery(std::uint64_t request, T&& v) {
            ++next_delivery;
            ++open;
            unacked.emplace_back(std::move(v));
            unacked_req.push_back(request);
        }
        /// The unresolved delivery that answered `request`, or 0. Linear:
        /// only re-sent requests ask (protocol.md §12.3).
        [[nodiscard]] std::uint64_t delivery_for(std::uint64_t request) const {
            for (std::size_t i = 0; i < unacked_req.size(); ++i) {
                if (unacked_req[i] == request && unacked[i]) return base + i;
            }
            return 0;
        }
    };

    op& make_op(std::uint32_t session, std::uint64_t id, op_kind kind) {
        auto o = std::make_unique<op>();
        o->hook = op_hook{&notifier_, this, next_op_++};
        o->session = session;
        o->id = id;
        o->kind = kind;
        auto& ref = *o;
        ops_.emplace(ref.hook.op_id, std::move(o));
        return ref;
    }

    void erase(op& o) {
        switch (o.kind) {
            case op_kind::send:
                send_ops_.erase({o.session, o.id});
                break;
            case op_kind::recv:
                recv_ops_.erase({o.session, o.id});
                break;
            case op_kind::watch:
                watch_ops_.erase({o.session, o.id});
                break;
            case op_kind::stream:
                break;
            case op_kind::close_watch:
                close_watch_ = 0;
                break;
        }
        ops_.erase(o.hook.op_id);
    }

    void unregister(op& o) {
        if (o.kind == op_kind::recv || o.kind == op_kind::stream) {
            impl_->unregister_recv(o.entry);
        } else if (o.kind == op_kind::close_watch) {
            back_->unwatch_close(o.entry);
        } else {
            impl_->unregister_send(o.entry);  // offers and watchers wait as senders
        }
        o.registered = false;
    }

    /// The watch fired (woken, or ready when registered): READY, one-shot
    /// (protocol.md §8.6). Whether it was a partner, space or a close, the
    /// peer's TRY SEND finds out.
    void fire_watch(reply_sink& out, op& o) {
        if (o.registered) unregister(o);
        out.reply(o.session, wire::msg::ready, o.id);
        erase(o);
    }

    /// Sends the final answer to SEND `seq` and records it for replays (§12.3).
    /// A sender with a window that had to offer (out of credits) gets new
    /// credits once its offer went in, if the channel has room (§9.1).
    void answer_send(reply_sink& out, std::uint32_t session, std::uint64_t seq, wire::msg answer) {
        auto it = sessions_.find(session);
        if (it != sessions_.end()) it->second.record(seq, answer);
        out.reply(session, answer, seq);
        if (it != sessions_.end() && answer == wire::msg::send_ok &&
            it->second.credits.wanted(share()) != 0) {
            top_up(out, session, it->second.credits);
        }
    }

    /// Reserves what the session's window wants (send_credits::wanted) and
    /// sends its CREDIT if it gained credits or is owed a confirmation.
    void top_up(reply_sink& out, std::uint32_t session, send_credits& c) {
        if (const std::uint64_t want = c.wanted(share()); want != 0) {
            const std::size_t got = back_->reserve(static_cast<std::size_t>(want));
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

    /// Registers the close watcher once credits exist (see the top).
    void watch_close(reply_sink& out) {
        if (close_watch_ != 0) return;
        auto& o = make_op(0, 0, op_kind::close_watch);
        o.entry = wait_entry{&o.cx, sel_first_op, nullptr};
        o.registered = true;
        close_watch_ = o.hook.op_id;
        if (back_->watch_close(o.entry)) revoke_all(out);  // closed already
    }

    /// The channel closed: no more grants; every session still holding
    /// credits is told to stop (REVOKE) and releases them with REVOKED.
    void revoke_all(reply_sink& out) {
        if (close_watch_ != 0) {
            auto& o = *ops_.at(close_watch_);
            if (o.registered) unregister(o);
            erase(o);
        }
        for (auto& [id, st] : sessions_) {
            send_credits& c = st.credits;
            if (c.window == 0 || c.revoked) continue;
            c.revoked = true;
            --windowed_;
            if (c.held() != 0) out.reply(id, wire::msg::revoke, 0);
        }
    }

    /// Gives the session's unfilled reserved slots back to the channel.
    void release_credits(send_credits& c) {
        if (c.held() != 0) back_->release(static_cast<std::size_t>(c.held()));
        c.granted = c.upto;
        if (c.window != 0 && !c.revoked) --windowed_;
        c.revoked = true;
    }

    /// A windowed session's part of the capacity: with many senders, each
    /// gets credits instead of a few taking the whole channel while the
    /// others fall back to a round trip per value.
    [[nodiscard]] std::uint64_t share() const noexcept {
        return impl_->cap() / std::max<std::uint64_t>(1, windowed_);
    }

    /// `o` is not registered. Tries the send, else registers the offer.
    void progress_send(reply_sink& out, op& o) {
        for (;;) {
            if (o.sp.done) {  // a receiver took it by handoff
                answer_send(out, o.session, o.id, wire::msg::send_ok);
                erase(o);
                return;
            }
            const send_status s = impl_->try_send(*o.value);
            if (s == send_status::ok || s == send_status::closed) {
                answer_send(out, o.session, o.id,
                            s == send_status::ok ? wire::msg::send_ok : wire::msg::send_closed);
                erase(o);
                return;
            }
            o.cx.reset();
            o.sp = send_packet<T>{&*o.value, false};
            o.entry = wait_entry{&o.cx, sel_first_op, &o.sp};
            o.registered = true;
            if (!impl_->register_send(o.entry)) return;  // wait for a notification
            unregister(o);                               // "may be ready now": retry
        }
    }

    /// `o` is not registered. Tries the receive, else registers the waiter.
    void progress_recv(reply_sink& out, op& o) {
        for (;;) {
            if (o.rp.done && o.rp.value) {  // a sender handed a value over
                deliver(out, o.session, o.id, std::move(*o.rp.value));
                erase(o);
                return;
            }
            std::optional<T> v;
            const recv_status s = impl_->try_recv(v);
            if (s == recv_status::ok) {
                deliver(out, o.session, o.id, std::move(*v));
                erase(o);
                return;
            }
            if (s == recv_status::closed) {
                if (others_unresolved(o.session)) {
                    held_.push_back(o.hook.op_id);  // see the top: settle() retries it
                    return;
                }
                out.reply(o.session, wire::msg::closed, o.id);
                erase(o);
                return;
            }
            o.cx.reset();
            o.rp = recv_packet<T>{};
            o.entry = wait_entry{&o.cx, sel_first_op, &o.rp};
            o.registered = true;
            if (!impl_->register_recv(o.entry)) return;
            unregister(o);
        }
    }

    /// Answers the session's stream requests (protocol.md §8.8) with every
    /// value the channel has now (`first`: one a sender already handed
    /// over), packed into VALUES frames of consecutive request ids; CLOSED
    /// each once the channel is closed and drained; registers the stream op
    /// when it runs dry with requests left. Requires: no stream op registered.
    void pump(reply_sink& out, std::uint32_t session, session_state& st, std::optional<T> first) {
        if (pump_turn(out, session, st, std::move(first))) rotate(out);
    }

    /// Whether a session other than `session` has stream requests waiting.
    [[nodiscard]] bool other_stream_wants(std::uint32_t session) const {
        for (const auto& [id, st] : sessions_) {
            if (id != session && !st.stream_ranges.empty()) return true;
        }
        return false;
    }

    /// Queues in turns_ every other session whose stream waits on the channel
    /// with requests left: a waiter is woken only by a sender's notification,
    /// which a yielding stream would otherwise keep beating to the values.
    void queue_waiting_streams(std::uint32_t session) {
        for (const auto& [id, st] : sessions_) {
            if (id == session || st.stream_op == 0 || st.stream_ranges.empty()) continue;
            if (std::find(turns_.begin(), turns_.end(), id) == turns_.end()) turns_.push_back(id);
        }
    }

    /// One turn of each session in turns_ (see the top); what yields again
    /// waits for the next pass.
    void rotate(reply_sink& out) {
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

    /// pump()'s work for one session. Returns true if it yielded its turn
    /// (the session is queued in turns_), false if it answered everything it
    /// could or now waits.
    bool pump_turn(reply_sink& out, std::uint32_t session, session_state& st,
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
                if (first) back_->requeue_front(std::move(*first));  // nobody asks any more
                return false;
            }
            std::optional<T> v = std::move(first);
            first.reset();
            recv_status s = recv_status::ok;
            if (!v) s = impl_->try_recv(v);
            if (s == recv_status::closed) {
                flush();
                if (others_unresolved(session)) {  // see the top: settle() retries it
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
                back_->requeue_front(std::move(*v));
                pop_stream_request(st);
                out.reply_error(session, request, wire::error_code::decode_error,
                                "value could not be encoded at the home");
                return false;
            }
            reply_sink::values_entry_end(*buf, at);
            bytes += buf->size() - at;
            ++n;
            served = true;
            st.add_delivery(request, std::move(*v));
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

    /// A stream op was woken. The channel wakes every event-loop waiter at
    /// once (sync_waker::notify), so several streams may compete for one
    /// value: they are served by seniority (waiting_since), the longest
    /// waiting first, as Go's FIFO of blocked receivers serves them. (In
    /// arrival order of the notifications the stream that won last time,
    /// re-registered first, would win every time.)
    void serve_woken_streams(reply_sink& out) {
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

    /// Registers the session's stream op. Returns true if it now waits;
    /// false if the channel may be ready (retry), with `handed` set if a
    /// sender handed a value over in the meantime.
    bool wait_stream(std::uint32_t session, session_state& st, std::optional<T>& handed,
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

    static void pop_stream_request(session_state& st) { st.stream_ranges.pop_front(); }

    /// Whether a session other than `session` holds an unresolved delivery
    /// (protocol.md §10): a value that may still come back to the channel.
    [[nodiscard]] bool others_unresolved(std::uint32_t session) const {
        auto it = sessions_.find(session);
        return open_total_ > (it == sessions_.end() ? 0 : it->second.open);
    }

    /// CANCEL_RECV of a stream request (protocol.md §8.5, §8.8).
    void cancel_stream_request(reply_sink& out, std::uint32_t session, std::uint64_t request) {
        auto it = sessions_.find(session);
        if (it == sessions_.end()) return;
        session_state& st = it->second;
        if (!st.stream_ranges.take(request)) {
            // Unknown or answered (§8.5); a re-sent cancel of a RECV answered
            // RECV_CANCELLED (or never run) gets that again, unless a VALUE
            // answered it (§12.3). A peer ignores an answer it has already.
            if (request <= st.max_request && st.delivery_for(request) == 0) {
                out.reply(session, wire::msg::recv_cancelled, request);
            }
            return;
        }
        out.reply(session, wire::msg::recv_cancelled, request);
        if (st.stream_ranges.empty() && st.stream_op != 0) {
            auto& o = *ops_.at(st.stream_op);
            if (o.registered) unregister(o);
            if (o.rp.done && o.rp.value) back_->requeue_front(std::move(*o.rp.value));
            erase(o);
            st.stream_op = 0;
        }
    }

    /// Sends VALUE and keeps the value until ACK or RETURN (protocol.md §8.4).
    void deliver(reply_sink& out, std::uint32_t session, std::uint64_t request, T&& v) {
        auto it = sessions_.find(session);
        if (it == sessions_.end()) {
            back_->requeue_front(std::move(v));
            return;
        }
        std::string& payload = enc_;  // reused: no allocation per value
        payload.clear();
        try {
            encode_value(v, payload);
        } catch (...) {
            // The user's serializer threw: keep the value in the channel and
            // tell the peer (it reports a transport error).
            back_->requeue_front(std::move(v));
            out.reply_error(session, request, wire::error_code::decode_error,
                            "value could not be encoded at the home");
            return;
        }
        const std::uint64_t d = it->second.next_delivery;
        it->second.add_delivery(request, std::move(v));
        ++open_total_;
        out.reply_value(session, request, d, payload);
    }

    /// A RECV id at or below the session's highest (protocol.md §12.3, see
    /// the top): returns true if it is handled (ignored, or answered again);
    /// false if it must run as new.
    bool replay_recv(reply_sink& out, std::uint32_t session, session_state& st,
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

    channel<T> ch_;  // keeps the channel alive while served
    chan_base<T>* impl_;
    servable<T>* back_;  // impl_'s requeue_front (zchan::server checks it is there)
    std::string type_;
    op_notifier& notifier_;
    std::uint64_t next_op_ = 1;
    std::unordered_map<std::uint64_t, std::unique_ptr<op>> ops_;
    std::map<std::pair<std::uint32_t, std::uint64_t>, std::uint64_t> send_ops_;
    std::map<std::pair<std::uint32_t, std::uint64_t>, std::uint64_t> recv_ops_;
    std::map<std::pair<std::uint32_t, std::uint64_t>, std::uint64_t> watch_ops_;
    std::unordered_map<std::uint32_t, session_state> sessions_;
    std::string enc_;             // deliver()'s encode buffer, reused
    std::size_t open_total_ = 0;  // unresolved deliveries of every session
    /// Receivers held back on the closed channel (see the top): recv op ids
    /// (possibly cancelled since) and sessions whose stream waits.
    std::vector<std::uint64_t> held_;
    std::vector<std::uint32_t> held_streams_;
    std::deque<std::uint32_t> turns_;  // streams that yielded their turn (see the top)
    std::uint64_t close_watch_ = 0;    // the close watcher's op id, 0: none
    std::uint64_t windowed_ = 0;       // sessions with a send window, not revoked
    std::uint64_t wait_clock_ = 0;     // orders waiting streams (session_state::waiting_since)
};

}  // namespace zchan::detail

// The home side of a served channel (docs/protocol.md §8, §10, §12.4): turns
// requests from remote peers into non-blocking operations on the local
// channel, driven by the server thread.
//
// Model (the one the in-process core supports, protocol.md §8.4): a remote
// RECV takes the value out of the channel (try_recv_claim, or a handoff into
// a registered receive entry) and the home keeps it until the peer ACKs it; a
// RETURN or a lost peer puts it back at the head with return_lent. Until then
// the value is lent (servable): the home process's own receivers do not see
// the channel closed and drained while it can come back (§10 item 3). On an
// unbuffered channel the RECV's entry is a claiming one (protocol.md §8.3,
// claim_word): a value taken from a sender leaves that sender claimed, and
// the delivery remembers it; ACK settles it as taken (the send completes),
// RETURN or loss gives the value back to the sender, not to the channel. A
// remote SEND is a registered send entry holding the decoded value (an offer). A
// WATCH_SEND (a remote select's send case, protocol.md §8.6) is a registered
// send entry without a packet (a watcher): it carries no value, and when it
// is woken the home answers READY and forgets it; the peer's select then
// retries with a TRY SEND, which is atomic here.
//
// The answers to SEND, RECV, WATCH_SEND and their cancels are in
// served_chan_requests.hpp; remote selects' groups (§8.6.1) in
// served_chan_selects.hpp. Streams (RECV_MANY, protocol.md §8.8) and their
// turns are in served_chan_streams.hpp; the send window (§9.1) in served_chan_window.hpp;
// resume (§12.2, §12.3) in served_chan_resume.hpp; deliveries, their
// resolution and the close rule (§8.4, §10, §12.4) in
// served_chan_deliveries.hpp; a session's records in served_session.hpp.
//
// Invariants:
//   * an op is registered on the channel iff op.registered; it is unregistered
//     before its memory is released, so no notification can reach a dead op
//     (a notification already queued names it by id and finds nothing);
//   * every value taken out of the channel is either in a session's
//     `unacked` window, or was given back (return_lent, or back to its
//     claimed sender): never dropped; every credited value accepted is in
//     the channel, in an `unacked` window or held in direct_ (lent) until
//     the channel has room for it (§9.1 rule 5);
//   * an offer op whose value is claimed by a remote receiver (its packet's
//     claim pending) is not erased before the claim is settled: the
//     delivery points at its entry (drop_session and CANCEL_SEND mark it).
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
#include "zchan/detail/served_session.hpp"
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
        // Settling a claim below wakes an offer of ours (§8.3): nobody is
        // left to handle its notification.
        for (auto& [id, o] : ops_) o->hook.notifier = &detached_notifier();
        // Held values (§9.1 rule 5) stay in the channel, which outlives us:
        // into free slots, the rest behind the values given back. First, so
        // that dropping the sessions below finds none to spill.
        if (room_op_ != 0) {
            auto& o = *ops_.at(room_op_);
            if (o.registered) unregister(o);
            erase(o);
        }
        for (auto& h : direct_) {
            if (back_->try_send_nowait(h.value) == send_status::ok) {
                back_->settle_lent();
            } else {
                back_->return_lent_back(std::move(h.value));
            }
        }
        direct_.clear();
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

    [[nodiscard]] const std::string& type_name() const noexcept override { return type_; }
    bool adopt_type(std::string_view type) override {
        if (!type_.empty()) return false;
        type_ = type;
        return true;
    }
    [[nodiscard]] std::uint64_t capacity() const override { return impl_->cap(); }

    void open_session(std::uint32_t session) override { sessions_[session]; }

    void drop_session(std::uint32_t session) override;

    [[nodiscard]] std::size_t unresolved(std::uint32_t session) const override {
        auto it = sessions_.find(session);
        return it == sessions_.end() ? 0 : it->second.open;
    }

    void settle(reply_sink& out) override;

    // POLL (protocol.md §8.9, served_base). A delivery still unresolved is
    // on its way to the peer or not yet handed out there (the peer sends its
    // ACKs before a POLL): a value in the channel for that receiver. A credit
    // held is a reserved slot the peer's next send will fill.
    [[nodiscard]] const chan_poll* poll_channel() const noexcept override { return impl_; }
    [[nodiscard]] bool poll_ready(std::uint32_t session, bool send,
                                  poll_stamp& stamp) const override {
        auto it = sessions_.find(session);
        if (send) {
            if (it != sessions_.end() && it->second.credits.held() != 0) return true;
            return impl_->send_ready(stamp);
        }
        if (it != sessions_.end() && it->second.open != 0) return true;
        return impl_->recv_ready(stamp);
    }

    bool on_send(reply_sink& out, std::uint32_t session, std::uint64_t seq, bool try_now,
                 const unsigned char* data, std::size_t size) override;

    void on_cancel_send(reply_sink& out, std::uint32_t session, std::uint64_t seq) override;

    void on_recv(reply_sink& out, std::uint32_t session, std::uint64_t request, bool try_now,
                 std::uint64_t select_tag) override;

    void on_cancel_recv(reply_sink& out, std::uint32_t session, std::uint64_t request) override;

    void on_recv_many(reply_sink& out, std::uint32_t session, std::uint64_t first,
                      std::uint32_t count) override;

    void on_watch_send(reply_sink& out, std::uint32_t session, std::uint64_t request,
                       std::uint64_t select_tag) override;

    void on_cancel_watch(reply_sink& out, std::uint32_t session, std::uint64_t request) override {
        auto it = watch_ops_.find({session, request});
        if (it == watch_ops_.end()) return;  // READY already sent: the final answer (§8.6)
        auto& o = *ops_.at(it->second);
        if (o.registered) unregister(o);
        out.reply(session, wire::msg::watch_cancelled, request);
        erase(o);
    }

    void on_ack(std::uint32_t session, std::uint64_t delivery) override;

    void on_return(std::uint32_t session, std::uint64_t delivery) override;

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
        if (op_id == gate_op) {
            ungate(out);
            return;
        }
        auto it = ops_.find(op_id);
        if (it == ops_.end()) return;  // cancelled or dropped since
        auto& o = *it->second;
        if (!o.registered) return;
        if (o.kind == op_kind::close_watch) {
            on_closed(out);
            return;
        }
        if (o.kind == op_kind::stream) {
            serve_woken_streams(out);
            return;
        }
        if (o.kind == op_kind::room) {
            unregister(o);
            erase(o);
            if (spill_direct()) settle(out);
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
            case op_kind::room:
                break;  // above
        }
    }

    std::uint32_t grant_window(std::uint32_t session, std::uint32_t requested) override;

    void welcomed(reply_sink& out, std::uint32_t session) override;

    std::uint32_t on_credited(reply_sink& out, std::uint32_t session, std::uint64_t first,
                              std::uint32_t count, const unsigned char* entries,
                              std::size_t size) override;

    void on_revoked(reply_sink& /*out*/, std::uint32_t session) override;

private:
    /// stream: a session's one receive entry for its RECV_MANY requests (§8.8).
    /// close_watch: the one watcher of the channel's close (send windows,
    /// §9.1; receivers' resolutions, §10). room: the one watcher of room for
    /// held values (direct_, served_chan_window.hpp).
    enum class op_kind : std::uint8_t { send, recv, watch, stream, close_watch, room };

    /// Largest VALUES frame pump() builds before starting another: big enough
    /// to amortize the per-frame cost, small enough to keep latency and the
    /// peer's memory per frame modest.
    static constexpr std::size_t stream_frame_bytes = std::size_t{64} * 1024;
    static constexpr std::uint32_t stream_frame_values = 4096;
    /// Values a stream takes in one turn while another stream waits (see the top).
    static constexpr std::uint32_t stream_turn_values = 64;
    /// Bytes a stream sends in one turn in any case: between turns the server
    /// reads frames and runs heartbeats, so large values cannot stall it for
    /// a heartbeat timeout (a peer busy receiving is not a silent one).
    static constexpr std::size_t stream_turn_bytes = 8u << 20;
    /// on_ready's op id for "continue the rotation"; make_op's ids start at 1.
    static constexpr std::uint64_t turn_op = 0;
    /// on_ready's op id for "offers behind held values may go" (ungate()).
    static constexpr std::uint64_t gate_op = ~std::uint64_t{0};
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
        // An offer whose value is claimed by a remote receiver (§8.3) stays
        // until the claim is settled; meanwhile it may become:
        bool try_only = false;   // a TRY SEND: given back means SEND_FULL
        bool cancelled = false;  // CANCEL_SEND arrived: given back means SEND_CANCELLED
        bool orphan = false;     // its session is gone: nobody to answer
        // A remote select's RECV or watch (select_groups.hpp): its tag, 0 if
        // ungrouped; parked: off the channel for good, waiting for its cancel.
        std::uint64_t select_tag = 0;
        bool parked = false;
    };

    /// One session's deliveries and request records (served_session.hpp).
    using session_state = served_session<T>;

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
        if (o.select_tag != 0) {
            if (select_group* g = find_group(o.session, o.select_tag)) --g->live;
        }
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
            case op_kind::room:
                room_op_ = 0;
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
        if (o.select_tag != 0) {
            if (select_group* g = find_group(o.session, o.select_tag)) {
                fire_group(out, o.session, o.select_tag, *g);
            }
        }
        out.reply(o.session, wire::msg::ready, o.id);
        erase(o);
    }

    // A remote select's requests on an unbuffered channel (protocol.md
    // §8.6.1, select_groups.hpp); defined in served_chan_selects.hpp.

    /// The group of a RECV or WATCH_SEND carrying `tag`, created if new;
    /// nullptr if ungrouped (tag 0, a buffered channel, a full table).
    select_group* group_of(std::uint32_t session, std::uint64_t tag);
    select_group* find_group(std::uint32_t session, std::uint64_t tag);
    /// Makes the new op `o` a member of `g` (if any): its context gets the
    /// group's identity; a member of a fired group is parked at once.
    static void join_group(op& o, select_group* g, std::uint64_t tag);
    /// One of group `g`'s requests was answered (READY or VALUE): its select
    /// stops waiting, so its RECVs still on the channel are parked.
    void fire_group(reply_sink& out, std::uint32_t session, std::uint64_t tag, select_group& g);
    /// `o`, a RECV, is about to be answered with a VALUE: its group fires.
    void delivered_to_group(reply_sink& out, op& o);

    /// Sends the final answer to SEND `seq` and records it for replays (§12.3).
    /// A sender with a window that had to offer (out of credits) gets new
    /// credits once its offer went in, if the channel has room (§9.1).
    void answer_send(reply_sink& out, std::uint32_t session, std::uint64_t seq, wire::msg answer) {
        auto it = sessions_.find(session);
        if (it != sessions_.end()) it->second.record(seq, answer);
        out.reply(session, answer, seq);
        if (it != sessions_.end() && answer == wire::msg::send_ok &&
            it->second.credits.window != 0 && it->second.credits.wanted(share()) != 0) {
            top_up(out, session, it->second.credits);
        }
    }

    /// Reserves what the session's window wants (send_credits::wanted) and
    /// sends its CREDIT if it gained credits or is owed a confirmation.
    void top_up(reply_sink& out, std::uint32_t session, send_credits& c);

    /// Registers the close watcher once credits exist (see the top).
    void watch_close(reply_sink& out);

    /// The channel closed: no more grants; every session still holding
    /// credits is told to stop (REVOKE) and releases them with REVOKED;
    /// every receiving session is asked for its resolutions (a PING).
    void on_closed(reply_sink& out);
    /// A receiving session's request: watch for the close, or after it ask
    /// the session for its resolutions.
    void watch_receiver(reply_sink& out, std::uint32_t session, session_state& st);
    void ask_resolutions(reply_sink& out, std::uint32_t session, session_state& st);

    /// Gives the session's unfilled reserved slots back to the channel, and
    /// its demand-backed credits back to the receivers' demand.
    void release_credits(send_credits& c);

    /// A windowed session's part of the capacity and of the remote
    /// receivers' demand: with many senders, each gets credits instead of a
    /// few taking the whole channel while the others fall back to a round
    /// trip per value.
    [[nodiscard]] std::uint64_t share() const noexcept;

    /// Stream requests waiting at the home, every session's (§8.8): the
    /// receivers' demand.
    [[nodiscard]] std::uint64_t stream_demand() const noexcept;
    /// Demand-backed credits the home can grant now (§9.1 rule 5): the
    /// receivers' demand that values already in the channel, slots reserved
    /// and credits already granted against it will not meet.
    [[nodiscard]] std::uint64_t spare_demand() const;
    /// Free slots credits may still reserve: all but one of those that no
    /// session's credits hold (see top_up).
    [[nodiscard]] std::uint64_t reservable_slots() const;
    /// Held values (direct_) arrived: the waiting streams take them (after
    /// the channel's values), then spill_direct().
    void feed_direct(reply_sink& out);
    /// If no stream asks for the held values any more, moves them into the
    /// channel: into free slots while it is open, behind everything once it
    /// is closed and its ring empty; else waits for room (the room op).
    /// Returns true if it moved values into a closed channel (the caller
    /// retries the receivers held back for them: settle()).
    bool spill_direct();
    /// Takes the oldest held value out of direct_ (FIFO per sender: the
    /// offers of its session may go once none of its values is held).
    T take_direct();
    /// Whether values of `session` are held in direct_: its offers wait
    /// (gated_), and its TRY sends are not ready, until they are taken.
    [[nodiscard]] bool holds_values_of(std::uint32_t session) const;
    /// Runs the offers gated_ whose sessions' values are no longer held.
    void ungate(reply_sink& out);

    /// `o` is not registered. Tries the send, else registers the offer.
    void progress_send(reply_sink& out, op& o) {
        const bool was_claimed = o.sp.claim.armed();  // and settled: woken by settle_claim
        for (;;) {
            if (o.sp.done) {  // a receiver took it by handoff, or ACKed it (§8.3)
                if (!o.orphan) answer_send(out, o.session, o.id, wire::msg::send_ok);
                erase(o);
                return;
            }
            if (was_claimed && (o.orphan || o.cancelled || o.try_only)) {
                // Given back by the remote receiver: a TRY found no taker
                // after all; a cancelled offer is cancelled now.
                if (!o.orphan) {
                    answer_send(out, o.session, o.id,
                                o.try_only ? wire::msg::send_full : wire::msg::send_cancelled);
                }
                erase(o);
                return;
            }
            if (holds_values_of(o.session)) {  // FIFO per sender (§9.1 rule 5)
                gated_.push_back(o.hook.op_id);
                return;
            }
            const send_status s = back_->try_send_nowait(*o.value);
            if (s == send_status::ok || s == send_status::closed) {
                answer_send(out, o.session, o.id,
                            s == send_status::ok ? wire::msg::send_ok : wire::msg::send_closed);
                erase(o);
                return;
            }
            arm_send(o);
            if (!impl_->register_send(o.entry)) return;  // wait for a notification
            unregister(o);                               // "may be ready now": retry
        }
    }

    /// Makes `o` (an offer) ready to register: a fresh context and packet.
    static void arm_send(op& o) {
        o.cx.reset();
        o.sp.value = &*o.value;
        o.sp.done = false;
        o.sp.claim.reset();
        o.entry = wait_entry{&o.cx, sel_first_op, &o.sp};
        o.registered = true;
    }

    /// A value taken out for a remote receiver that did not take it (RETURN,
    /// loss, cancel): back to its claimed sender (the rendezvous, §8.3), or
    /// else to the head of the channel (§8.4).
    void give_back(wait_entry* claimed, std::optional<T>& v);

    /// `o` is not registered. Tries the receive, else registers the waiter.
    void progress_recv(reply_sink& out, op& o) {
        if (o.parked) return;  // answered by its CANCEL_RECV only
        // A select's RECV neither wakes nor pairs with its own watch.
        identity_scope as_group(o.select_tag != 0 ? o.cx.thread_id() : nullptr);
        for (;;) {
            if (o.rp.done && o.rp.value) {  // a sender handed a value over
                delivered_to_group(out, o);
                deliver(out, o.session, o.id, o.rp.value, o.rp.claimed);
                erase(o);
                return;
            }
            std::optional<T> v;
            wait_entry* claimed = nullptr;
            const recv_status s = back_->try_recv_claim(v, claimed);
            if (s == recv_status::ok) {
                delivered_to_group(out, o);
                deliver(out, o.session, o.id, v, claimed);
                erase(o);
                return;
            }
            if (s == recv_status::closed) {
                if (recv_held(o.session)) {
                    held_.push_back(o.hook.op_id);  // see the top: settle() retries it
                    return;
                }
                out.reply(o.session, wire::msg::closed, o.id);
                erase(o);
                return;
            }
            o.cx.reset();
            o.rp = recv_packet<T>{};
            // A sender that hands this stand-in a value is claimed until the
            // peer ACKs or gives back (the rendezvous, protocol.md §8.3).
            o.rp.claiming = true;
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
    void pump(reply_sink& out, std::uint32_t session, session_state& st, std::optional<T> first);

    /// Whether a session other than `session` has stream requests waiting.
    [[nodiscard]] bool other_stream_wants(std::uint32_t session) const;

    /// Queues in turns_ every other session whose stream waits on the channel
    /// with requests left: a waiter is woken only by a sender's notification,
    /// which a yielding stream would otherwise keep beating to the values.
    void queue_waiting_streams(std::uint32_t session);

    /// One turn of each session in turns_ (see the top); what yields again
    /// waits for the next pass.
    void rotate(reply_sink& out);

    /// pump()'s work for one session. Returns true if it yielded its turn
    /// (the session is queued in turns_), false if it answered everything it
    /// could or now waits.
    bool pump_turn(reply_sink& out, std::uint32_t session, session_state& st,
                   std::optional<T> first);

    /// A stream op was woken. The channel wakes every event-loop waiter at
    /// once (sync_waker::notify), so several streams may compete for one
    /// value: they are served by seniority (waiting_since), the longest
    /// waiting first, as Go's FIFO of blocked receivers serves them. (In
    /// arrival order of the notifications the stream that won last time,
    /// re-registered first, would win every time.)
    void serve_woken_streams(reply_sink& out);

    /// Registers the session's stream op. Returns true if it now waits;
    /// false if the channel may be ready (retry), with `handed` set if a
    /// sender handed a value over in the meantime.
    bool wait_stream(std::uint32_t session, session_state& st, std::optional<T>& handed,
                     bool served);

    static void pop_stream_request(session_state& st) { st.stream_ranges.pop_front(); }

    /// Whether a session other than `session` holds an unresolved delivery
    /// (protocol.md §10): a value that may still come back to the channel.
    [[nodiscard]] bool others_unresolved(std::uint32_t session) const {
        auto it = sessions_.find(session);
        return open_total_ > (it == sessions_.end() ? 0 : it->second.open);
    }
    /// Whether a RECV of `session` on the closed, empty channel must wait
    /// instead of being answered CLOSED (§10 item 3): a value may still come
    /// back, from another session or from this one's cancelled RECVs.
    [[nodiscard]] bool recv_held(std::uint32_t session) {
        if (others_unresolved(session) || !direct_.empty()) return true;
        auto it = sessions_.find(session);
        return it != sessions_.end() && it->second.coming_back();
    }

    /// CANCEL_RECV of a stream request (protocol.md §8.5, §8.8).
    void cancel_stream_request(reply_sink& out, std::uint32_t session, std::uint64_t request);

    /// Sends VALUE and keeps the value until ACK or RETURN (protocol.md §8.4).
    /// `v` is set; `claimed`: the sender claimed for it, if any.
    void deliver(reply_sink& out, std::uint32_t session, std::uint64_t request, std::optional<T>& v,
                 wait_entry* claimed);

    /// A RECV id at or below the session's highest (protocol.md §12.3, see
    /// the top): returns true if it is handled (ignored, or answered again);
    /// false if it must run as new.
    bool replay_recv(reply_sink& out, std::uint32_t session, session_state& st,
                     std::uint64_t request, bool try_now);

    channel<T> ch_;  // keeps the channel alive while served
    chan_base<T>* impl_;
    servable<T>* back_;  // impl_'s transport side (zchan::server checks it is there)
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
    /// Values accepted on demand-backed credits (and the credited values
    /// that arrived after them) that no stream has taken yet, and that the
    /// channel has no room for once no stream asks (served_chan_window.hpp);
    /// lent, in arrival order: every credited value in the ring is older than all of them,
    /// so streams take them after the ring, and while any is here every
    /// credited value joins them.
    struct held_value {
        T value;
        std::uint32_t session;  // its sender (session_state::held)
    };
    std::deque<held_value> direct_;
    /// Offers (op ids) of sessions with values held, in arrival order; an
    /// id whose op is gone is skipped. gate_posted_: gate_op is queued.
    std::vector<std::uint64_t> gated_;
    bool gate_posted_ = false;
    std::uint64_t room_op_ = 0;      // the room watcher's op id, 0: none
    std::uint64_t demand_held_ = 0;  // demand-backed credits held, every session's
    bool closed_seen_ = false;       // the close watcher fired
    std::uint64_t windowed_ = 0;     // sessions with a send window, not revoked
    std::uint64_t wait_clock_ = 0;   // orders waiting streams (session_state::waiting_since)
};

}  // namespace zchan::detail

#include "zchan/detail/served_chan_deliveries.hpp"  // IWYU pragma: export
#include "zchan/detail/served_chan_requests.hpp"    // IWYU pragma: export
#include "zchan/detail/served_chan_resume.hpp"      // IWYU pragma: export
#include "zchan/detail/served_chan_selects.hpp"     // IWYU pragma: export
#include "zchan/detail/served_chan_streams.hpp"     // IWYU pragma: export
#include "zchan/detail/served_chan_window.hpp"      // IWYU pragma: export

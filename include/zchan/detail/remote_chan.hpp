// The peer side of a remote channel: a chan_base<T> whose every operation is
// a request to the channel's home (docs/protocol.md §8), so that
// zchan::dial<T>() returns an ordinary zchan::channel<T>.
//
// Values: encoded on the calling thread before the request is sent, decoded
// on the thread that receives them; an operation's answer is ACKed as soon
// as the value is handed to the user (protocol.md §8.4).
//
// Select (core_hooks, protocol.md §8.6), with the select's wait entry
// attached to the request; answers are dispatched under the link mutex,
// which is also what unregister_* (link->detach) takes:
//   * receive case: register_recv sends RECV; a VALUE claims the select with
//     try_select and fills the packet. If the select already chose another
//     case, the VALUE is given back (RETURN): never lost, never twice.
//   * send case: register_send sends WATCH_SEND, never the value. READY wakes
//     the select as a hint (try_select + unpark, packet->done stays false);
//     the select then retries this case first with try_send, a TRY SEND that
//     the home executes atomically. So a send case runs only if the select
//     chose it: Go's exactly-one-case rule holds across processes.
//     unregister_send sends CANCEL_WATCH if the watch is still pending; a
//     READY that crosses it is ignored.
//
// Thread safety: safe for any number of threads (chan_base contract); all
// shared state lives in the net_link under its mutex.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "zchan/detail/chan_base.hpp"
#include "zchan/detail/net_link.hpp"
#include "zchan/errors.hpp"
#include "zchan/serialize.hpp"

namespace zchan::detail {

template <class T>
class remote_chan final : public chan_base<T> {
public:
    explicit remote_chan(std::shared_ptr<net_link> link)
        : chan_base<T>(poll_mode::remote), link_(std::move(link)) {}

    send_status try_send(T& v) override { return do_send(v, true, no_deadline); }
    send_status send(T& v, deadline_t deadline) override { return do_send(v, false, deadline); }

    recv_status try_recv(std::optional<T>& out) override { return do_recv(out, true, no_deadline); }
    recv_status recv(std::optional<T>& out, deadline_t deadline) override {
        return do_recv(out, false, deadline);
    }

    void close() override {
        auto r = link_->start(net_op::close, false, {});
        switch (link_->wait(*r, no_deadline)) {
            case net_answer::ok:
                return;
            case net_answer::lost:
                throw lost_error();
            default:
                throw channel_closed("zchan: close of closed channel");
        }
    }

    /// Throw peer_lost (saying why) once the session is lost: the remote
    /// channel's state is unknown then, and 0 or false would be a lie.
    [[nodiscard]] bool is_closed() const override { return query()->status_closed; }
    [[nodiscard]] std::size_t len() const override {
        return static_cast<std::size_t>(query()->length);
    }
    [[nodiscard]] std::size_t cap() const override {
        if (link_->lost()) throw lost_error();
        return static_cast<std::size_t>(link_->capacity());
    }
    [[nodiscard]] peer_lost lost_error() const override { return peer_lost(link_->lost_what()); }

    // Atomic poll (chan_base.hpp): the home polls (protocol.md §8.9).
    [[nodiscard]] net_link* poll_link() const noexcept override { return link_.get(); }
    [[nodiscard]] bool remote_none_ready(std::span<const remote_case> cases) const override {
        std::vector<net_link::poll_target> targets;  // one round trip follows anyway
        targets.reserve(cases.size());
        for (const remote_case& c : cases) targets.push_back({c.chan->poll_link(), c.send});
        return net_link::none_ready(targets);
    }

    /// Watches instead of offering (protocol.md §8.6): e.packet is not used.
    bool register_send(wait_entry& e) override { return enlist(net_op::watch, e); }
    void unregister_send(wait_entry& e) override { forget(e); }

    bool register_recv(wait_entry& e) override { return enlist(net_op::recv, e); }
    void unregister_recv(wait_entry& e) override { forget(e); }

    [[nodiscard]] const std::shared_ptr<net_link>& link() const noexcept { return link_; }

private:
    /// QUERY (protocol.md §8.7): the STATUS answer; throws peer_lost.
    [[nodiscard]] std::shared_ptr<net_request> query() const {
        auto r = link_->start(net_op::query, false, {});
        switch (link_->wait(*r, no_deadline)) {
            case net_answer::status:
                return r;
            case net_answer::error:
                throw_error(*r);
            default:
                throw lost_error();
        }
    }

    send_status flush(deadline_t deadline) override {
        switch (link_->flush(deadline)) {
            case net_answer::ok:
                return send_status::ok;
            case net_answer::lost:
                return send_status::peer_lost;
            default:
                return send_status::timeout;
        }
    }
    [[nodiscard]] std::uint64_t unconfirmed_sends() const override { return link_->unconfirmed(); }

    static void encode_into(std::string& out, void* v) { encode_value(*static_cast<T*>(v), out); }

    send_status do_send(T& v, bool try_now, deadline_t deadline) {
        for (;;) {
            // Send window (protocol.md §9.1): with a credit the value is sent
            // without a round trip; without one it is an offer.
            if (link_->has_window()) {
                switch (link_->send_credited(&encode_into, &v)) {
                    case net_link::credited::sent: {
                        T gone = std::move(v);  // moved from on ok, as in-process
                        (void)gone;
                        return send_status::ok;
                    }
                    case net_link::credited::lost:
                        return send_status::peer_lost;
                    case net_link::credited::no_credit:
                        break;
                }
            }
            const send_status s = offer(v, try_now, deadline);
            if (s != send_status::full) return s;
            if (try_now) {
                // A TRY that found no room; or it crossed a CREDIT, which
                // has arrived before this answer: use it.
                if (!link_->has_credit()) return s;
                continue;
            }
            // SEND_FULL to a blocking offer: it crossed a CREDIT, as above,
            // or the window ended meanwhile (REVOKE: the channel closed).
            // Never "full" from a blocking send: offer again, which either
            // uses the credit or learns of the close.
        }
    }

    send_status offer(T& v, bool try_now, deadline_t deadline) {
        std::string payload;
        encode_value(v, payload);
        auto r = link_->start(net_op::send, try_now, std::move(payload));
        switch (link_->wait(*r, deadline)) {
            case net_answer::ok: {
                T gone = std::move(v);  // moved from on ok, as in-process
                (void)gone;
                return send_status::ok;
            }
            case net_answer::closed:
                return send_status::closed;
            case net_answer::full:
                return send_status::full;
            case net_answer::cancelled:
                return send_status::timeout;
            case net_answer::lost:
                return send_status::peer_lost;
            case net_answer::error:
                throw_error(*r);
            default:
                return send_status::timeout;
        }
    }

    recv_status do_recv(std::optional<T>& out, bool try_now, deadline_t deadline) {
        {
            std::string payload;
            switch (link_->take_prefetched(payload)) {
                case net_answer::value: {
                    if (const auto ec = decode_value(payload.data(), payload.size(), out)) {
                        throw transport_error(ec, "zchan: value from the home did not decode");
                    }
                    return recv_status::ok;
                }
                case net_answer::closed:
                    return recv_status::closed;
                default:
                    break;  // nothing queued, or no window: a request
            }
        }
        auto r = link_->start(net_op::recv, try_now, {});
        switch (link_->wait(*r, deadline)) {
            case net_answer::value: {
                const auto ec = decode_value(r->payload.data(), r->payload.size(), out);
                link_->ack(r->delivery);  // taken (or undecodable: never retry it)
                if (ec) throw transport_error(ec, "zchan: value from the home did not decode");
                return recv_status::ok;
            }
            case net_answer::closed:
                return recv_status::closed;
            case net_answer::empty:
                return recv_status::empty;
            case net_answer::lost:
                return recv_status::peer_lost;
            case net_answer::error:
                throw_error(*r);
            default:
                return recv_status::timeout;  // none/cancelled: the deadline won
        }
    }

    [[noreturn]] static void throw_error(const net_request& r) {
        throw transport_error(
            make_error_code(errc::protocol_error),
            "zchan: the home answered ERROR " + std::to_string(r.error_code) + ": " + r.error_text);
    }

    /// A select registration: its wait entry and its select tag.
    struct registration {
        wait_entry* entry;
        std::uint64_t select_tag;
    };

    bool enlist(net_op op, wait_entry& e) {
        registration reg{&e, select_tag_for(e)};
        auto r = link_->start(op, false, {}, &attach, &reg);
        return remember(e, std::move(r), reg.select_tag);
    }

    /// Runs under the link mutex before the request is sent.
    static void attach(net_request& r, void* arg) {
        const auto& reg = *static_cast<const registration*>(arg);
        r.entry = reg.entry;
        r.select_tag = reg.select_tag;
        r.orphan = false;
        r.on_answer = &on_select_answer;
        r.arg = nullptr;
    }

    /// protocol.md §8.6.1: on an unbuffered channel the requests one select
    /// registers here (they share its context) carry one tag, new for each
    /// of its waits, so that the home never lets them pair with or wake
    /// each other. A select registers its cases one after another on its
    /// own thread, so nothing else of that select runs in between.
    std::uint64_t select_tag_for(const wait_entry& e) {
        if (link_->capacity() != 0) return 0;
        std::lock_guard<std::mutex> g(regs_mu_);
        for (const auto& reg : regs_) {
            if (reg.entry->cx == e.cx) return reg.select_tag;
        }
        return ++last_select_tag_;
    }

    /// The final answer to a select registration; under the link mutex.
    /// Returns whether a VALUE was taken (see net_request::on_answer).
    static bool on_select_answer(net_request& r, void* /*arg*/) noexcept {
        wait_entry* e = r.entry;
        if (e == nullptr) return false;
        r.entry = nullptr;  // final answer: nothing more will reach the entry
        if (r.op == net_op::recv && r.result == net_answer::value) {
            // Not selected: the select chose another case; give it back.
            if (!e->cx->try_select(e->oper)) return false;
            auto* p = static_cast<recv_packet<T>*>(e->packet);
            // An undecodable value is dropped (ACKed): retrying cannot help.
            // The select then sees a hint wake-up and asks again.
            if (!decode_value(r.payload.data(), r.payload.size(), p->value)) p->done = true;
            e->cx->unpark();
            return true;
        }
        if (r.op == net_op::watch && r.result == net_answer::ready) {
            // A hint, not a handoff: the select retries this case first with
            // a TRY SEND. If it already chose another case, nothing happens.
            if (e->cx->try_select(e->oper)) e->cx->unpark();
            return true;
        }
        // closed, lost, error: wake as a hint; the select retries try_* and
        // learns closed (fires / throws channel_closed) or peer_lost (throws).
        if (e->cx->try_select(sel_closed)) e->cx->unpark();
        return true;
    }

    bool remember(wait_entry& e, std::shared_ptr<net_request> r, std::uint64_t select_tag) {
        // r->result is guarded by the link mutex and may be written right now
        // by a dispatching thread; the atomic lost flag is what matters here:
        // a lost link makes the select retry try_* at once (-> peer_lost).
        const bool ready = link_->lost();
        std::lock_guard<std::mutex> g(regs_mu_);
        regs_.push_back(reg_entry{&e, std::move(r), select_tag});
        return ready;
    }

    void forget(wait_entry& e) {
        std::shared_ptr<net_request> r;
        {
            std::lock_guard<std::mutex> g(regs_mu_);
            for (auto it = regs_.begin(); it != regs_.end(); ++it) {
                if (it->entry == &e) {
                    r = std::move(it->request);
                    regs_.erase(it);
                    break;
                }
            }
        }
        if (r) link_->detach(*r);
    }

    struct reg_entry {
        wait_entry* entry;
        std::shared_ptr<net_request> request;
        std::uint64_t select_tag;
    };

    std::shared_ptr<net_link> link_;
    std::mutex regs_mu_;  // guards regs_ and last_select_tag_; never held while calling link_
    std::vector<reg_entry> regs_;
    std::uint64_t last_select_tag_ = 0;
};

}  // namespace zchan::detail

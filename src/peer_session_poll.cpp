// peer_session's POLL (protocol.md §8.9; the session as a whole:
// peer_session.hpp). A select with a default case whose case-by-case poll
// found nothing asks each home of its remote cases whether, at one instant,
// none of the cases it serves was ready (zchan/detail/atomic_poll.hpp says
// how that combines with the select's local channels).
//
// What the home counts as ready includes what is on its way to us: values
// delivered to a session and not yet ACKed, and credits granted and not yet
// used. So before the POLL leaves, every session it names sends what it has
// queued on the same connection, ahead of it: its ACKs (a value already
// handed out must not count) and its batch of credited values (a credit
// already used must not count). The home answers EMPTY (none was ready) or
// READY (one was, or it cannot tell); a lost session is "cannot tell" too,
// and the select, polling case by case again, then reports it.
#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "codec.hpp"
#include "peer_session.hpp"
#include "zchan/detail/net_link.hpp"

namespace zchan::detail {

namespace w = wire;

bool net_link::none_ready(std::span<const poll_target> cases) {
    // One POLL per connection (a connection reaches one home), all sent
    // before any answer is awaited: the round trips overlap.
    std::vector<std::pair<peer_session*, std::shared_ptr<net_request>>> asked;
    std::vector<poll_target> group;
    std::vector<bool> done(cases.size());
    for (std::size_t i = 0; i < cases.size(); ++i) {
        if (done[i]) continue;
        auto* first = static_cast<peer_session*>(cases[i].link);
        group.clear();
        for (std::size_t j = i; j < cases.size(); ++j) {
            if (static_cast<peer_session*>(cases[j].link)->connection() == first->connection()) {
                group.push_back(cases[j]);
                done[j] = true;
            }
        }
        auto r = first->start_poll(group);
        if (r == nullptr) return false;  // a session is lost: unsure
        asked.emplace_back(first, std::move(r));
    }
    bool none = true;
    for (auto& [s, r] : asked) {
        if (s->wait(*r, no_deadline) != net_answer::empty) none = false;
    }
    return none;
}

std::shared_ptr<net_request> peer_session::start_poll(std::span<const poll_target> cases) {
    auto r = std::make_shared<net_request>();
    r->op = net_op::poll;
    std::vector<w::poll_case> wire_cases;
    wire_cases.reserve(cases.size());
    lock_guard g(conn_->mu);
    conn_->expire_if_silent_locked();
    for (const poll_target& c : cases) {
        auto* s = static_cast<peer_session*>(c.link);
        if (s->lost()) return nullptr;
        // Every session of the group is guarded by this same mutex (one
        // connection), which the analysis cannot see through the pointer.
        [s]() ZCHAN_NO_THREAD_SAFETY_ANALYSIS { s->before_poll_locked(); }();
        wire_cases.push_back({s->channel_, c.send ? w::poll_op::send : w::poll_op::recv});
    }
    r->id = next_id_++;
    std::string frame;
    w::encode_poll(frame, channel_, r->id, wire_cases);
    r->payload = frame.substr(w::header_size);  // a resume re-sends it (encode_request_locked)
    pending_.emplace(r->id, r);
    ++conn_->requests_pending;
    encode_request_locked(*r);
    send_locked();
    return r;
}

/// What the session has queued leaves ahead of the POLL (see the top).
void peer_session::before_poll_locked() {
    flush_acks_locked();
    if (!sw_.batch_empty()) flush_batch_locked();
}

}  // namespace zchan::detail

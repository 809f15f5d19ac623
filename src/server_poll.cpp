// server::impl, POLL (docs/protocol.md §8.9): a peer's select with a default
// case asks whether, at one instant, none of the cases this home serves for it
// was ready. The home runs the same atomic poll a select in this process runs
// (zchan/detail/atomic_poll.hpp) over the cases' channels, with each case's
// readiness that of its session (served_base::poll_ready): the locked
// channels' locks held, the stamped ones validated. A case naming no session
// of the connection the POLL came on, or a channel without the poll hooks, is
// "unsure": the answer is READY, and the peer's select learns more when it
// polls case by case.
//
// Server thread only (server_impl.hpp).
#include <cstddef>
#include <cstdint>
#include <string>

#include "server_impl.hpp"
#include "zchan/detail/atomic_poll.hpp"

namespace zchan {

bool server::impl::none_ready(const std::string& rid, const w::frame& f) {
    const std::size_t n = f.count;
    poll_sessions_.clear();
    poll_chans_.clear();
    for (std::size_t i = 0; i < n; ++i) {
        auto it = sessions_.find(f.poll_channel(i));
        if (it == sessions_.end() || it->second.routing_id != rid) return false;
        const detail::served_base* ch = it->second.ch;
        const detail::chan_poll* c = ch->poll_channel();
        // Only this process's channels can be polled at one instant; one
        // without the hooks ("$stat", whose receive is always ready) is
        // left to the case-by-case poll.
        const detail::poll_mode kind = c == nullptr ? detail::poll_mode::none : c->poll_kind();
        if (kind == detail::poll_mode::none || kind == detail::poll_mode::remote) {
            return false;
        }
        poll_sessions_.emplace_back(ch, it->first);
        poll_chans_.push_back(c);
    }
    poll_locks_.resize(n);
    poll_stamps_.resize(n);
    return detail::none_ready_at_one_instant(
        poll_chans_, poll_locks_, poll_stamps_,
        [&](std::size_t i, detail::poll_stamp& stamp) {
            const auto& [ch, sid] = poll_sessions_[i];
            return ch->poll_ready(sid, f.poll_case_op(i) == w::poll_op::send, stamp);
        },
        [] { return true; });  // no remote channels here
}

}  // namespace zchan

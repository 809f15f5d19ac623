// What the home keeps per session of a served channel (served_chan<T>):
// the window of unacknowledged deliveries (protocol.md §8.4) with the request
// each answered, the request ids seen (resume, §12.3), the session's stream
// requests (§8.8), its send credits (§9.1), its remote selects (§8.6.1) and
// the final answers of its resolved SENDs (§12.3).
//
// Invariants:
//   * unacked holds deliveries [base, next_delivery), unacked_req the request
//     each answered, unacked_claim the sender each claimed; resolved slots
//     are empty and trimmed from the front;
//   * open == the number of set slots of unacked;
//   * every RECV id below max_request either arrived, or is in `unseen`, or
//     is below unseen_floor (nothing known).
//
// Thread safety: none; owned by served_chan, used on the server thread.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

#include "zchan/detail/id_ranges.hpp"
#include "zchan/detail/select_groups.hpp"
#include "zchan/detail/send_credits.hpp"
#include "zchan/detail/waker.hpp"
#include "zchan/detail/wire_types.hpp"

namespace zchan::detail {

/// Unacknowledged deliveries (protocol.md §8.4). Delivery seqs are
/// sequential per session, so they live in a window: unacked[i] holds
/// delivery base + i, empty once resolved; resolved slots at the front
/// are trimmed. No allocation per value (a deque grows in blocks).
template <class T>
struct served_session {
    std::uint64_t next_delivery = 1;
    std::uint64_t base = 1;                // delivery seq of unacked.front()
    std::deque<std::optional<T>> unacked;  // [base, next_delivery)
    /// unacked_req[i]: the request delivery base + i answered (§12.3).
    std::deque<std::uint64_t> unacked_req;
    /// unacked_claim[i]: the sender claimed for delivery base + i, or null
    /// (a rendezvous on an unbuffered channel, protocol.md §8.3: ACK or
    /// RETURN settles it instead of the value going back to the channel).
    std::deque<wait_entry*> unacked_claim;
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
    /// The home asked this session for its resolutions (a PING on its
    /// channel, sent once after the close; protocol.md §10).
    bool asked_resolutions = false;
    /// The session's send window (protocol.md §9.1).
    send_credits credits;
    /// Its credited values held at the home (served_chan's direct_, §9.1
    /// rule 5): until they are taken, its offers wait behind them.
    std::uint64_t held = 0;
    /// Its remote selects on an unbuffered channel (§8.6.1).
    select_groups selects;

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
    /// Deliveries whose RECV the peer cancelled after the home had answered
    /// it: the peer gives them back (protocol.md §8.5), so on a closed
    /// channel they hold this session's receives too (§10 item 3). Resolved
    /// ones are dropped when looked at (coming_back).
    std::vector<std::uint64_t> returning;
    void will_return(std::uint64_t delivery) {
        if (std::find(returning.begin(), returning.end(), delivery) == returning.end()) {
            returning.push_back(delivery);
        }
    }
    [[nodiscard]] bool coming_back() {
        std::erase_if(returning, [&](std::uint64_t d) { return find(d) == nullptr; });
        return !returning.empty();
    }
    /// A slot was just reset (ACK or RETURN).
    void resolved() {
        --open;
        trim();
    }
    void trim() {
        while (!unacked.empty() && !unacked.front()) {
            unacked.pop_front();
            unacked_req.pop_front();
            unacked_claim.pop_front();
            ++base;
        }
    }
    void add_delivery(std::uint64_t request, T&& v, wait_entry* claimed) {
        ++next_delivery;
        ++open;
        unacked.emplace_back(std::move(v));
        unacked_req.push_back(request);
        unacked_claim.push_back(claimed);
    }
    /// The sender claimed for a pending `delivery` (find() is non-null), or null.
    [[nodiscard]] wait_entry* claim_of(std::uint64_t delivery) const {
        return unacked_claim[static_cast<std::size_t>(delivery - base)];
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

}  // namespace zchan::detail

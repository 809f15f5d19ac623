// The peer's prefetch window (docs/protocol.md §9.2, §8.8), without I/O: the
// RECVs it keeps outstanding (as id ranges) and the values they brought,
// queued in delivery order. peer_session owns one and does the sending.
//
// Invariants:
//   * outstanding() == the number of ids in the ranges: RECVs asked for and
//     not answered.
//   * The queue is sorted by delivery seq. Values arrive in that order on one
//     connection; after a resume a re-sent request's VALUE (lost with the old
//     connection) arrives after values the home sent later, so it is put in
//     its place, and the head is handed out only once every delivery before
//     it has arrived (next_ is the lowest delivery seq not yet seen).
//   * drained() only when a RECV was answered CLOSED, nothing is queued and
//     no request is outstanding: every outstanding request is waited for,
//     since a value given back after the close, or one lost with a
//     connection, can still answer it.
//
// Thread safety: none; its session's mutex guards it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <iterator>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "zchan/detail/id_ranges.hpp"

namespace zchan::detail {

class prefetch_queue {
public:
    struct value {
        std::string payload;
        std::uint64_t delivery = 0;
    };

    /// The head may be handed out: no earlier delivery is still to come.
    [[nodiscard]] bool head_ready() const noexcept {
        return !q_.empty() && q_.front().delivery < next_;
    }
    [[nodiscard]] value& head() noexcept { return q_.front(); }
    void pop() { q_.pop_front(); }

    /// Closed, empty and nothing outstanding (see the top).
    [[nodiscard]] bool drained() const noexcept {
        return closed_ && q_.empty() && outstanding_ == 0;
    }
    [[nodiscard]] bool closed() const noexcept { return closed_; }
    [[nodiscard]] std::size_t queued() const noexcept { return q_.size(); }
    [[nodiscard]] std::size_t outstanding() const noexcept { return outstanding_; }

    /// Delivery `d` arrived (queued, given back or a repeat).
    void saw_delivery(std::uint64_t d) {
        if (d < next_) return;
        if (d > next_) {
            above_.insert(d);
            return;
        }
        ++next_;
        while (!above_.empty() && *above_.begin() <= next_) {
            if (*above_.begin() == next_) ++next_;
            above_.erase(above_.begin());
        }
    }

    /// Queues a value in delivery order (see the top).
    void queue(std::string payload, std::uint64_t delivery) {
        auto at = q_.end();
        while (at != q_.begin() && std::prev(at)->delivery > delivery) --at;
        q_.insert(at, value{std::move(payload), delivery});
    }

    /// If `id` is outstanding, forgets it (its answer came) and returns true.
    /// Answers come in request order (§8.8): almost always the first id.
    bool take(std::uint64_t id) {
        if (!ranges_.take(id)) return false;
        --outstanding_;
        return true;
    }

    /// A RECV of the window was answered CLOSED.
    void close() noexcept { closed_ = true; }

    /// Whether it is time to top up a window of `window` (half used, so that
    /// ACKs and the RECV_MANY leave together).
    [[nodiscard]] bool wants_refill(std::uint32_t window) const noexcept {
        return q_.size() + outstanding_ <= window / 2;
    }

    /// The RECV_MANY that tops the window up to `window`: `count` ids from
    /// `next_id` (advanced past them), now outstanding; nullopt if the window
    /// is full or closed.
    std::optional<std::pair<std::uint64_t, std::uint32_t>> refill(std::uint32_t window,
                                                                  std::uint64_t& next_id) {
        const std::size_t have = q_.size() + outstanding_;
        if (closed_ || have >= window) return std::nullopt;
        const auto k = static_cast<std::uint32_t>(window - have);
        const std::uint64_t first = next_id;
        next_id += k;
        ranges_.push_back(first, k);
        outstanding_ += k;
        return std::make_pair(first, k);
    }

    /// Every outstanding range, (first id, count), in request order (a resume re-sends them).
    template <class F>
    void for_each_range(F&& f) const {
        ranges_.for_each_range(std::forward<F>(f));
    }

    /// The queued values, newest first (given back at a home's shutdown so
    /// that the channel ends up holding them in order), then empty.
    template <class F>
    void give_back_all(F&& f) {
        std::for_each(q_.rbegin(), q_.rend(), [&](value& v) { f(v.delivery); });
        q_.clear();
    }

    /// The session is lost: no request will be answered.
    void forget_outstanding() {
        ranges_.clear();
        outstanding_ = 0;
    }

private:
    std::deque<value> q_;
    std::uint64_t next_ = 1;         // the lowest delivery seq that has not arrived
    std::set<std::uint64_t> above_;  // deliveries above next_ that have arrived
    id_ranges ranges_;               // outstanding RECVs: (first id, count), in request order
    std::size_t outstanding_ = 0;
    bool closed_ = false;
};

}  // namespace zchan::detail

// A set of request ids kept as (first, count) ranges in request order: the
// RECVs a RECV_MANY stands for (docs/protocol.md §8.8), on the home (those
// not yet answered) and on the peer (prefetch requests in flight). Ids are
// added in increasing runs and almost always removed from the front, so a
// deque of ranges costs O(1) per id without a node per request. (Requests
// re-sent after a resume, protocol.md §12.2, may add lower ids after higher
// ones: every member still works, only "in order" becomes "in arrival
// order".)
//
// Thread safety: none (a plain value); each owner guards its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <iterator>
#include <utility>

namespace zchan::detail {

class id_ranges {
public:
    /// Adds ids first..first+count-1 (count >= 1), after every id held.
    void push_back(std::uint64_t first, std::uint64_t count) {
        if (!r_.empty() && r_.back().first + r_.back().second == first) {
            r_.back().second += count;  // the usual case: contiguous with the last run
        } else {
            r_.emplace_back(first, count);
        }
    }

    /// Removes `id` if held; returns whether it was.
    bool take(std::uint64_t id) {
        for (auto r = r_.begin(); r != r_.end(); ++r) {
            const auto [first, count] = *r;
            if (id < first || id - first >= count) continue;
            if (id == first) {
                ++r->first;
                if (--r->second == 0) r_.erase(r);
            } else if (id - first == count - 1) {
                --r->second;
            } else {  // split around it
                r->second = id - first;
                r_.insert(std::next(r), {id + 1, count - (id - first) - 1});
            }
            return true;
        }
        return false;
    }

    [[nodiscard]] bool empty() const noexcept { return r_.empty(); }
    /// The lowest id held. Requires !empty().
    [[nodiscard]] std::uint64_t front() const noexcept { return r_.front().first; }
    /// Removes front(). Requires !empty().
    void pop_front() noexcept {
        auto& f = r_.front();
        ++f.first;
        if (--f.second == 0) r_.pop_front();
    }
    /// Whether `id` is held.
    [[nodiscard]] bool contains(std::uint64_t id) const noexcept {
        for (const auto& [first, count] : r_) {
            if (id >= first && id - first < count) return true;
        }
        return false;
    }
    /// Calls fn(first, count) for every run held, in order.
    template <class Fn>
    void for_each_range(Fn&& fn) const {
        for (const auto& [first, count] : r_) fn(first, count);
    }
    /// Calls fn(id) for every id held, in order.
    template <class Fn>
    void for_each(Fn&& fn) const {
        for (const auto& [first, count] : r_) {
            for (std::uint64_t i = 0; i < count; ++i) fn(first + i);
        }
    }
    void clear() noexcept { r_.clear(); }
    /// The number of ids held: O(runs), which is one or two but after a resume.
    [[nodiscard]] std::uint64_t size() const noexcept {
        std::uint64_t n = 0;
        for (const auto& r : r_) n += r.second;
        return n;
    }
    /// The number of runs held.
    [[nodiscard]] std::size_t runs() const noexcept { return r_.size(); }
    /// Removes the first run; returns the id just after it. Requires !empty().
    std::uint64_t pop_front_run() noexcept {
        const std::uint64_t end = r_.front().first + r_.front().second;
        r_.pop_front();
        return end;
    }

private:
    std::deque<std::pair<std::uint64_t, std::uint64_t>> r_;  // (first id, count), ascending
};

}  // namespace zchan::detail

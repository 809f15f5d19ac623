// The peer's send window (docs/protocol.md §9.1), without I/O: the credits
// the home granted, the credited values batched for the next SEND_MANY, and
// the frames sent but not yet confirmed (kept for a resume). peer_session
// owns one and does the sending.
//
// Numbers: credited values are numbered 1, 2, 3, ... per session; the home
// grants credits as a running total (CREDIT's id) and confirms values as the
// highest number it accepted, so a lost CREDIT costs nothing: the next one
// carries both totals.
//
// Batching (Nagle's rule, without a timer): a value leaves at once when no
// frame is waiting for its confirmation; otherwise it joins the batch, which
// leaves when a confirmation arrives (the home answers every frame with a
// CREDIT), when it is full, or when the credits run out. A lone value thus
// never waits; a stream leaves in one frame per round trip.
//
// Invariants:
//   * confirmed_ <= next_ - 1 <= granted_: the home never confirms what was
//     not sent, and no value is numbered beyond the credits granted;
//   * inflight_ holds, in number order, every frame sent with a value not yet
//     confirmed; the batch holds values numbered after all of them.
//
// Thread safety: none; its session's mutex guards it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <string>
#include <utility>

#include "codec.hpp"
#include "zchan/detail/net_link.hpp"

namespace zchan::detail {

class send_window {
public:
    /// A batch leaves when it reaches this size (or count): big enough to
    /// amortize a frame, small enough to keep a burst's latency low.
    static constexpr std::size_t batch_bytes = std::size_t{64} * 1024;
    static constexpr std::uint32_t batch_values = 4096;

    /// WELCOME granted window `w` (0: none).
    void open(std::uint32_t w) noexcept { window_ = w; }
    [[nodiscard]] bool enabled() const noexcept { return window_ != 0 && !revoked_; }
    [[nodiscard]] bool has_credit() const noexcept { return enabled() && next_ <= granted_; }

    /// Starts the next credited value: the caller appends its payload to the
    /// returned buffer, then calls end_value (or drop_value if encoding failed).
    /// Requires has_credit().
    std::string& begin_value(std::uint32_t channel) {
        if (count_ == 0) {
            batch_.clear();
            wire::begin_send_many(batch_, channel, next_);
        }
        entry_at_ = reply_sink::values_entry_begin(batch_);
        return batch_;
    }
    /// The payload appended since begin_value, in octets.
    [[nodiscard]] std::size_t value_size() const noexcept { return batch_.size() - entry_at_ - 4; }
    void end_value() noexcept {
        reply_sink::values_entry_end(batch_, entry_at_);  // the entry layout VALUES uses too
        ++count_;
        ++next_;
    }
    void drop_value() { batch_.resize(entry_at_); }

    /// Whether the batch should leave now (see the top).
    [[nodiscard]] bool should_flush() const noexcept {
        return count_ != 0 && (inflight_.empty() || batch_.size() >= batch_bytes ||
                               count_ >= batch_values || next_ > granted_);
    }
    [[nodiscard]] bool batch_empty() const noexcept { return count_ == 0; }

    /// Closes the batch as a frame, kept until confirmed; returns it to send.
    const std::string& take_batch() {
        wire::finish_send_many(batch_, 0, count_);
        inflight_.push_back({next_ - 1, std::move(batch_)});
        batch_ = std::exchange(spare_, {});  // cleared by the next begin_value
        count_ = 0;
        return inflight_.back().frame;
    }

    /// CREDIT(granted, confirmed). Totals only grow; older ones are ignored.
    void on_credit(std::uint64_t granted, std::uint64_t confirmed) {
        if (revoked_) granted = granted_;  // no new credits after REVOKE
        granted_ = std::max(granted_, granted);
        confirmed_ = std::max(confirmed_, std::min(confirmed, next_ - 1));
        while (!inflight_.empty() && inflight_.front().last <= confirmed_) {
            std::string& f = inflight_.front().frame;
            if (f.capacity() > spare_.capacity() && f.capacity() <= spare_limit) {
                spare_ = std::move(f);
            }
            inflight_.pop_front();
        }
    }

    /// REVOKE: the channel closed; no credit is used any more.
    void revoke() noexcept { revoked_ = true; }
    [[nodiscard]] bool revoked() const noexcept { return revoked_; }

    /// Credited values sent (or batched) and not yet confirmed by the home.
    [[nodiscard]] std::uint64_t unconfirmed() const noexcept { return next_ - 1 - confirmed_; }
    /// The highest number handed out so far (flush() waits for its confirmation).
    [[nodiscard]] std::uint64_t last_number() const noexcept { return next_ - 1; }
    [[nodiscard]] std::uint64_t confirmed() const noexcept { return confirmed_; }

    /// After a resume (§12.2): every frame not yet confirmed, in order; the
    /// home drops the values it already has by their numbers.
    template <class F>
    void for_each_inflight(F&& f) const {
        for (const auto& i : inflight_) f(i.frame);
    }

private:
    struct sent_frame {
        std::uint64_t last;  // the number of its last value
        std::string frame;
    };
    std::uint32_t window_ = 0;
    bool revoked_ = false;
    std::uint64_t granted_ = 0;    // credits granted in total
    std::uint64_t next_ = 1;       // the next value's number
    std::uint64_t confirmed_ = 0;  // every number up to it is accepted
    std::deque<sent_frame> inflight_;
    std::string batch_;  // a SEND_MANY being built
    // A confirmed frame's buffer, the next batch's: a stream reuses two
    // buffers instead of growing a new one per frame. Freeing a frame of
    // tens of KiB let malloc give the heap's top back to the kernel and
    // grow it again for the next (brk, page faults, a TLB shootdown each):
    // an eighth of a windowed producer's time. A frame grown past
    // spare_limit by a large value is freed, so that a handle does not
    // keep that much memory after one large send.
    static constexpr std::size_t spare_limit = 4 * batch_bytes;
    std::string spare_;
    std::uint32_t count_ = 0;
    std::size_t entry_at_ = 0;  // where the value being written starts
};

}  // namespace zchan::detail

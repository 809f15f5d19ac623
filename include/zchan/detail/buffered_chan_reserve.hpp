// buffered_chan's reservations for a remote sender's window (protocol.md
// §9.1): R, the slots reserved, lives in tail_'s word between the mark and
// the lap, so "count + R <= capacity" is one CAS (buffered_chan.hpp, the
// invariants at its top). Included by buffered_chan.hpp.
//
// Thread safety: as buffered_chan.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <new>
#include <utility>

#include "zchan/detail/buffered_chan.hpp"

namespace zchan::detail {

template <class T>
std::size_t buffered_chan<T>::reserve(std::size_t n) {
    if (r_mask_ == 0 || n == 0) return 0;
    std::size_t tail = tail_.load(std::memory_order_seq_cst);
    for (;;) {
        if ((tail & mark_bit_) != 0) return 0;
        const std::size_t p = pos(tail);
        const std::size_t r = reserved(tail);
        // head_ only grows, and is read after tail: the count is at least
        // the true one when the CAS below succeeds (conservative). If
        // head_ passed p, tail_ moved on and the CAS fails.
        const std::size_t head = head_.load(std::memory_order_seq_cst);
        const std::size_t used = head <= p ? count(head, p) : cap_;
        if (used + r >= cap_) {
            if (tail_.load(std::memory_order_seq_cst) == tail) return 0;
            tail = tail_.load(std::memory_order_seq_cst);
            continue;
        }
        const std::size_t k = std::min(n, cap_ - used - r);
        if (tail_.compare_exchange_weak(tail, tail + k * r_unit(), std::memory_order_seq_cst,
                                        std::memory_order_seq_cst)) {
            return k;
        }
    }
}

template <class T>
void buffered_chan<T>::release(std::size_t n) {
    if (n == 0) return;
    const std::size_t tail =
        tail_.fetch_sub(n * r_unit(), std::memory_order_seq_cst) - n * r_unit();
    // A non-monotonic change: the atomic poll's stamp must see it (see
    // poll_unchanged), as it sees requeues.
    requeued_total_.fetch_add(1, std::memory_order_seq_cst);
    // Space for n senders: wake them all to re-examine (sel_closed is
    // "re-examine" here); on a closed channel the last release may end
    // the drain, which every receiver must see.
    senders_.close_all();
    if ((tail & mark_bit_) != 0 && reserved(tail) == 0) receivers_.close_all();
}

/// The positions are claimed with one CAS and the receivers woken once
/// the batch is in: a receiver then drains a frame of credited values in
/// one go, instead of meeting each value as it is written (a cache line
/// pulled across CPUs, and often a spin or a yield, per value).
template <class T>
void buffered_chan<T>::send_reserved_n(T* values, std::size_t n) {
    if (n == 0) return;
    backoff b;
    std::size_t tail = tail_.load(std::memory_order_relaxed);
    std::size_t next = 0;
    for (;;) {
        next = advance(pos(tail), n) | ((tail & ~pos_mask_) - n * r_unit());
        if (tail_.compare_exchange_weak(tail, next, std::memory_order_seq_cst,
                                        std::memory_order_relaxed)) {
            break;
        }
        b.spin();
    }
    // count + R <= capacity with R >= n: the receivers of these slots'
    // previous lap have claimed them and are at most finishing their
    // reads, which the stamps show.
    std::size_t q = pos(tail);
    for (std::size_t j = 0; j < n; ++j, q = advance(q, 1)) {
        slot& s = slots_[q & (mark_bit_ - 1)];
        backoff wait_read;
        while (s.stamp.load(std::memory_order_acquire) != q) wait_read.snooze();
        ::new (static_cast<void*>(s.storage)) T(std::move(values[j]));
        s.stamp.store(q + 1, std::memory_order_release);
    }
    if ((next & mark_bit_) != 0 && reserved(next) == 0) {
        receivers_.close_all();  // the drain can end now
    } else {
        // One wake-up per value, as n sends would make; each is one
        // load when nobody waits.
        for (std::size_t j = 0; j < n; ++j) receivers_.notify();
    }
}

}  // namespace zchan::detail

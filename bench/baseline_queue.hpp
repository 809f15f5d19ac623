// baseline_queue: the yardstick for zchan's in-process benchmarks.
//
// This is the bounded queue most C++ programmers would write with the standard library: one
// std::mutex, std::condition_variable for "not full", "not empty" and "taken", and a std::deque.
// It has no spinning and no lock-free fast path on purpose: every wait parks the thread in the
// kernel (a futex), so it shows what a plain blocking design costs on the benchmark machine.
//
// Semantics, chosen to match a Go channel closely enough to run the same benchmark cases:
//   capacity >= 1  bounded FIFO: send() blocks while full, recv() blocks while empty.
//   capacity == 0  rendezvous, like Go's unbuffered channel: send() deposits its value in a
//                  one-slot buffer and then blocks until a receiver has taken *that* value, so a
//                  returned send() means a receiver holds the value (Go's happens-before for an
//                  unbuffered send). Senders queue for the slot in the meantime.
//   close()        buffered values are still delivered; recv() returns nullopt once closed and
//                  drained; send() on a closed queue throws std::logic_error. A rendezvous sender
//                  already in the slot when close() runs waits until its value is drained (Go
//                  would panic it instead; no benchmark closes with a sender blocked).
//
// Invariants (all members below mutex_ are guarded by it):
//   items_.size() <= slots_, where slots_ = max(capacity, 1).
//   popped_ + items_.size() == pushed_: values are numbered 1, 2, ... in push order, and
//     since the queue is FIFO, value s has been received exactly when popped_ >= s.
//   A rendezvous sender that pushed value s returns once popped_ >= s; "taken_" is signalled
//     on every pop, and notify_all is used because after a pop a new sender may already
//     be waiting for its own later value next to the one whose value was just taken.
//
// Thread safety: safe. All member functions may be called concurrently on a shared object.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <utility>

namespace zchan_bench {

template <class T>
class baseline_queue {
public:
    /// capacity 0 is a rendezvous (unbuffered); otherwise a bounded FIFO of that capacity.
    explicit baseline_queue(std::size_t capacity)
        : capacity_(capacity), slots_(capacity == 0 ? 1 : capacity) {}

    baseline_queue(const baseline_queue&) = delete;
    baseline_queue& operator=(const baseline_queue&) = delete;

    /// Blocks until there is room (and, when unbuffered, until a receiver took the value).
    /// Throws: std::logic_error if the queue is closed.
    void send(T value) {
        std::unique_lock lock(mutex_);
        not_full_.wait(lock, [&] { return closed_ || items_.size() < slots_; });
        if (closed_) {
            throw std::logic_error("baseline_queue: send on closed queue");
        }
        items_.push_back(std::move(value));
        const std::uint64_t seq = ++pushed_;
        if (capacity_ != 0) {
            lock.unlock();
            not_empty_.notify_one();
            return;
        }
        // Rendezvous: wake a receiver, then wait for it to take our value. The wait releases
        // the lock, so the receiver can make progress; notify under the lock is fine here
        // because we are about to block on the same mutex anyway.
        not_empty_.notify_one();
        taken_.wait(lock, [&] { return popped_ >= seq; });
    }

    /// Blocks until a value is available. Returns nullopt once closed and drained.
    [[nodiscard]] std::optional<T> recv() {
        std::unique_lock lock(mutex_);
        not_empty_.wait(lock, [&] { return closed_ || !items_.empty(); });
        if (items_.empty()) {
            return std::nullopt;
        }
        std::optional<T> value(std::move(items_.front()));
        items_.pop_front();
        ++popped_;
        lock.unlock();
        not_full_.notify_one();
        if (capacity_ == 0) {
            taken_.notify_all();
        }
        return value;
    }

    /// Throws: std::logic_error if already closed.
    void close() {
        {
            std::lock_guard lock(mutex_);
            if (closed_) {
                throw std::logic_error("baseline_queue: close of closed queue");
            }
            closed_ = true;
        }
        not_full_.notify_all();
        not_empty_.notify_all();
    }

private:
    const std::size_t capacity_;  // as constructed; 0 = rendezvous. Immutable.
    const std::size_t slots_;     // buffer bound: max(capacity_, 1). Immutable.

    std::mutex mutex_;
    std::condition_variable not_full_;   // items_.size() < slots_ or closed_
    std::condition_variable not_empty_;  // !items_.empty() or closed_
    std::condition_variable taken_;      // popped_ advanced (rendezvous only)
    std::deque<T> items_;                // guarded by mutex_
    std::uint64_t pushed_ = 0;           // guarded by mutex_
    std::uint64_t popped_ = 0;           // guarded by mutex_
    bool closed_ = false;                // guarded by mutex_
};

}  // namespace zchan_bench

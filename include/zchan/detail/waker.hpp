// Wait lists of blocked senders and receivers.
//
// An entry stands for one operation of one blocked thread or select: the
// context to wake, the operation number to select in it, and a packet through
// which an unbuffered channel hands a value over directly. Entries live in
// the waiter's stack frame and are linked intrusively, so blocking allocates
// nothing.
//
// A *watcher* is an entry with packet == nullptr in an unbuffered channel's
// list: it carries no value and only wants to be woken when a partner may be
// there (the transport's WATCH_SEND, docs/protocol.md §8.6). Unbuffered
// channels wake it as a hint and never count it as a partner
// (can_select_partner). In a buffered channel every entry is a hint anyway.
//
// Thread safety: a waker is NOT synchronised by itself; every member
// function requires the owning channel's lock, except sync_waker, which
// carries its own lock for channels whose data path is lock-free.
#pragma once

#include <atomic>
#include <cstdint>

#include "zchan/detail/sync.hpp"

namespace zchan::detail {

struct wait_entry {
    context* cx = nullptr;
    std::uintptr_t oper = 0;
    void* packet = nullptr;  ///< flavour-specific handoff area (unbuffered channels)
    wait_entry* prev = nullptr;
    wait_entry* next = nullptr;
    bool linked = false;
};

/// A FIFO list of wait entries. Requires the owner's lock for every call.
class waker {
public:
    [[nodiscard]] bool empty() const noexcept { return head_ == nullptr; }
    /// empty() without the owner's lock, as a hint: it may be stale by the
    /// time the caller acts, so it only decides whether trying is worth a
    /// lock (a registration looks again under the lock).
    [[nodiscard]] bool maybe_waiting() const noexcept {
        return nonempty_.load(std::memory_order_relaxed);
    }

    void push(wait_entry& e) noexcept {
        e.prev = tail_;
        e.next = nullptr;
        if (tail_ != nullptr) {
            tail_->next = &e;
        } else {
            head_ = &e;
        }
        tail_ = &e;
        e.linked = true;
        nonempty_.store(true, std::memory_order_relaxed);
    }

    void remove(wait_entry& e) noexcept {
        if (!e.linked) return;
        if (e.prev != nullptr) {
            e.prev->next = e.next;
        } else {
            head_ = e.next;
        }
        if (e.next != nullptr) {
            e.next->prev = e.prev;
        } else {
            tail_ = e.prev;
        }
        e.prev = e.next = nullptr;
        e.linked = false;
        nonempty_.store(head_ != nullptr, std::memory_order_relaxed);
    }

    /// Selects the first waiter that belongs to another thread and is still
    /// waiting, removes it and returns it (not yet unparked, so the caller can
    /// fill its packet first). Entries whose context was already decided are
    /// skipped and stay until their owner unregisters them.
    wait_entry* try_select() noexcept {
        const void* me = current_thread_id();
        for (wait_entry* e = head_; e != nullptr; e = e->next) {
            // A select may wait to send and to receive on the same channel;
            // it must not rendezvous with itself (Go forbids it too).
            if (e->cx->thread_id() == me) continue;
            if (e->cx->try_select(e->oper)) {
                remove(*e);
                return e;
            }
        }
        return nullptr;
    }

    /// What pick_first does with an entry (see there).
    enum class pick : unsigned char { skip, select, reserve, wake };

    /// Walks the entries of other threads in order and asks `f(entry)`:
    /// skip it; select it (CAS its context; on success remove and return
    /// it, else go on); reserve it (return it as it is, undecided and still
    /// linked, for the caller to decide); or wake it (a watcher's hint:
    /// select, remove, unpark, go on). Returns nullptr if nothing was
    /// selected or reserved.
    template <class F>
    wait_entry* pick_first(F f) noexcept {
        const void* me = current_thread_id();
        for (wait_entry* e = head_; e != nullptr;) {
            wait_entry* next = e->next;
            if (e->cx->thread_id() != me) {
                switch (f(*e)) {
                    case pick::skip:
                        break;
                    case pick::reserve:
                        return e;
                    case pick::select:
                        if (e->cx->try_select(e->oper)) {
                            remove(*e);
                            return e;
                        }
                        break;
                    case pick::wake:
                        if (e->cx->try_select(e->oper)) {
                            remove(*e);
                            e->cx->unpark();
                        }
                        break;
                }
            }
            e = next;
        }
        return nullptr;
    }

    /// True if `f` holds for some entry of another thread.
    template <class F>
    [[nodiscard]] bool any_of(F f) const noexcept {
        const void* me = current_thread_id();
        for (const wait_entry* e = head_; e != nullptr; e = e->next) {
            if (e->cx->thread_id() != me && f(*e)) return true;
        }
        return false;
    }

    /// True if some entry of another thread is still undecided.
    [[nodiscard]] bool can_select() const noexcept {
        const void* me = current_thread_id();
        for (wait_entry* e = head_; e != nullptr; e = e->next) {
            if (e->cx->thread_id() != me && e->cx->selected() == sel_waiting) return true;
        }
        return false;
    }

    /// Like can_select, but counts only entries that carry a packet: a
    /// watcher (packet == nullptr) is no partner for a handoff, and counting
    /// it would make register_* report "ready" forever (a spinning select).
    [[nodiscard]] bool can_select_partner() const noexcept {
        const void* me = current_thread_id();
        for (wait_entry* e = head_; e != nullptr; e = e->next) {
            if (e->packet != nullptr && e->cx->thread_id() != me &&
                e->cx->selected() == sel_waiting) {
                return true;
            }
        }
        return false;
    }

    /// Wakes (selects, removes, unparks) every undecided watcher: an entry
    /// with packet == nullptr. Hints only; they carry no value.
    void wake_watchers() noexcept {
        const void* me = current_thread_id();
        for (wait_entry* e = head_; e != nullptr;) {
            wait_entry* next = e->next;
            if (e->packet == nullptr && e->cx->thread_id() != me && e->cx->try_select(e->oper)) {
                remove(*e);
                e->cx->unpark();
            }
            e = next;
        }
    }

    /// Wakes every waiter with sel_closed (the channel was closed).
    void close_all() noexcept {
        for (wait_entry* e = head_; e != nullptr; e = e->next) {
            if (e->cx->try_select(sel_closed)) e->cx->unpark();
        }
    }

private:
    wait_entry* head_ = nullptr;
    wait_entry* tail_ = nullptr;
    std::atomic<bool> nonempty_{false};  // head_ != nullptr, for maybe_waiting()
};

/// A waker with its own lock and a lock-free "anyone waiting?" flag, for the
/// buffered channel whose fast path takes no lock: a successful operation
/// calls notify(), which costs one load when nobody waits.
///
/// The lock and the flag share one word, so that a registration costs one
/// locked instruction, not two: the CAS that takes the lock also raises
/// `waiting`, and is the seq_cst store that the channel's re-check after
/// registering pairs with (buffered_chan.hpp, top); every later change of
/// the flag is made under the lock, by the unlocking store, so the flag is
/// "the list is not empty" whenever the lock is free. A notify() that reads
/// the flag clear returns without the lock.
///
/// Thread safety: safe.
class sync_waker {
public:
    void register_entry(wait_entry& e) noexcept {
        lock(waiting);
        list_.push(e);
        unlock();
    }

    void unregister_entry(wait_entry& e) noexcept {
        lock(0);
        list_.remove(e);
        unlock();
    }

    /// Wakes one waiter, if any. Called after every successful operation.
    ///
    /// A waiter whose context belongs to an event loop (thread_id() ==
    /// nullptr: the transport's home side) does not count as "the one": it
    /// may be a remote select's watch (docs/protocol.md §8.6) whose select has
    /// chosen another case meanwhile, and then nobody would act on the hint.
    /// So waking goes on until a thread's waiter was woken too. Extra hints
    /// cost a retry, never a wrong result.
    void notify() noexcept {
        notify_with([](wait_entry& /*e*/) noexcept {});
    }

    /// notify(), and `fill(e)` on the thread's waiter it wakes, after
    /// selecting it and before unparking it (under this waker's lock): the
    /// notifier may complete the waiter's operation through its packet.
    template <class F>
    void notify_with(F fill) noexcept {
        // seq_cst: pairs with the registration's CAS (see the class).
        if ((state_.load(std::memory_order_seq_cst) & waiting) == 0) return;
        lock(0);
        while (wait_entry* e = list_.try_select()) {
            const bool thread_waiter = e->cx->thread_id() != nullptr;
            if (thread_waiter) fill(*e);
            e->cx->unpark();
            if (thread_waiter) break;
        }
        unlock();
    }

    /// Selects the first waiter of another thread for which `eligible(e)`
    /// holds, calls `fill(e)` and unparks it, under this waker's lock; true
    /// if one was. The others are left as they are: this is a hand-over,
    /// not a hint.
    template <class Eligible, class F>
    bool hand_over(Eligible eligible, F fill) noexcept {
        // seq_cst: as notify_with.
        if ((state_.load(std::memory_order_seq_cst) & waiting) == 0) return false;
        lock(0);
        wait_entry* e = list_.pick_first([&eligible](wait_entry& w) noexcept {
            return eligible(w) ? waker::pick::select : waker::pick::skip;
        });
        if (e != nullptr) {
            fill(*e);
            e->cx->unpark();
        }
        unlock();
        return e != nullptr;
    }

    void close_all() noexcept {
        lock(0);
        list_.close_all();
        unlock();
    }

private:
    static constexpr std::uint32_t locked = 1;
    static constexpr std::uint32_t waiting = 2;

    /// Takes the lock and raises `set` with it, as spin_lock spins.
    void lock(std::uint32_t set) noexcept {
        std::uint32_t s = state_.load(std::memory_order_relaxed);
        for (;;) {
            if ((s & locked) == 0 &&
                state_.compare_exchange_weak(s, s | locked | set, std::memory_order_seq_cst,
                                             std::memory_order_relaxed)) {
                return;
            }
            spin_while([this, &s] {
                s = state_.load(std::memory_order_relaxed);
                return (s & locked) != 0;
            });
        }
    }

    /// Releases the lock; the flag says again whether anyone waits.
    void unlock() noexcept { state_.store(list_.empty() ? 0 : waiting, std::memory_order_release); }

    std::atomic<std::uint32_t> state_{0};  // locked | waiting
    waker list_;                           // guarded by the lock in state_
};

}  // namespace zchan::detail

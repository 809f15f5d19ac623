// Lock discipline checked by clang's -Wthread-safety: annotation macros (no-ops
// for other compilers) and a mutex with its lock types that carry them, since
// libstdc++'s std::mutex does not. .ci/run builds the library with clang and
// -Werror=thread-safety (tools/check_thread_safety).
//
//   detail::annotated_mutex mu_;
//   int n_ ZCHAN_GUARDED_BY(mu_);
//   void bump_locked() ZCHAN_REQUIRES(mu_) { ++n_; }
//   void bump() { detail::lock_guard g(mu_); bump_locked(); }
//
// Thread safety: annotated_mutex is a std::mutex; the lock types are used by
// the thread that made them.
#pragma once

#include <mutex>

#if defined(__clang__)
#define ZCHAN_TSA(x) __attribute__((x))
#else
#define ZCHAN_TSA(x)
#endif

#define ZCHAN_CAPABILITY(x) ZCHAN_TSA(capability(x))
#define ZCHAN_SCOPED_CAPABILITY ZCHAN_TSA(scoped_lockable)
#define ZCHAN_GUARDED_BY(x) ZCHAN_TSA(guarded_by(x))
#define ZCHAN_REQUIRES(...) ZCHAN_TSA(requires_capability(__VA_ARGS__))
#define ZCHAN_ACQUIRE(...) ZCHAN_TSA(acquire_capability(__VA_ARGS__))
#define ZCHAN_RELEASE(...) ZCHAN_TSA(release_capability(__VA_ARGS__))
#define ZCHAN_EXCLUDES(...) ZCHAN_TSA(locks_excluded(__VA_ARGS__))
#define ZCHAN_NO_THREAD_SAFETY_ANALYSIS ZCHAN_TSA(no_thread_safety_analysis)

namespace zchan::detail {

/// A std::mutex that clang's analysis knows as a capability.
class ZCHAN_CAPABILITY("mutex") annotated_mutex {
public:
    void lock() ZCHAN_ACQUIRE() { m_.lock(); }
    void unlock() ZCHAN_RELEASE() { m_.unlock(); }

private:
    std::mutex m_;
};

/// std::lock_guard for annotated_mutex.
class ZCHAN_SCOPED_CAPABILITY lock_guard {
public:
    explicit lock_guard(annotated_mutex& m) ZCHAN_ACQUIRE(m) : m_(m) { m_.lock(); }
    ~lock_guard() ZCHAN_RELEASE() { m_.unlock(); }
    lock_guard(const lock_guard&) = delete;
    lock_guard& operator=(const lock_guard&) = delete;

private:
    annotated_mutex& m_;
};

}  // namespace zchan::detail

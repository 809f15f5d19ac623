// Turns SIGINT and SIGTERM into a callback on a thread of its own, so that a program can end
// cleanly (close channels, let peers finish) instead of dying in the middle of a send.
//
// Construct it first in main(), before any other thread exists (zchan starts threads for
// servers and dialed handles): the signals are blocked in the constructing thread, and every
// thread inherits that mask, so only the watcher's sigwait() ever takes them.
//
// Thread safety: one object, owned by main(); the callback runs on the watcher thread, at most
// once. A second SIGINT/SIGTERM stays pending (blocked) and is ignored.
#pragma once

#include <csignal>
#include <functional>
#include <thread>
#include <utility>

#include <pthread.h>

namespace message_server {

class signal_watch {
public:
    explicit signal_watch(std::function<void(int)> on_signal) {
        sigemptyset(&set_);
        sigaddset(&set_, SIGINT);
        sigaddset(&set_, SIGTERM);
        sigaddset(&set_, SIGUSR1);  // our own "stop watching", from the destructor
        pthread_sigmask(SIG_BLOCK, &set_, nullptr);
        thread_ = std::thread([this, f = std::move(on_signal)] {
            int sig = 0;
            if (sigwait(&set_, &sig) == 0 && sig != SIGUSR1) f(sig);
        });
    }
    signal_watch(const signal_watch&) = delete;
    signal_watch& operator=(const signal_watch&) = delete;

    ~signal_watch() {
        // If the watcher already ran the callback it has exited, and this is a no-op.
        pthread_kill(thread_.native_handle(), SIGUSR1);
        thread_.join();
    }

private:
    sigset_t set_{};
    std::thread thread_;
};

}  // namespace message_server

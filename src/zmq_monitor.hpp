// One reader of libzmq socket monitor events, for the peer's dial and
// resume watch (peer_connection.cpp) and the server's count of refused handshakes
// (server.cpp).
//
// libzmq reports handshake failures and broken connections only as monitor
// events: zmq_socket_monitor() publishes them on an inproc PAIR endpoint as a
// two-frame message (u16 event and u32 value in the first frame, the peer
// address in the second; the libzmq 4.x v1 format). zmq_monitor owns that
// PAIR and decodes the frames; what an event means is its user's business.
//
// Thread safety: none. The PAIR socket belongs to whichever thread reads it
// (one at a time, as every ZeroMQ socket).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "net_context.hpp"
#include "zmq_eintr.hpp"

namespace zchan::detail {

/// One decoded monitor event.
struct monitor_event {
    std::uint16_t event = 0;  ///< ZMQ_EVENT_*
    std::uint32_t value = 0;  ///< its value (e.g. a ZMQ_PROTOCOL_ERROR_* code)
};

class zmq_monitor {
public:
    /// Starts monitoring `events` (a ZMQ_EVENT_* mask) of `watched`, which
    /// must outlive this object. Returns false from ok() if libzmq refused.
    zmq_monitor(zmq::socket_t& watched, int events, const char* name) : watched_(watched) {
        static std::atomic<std::uint64_t> counter{0};
        const std::string ep = std::string("inproc://zchan-") + name + "-monitor-" +
                               std::to_string(counter.fetch_add(1) + 1);
        int rc = 0;
        do {  // its inproc bind can fail with EINTR (zmq_eintr.hpp)
            rc = zmq_socket_monitor(watched_.handle(), ep.c_str(), events);
        } while (rc != 0 && zmq_errno() == EINTR);
        ok_ = rc == 0;
        if (!ok_) return;
        pair_ = zmq::socket_t(net_context(), zmq::socket_type::pair);
        pair_.set(zmq::sockopt::linger, 0);
        retry_eintr([&] { pair_.connect(ep); });
    }
    /// Stops the monitor: before the watched socket closes.
    ~zmq_monitor() {
        if (!ok_) return;
        (void)zmq_socket_monitor(watched_.handle(), nullptr, 0);
        pair_.close();
    }
    zmq_monitor(const zmq_monitor&) = delete;
    zmq_monitor& operator=(const zmq_monitor&) = delete;

    [[nodiscard]] bool ok() const noexcept { return ok_; }
    /// For zmq_poll.
    [[nodiscard]] void* handle() noexcept { return pair_.handle(); }
    /// For poll(2): the PAIR's ZMQ_FD (edge-triggered, as every ZMQ_FD).
    [[nodiscard]] int fd() { return pair_.get(zmq::sockopt::fd); }

    /// The next queued event, or nullopt if none is queued (or the PAIR
    /// failed). Frames too short to hold an event are skipped.
    [[nodiscard]] std::optional<monitor_event> next() {
        for (;;) {
            zmq::message_t ev;
            zmq::message_t addr;
            try {
                if (!recv_eintr(pair_, ev, zmq::recv_flags::dontwait)) return std::nullopt;
                if (ev.more()) (void)recv_eintr(pair_, addr);
            } catch (const zmq::error_t&) {
                return std::nullopt;
            }
            if (ev.size() < 6) continue;
            monitor_event e;
            std::memcpy(&e.event, ev.data(), 2);
            std::memcpy(&e.value, static_cast<const char*>(ev.data()) + 2, 4);
            return e;
        }
    }

private:
    zmq::socket_t& watched_;
    zmq::socket_t pair_;
    bool ok_ = false;
};

}  // namespace zchan::detail

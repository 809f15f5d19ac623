// zchan::server (docs/protocol.md §15): the public API, server::impl's
// construction and destruction, the serve() registry, the server thread's run
// loop and shutdown. The rest of server::impl is in the files server_impl.hpp
// lists; its threading and invariants are stated there.
//
// Security (protocol.md §14, opt-in: net_options::curve_server): the ROUTER
// is a CURVE server whose ZAP domain is registered with the process's ZAP
// handler (zap.hpp) before it binds. A socket monitor, read on the server
// thread like the ROUTER, counts the peers whose handshake failed
// (rejected_peers()); a plaintext server has neither.
#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.hpp>

#include "endpoint.hpp"
#include "net_context.hpp"
#include "server_impl.hpp"
#include "zap.hpp"
#include "zchan/net.hpp"
#include "zmq_eintr.hpp"
#include "zmq_monitor.hpp"

namespace zchan {
namespace {

/// The handshake failures a secure server counts (see the top).
constexpr int rejection_events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                 ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;

std::unique_ptr<detail::zap_registration> make_zap(const net_options& opts) {
    if (!opts.curve_server) return nullptr;
    if (opts.curve_server->secret_key.empty()) {
        throw std::invalid_argument("zchan: net_options::curve_server has no secret key");
    }
    return std::make_unique<detail::zap_registration>(opts.curve_server->allowed_clients);
}

}  // namespace

server::impl::impl(const std::string& endpoint, const net_options& opts)
    : opts_(opts), zap_(make_zap(opts)), router_(detail::net_context(), zmq::socket_type::router) {
    if (zap_ != nullptr) secure();
    router_.set(zmq::sockopt::router_mandatory, 1);  // §3: no silent drops
    // §3, §12.2: a peer's reconnect (same routing id) replaces its old,
    // possibly half-dead connection instead of being refused.
    router_.set(zmq::sockopt::router_handover, 1);
    router_.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(opts.max_frame));
    router_.set(zmq::sockopt::linger, 200);
    router_.set(zmq::sockopt::sndhwm, 0);
    router_.set(zmq::sockopt::rcvhwm, 0);
    detail::validate_endpoint(endpoint, true);  // endpoint.hpp
    try {
        detail::retry_eintr([&] { router_.bind(endpoint); });
    } catch (const zmq::error_t& e) {
        throw transport_error(make_error_code(errc::connect_failed),
                              "zchan: cannot bind " + endpoint + ": " + e.what());
    }
    endpoint_ = router_.get(zmq::sockopt::last_endpoint);
    if (zap_ != nullptr) zap_->set_label(endpoint_);
    instance_ = detail::random_instance_id();
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
    served_.emplace(stats_channel, make_stat_chan());  // §17.2
    thread_ = std::jthread([this](const std::stop_token& st) { run(st); });
}

server::impl::~impl() {
    thread_.request_stop();
    wake();
    thread_.join();
    served_.clear();  // after every session was dropped on the server thread
    mon_.reset();     // stops the monitor before the socket it watches closes
    router_.close();
    ::close(wake_fd_);
}  // then zap_: the ROUTER that used its domain is gone

void server::impl::add(const std::string& name, std::unique_ptr<detail::served_base> ch) {
    if (name.empty() || name.size() > w::max_name) {
        throw std::invalid_argument("zchan: channel name must be 1..255 bytes");
    }
    if (name.front() == '$') {  // protocol.md §17.2
        throw std::invalid_argument("zchan: channel names starting with '$' are reserved");
    }
    detail::lock_guard g(served_mu_);
    if (!served_.emplace(name, std::move(ch)).second) {
        throw std::invalid_argument("zchan: a channel named \"" + name + "\" is already served");
    }
}

void server::impl::set_factory(detail::channel_factory f) {
    detail::lock_guard g(served_mu_);
    factory_ = std::move(f);
}

void server::impl::set_sweeper(detail::channel_sweeper f) {  // hub: idle channels (§17.1)
    detail::lock_guard g(served_mu_);
    sweeper_ = std::move(f);
}

namespace {
/// The server whose thread this is (set by run()).
thread_local const void* running_server = nullptr;
}  // namespace

// op_notifier: any thread, under a channel lock. On the server thread itself
// (its own channel operations complete others) the flag alone is enough: run()
// looks at it before it polls, so that costs no eventfd write and read.
void server::impl::post(detail::served_base* ch, std::uint64_t op_id) noexcept {
    {
        detail::lock_guard g(ready_mu_);
        ready_.emplace_back(ch, op_id);
    }
    if (!signalled_.exchange(true, std::memory_order_acq_rel) && running_server != this) wake();
}

/// Constructor only, before bind: CURVE server, ZAP domain, monitor.
void server::impl::secure() {
    const auto& c = *opts_.curve_server;
    router_.set(zmq::sockopt::curve_server, 1);
    router_.set(zmq::sockopt::curve_secretkey, c.secret_key.z85());
    router_.set(zmq::sockopt::zap_domain, zap_->domain());
#ifdef ZMQ_ZAP_ENFORCE_DOMAIN
    constexpr int enforce_option = ZMQ_ZAP_ENFORCE_DOMAIN;
#else
    constexpr int enforce_option = 93;  // draft API; libzmq 4.3 knows it when built with drafts
#endif
    // Defence in depth: with it, no ZAP handler means no admission
    // (instead of libzmq's default, everyone). Unknown to some builds: ignored.
    const int one = 1;
    (void)zmq_setsockopt(router_.handle(), enforce_option, &one, sizeof one);
    mon_.emplace(router_, rejection_events, "server");
    if (!mon_->ok()) {
        throw transport_error(make_error_code(errc::connect_failed),
                              "zchan: cannot monitor the server socket");
    }
}

/// Server thread. Counts (and logs, rate-limited) failed handshakes. ZAP
/// refusals (AUTH) are logged by the ZAP handler, which knows the key.
void server::impl::read_monitor() {
    while (const auto e = mon_->next()) {
        const std::uint16_t event = e->event;
        const std::uint32_t value = e->value;
        const auto n = ++rejected_;
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH || (n > 10 && n % 1000 != 0)) continue;
        const char* why = "the connection ended during the handshake";
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
            why = value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
                      ? "not a CURVE client (plaintext?)"
                  : value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC
                      ? "CURVE handshake failed (the client has the wrong server key?)"
                      : "CURVE handshake failed (protocol error)";
        }
        std::fprintf(stderr, "zchan: server %s: refused a peer: %s (rejection #%llu)\n",
                     endpoint_.c_str(), why, static_cast<unsigned long long>(n));
    }
}

void server::impl::wake() noexcept {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
}

void server::impl::run(const std::stop_token& st) {
    std::array<zmq::pollitem_t, 3> items{{{router_.handle(), 0, ZMQ_POLLIN, 0},
                                          {nullptr, wake_fd_, ZMQ_POLLIN, 0},
                                          {mon_ ? mon_->handle() : nullptr, 0, ZMQ_POLLIN, 0}}};
    const int n_items = mon_ ? 3 : 2;
    const auto tick =
        std::chrono::milliseconds(std::max<long long>(1, opts_.heartbeat.count() / 4));
    running_server = this;
    while (!st.stop_requested()) {
        try {
            // Posted from this thread (see post()): ready now, no wake-up written.
            const bool ready = signalled_.load(std::memory_order_acquire);
            zmq::poll(items.data(), n_items, ready ? std::chrono::milliseconds(0) : tick);
        } catch (const zmq::error_t&) {
            continue;  // EINTR
        }
        if ((items[1].revents & ZMQ_POLLIN) != 0) {
            std::uint64_t n = 0;
            [[maybe_unused]] auto r = ::read(wake_fd_, &n, sizeof n);
        }
        if (n_items == 3 && (items[2].revents & ZMQ_POLLIN) != 0) read_monitor();
        now_ = steady::now();
        process_ready();
        // A bounded batch, so that completions and heartbeats keep up: at
        // most 512 frames and one tick. The clock is read again after each
        // frame (a vDSO read, no syscall): a frame of many MiB takes a while
        // to decode, and a batch of them stamped with the batch's start
        // looked silent for their whole length, so housekeeping expired the
        // very connection that sent them (protocol.md §12.1: any frame is
        // life), and sent no PING meanwhile.
        const auto batch_end = now_ + tick;
        for (int i = 0; i < 512 && recv_one(); ++i) {
            now_ = steady::now();
            if (now_ >= batch_end) break;
        }
        housekeeping();
    }
    shut_down(items[0]);
}

/// Shutdown (protocol.md §11.2 shutting_down, §12.4). Every peer learns
/// it; a live peer answers by ACKing what its users took and RETURNing
/// what it holds for nobody (its prefetch queue). Those frames are
/// awaited, bounded by the heartbeat timeout (a dead or stopped peer
/// cannot hang the destructor, and would be declared lost after that
/// long anyway); then every session is dropped, which puts whatever is
/// still unresolved back into its channel. So no value leaves with the
/// server: each one reached a user, or is in its channel (len() counts
/// it). Without the wait, a value a peer's user took just before the
/// ERROR arrived would be both there and back in the channel.
void server::impl::shut_down(zmq::pollitem_t& item) {
    // Operations completed on the channels before the stop (a local
    // receiver took a remote offer) are answered first: their SEND_OK
    // must reach the peer ahead of ERROR shutting_down, which fails
    // whatever the peer still waits for.
    process_ready();
    stopping_ = true;
    for (auto& [id, s] : sessions_) {
        reply_error(id, 0, w::error_code::shutting_down, "server shutting down");
    }
    const auto deadline = steady::now() + opts_.heartbeat_timeout;
    auto unresolved = [&] {
        for (auto& [id, s] : sessions_) {
            if (s.ch->unresolved(id) != 0) return true;
        }
        return false;
    };
    while (unresolved()) {
        const auto now = steady::now();
        if (now >= deadline) break;
        try {
            zmq::poll(&item, 1, std::chrono::ceil<std::chrono::milliseconds>(deadline - now));
        } catch (const zmq::error_t&) {
            continue;  // EINTR
        }
        for (int i = 0; i < 512 && recv_one(); ++i) {
        }
        for (auto sid : unroutable_) drop(sid);
        unroutable_.clear();
    }
    std::vector<std::uint32_t> ids;
    for (auto& [id, s] : sessions_) ids.push_back(id);
    for (auto id : ids) drop(id);
}

void server::impl::process_ready() {
    // Order matters (see post()): clear the flag before taking the list.
    signalled_.store(false, std::memory_order_release);
    auto& ready = ready_scratch_;  // reused: its capacity goes back and forth
    ready.clear();
    {
        detail::lock_guard g(ready_mu_);
        ready.swap(ready_);
    }
    for (auto& [ch, op] : ready) ch->on_ready(*this, op);
}

server::server(const std::string& endpoint, const net_options& opts)
    : impl_(std::make_unique<impl>(endpoint, opts)) {}

server::~server() = default;

std::string server::endpoint() const { return impl_->endpoint(); }
std::uint64_t server::malformed_frames() const noexcept { return impl_->malformed(); }
std::size_t server::sessions() const noexcept { return impl_->session_count(); }
std::uint64_t server::rejected_peers() const noexcept { return impl_->rejected(); }
bool server::secure() const noexcept { return impl_->is_secure(); }
void server::add(const std::string& name, std::unique_ptr<detail::served_base> ch) {
    impl_->add(name, std::move(ch));
}
void server::set_factory(detail::channel_factory f) { impl_->set_factory(std::move(f)); }
void server::set_sweeper(detail::channel_sweeper f) { impl_->set_sweeper(std::move(f)); }
detail::op_notifier& server::notifier() noexcept { return *impl_; }

}  // namespace zchan

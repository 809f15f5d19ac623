// zchan::hub and zchan::stats (docs/protocol.md §17): a server whose channels
// hold opaque values, created by add_channel or on first dial, within the
// hub's limits (hub_options), and removed again when idle.
//
// Every hub_chan member and the budget's non-atomic state are used on the
// server thread only (served_base's contract); the budget's counters are
// atomics so that hub::created_channels() may read them from any thread.
#include "zchan/hub.hpp"

#include <atomic>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace zchan {

/// What the channels created on dial hold now (hub_options limits).
struct hub::budget {
    std::atomic<std::size_t> channels{0};
    std::atomic<std::uint64_t> capacity{0};
};

namespace {

using steady = std::chrono::steady_clock;

/// A hub's channel: an opaque-value served_chan, plus what the hub needs to
/// account for it and to find it idle (sessions attached, since when none).
class hub_chan final : public detail::served_base {
public:
    hub_chan(std::uint64_t capacity, std::string type, detail::op_notifier& notifier,
             std::shared_ptr<hub::budget> budget)
        : inner_(channel<opaque_value>(static_cast<std::size_t>(capacity)), notifier,
                 std::move(type)),
          budget_(std::move(budget)),
          charged_(capacity) {
        if (budget_) {
            budget_->channels.fetch_add(1, std::memory_order_relaxed);
            budget_->capacity.fetch_add(charged_, std::memory_order_relaxed);
        }
    }
    ~hub_chan() override {
        if (budget_) {
            budget_->channels.fetch_sub(1, std::memory_order_relaxed);
            budget_->capacity.fetch_sub(charged_, std::memory_order_relaxed);
        }
    }
    hub_chan(const hub_chan&) = delete;
    hub_chan& operator=(const hub_chan&) = delete;

    /// Created on dial, empty, and without a session for `timeout`.
    [[nodiscard]] bool idle_for(std::chrono::milliseconds timeout) {
        if (!budget_ || sessions_ != 0 || steady::now() - idle_since_ < timeout) return false;
        std::uint64_t len = 0;
        bool closed = false;
        inner_.on_query(len, closed);
        return len == 0;
    }

    const std::string& type_name() const noexcept override { return inner_.type_name(); }
    bool adopt_type(std::string_view type) override { return inner_.adopt_type(type); }
    std::uint64_t capacity() const override { return inner_.capacity(); }
    void open_session(std::uint32_t session) override {
        ++sessions_;
        inner_.open_session(session);
    }
    void drop_session(std::uint32_t session) override {
        inner_.drop_session(session);
        if (sessions_ > 0 && --sessions_ == 0) idle_since_ = steady::now();
    }
    std::size_t unresolved(std::uint32_t session) const override {
        return inner_.unresolved(session);
    }
    bool on_send(detail::reply_sink& out, std::uint32_t session, std::uint64_t seq, bool try_now,
                 const unsigned char* data, std::size_t size) override {
        return inner_.on_send(out, session, seq, try_now, data, size);
    }
    void on_cancel_send(detail::reply_sink& out, std::uint32_t session,
                        std::uint64_t seq) override {
        inner_.on_cancel_send(out, session, seq);
    }
    void on_recv(detail::reply_sink& out, std::uint32_t session, std::uint64_t request,
                 bool try_now, std::uint64_t select_tag) override {
        inner_.on_recv(out, session, request, try_now, select_tag);
    }
    void on_cancel_recv(detail::reply_sink& out, std::uint32_t session,
                        std::uint64_t request) override {
        inner_.on_cancel_recv(out, session, request);
    }
    void on_recv_many(detail::reply_sink& out, std::uint32_t session, std::uint64_t first,
                      std::uint32_t count) override {
        inner_.on_recv_many(out, session, first, count);
    }
    void on_watch_send(detail::reply_sink& out, std::uint32_t session, std::uint64_t request,
                       std::uint64_t select_tag) override {
        inner_.on_watch_send(out, session, request, select_tag);
    }
    void on_cancel_watch(detail::reply_sink& out, std::uint32_t session,
                         std::uint64_t request) override {
        inner_.on_cancel_watch(out, session, request);
    }
    void on_ack(std::uint32_t session, std::uint64_t delivery) override {
        inner_.on_ack(session, delivery);
    }
    void on_return(std::uint32_t session, std::uint64_t delivery) override {
        inner_.on_return(session, delivery);
    }
    bool on_close() override { return inner_.on_close(); }
    const detail::chan_poll* poll_channel() const noexcept override {
        return inner_.poll_channel();
    }
    bool poll_ready(std::uint32_t session, bool send, detail::poll_stamp& stamp) const override {
        return inner_.poll_ready(session, send, stamp);
    }
    void on_query(std::uint64_t& length, bool& closed) override { inner_.on_query(length, closed); }
    void settle(detail::reply_sink& out) override { inner_.settle(out); }
    std::uint32_t grant_window(std::uint32_t session, std::uint32_t requested) override {
        return inner_.grant_window(session, requested);
    }
    void welcomed(detail::reply_sink& out, std::uint32_t session) override {
        inner_.welcomed(out, session);
    }
    std::uint32_t on_credited(detail::reply_sink& out, std::uint32_t session, std::uint64_t first,
                              std::uint32_t count, const unsigned char* entries,
                              std::size_t size) override {
        return inner_.on_credited(out, session, first, count, entries, size);
    }
    void on_revoked(detail::reply_sink& out, std::uint32_t session) override {
        inner_.on_revoked(out, session);
    }
    // Operations register the inner channel with the notifier, so the server
    // calls the inner one's on_ready directly; this is never reached.
    void on_ready(detail::reply_sink& out, std::uint64_t op_id) override {
        inner_.on_ready(out, op_id);
    }

private:
    detail::served_chan<opaque_value> inner_;
    std::shared_ptr<hub::budget> budget_;  // null: from add_channel (neither limited nor removed)
    std::uint64_t charged_;
    std::uint32_t sessions_ = 0;
    steady::time_point idle_since_ = steady::now();
};

std::string limit_text(const std::string& name, const std::string& what) {
    return "channel \"" + name + "\" not created: " + what;
}

}  // namespace

hub::hub(const std::string& endpoint, const hub_options& opts)
    : opts_(opts), budget_(std::make_shared<budget>()), srv_(endpoint, opts.net) {
    if (!opts_.create_on_dial) return;
    // Runs on the server thread for a HELLO naming no channel (protocol.md §17.1).
    srv_.set_factory([o = opts_, b = budget_, ep = srv_.endpoint()](
                         const std::string& name, std::string_view type,
                         std::optional<std::uint32_t> capacity, detail::op_notifier& notifier,
                         std::string& refusal) -> std::unique_ptr<detail::served_base> {
        if (!capacity) {
            refusal = "no channel \"" + name + "\" at hub " + ep +
                      " (a dialer creates one by giving a capacity: net_options::create_capacity)";
            return nullptr;
        }
        if (*capacity > o.max_create_capacity) {
            refusal = limit_text(name, "capacity " + std::to_string(*capacity) +
                                           " exceeds the hub's limit of " +
                                           std::to_string(o.max_create_capacity) + " per channel");
            return nullptr;
        }
        if (b->channels.load(std::memory_order_relaxed) >= o.max_channels) {
            refusal =
                limit_text(name, "the hub holds its limit of " + std::to_string(o.max_channels) +
                                     " channels created on dial");
            return nullptr;
        }
        const std::uint64_t held = b->capacity.load(std::memory_order_relaxed);
        if (*capacity > o.max_total_capacity || held > o.max_total_capacity - *capacity) {
            refusal = limit_text(name, "capacity " + std::to_string(*capacity) +
                                           " would take the " + "hub past its limit of " +
                                           std::to_string(o.max_total_capacity) +
                                           " slots in channels created on dial (" +
                                           std::to_string(held) + " in use)");
            return nullptr;
        }
        return std::make_unique<hub_chan>(*capacity, std::string(type), notifier, b);
    });
    if (opts_.idle_timeout.count() > 0) {
        srv_.set_sweeper([t = opts_.idle_timeout](detail::served_base& ch) {
            auto* h = dynamic_cast<hub_chan*>(&ch);
            return h != nullptr && h->idle_for(t);
        });
    }
}

hub::~hub() = default;

void hub::add_channel(const std::string& name, std::uint64_t capacity, const std::string& type) {
    srv_.add(name, std::make_unique<hub_chan>(capacity, type, srv_.notifier(), nullptr));
}

std::string hub::endpoint() const { return srv_.endpoint(); }
std::size_t hub::sessions() const noexcept { return srv_.sessions(); }
std::size_t hub::created_channels() const noexcept {
    return budget_->channels.load(std::memory_order_relaxed);
}
std::uint64_t hub::created_capacity() const noexcept {
    return budget_->capacity.load(std::memory_order_relaxed);
}

server_stats stats(const std::string& endpoint, const net_options& opts) {
    auto ch = dial<server_stats>(endpoint, stats_channel, opts);
    std::optional<server_stats> s = ch.recv();
    if (!s) throw transport_error(make_error_code(errc::protocol_error), "zchan: $stat closed");
    return std::move(*s);
}

}  // namespace zchan

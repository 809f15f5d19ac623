// zchan::hub and zchan::stats (docs/protocol.md §17): a server whose channels
// hold opaque values, created by add_channel or on first dial.
#include "zchan/hub.hpp"

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace zchan {

namespace {

std::unique_ptr<detail::served_base> make_opaque(std::uint64_t capacity, std::string type,
                                                 detail::op_notifier& notifier) {
    channel<opaque_value> ch(static_cast<std::size_t>(capacity));
    return std::make_unique<detail::served_chan<opaque_value>>(std::move(ch), notifier,
                                                               std::move(type));
}

}  // namespace

hub::hub(const std::string& endpoint, const hub_options& opts)
    : opts_(opts), srv_(endpoint, opts.net) {
    if (!opts_.create_on_dial) return;
    // Runs on the server thread for a HELLO naming no channel (protocol.md §17.1).
    srv_.set_factory([max = opts_.max_create_capacity, ep = srv_.endpoint()](
                         const std::string& name, std::string_view type,
                         std::optional<std::uint32_t> capacity, detail::op_notifier& notifier,
                         std::string& refusal) -> std::unique_ptr<detail::served_base> {
        if (!capacity) {
            refusal = "no channel \"" + name + "\" at hub " + ep +
                      " (a dialer creates one by giving a capacity: net_options::create_capacity)";
            return nullptr;
        }
        if (*capacity > max) {
            refusal = "channel \"" + name + "\": capacity " + std::to_string(*capacity) +
                      " exceeds the hub's limit " + std::to_string(max);
            return nullptr;
        }
        return make_opaque(*capacity, std::string(type), notifier);
    });
}

hub::~hub() = default;

void hub::add_channel(const std::string& name, std::uint64_t capacity, const std::string& type) {
    srv_.add(name, make_opaque(capacity, type, srv_.notifier()));
}

std::string hub::endpoint() const { return srv_.endpoint(); }
std::size_t hub::sessions() const noexcept { return srv_.sessions(); }

server_stats stats(const std::string& endpoint, const net_options& opts) {
    auto ch = dial<server_stats>(endpoint, stats_channel, opts);
    std::optional<server_stats> s = ch.recv();
    if (!s) throw transport_error(make_error_code(errc::protocol_error), "zchan: $stat closed");
    return std::move(*s);
}

}  // namespace zchan

// server::impl, introspection (docs/protocol.md §17.2): the reserved channel
// "$stat", served by every home, and the snapshot it answers with, built from
// the sessions and the per-channel counters the other files bump.
//
// Server thread only (server_impl.hpp), like every served_base; the snapshot
// takes served_mu_, then each channel's lock (on_query).
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>

#include "server_impl.hpp"
#include "zchan/detail/thread_annotations.hpp"
#include "zchan/hub.hpp"
#include "zchan/net.hpp"

namespace zchan {

/// The reserved channel "$stat" (protocol.md §17.2): every RECV is
/// answered at once with a VALUE holding a fresh server_stats; its
/// deliveries need no ACK (nothing is taken out of a channel), and it
/// refuses values. Server thread only, like every served_base.
class server::impl::stat_chan final : public detail::served_base {
public:
    explicit stat_chan(impl& srv) : srv_(srv) {}
    const std::string& type_name() const noexcept override { return type_; }
    std::uint64_t capacity() const override { return 0; }
    void open_session(std::uint32_t session) override { next_delivery_[session] = 1; }
    void drop_session(std::uint32_t session) override { next_delivery_.erase(session); }
    std::size_t unresolved(std::uint32_t /*session*/) const override { return 0; }
    bool on_send(detail::reply_sink& /*out*/, std::uint32_t /*session*/, std::uint64_t /*seq*/,
                 bool /*try_now*/, const unsigned char* /*data*/, std::size_t /*size*/) override {
        return false;  // answered ERROR decode_error: "$stat" takes no values
    }
    void on_cancel_send(detail::reply_sink& /*out*/, std::uint32_t /*session*/,
                        std::uint64_t /*seq*/) override {}
    void on_recv(detail::reply_sink& out, std::uint32_t session, std::uint64_t request,
                 bool /*try_now*/, std::uint64_t /*select_tag*/) override {
        enc_.clear();
        encode_value(srv_.snapshot(), enc_);
        out.reply_value(session, request, next_delivery_[session]++, enc_);
    }
    void on_cancel_recv(detail::reply_sink& /*out*/, std::uint32_t /*session*/,
                        std::uint64_t /*request*/) override {}  // never pending
    void on_recv_many(detail::reply_sink& out, std::uint32_t session, std::uint64_t first,
                      std::uint32_t count) override {  // each RECV it stands for (§8.8)
        for (std::uint32_t i = 0; i < count; ++i) on_recv(out, session, first + i, false, 0);
    }
    void on_watch_send(detail::reply_sink& out, std::uint32_t session, std::uint64_t request,
                       std::uint64_t /*select_tag*/) override {
        out.reply(session, w::msg::ready, request);  // its TRY SEND fails
    }
    void on_cancel_watch(detail::reply_sink& /*out*/, std::uint32_t /*session*/,
                         std::uint64_t /*request*/) override {}
    void on_ack(std::uint32_t /*session*/, std::uint64_t /*delivery*/) override {}
    void on_return(std::uint32_t /*session*/, std::uint64_t /*delivery*/) override {}
    bool on_close() override { return false; }  // ERROR already_closed
    // POLL (§8.9): no channel to poll; a receive is always ready.
    const detail::chan_poll* poll_channel() const noexcept override { return nullptr; }
    bool poll_ready(std::uint32_t /*session*/, bool send,
                    detail::poll_stamp& /*stamp*/) const override {
        return !send;
    }
    void on_query(std::uint64_t& length, bool& closed) override {
        length = 0;
        closed = false;
    }
    void on_ready(detail::reply_sink& /*out*/, std::uint64_t /*op_id*/) override {}

private:
    impl& srv_;
    const std::string type_ = zchan::type_name<server_stats>::value();
    std::string enc_;
    // Per session, consecutive from 1 like any channel's (§8.4): a
    // prefetching peer hands values out in delivery order (src/peer_session_recv.cpp).
    std::unordered_map<std::uint32_t, std::uint64_t> next_delivery_;
};

std::unique_ptr<detail::served_base> server::impl::make_stat_chan() {
    return std::make_unique<stat_chan>(*this);
}

void server::impl::bump(std::uint32_t session, std::uint64_t counters::*field, std::uint64_t n) {
    auto it = sessions_.find(session);
    if (it != sessions_.end() && it->second.stats != nullptr) it->second.stats->*field += n;
}

/// "$stat"'s answer (protocol.md §17.2). Server thread.
server_stats server::impl::snapshot() {
    server_stats st;
    st.endpoint = endpoint_;
    st.sessions = sessions_.size();
    st.malformed_frames = malformed_.load();
    st.refused_dials = refused_dials_;  // hub limits (§17.1)
    struct attached {
        std::uint32_t sessions = 0, senders = 0, receivers = 0;
    };
    std::unordered_map<const detail::served_base*, attached> per;
    for (const auto& [sid, s] : sessions_) {
        auto& a = per[s.ch];
        ++a.sessions;
        a.senders += s.sends ? 1 : 0;
        a.receivers += s.recvs ? 1 : 0;
    }
    detail::lock_guard g(served_mu_);  // then channel locks (on_query)
    for (const auto& [name, ch] : served_) {
        if (name.front() == '$') continue;
        channel_stats c;
        c.name = name;
        c.type = ch->type_name();
        c.cap = ch->capacity();
        ch->on_query(c.len, c.closed);
        if (auto a = per.find(ch.get()); a != per.end()) {
            c.sessions = a->second.sessions;
            c.senders = a->second.senders;
            c.receivers = a->second.receivers;
        }
        if (auto k = counters_.find(ch.get()); k != counters_.end()) {
            c.values_in = k->second.values_in;
            c.values_out = k->second.values_out;
            c.returned = k->second.returned;
            c.errors = k->second.errors;
        }
        st.channels.push_back(std::move(c));
    }
    return st;
}

}  // namespace zchan

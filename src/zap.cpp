// The ZAP handler (see zap.hpp; ZeroMQ RFC 27).
#include "zap.hpp"

#include <cerrno>
#include <cstdio>
#include <map>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <zmq.hpp>

#include "net_context.hpp"
#include "zchan/errors.hpp"
#include "zmq_eintr.hpp"

namespace zchan::detail {

struct zap_domain {
    std::string name;
    std::set<curve::key> allowed;  // immutable after registration
    std::atomic<std::uint64_t> denied{0};
};

namespace {

constexpr const char* zap_endpoint = "inproc://zeromq.zap.01";  // RFC 27
constexpr std::string_view zap_version = "1.0";

/// The one handler of net_context() (see zap.hpp). Never destroyed, like the
/// context itself: at exit it must outlive every server that uses it.
class zap_handler {
public:
    static zap_handler& instance() {
        static auto* h = new zap_handler();  // never deleted: see above
        return *h;
    }

    std::shared_ptr<zap_domain> add(const curve::allow_list& allowed) {
        auto d = std::make_shared<zap_domain>();
        d->allowed = allowed.keys();
        std::lock_guard<std::mutex> life(life_mu_);
        if (!started_) start();
        started_ = true;
        std::lock_guard<std::mutex> g(map_mu_);
        d->name = "zchan-" + std::to_string(++next_domain_);
        domains_.emplace(d->name, d);
        return d;
    }

    void remove(const std::shared_ptr<zap_domain>& d) {
        std::lock_guard<std::mutex> g(map_mu_);
        domains_.erase(d->name);  // its requests get 400 from now on
        labels_.erase(d->name);
    }

    void set_label(const std::string& domain, const std::string& label) {
        std::lock_guard<std::mutex> g(map_mu_);
        labels_[domain] = label;
    }

private:
    zap_handler() = default;

    /// Requires life_mu_. Binds on the caller's thread, so that a failure is
    /// the caller's exception and the endpoint exists before any server binds;
    /// the socket then belongs to the handler thread (thread start is the full
    /// barrier libzmq asks for when a socket changes threads).
    void start() {
        zmq::socket_t sock(net_context(), zmq::socket_type::rep);
        sock.set(zmq::sockopt::linger, 0);
        try {
            retry_eintr([&] { sock.bind(zap_endpoint); });
        } catch (const zmq::error_t& e) {
            throw transport_error(
                make_error_code(errc::access_denied),
                std::string("zchan: cannot install the ZAP handler: ") + e.what());
        }
        // Detached: it ends when the context is terminated (see the top).
        std::thread([this, s = std::move(sock)]() mutable {
            run(s);
            s.close();
        }).detach();
    }

    void run(zmq::socket_t& sock) {
        std::vector<zmq::message_t> req;
        for (;;) {
            zmq::pollitem_t item{sock.handle(), 0, ZMQ_POLLIN, 0};
            try {
                zmq::poll(&item, 1, std::chrono::milliseconds(-1));
            } catch (const zmq::error_t& e) {
                if (e.num() == ETERM) return;  // the context is being terminated (exit)
                continue;                      // EINTR
            }
            if ((item.revents & ZMQ_POLLIN) == 0) continue;
            try {
                req.clear();
                for (;;) {
                    zmq::message_t m;
                    if (!recv_eintr(sock, m, zmq::recv_flags::dontwait)) break;
                    const bool more = m.more();
                    if (req.size() < 16) req.push_back(std::move(m));
                    if (!more) break;
                }
                if (req.empty()) continue;
                answer(sock, req);
            } catch (const zmq::error_t& e) {
                if (e.num() == ETERM) return;
            }
        }
    }

    /// One request -> one reply (a REP socket must answer every request).
    /// RFC 27: version, request id, domain, address, identity, mechanism,
    /// credentials...; reply: version, request id (echoed), status code,
    /// status text, user id, metadata.
    void answer(zmq::socket_t& sock, const std::vector<zmq::message_t>& req) {
        const std::string request_id = req.size() > 1 ? req[1].to_string() : std::string();
        auto reply = [&](std::string_view code, std::string_view text, std::string_view user) {
            send_eintr(sock, zmq::buffer(zap_version), zmq::send_flags::sndmore);
            send_eintr(sock, zmq::buffer(request_id), zmq::send_flags::sndmore);
            send_eintr(sock, zmq::buffer(code), zmq::send_flags::sndmore);
            send_eintr(sock, zmq::buffer(text), zmq::send_flags::sndmore);
            send_eintr(sock, zmq::buffer(user), zmq::send_flags::sndmore);
            send_eintr(sock, zmq::const_buffer(nullptr, 0), zmq::send_flags::none);  // no metadata
        };
        if (req.size() < 6 || req[0].to_string_view() != zap_version) {
            reply("500", "malformed ZAP request", "");
            return;
        }
        const std::string domain = req[2].to_string();
        const std::string address = req[3].to_string();
        std::shared_ptr<zap_domain> d;
        std::string label;
        {
            std::lock_guard<std::mutex> g(map_mu_);
            if (auto it = domains_.find(domain); it != domains_.end()) d = it->second;
            if (auto it = labels_.find(domain); it != labels_.end()) label = it->second;
        }
        if (d == nullptr) {
            reply("400", "unknown ZAP domain", "");
            return;
        }
        // Frames 4 and 5: identity (unused), mechanism; then the credentials.
        if (req[5].to_string_view() != "CURVE" || req.size() != 7 || req[6].size() != 32) {
            deny(*d, label, address, "not a CURVE client", "");
            reply("400", "CURVE required", "");
            return;
        }
        const curve::key client = curve::key::from_bytes(req[6].to_string_view());
        if (d->allowed.count(client) == 0) {
            deny(*d, label, address, "key not in the allow-list", client.z85());
            reply("400", "key not allowed", "");
            return;
        }
        reply("200", "OK", client.z85());
    }

    static void deny(zap_domain& d, const std::string& label, const std::string& address,
                     const char* why, const std::string& key) {
        const auto n = ++d.denied;
        if (n <= 10 || n % 1000 == 0) {  // rate-limited, as malformed frames (§11.1)
            std::fprintf(stderr, "zchan: server %s: refused client %s%s%s: %s (refusal #%llu)\n",
                         label.empty() ? d.name.c_str() : label.c_str(), address.c_str(),
                         key.empty() ? "" : " with key ", key.c_str(), why,
                         static_cast<unsigned long long>(n));
        }
    }

    std::mutex life_mu_;    // serialises the start; taken before map_mu_
    bool started_ = false;  // guarded by life_mu_
    std::mutex map_mu_;
    std::map<std::string, std::shared_ptr<zap_domain>> domains_;  // guarded by map_mu_
    std::map<std::string, std::string> labels_;                   // guarded by map_mu_
    std::uint64_t next_domain_ = 0;                               // guarded by map_mu_
};

}  // namespace

zap_registration::zap_registration(const curve::allow_list& allowed)
    : d_(zap_handler::instance().add(allowed)) {}

zap_registration::~zap_registration() { zap_handler::instance().remove(d_); }

const std::string& zap_registration::domain() const noexcept { return d_->name; }

void zap_registration::set_label(const std::string& label) {
    zap_handler::instance().set_label(d_->name, label);
}

std::uint64_t zap_registration::denied() const noexcept { return d_->denied.load(); }

}  // namespace zchan::detail

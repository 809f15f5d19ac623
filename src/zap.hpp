// The ZAP handler (ZeroMQ RFC 27) of zchan's process-wide ZeroMQ context
// (private; docs/protocol.md §14).
//
// A context has exactly one ZAP endpoint, inproc://zeromq.zap.01, but a
// process may run several secure servers with different allow-lists. So
// there is one handler per context, and each secure server registers its
// own ZAP domain (ZMQ_ZAP_DOMAIN on its ROUTER) with its allow-list; the
// handler answers each request by the allow-list of the request's domain.
// An unknown domain, a mechanism other than CURVE or a key not listed gets
// 400; a malformed request 500; an admitted key 200 with the key (Z85) as
// user id.
//
// Lifetime. The first zap_registration binds the endpoint (before its
// server binds, so that no handshake can come before the handler) and starts
// the handler thread, which then runs until the context is terminated: at
// exit net_context calls zmq_ctx_term, the handler's poll fails with ETERM,
// and the thread closes its socket, which zmq_ctx_term waits for; so the
// handler never delays exit. It is not stopped with the last server because
// libzmq releases an inproc endpoint asynchronously after its socket closes:
// the next secure server could not bind it again at once (EADDRINUSE), and
// an idle handler costs one blocked thread. A removed domain is unknown to
// the handler from then on (400). libzmq admits every CURVE client when no
// handler is bound: servers also set ZMQ_ZAP_ENFORCE_DOMAIN where libzmq
// supports it.
//
// Thread safety: zap_registration may be created and destroyed on any
// thread; its accessors are safe from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "zchan/security.hpp"

namespace zchan::detail {

struct zap_domain;

/// One secure server's entry in the handler (see the top).
class zap_registration {
public:
    /// Registers a fresh domain admitting `allowed`; starts the handler if it
    /// is not running yet. Throws: transport_error if the ZAP endpoint cannot be
    /// bound (another ZAP handler in zchan's context: never, unless zchan
    /// itself has a bug).
    explicit zap_registration(const curve::allow_list& allowed);
    ~zap_registration();
    zap_registration(const zap_registration&) = delete;
    zap_registration& operator=(const zap_registration&) = delete;

    /// The ZMQ_ZAP_DOMAIN to set on the server's ROUTER.
    [[nodiscard]] const std::string& domain() const noexcept;
    /// Names the server in the handler's log lines (its bound endpoint).
    void set_label(const std::string& label);
    /// Clients refused by the allow-list (or for an unsupported mechanism) so far.
    [[nodiscard]] std::uint64_t denied() const noexcept;

private:
    std::shared_ptr<zap_domain> d_;
};

}  // namespace zchan::detail

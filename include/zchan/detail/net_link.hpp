// Non-template pieces of the ZeroMQ transport that the templates in
// remote_chan.hpp and served_chan.hpp build on. Implemented in src/ so that
// the frame codec and libzmq stay private (docs/protocol.md §15 describes
// the threading model).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "zchan/detail/chan_base.hpp"
#include "zchan/detail/sync.hpp"
#include "zchan/detail/waker.hpp"
#include "zchan/detail/wire_types.hpp"
#include "zchan/net_options.hpp"
#include "zchan/security.hpp"

namespace zchan::detail {

/// How the home answered a request (protocol.md §5.2), or why it never will.
enum class net_answer : std::uint8_t {
    none,       ///< no final answer yet
    ok,         ///< SEND_OK, CLOSE_OK
    closed,     ///< SEND_CLOSED, CLOSED (recv: closed and drained)
    full,       ///< SEND_FULL (TRY)
    empty,      ///< EMPTY (TRY)
    cancelled,  ///< SEND_CANCELLED, RECV_CANCELLED, WATCH_CANCELLED
    ready,      ///< READY: a watched send may succeed now (§8.6)
    value,      ///< VALUE: payload and delivery hold it
    status,     ///< STATUS: length/closed hold it
    error,      ///< ERROR: error_code/error_text hold it
    lost,       ///< the session was lost (protocol.md §11.3)
};

/// watch: WATCH_SEND (protocol.md §8.6), a select's remote send case;
/// poll: POLL (§8.9), a select's cases polled at one instant.
enum class net_op : std::uint8_t { send, recv, close, query, watch, poll };

/// One outstanding request of a remote handle. Shared by the link's table
/// (until the final answer) and the caller.
///
/// Thread safety: every field below `id` is written and read under the
/// link's mutex only.
struct net_request {
    net_op op = net_op::recv;
    std::uint64_t id = 0;
    net_answer result = net_answer::none;
    std::string payload;           ///< VALUE
    std::uint64_t delivery = 0;    ///< VALUE
    std::uint64_t length = 0;      ///< STATUS
    bool status_closed = false;    ///< STATUS
    std::uint16_t error_code = 0;  ///< ERROR
    std::string error_text;        ///< ERROR

    /// Plain (blocking) operations wait on this context.
    context cx;
    /// Select registrations: called under the link mutex with the final
    /// answer instead of waking cx. For a VALUE it returns true if the value
    /// was taken (the link ACKs it) or false (the link gives it back).
    /// `entry` is the select's wait entry while attached.
    bool (*on_answer)(net_request& r, void* arg) noexcept = nullptr;
    void* arg = nullptr;
    wait_entry* entry = nullptr;
    /// Nobody waits for the answer any more (deadline passed, select gone):
    /// a VALUE that still arrives is given back (protocol.md §8.5).
    bool orphan = false;
    /// What a resume must re-send (protocol.md §12.2): the TRY flag, and
    /// whether a CANCEL_* followed the request. A send keeps its value's
    /// bytes in `payload` until its final answer.
    bool try_now = false;
    bool cancel_sent = false;
    /// A select's RECV or WATCH_SEND on an unbuffered channel: the tag its
    /// other requests on the channel share (protocol.md §8.6.1); 0: none.
    std::uint64_t select_tag = 0;
};

/// The peer side of one remote channel, as remote_chan<T> sees it: one
/// session with its home (handshake, the table of outstanding requests,
/// protocol.md §7, §8, §12). The implementation is src/peer_session.hpp; the
/// DEALER it talks through is shared by every session of the process at the
/// same endpoint (src/peer_connection.hpp, protocol.md §3, §15).
///
/// Thread safety: every member function is safe from any thread. Functions
/// named *_locked require the connection's mutex to be held (by the caller,
/// e.g. an on_answer hook running inside dispatch).
class net_link {
public:
    /// Connects and completes the handshake (protocol.md §7).
    /// Throws: connect_error (nothing answered in time, unknown channel,
    /// unsupported version, refused), type_mismatch (both type names in the
    /// message).
    static std::shared_ptr<net_link> dial(const std::string& endpoint, const std::string& name,
                                          const std::string& type_name, const net_options& opts);

    virtual ~net_link() = default;

    [[nodiscard]] virtual std::uint64_t capacity() const noexcept = 0;
    [[nodiscard]] virtual bool lost() const noexcept = 0;
    /// The peer_lost message: why the session was lost (protocol.md §11.3).
    [[nodiscard]] virtual std::string lost_what() const = 0;

    /// Sends a request; its final answer will be written into the returned
    /// object (and its cx woken, or its on_answer called). If the session is
    /// already lost the result is `lost` at once.
    /// `configure` runs under the connection's mutex before the request is sent, so that an
    /// answer can never beat the caller's setup of on_answer/arg/entry.
    /// A send's `payload` (its encoded value) is kept in the request until
    /// its final answer: a resume re-sends it (protocol.md §12.2).
    virtual std::shared_ptr<net_request> start(net_op op, bool try_now, std::string payload,
                                               void (*configure)(net_request&, void*) = nullptr,
                                               void* configure_arg = nullptr) = 0;

    /// Waits for `r`'s final answer until `deadline`. On expiry a pending
    /// send is cancelled and its verdict awaited (the home is authoritative,
    /// protocol.md §8.5); a pending recv is cancelled and orphaned (a VALUE
    /// arriving later is given back) and `none` is returned.
    virtual net_answer wait(net_request& r, deadline_t deadline) = 0;

    /// Select support: detaches `r` from its wait entry; if it is still
    /// pending it is cancelled at the home (protocol.md §8.5, CANCEL_WATCH
    /// for a watch, §8.6) and orphaned.
    virtual void detach(net_request& r) = 0;

    /// Send window (protocol.md §9.1). Whether the home granted one (and has
    /// not revoked it): a cheap check before send_credited.
    [[nodiscard]] virtual bool has_window() const noexcept = 0;
    /// Whether a credit is free now.
    [[nodiscard]] virtual bool has_credit() const = 0;
    enum class credited : std::uint8_t { sent, no_credit, lost };
    /// Sends a value with a credit if one is free: `encode(out, value)`
    /// appends its encoding to `out`. no_credit: send it as an offer instead
    /// (start). Throws what encode throws (nothing was sent).
    virtual credited send_credited(void (*encode)(std::string& out, void* value), void* value) = 0;
    /// Waits until the home has confirmed every credited value sent so far:
    /// ok, none (the deadline passed) or lost.
    virtual net_answer flush(deadline_t deadline) = 0;
    /// Credited values sent and not yet confirmed.
    [[nodiscard]] virtual std::uint64_t unconfirmed() const = 0;

    /// POLL (protocol.md §8.9): true if every home of `cases` (each the
    /// session of a select's remote case, and whether it sends) saw none of
    /// its cases ready at one instant; false if one was ready, or unsure
    /// (a session lost or resuming: the select polls again and learns it
    /// case by case). One POLL per connection, all sent before any answer
    /// is awaited. Blocks until answered or lost.
    struct poll_target {
        net_link* link = nullptr;
        bool send = false;
    };
    static bool none_ready(std::span<const poll_target> cases);

    /// A receive served at once from the prefetch window (protocol.md
    /// §9.2): one lock, no request object. `value`: the head's encoding is
    /// swapped into `payload` and already resolved (ACKed, as a taken or an
    /// undecodable value is). `closed`: closed and drained. `none`: no window,
    /// nothing ready yet, or the session lost; start() a recv instead, which
    /// waits or says why.
    virtual net_answer take_prefetched(std::string& payload) = 0;

    /// Resolves a delivery (protocol.md §8.4).
    virtual void ack(std::uint64_t delivery) = 0;
    virtual void ack_locked(std::uint64_t delivery) = 0;
    virtual void give_back_locked(std::uint64_t delivery) = 0;

    /// Counters (diagnostics and tests).
    [[nodiscard]] virtual std::uint64_t malformed_frames() const noexcept = 0;
};

/// Where served_chan<T> writes its answers; implemented by the server.
/// Called on the server thread only.
class reply_sink {
public:
    /// An answer without a body (protocol.md §5.2): SEND_OK, CLOSED, READY...
    virtual void reply(std::uint32_t session, wire::msg type, std::uint64_t id) = 0;
    virtual void reply_value(std::uint32_t session, std::uint64_t request, std::uint64_t delivery,
                             const std::string& payload) = 0;
    virtual void reply_error(std::uint32_t session, std::uint64_t ref, wire::error_code code,
                             std::string_view text) = 0;
    /// VALUES (protocol.md §8.8), built in place: values_begin returns the
    /// frame buffer; each value is one entry, written as
    ///   at = values_entry_begin(buf); <append the payload>; values_entry_end(buf, at);
    /// (or buf.resize(at) to drop an entry that failed to encode); then
    /// values_end(count) sends it. No other reply may be made in between.
    virtual std::string& values_begin(std::uint32_t session, std::uint64_t first_request,
                                      std::uint64_t first_delivery) = 0;
    virtual void values_end(std::uint32_t count) = 0;
    /// CREDIT (protocol.md §9.1): `granted` credits in total, credited values
    /// up to number `confirmed` accepted.
    virtual void reply_credit(std::uint32_t session, std::uint64_t granted,
                              std::uint64_t confirmed) = 0;
    /// Starts an entry: its u32 length field, patched by values_entry_end.
    static std::size_t values_entry_begin(std::string& buf) {
        const std::size_t at = buf.size();
        buf.append(4, '\0');
        return at;
    }
    static void values_entry_end(std::string& buf, std::size_t at) noexcept {
        const auto len = static_cast<std::uint32_t>(buf.size() - at - 4);
        for (std::size_t i = 0; i < 4; ++i) {
            buf[at + i] = static_cast<char>(static_cast<unsigned char>(len >> (8 * i)));
        }
    }

protected:
    ~reply_sink() = default;
};

class served_base;

/// Collects "a registered operation was woken" events from any thread and
/// wakes the server thread (protocol.md §15).
///
/// Thread safety: post() from any thread, including under a channel lock
/// (it takes only its own small mutex and writes an eventfd).
class op_notifier {
public:
    virtual void post(served_base* ch, std::uint64_t op_id) noexcept = 0;

protected:
    ~op_notifier() = default;
};

/// A notifier that drops every notification: for operations whose channel
/// is being destroyed.
inline op_notifier& detached_notifier() noexcept {
    struct detached final : op_notifier {
        void post(served_base* /*ch*/, std::uint64_t /*op_id*/) noexcept override {}
    };
    static detached n;
    return n;
}

/// The argument of a served operation's event-loop context.
struct op_hook {
    op_notifier* notifier = nullptr;
    served_base* channel = nullptr;
    std::uint64_t op_id = 0;
};

inline void op_hook_notify(context& /*cx*/, void* arg) noexcept {
    auto* h = static_cast<op_hook*>(arg);
    h->notifier->post(h->channel, h->op_id);
}

/// A channel served by a zchan::server, type-erased. Every member is called
/// on the server thread only (thread safety: single-threaded by contract).
class served_base {
public:
    virtual ~served_base() = default;
    [[nodiscard]] virtual const std::string& type_name() const noexcept = 0;
    [[nodiscard]] virtual std::uint64_t capacity() const = 0;
    virtual void open_session(std::uint32_t session) = 0;
    /// Lost, BYE or shutdown: cancels its operations and gives its
    /// unacknowledged deliveries back to the channel (protocol.md §12.4).
    virtual void drop_session(std::uint32_t session) = 0;
    /// Deliveries of `session` not yet ACKed or RETURNed (protocol.md §8.4).
    [[nodiscard]] virtual std::size_t unresolved(std::uint32_t session) const = 0;
    /// SEND; returns false if the payload did not decode (caller sends ERROR).
    virtual bool on_send(reply_sink& out, std::uint32_t session, std::uint64_t seq, bool try_now,
                         const unsigned char* data, std::size_t size) = 0;
    virtual void on_cancel_send(reply_sink& out, std::uint32_t session, std::uint64_t seq) = 0;
    /// RECV; `select_tag`: nonzero if a remote select sent it (protocol.md §8.6.1).
    virtual void on_recv(reply_sink& out, std::uint32_t session, std::uint64_t request,
                         bool try_now, std::uint64_t select_tag) = 0;
    virtual void on_cancel_recv(reply_sink& out, std::uint32_t session, std::uint64_t request) = 0;
    /// RECV_MANY (protocol.md §8.8): `count` RECVs, request ids first..first+count-1.
    virtual void on_recv_many(reply_sink& out, std::uint32_t session, std::uint64_t first,
                              std::uint32_t count) = 0;
    /// WATCH_SEND / CANCEL_WATCH (protocol.md §8.6).
    virtual void on_watch_send(reply_sink& out, std::uint32_t session, std::uint64_t request,
                               std::uint64_t select_tag) = 0;
    virtual void on_cancel_watch(reply_sink& out, std::uint32_t session, std::uint64_t request) = 0;
    virtual void on_ack(std::uint32_t session, std::uint64_t delivery) = 0;
    virtual void on_return(std::uint32_t session, std::uint64_t delivery) = 0;
    /// After a frame of ACKs, a RETURN or a dropped session: receivers held
    /// back on a closed channel while deliveries were unresolved (protocol.md
    /// §10) get their value or CLOSED now, if they can.
    virtual void settle(reply_sink& /*out*/) {}
    /// POLL (protocol.md §8.9): the channel's atomic poll hooks, and
    /// whether `session`'s receive (send) could proceed now, which is the
    /// channel's recv_ready (send_ready) or, for a receive, a delivery of
    /// the session still unresolved (on its way to the peer, or not yet
    /// ACKed), and for a send a credit the session holds (§9.1). Called
    /// as atomic_poll.hpp says (a locked channel's lock held).
    [[nodiscard]] virtual const chan_poll* poll_channel() const noexcept = 0;
    [[nodiscard]] virtual bool poll_ready(std::uint32_t session, bool send,
                                          poll_stamp& stamp) const = 0;
    /// Returns false if the channel was already closed.
    virtual bool on_close() = 0;
    virtual void on_query(std::uint64_t& length, bool& closed) = 0;
    /// A channel whose type_name() is empty takes `type` as its identity and
    /// returns true (a hub's channel, protocol.md §17); others return false.
    virtual bool adopt_type(std::string_view /*type*/) { return false; }
    /// A registered operation's context was notified.
    virtual void on_ready(reply_sink& out, std::uint64_t op_id) = 0;

    /// Send window (protocol.md §9.1). The window W' granted to a new session
    /// that asked for `requested` (0: none); a channel that cannot reserve
    /// slots grants 0.
    virtual std::uint32_t grant_window(std::uint32_t /*session*/, std::uint32_t /*requested*/) {
        return 0;
    }
    /// After the session's WELCOME (fresh or resume): its CREDIT, if it has a window.
    virtual void welcomed(reply_sink& /*out*/, std::uint32_t /*session*/) {}
    /// Credited values numbered first, first+1, ...: `entries` holds `count`
    /// validated entries (u32 length, then the payload), as SEND_MANY carries
    /// them. Returns how many values entered the channel.
    virtual std::uint32_t on_credited(reply_sink& out, std::uint32_t session, std::uint64_t first,
                                      std::uint32_t /*count*/, const unsigned char* /*entries*/,
                                      std::size_t /*size*/) {
        out.reply_error(session, first, wire::error_code::protocol_error,
                        "credited SEND without a send window");
        return 0;
    }
    /// REVOKED: the session sends no more credited values.
    virtual void on_revoked(reply_sink& /*out*/, std::uint32_t /*session*/) {}
};

}  // namespace zchan::detail

// One session's send window at the home (docs/protocol.md §9.1): the
// bookkeeping of the credits granted to a remote sender, apart from the
// channel and its value type, so that served_chan<T> only moves values.
//
// Numbers: credited values carry their own numbers, 1, 2, 3, ... per session
// (not the request ids of §8.1), so the home can tell a value it already has
// (a re-send after a resume) from the next one and from a gap (frames lost
// with a broken connection, which the peer re-sends after its resume).
//
// Invariants:
//   * upto <= granted: a session never holds more than it was granted;
//   * of the held() = granted - upto credits, `demand` are backed by
//     receivers' outstanding requests (protocol.md §9.1 rule 5) and the
//     other slots() are slots reserved in the channel for this session
//     (servable::reserve), until the values arrive or the session releases
//     them (REVOKED, BYE, loss); demand <= held();
//   * once revoked, granted == upto after the release: no more grants.
//
// Thread safety: none; it lives in served_chan's session state (server
// thread only).
#pragma once

#include <algorithm>
#include <cstdint>

namespace zchan::detail {

struct send_credits {
    std::uint32_t window = 0;   ///< W' granted in WELCOME; 0: no window
    std::uint64_t granted = 0;  ///< credits granted so far (CREDIT's total)
    std::uint64_t upto = 0;     ///< every credited number up to this one was accepted
    bool revoked = false;       ///< the channel closed (REVOKE sent) or the session ended
    bool owed = false;          ///< a CREDIT frame should go out (new grant or confirmation)
    std::uint64_t demand = 0;   ///< credits held that receivers' demand backs (see the top)

    /// Credits granted and not yet used: slots() + demand.
    [[nodiscard]] std::uint64_t held() const noexcept { return granted - upto; }
    /// Slots reserved for this session and not yet filled.
    [[nodiscard]] std::uint64_t slots() const noexcept { return held() - demand; }

    /// The next credited value arrived (verdict accept): uses a reserved slot
    /// if the session holds one (returns true), else a demand-backed credit.
    bool use() noexcept {
        const bool slot = slots() != 0;
        if (!slot) --demand;
        ++upto;
        return slot;
    }

    /// How many more credits to ask the channel for now: whatever the window
    /// (at most `share`, this session's part of the channel when several
    /// senders have windows) lacks. Grants ride on the CREDIT that confirms
    /// each frame of credited values (§9.1 rule 1), so topping up at every
    /// frame costs no frame, and never one per value. A stream is bounded by
    /// its window (credits in flight, values on their way, values not yet
    /// received all hold slots), so granting only once half the window was
    /// used would leave it running on half a window.
    [[nodiscard]] std::uint64_t wanted(std::uint64_t share) const noexcept {
        if (window == 0 || revoked) return 0;
        const std::uint64_t target =
            std::max<std::uint64_t>(1, std::min<std::uint64_t>(window, share));
        return held() < target ? target - held() : 0;
    }

    enum class verdict : std::uint8_t {
        accept,     ///< the next value: take it into its reserved slot
        duplicate,  ///< already accepted (a re-send after a resume): confirm again
        gap,        ///< an earlier one is missing (lost with a connection): drop it
        over,       ///< beyond the credits granted: a protocol error
    };
    [[nodiscard]] verdict check(std::uint64_t number) const noexcept {
        if (number <= upto) return verdict::duplicate;
        if (number > granted) return verdict::over;  // never granted, gap or not (§9.1 rule 2)
        if (number != upto + 1) return verdict::gap;
        return verdict::accept;
    }
};

}  // namespace zchan::detail

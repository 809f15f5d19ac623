"""The sans-I/O engine alone: frames in, frames out, a fake clock. No sockets, no processes."""

import struct

import pytest

import zchan
from zchan import wire
from zchan.engine import Engine, Options


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def welcomed(prefetch: int = 0):
    clock = Clock()
    e = Engine("q", "string", Options(prefetch=prefetch), clock)
    hello = e.take_frames()[0]
    nonce = wire.HEADER.unpack_from(hello)[4]
    body = struct.pack("<IIQIIII16s", 5, 1000, 4, 3000, 1 << 20, prefetch, 0, b"h" * 16)
    e.on_frame(wire.header(wire.WELCOME, 0, nonce) + body)
    return e, clock


def types(frames):
    return [wire.HEADER.unpack_from(f)[1] for f in frames]


def test_heartbeat_ping_pong_and_loss():
    e, clock = welcomed()
    e.take_frames()
    clock.t += 1.0
    e.tick()
    (ping,) = e.take_frames()
    assert types([ping]) == [wire.PING]
    e.on_frame(wire.header(wire.PING, 5, 77))  # the home's PING: answered with its channel
    assert e.take_frames() == [wire.header(wire.PONG, 5, 77)]
    for _ in range(12):  # ticking (and PINGing) but hearing nothing for the 3 s timeout
        clock.t += 0.25
        e.tick()
    assert types(e.take_frames()) == [wire.PING] * 2  # at 1 s and 2 s after the PONG
    assert not e.is_open and "nothing heard" in str(e.lost_error)
    with pytest.raises(zchan.PeerLost):
        e.recv()


def test_a_process_that_did_not_run_declares_the_session_lost():
    e, clock = welcomed()
    r = e.recv()
    clock.t += 3.5  # stopped: no tick, no frame sent
    e.on_frame(wire.header(wire.VALUE, 5, r.id) + struct.pack("<Q", 1) + zchan.String.dumps("x"))
    assert r.error is e.lost_error and "did not run" in str(e.lost_error)


def test_prefetched_values_wait_for_a_gap_in_delivery_seqs():
    e, _ = welcomed(prefetch=4)
    frames = e.take_frames()
    assert types(frames) == [wire.RECV_MANY]
    first = wire.HEADER.unpack_from(frames[0])[4]
    pay = zchan.String.dumps
    # Delivery 2 arrives before delivery 1 (its VALUE was lost with a connection, §12.2).
    e.on_frame(wire.header(wire.VALUE, 5, first + 1) + struct.pack("<Q", 2) + pay("b"))
    assert e.poll() == ("wait", b"")
    e.on_frame(wire.header(wire.VALUE, 5, first) + struct.pack("<Q", 1) + pay("a"))
    assert e.poll() == ("value", pay("a"))
    assert e.poll() == ("value", pay("b"))
    # A second answer repeating delivery 1 is dropped; one with a new delivery is given back.
    e.take_frames()
    e.on_frame(wire.header(wire.VALUE, 5, first) + struct.pack("<Q", 1) + pay("a"))
    e.on_frame(wire.header(wire.VALUE, 5, first) + struct.pack("<Q", 9) + pay("z"))
    assert types(e.take_frames()) == [wire.RETURN]


def test_cancelled_receive_returns_a_late_value():
    e, _ = welcomed()
    r = e.recv()
    e.withdraw(r)
    assert types(e.take_frames()) == [wire.RECV, wire.CANCEL_RECV]
    e.on_frame(wire.header(wire.VALUE, 5, r.id) + struct.pack("<Q", 1) + zchan.String.dumps("x"))
    assert e.take_frames() == [wire.header(wire.RETURN, 5, 1)]


def test_a_value_that_would_not_fit_a_value_frame_is_refused_locally():
    e, _ = welcomed()  # the home's maximum frame: 1 MiB
    e.take_frames()
    with pytest.raises(zchan.MessageTooLarge):
        e.send(b"x" * ((1 << 20) - 23))  # fits a SEND (16 + n), not a VALUE (24 + n): §6.4
    assert e.take_frames() == []
    e.send(b"x" * ((1 << 20) - 24))
    assert types(e.take_frames()) == [wire.SEND]


def values(first, seq, payloads):
    """A VALUES frame (protocol.md §8.8) on channel 5."""
    body = struct.pack("<QI4x", seq, len(payloads))
    body += b"".join(struct.pack("<I", len(p)) + p for p in payloads)
    return wire.header(wire.VALUES, 5, first) + body


def take(e, limit):
    """What a range would hand out from one loan: every value of it."""
    loan = e.lend(limit)
    if loan is None:
        return []
    while loan.left:
        loan.left.popleft()
    e.end_loan(loan)
    return loan.payloads


def acked(frames):
    """The delivery seqs the ACK frames among ``frames`` resolve, in order."""
    out = []
    for f in frames:
        if wire.HEADER.unpack_from(f)[1] == wire.ACK:
            n = wire.HEADER.unpack_from(f)[4]
            out += struct.unpack_from(f"<{n}Q", f, 16)
    return out


def test_values_entries_of_one_length_and_of_mixed_lengths_decode_alike():
    for payloads in ([b"abcd"] * 5, [b"a", b"bcd", b"", b"efgh"], [b""] * 3, [b"x" * 300]):
        f = wire.decode(values(7, 3, payloads), 5)
        assert (f.id, f.seq, f.payloads) == (7, 3, payloads)
    good = values(7, 3, [b"abcd", b"efgh", b"ijkl"])
    # One length field changed: the strides no longer fill the body, nor does the walk.
    bad = bytearray(good)
    bad[32 + 8 + 8] = 5
    for frame in (bytes(bad), good + b"z", good[:-1]):
        with pytest.raises(wire.Malformed):
            wire.decode(frame, 5)


def test_prefetch_stream_in_order_acks_ranges_and_resends_only_what_is_open():
    e, _ = welcomed(prefetch=8)
    (rm,) = e.take_frames()
    first = wire.HEADER.unpack_from(rm)[4]
    assert struct.unpack_from("<I", rm, 16)[0] == 8
    pay = [zchan.String.dumps(c) for c in "abcdefgh"]
    e.on_frame(values(first, 1, pay[:3]))
    assert take(e, 2) == pay[:2]
    assert e.poll() == ("value", pay[2])
    assert e.take_frames() == []  # the ACKs wait for the next frame or tick (§8.4)
    e.on_disconnected()
    e.take_frames()  # HELLO RESUME
    body = struct.pack("<IIQIIII16s", 5, 1000, 4, 3000, 1 << 20, 8, 0, b"h" * 16)
    e.on_frame(wire.header(wire.WELCOME, 0, e._hello_nonce, wire.F_RESUME) + body)
    out = e.take_frames()
    # The ACKs, then only the 5 prefetch RECVs still open, as one RECV_MANY, then a PING.
    assert types(out) == [wire.ACK, wire.RECV_MANY, wire.PING] and acked(out) == [1, 2, 3]
    assert wire.HEADER.unpack_from(out[1])[4] == first + 3
    assert struct.unpack_from("<I", out[1], 16)[0] == 5
    # A second answer to an answered request repeats its delivery: dropped (§12.2).
    e.on_frame(values(first + 2, 3, pay[2:5]))
    assert take(e, 8) == pay[3:5]
    e.on_frame(values(first + 5, 6, pay[5:8]))
    assert take(e, 8) == pay[5:8]
    e.tick()  # the ACKs leave at the tick; the re-sent ones were confirmed by no PONG yet
    assert acked(e.take_frames()) == [4, 5, 6, 7, 8]
    assert types(e.take_frames()) == []


def test_prefetched_values_out_of_order_are_handed_out_in_delivery_order():
    e, _ = welcomed(prefetch=6)
    first = wire.HEADER.unpack_from(e.take_frames()[0])[4]
    pay = [zchan.String.dumps(c) for c in "abcdef"]
    e.on_frame(values(first + 3, 4, pay[3:6]))  # deliveries 1-3 come later (§12.2)
    assert take(e, 6) == [] and not e.stream_news()
    e.on_frame(values(first + 1, 2, pay[1:3]))
    assert e.poll() == ("wait", b"")
    e.on_frame(values(first, 1, pay[:1]))
    assert e.stream_news()
    assert take(e, 4) == pay[:4]
    assert take(e, 4) == pay[4:]
    refill = e.take_frames()  # the refill's RECV_MANY, with the ACKs due before it
    assert types(refill)[-1] == wire.RECV_MANY
    e.on_frame(values(first + 100, 7, [b"z"]))  # answers no request: given back
    out = e.take_frames()  # the ACKs taken since leave first: resolutions in order
    assert acked(refill + out) == [1, 2, 3, 4, 5, 6]
    assert out[-1] == wire.header(wire.RETURN, 5, 7)


def test_a_range_that_stops_early_acks_only_what_it_handed_out():
    e, clock = welcomed(prefetch=8)
    first = wire.HEADER.unpack_from(e.take_frames()[0])[4]
    pay = [zchan.String.dumps(c) for c in "abcdef"]
    e.on_frame(values(first, 1, pay[:4]))
    loan = e.lend(8)
    assert loan.payloads == pay[:4]
    loan.left.popleft()  # the range handed out one value...
    clock.t += 0.25
    e.tick()  # ...which the tick ACKs (§8.4), with a PING (§12.5)
    assert acked(e.take_frames()) == [1]
    loan.left.popleft()
    e.end_loan(loan)  # ...and stopped after the second: the others are queued again
    assert take(e, 8) == pay[2:4]
    e.tick()
    assert acked(e.take_frames()) == [2, 3, 4]


def test_shutting_down_returns_what_no_range_handed_out_newest_first():
    e, _ = welcomed(prefetch=8)
    first = wire.HEADER.unpack_from(e.take_frames()[0])[4]
    pay = [zchan.String.dumps(c) for c in "abcdef"]
    e.on_frame(values(first, 1, pay[:3]))
    loan = e.lend(3)
    loan.left.popleft()
    e.on_frame(values(first + 3, 4, pay[3:6]))
    e.take_frames()
    e.on_frame(wire.header(wire.ERROR, 5, 0) + struct.pack("<HH", wire.E_SHUTTING_DOWN, 0))
    out = e.take_frames()
    assert acked(out) == [1]
    returned = [wire.HEADER.unpack_from(f)[4] for f in out if f[1] == wire.RETURN]
    assert returned == [6, 5, 4, 3, 2]
    assert not loan.left  # not handed out after the loss (§12.5)
    assert not e.is_open


def test_values_lent_to_a_range_stay_in_the_prefetch_window():
    e, _ = welcomed(prefetch=4)
    first = wire.HEADER.unpack_from(e.take_frames()[0])[4]
    pay = [zchan.String.dumps(c) for c in "abcd"]
    e.on_frame(values(first, 1, pay))
    loan = e.lend(4)
    assert e.take_frames() == []  # none handed out yet: the window is full (§9.2)
    for _ in range(2):
        loan.left.popleft()
    e.end_loan(loan)  # two handed out, two queued again
    assert e.lend(4).payloads == pay[2:]
    assert types(e.take_frames()) == [wire.ACK, wire.RECV_MANY]  # refilled by the two


def test_a_loan_handed_out_whole_refills_the_window_at_its_end():
    e, _ = welcomed(prefetch=4)
    first = wire.HEADER.unpack_from(e.take_frames()[0])[4]
    e.on_frame(values(first, 1, [b"a", b"b", b"c", b"d"]))
    loan = e.lend(4)
    loan.left.clear()
    assert e.take_frames() == []
    e.end_loan(loan)  # nothing queued, nothing outstanding: the next lend would find nothing
    out = e.take_frames()
    assert types(out) == [wire.ACK, wire.RECV_MANY] and acked(out) == [1, 2, 3, 4]

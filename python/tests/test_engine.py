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

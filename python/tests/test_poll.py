"""POLL (protocol.md §8.9): the frame's layout (§5.1, §5.2) and validation (§6.3), and the
engine's rules: what leaves ahead of a POLL, and its re-send after a resume (§12.2)."""

import struct

import pytest

import zchan
from zchan import wire
from zchan.engine import Engine, Options


# ---------------------------------------------------------------------------- wire

def test_poll_encodes_as_the_grammar_says():
    f = wire.poll(7, 9, [(7, wire.POLL_RECV), (0x01020304, wire.POLL_SEND)])
    assert wire.POLL == 0x34 and (wire.POLL_RECV, wire.POLL_SEND) == (1, 2)
    assert f == bytes([
        0x01, 0x34, 0x00, 0x00,  # version, type, flags
        0x07, 0x00, 0x00, 0x00,  # channel: the session that receives the answer
        0x09, 0, 0, 0, 0, 0, 0, 0,  # request id
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  # poll-count, four zero octets
        0x07, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,  # case: channel, receive, 3 zeros
        0x04, 0x03, 0x02, 0x01, 0x02, 0x00, 0x00, 0x00,  # case: channel, send, 3 zeros
    ])
    assert len(f) == 16 + 8 + 8 * 2  # §5.2: body 8 + 8 x poll-count


def test_poll_takes_1_to_1024_cases_and_valid_ones_only():
    assert len(wire.poll(1, 1, [(1, wire.POLL_RECV)] * 1024)) == 16 + 8 + 8 * 1024
    for bad in ([], [(1, wire.POLL_RECV)] * 1025, [(0, wire.POLL_RECV)], [(1, 0)], [(1, 3)]):
        with pytest.raises(ValueError):
            wire.poll(1, 1, bad)
    with pytest.raises(ValueError):
        wire.poll(0, 1, [(1, wire.POLL_RECV)])  # a header channel and request id are >= 1
    with pytest.raises(ValueError):
        wire.poll(1, 0, [(1, wire.POLL_RECV)])


def test_a_peer_does_not_accept_a_poll():
    with pytest.raises(wire.Malformed):  # a home -> peer frame it is not (§6.1 rule 3)
        wire.decode(wire.poll(5, 1, [(5, wire.POLL_RECV)]), 5)


# ---------------------------------------------------------------------------- engine

class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def welcomed(prefetch: int = 0, send_window: int = 0, capacity: int = 4):
    clock = Clock()
    e = Engine("q", "string", Options(prefetch=prefetch, send_window=send_window), clock)
    nonce = wire.HEADER.unpack_from(e.take_frames()[0])[4]
    body = struct.pack("<IIQIIII16s", 5, 1000, capacity, 3000, 1 << 20, prefetch, send_window,
                       b"h" * 16)
    e.on_frame(wire.header(wire.WELCOME, 0, nonce) + body)
    return e, clock


def head(frame):
    return wire.HEADER.unpack_from(frame)[1], wire.HEADER.unpack_from(frame)[4]


def types(frames):
    return [head(f)[0] for f in frames]


def value(rid, seq, text):
    return wire.header(wire.VALUE, 5, rid) + struct.pack("<Q", seq) + zchan.String.dumps(text)


def test_the_acks_owed_leave_ahead_of_the_poll_and_its_answer_ends_it():
    e, _ = welcomed()  # capacity 4: ACKs are batched (§8.4)
    r = e.recv(try_=True)
    e.on_frame(value(r.id, 1, "x"))
    e.take(r)
    e.take_frames()
    p = e.start_poll([wire.POLL_RECV, wire.POLL_SEND])
    frames = e.take_frames()
    assert types(frames) == [wire.ACK, wire.POLL]
    assert frames[1] == wire.poll(5, p.id, [(5, wire.POLL_RECV), (5, wire.POLL_SEND)])
    assert not p.final
    e.on_frame(wire.header(wire.EMPTY, 5, p.id))
    assert p.answer == wire.EMPTY
    q = e.start_poll([wire.POLL_RECV])
    e.on_frame(wire.header(wire.READY, 5, q.id))
    assert q.answer == wire.READY


def test_a_range_s_handed_out_values_are_acked_ahead_of_the_poll():
    e, _ = welcomed(prefetch=4)
    (rm,) = e.take_frames()
    first = head(rm)[1]
    body = struct.pack("<QI4x", 1, 2) + b"".join(
        struct.pack("<I", len(p)) + p for p in (zchan.String.dumps("a"), zchan.String.dumps("b")))
    e.on_frame(wire.header(wire.VALUES, 5, first) + body)
    loan = e.lend(8)
    loan.left.popleft()  # "a" handed out, "b" still the range's
    e.take_frames()
    e.start_poll([wire.POLL_RECV])
    frames = e.take_frames()
    assert types(frames) == [wire.ACK, wire.POLL]
    assert frames[0] == wire.ack(5, [1])


def test_the_batched_credited_values_leave_ahead_of_the_poll():
    e, _ = welcomed(send_window=8)
    e.on_frame(wire.header(wire.CREDIT, 5, 8) + struct.pack("<Q", 0))
    assert e.send_credited(b"v1")  # leaves at once: no SEND_MANY waits for its CREDIT
    assert e.send_credited(b"v2")  # batched behind it (§9.1)
    assert types(e.take_frames()) == [wire.SEND_MANY]
    p = e.start_poll([wire.POLL_SEND])
    frames = e.take_frames()
    assert types(frames) == [wire.SEND_MANY, wire.POLL]
    assert head(frames[0])[1] == 2 and head(frames[1])[1] == p.id


def resumed(e):
    """The connection breaks and the home answers the HELLO RESUME: what the peer re-sends."""
    e.on_disconnected()
    (hello,) = e.take_frames()
    nonce = wire.HEADER.unpack_from(hello)[4]
    body = struct.pack("<IIQIIII16s", 5, 1000, 4, 3000, 1 << 20, 0, 0, b"h" * 16)
    e.on_frame(wire.header(wire.WELCOME, 0, nonce, wire.F_RESUME) + body)
    return e.take_frames()


def test_a_poll_without_an_answer_is_sent_again_after_a_resume():
    e, _ = welcomed()
    r = e.recv(try_=True)
    e.on_frame(value(r.id, 1, "x"))
    e.take(r)
    p = e.start_poll([wire.POLL_RECV])
    sent = e.take_frames()
    assert types(sent) == [wire.RECV, wire.ACK, wire.POLL]
    again = resumed(e)
    # The unconfirmed ACK first, then the POLL as it was (same id, same cases), then a PING.
    assert types(again) == [wire.ACK, wire.POLL, wire.PING]
    assert again[1] == sent[2]
    e.on_frame(wire.header(wire.EMPTY, 5, p.id))
    assert p.answer == wire.EMPTY
    e.on_frame(wire.header(wire.READY, 5, p.id))  # a second answer to a re-sent one: dropped
    assert p.answer == wire.EMPTY


def test_a_poll_made_while_resuming_leaves_at_the_welcome():
    e, _ = welcomed()
    e.take_frames()
    e.on_disconnected()
    (hello,) = e.take_frames()
    p = e.start_poll([wire.POLL_SEND])
    assert e.take_frames() == []  # nothing leaves on a session that is resuming
    body = struct.pack("<IIQIIII16s", 5, 1000, 4, 3000, 1 << 20, 0, 0, b"h" * 16)
    e.on_frame(wire.header(wire.WELCOME, 0, wire.HEADER.unpack_from(hello)[4], wire.F_RESUME)
               + body)
    assert types(e.take_frames()) == [wire.POLL, wire.PING]
    e.on_frame(wire.header(wire.READY, 5, p.id))
    assert p.answer == wire.READY


def test_a_lost_session_fails_a_pending_poll():
    e, clock = welcomed()
    p = e.start_poll([wire.POLL_RECV])
    clock.t += 3.5
    e.tick()
    assert isinstance(p.error, zchan.PeerLost)

"""POLL (protocol.md §8.9): a select with a default takes it only if, at one instant of its
home, none of its cases was ready.

Wire layout (§5.1, §5.2, §6.3), the engine's rules (what leaves ahead of a POLL, its re-send
after a resume), the C++ home's answers, and Go's TestNonblockSelectRace against a mover at the
home: the C++ test binary ``integration_net_select_default_test`` run in its child role (the
role its own NetSelectDefaultProcess tests use), which serves c1 and c2 and, for each value on
"go", makes c2 ready and then takes c1's value at the home, so that at every instant c1 or c2
is ready. A select polled case by case can miss both; with POLL it must never take the default.
"""

import asyncio
import random
import struct
import threading
import time

import pytest

import zchan
from zchan import ops, wire
from zchan.blocking import _drive
from zchan.engine import Engine, Options

from conftest import WAIT, binary


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


# ---------------------------------------------------------------------------- the C++ home

def none_ready(*cases):
    """ops._none_ready driven to its end: every handle's POLL answered EMPTY."""
    return _drive(ops._none_ready(cases), list({id(c.ch): c.ch for c in cases}.values()))


def test_the_home_answers_empty_only_when_no_case_is_ready(hub):
    _, ep = hub("--channel", "b:1:string", "--channel", "u:0:string")
    with zchan.dial(ep, "b", zchan.String) as b, zchan.dial(ep, "u", zchan.String) as u:
        assert none_ready(zchan.Recv(b))
        assert not none_ready(zchan.Send(b, "x"))  # room in the buffer
        assert none_ready(zchan.Recv(u), zchan.Send(u, "x"))  # unbuffered, nobody waiting
        b << "v"
        assert not none_ready(zchan.Recv(b))
        assert none_ready(zchan.Send(b, "x"), zchan.Recv(u))  # full; a case per handle
        assert not none_ready(zchan.Send(b, "x"), zchan.Recv(b))
        with zchan.dial(ep, "u", zchan.String) as u2:
            # A receiver of another session waits on the unbuffered channel: a send is ready.
            got = []
            t = threading.Thread(target=lambda: got.append(u2.recv(timeout=WAIT)))
            t.start()
            deadline = time.monotonic() + WAIT
            while none_ready(zchan.Send(u, "x")):  # until the home has its RECV
                assert time.monotonic() < deadline
            u << "w"
            t.join(WAIT)
            assert got == ["w"]
        assert b.recv() == "v"
        b.close()
        assert not none_ready(zchan.Recv(b))  # closed and drained: a receive completes now


def test_a_value_taken_but_not_yet_acked_would_be_ready_so_the_ack_goes_first(hub):
    _, ep = hub("--channel", "b:4:string")
    with zchan.dial(ep, "b", zchan.String) as b:
        b << "v"
        assert b.recv() == "v"  # its ACK is batched (capacity 4, §8.4)
        assert none_ready(zchan.Recv(b))  # EMPTY: the ACK reached the home ahead of the POLL


def test_a_select_with_more_cases_on_one_handle_than_a_poll_holds(hub):
    """A handle's cases name one channel: its POLL carries each operation once (§6.4 allows
    1024 cases; a select may have more)."""
    _, ep = hub("--channel", "b:1:string")
    with zchan.dial(ep, "b", zchan.String) as b:
        b << "v"
        cases = [zchan.Send(b, "x")] * 1100
        assert zchan.select(*cases, default=True) == (None, None)  # full: no send is ready


def test_a_poll_naming_another_connection_s_session_is_answered_ready(hub):
    """Why a POLL names its own handle's session only: each handle has its own DEALER."""
    _, ep = hub("--channel", "b:1:string")
    with zchan.dial(ep, "b", zchan.String) as b, zchan.dial(ep, "b", zchan.String) as other:
        with b._guard():
            r = b.engine._request(wire.POLL, payload=wire.poll_body(
                [(other.engine.channel, wire.POLL_RECV)]))
            b._pump()

        def answered():
            while not r.final:
                yield None
        _drive(answered(), [b])
        assert r.answer == wire.READY  # the channel is empty, but not a session of b's connection
        assert none_ready(zchan.Recv(b), zchan.Recv(other))  # one POLL each: EMPTY


# ---------------------------------------------------------------------------- the race

MOVER = "tests/integration_net_select_default_test"


def jitter():
    """Up to half a millisecond before the select, so that the mover's move (itself after up
    to 0.6 ms of jitter at the home) lands anywhere among the select's round trips. Not a
    synchronisation: every ordering is correct, the test only widens the ones it probes."""
    end = time.perf_counter() + random.uniform(0, 5e-4)
    while time.perf_counter() < end:
        pass


def mover(spawn, role):
    """The C++ mover at its home (see the top); returns (process, endpoint)."""
    p = spawn([binary(MOVER)], env={"ZCHAN_CHILD_ROLE": role})
    return p, p.until("endpoint ").split(" ", 1)[1]


def wrong_defaults(spawn, role, n, extra=False):
    p, ep = mover(spawn, role)
    names = ["c1", "c2", "go", "done"] + (["empty", "lonely"] if extra else [])
    hs = {x: zchan.dial(ep, x, zchan.I32, timeout=WAIT) for x in names}
    if extra:  # never-ready cases between c1 and c2 widen the window a per-case poll misses
        cases = [zchan.Recv(hs[x]) for x in ("empty", "c1", "lonely", "c2")]
    else:
        cases = [zchan.Recv(hs["c1"]), zchan.Recv(hs["c2"])]
    wrong = 0
    try:
        for i in range(n):
            hs["go"].send(i, timeout=WAIT)  # the mover moves as this select polls
            jitter()
            idx, _ = zchan.select(*cases, default=True)
            wrong += idx is None
            hs["done"].send(i, timeout=WAIT)
        hs["go"].close()
        p.until("finished")
        assert p.wait() == 0
    finally:
        for h in hs.values():
            h.disconnect()
    return wrong


N = 2000  # about 2 ms each; with the POLL disabled, tens of them take the default


def test_nonblock_select_race_never_takes_the_default(spawn):
    assert wrong_defaults(spawn, "send", N) == 0


def test_nonblock_select_race_with_never_ready_cases_between(spawn):
    assert wrong_defaults(spawn, "send", N, extra=True) == 0


def test_nonblock_select_race_with_a_blocked_sender_at_the_home(spawn):
    """c1 is unbuffered with a sender blocked on it at the home: its readiness is a partner."""
    assert wrong_defaults(spawn, "partner", N) == 0


def test_asyncio_nonblock_select_race_never_takes_the_default(spawn):
    p, ep = mover(spawn, "send")

    async def main():
        hs = {x: await zchan.aio.dial(ep, x, zchan.I32, timeout=WAIT)
              for x in ("c1", "c2", "go", "done")}
        wrong = 0
        try:
            for i in range(N // 2):
                await hs["go"].send(i, timeout=WAIT)
                jitter()
                idx, _ = await zchan.aio.select(zchan.Recv(hs["c1"]), zchan.Recv(hs["c2"]),
                                                default=True)
                wrong += idx is None
                await hs["done"].send(i, timeout=WAIT)
            await hs["go"].close()
        finally:
            for h in hs.values():
                await h.disconnect()
        return wrong

    assert asyncio.run(main()) == 0
    p.until("finished")
    assert p.wait() == 0

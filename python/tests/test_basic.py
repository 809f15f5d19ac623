"""Python <-> a C++ hub: send, receive, close from either side, capacity, type identity."""

import subprocess
import threading
import time

import pytest

import zchan
from conftest import WAIT, binary


def test_python_sends_cpp_receives(hub, spawn):
    _, ep = hub("--channel", "words:4:string")
    with zchan.dial(ep, "words", zchan.String) as ch:
        assert ch.cap == 4
        for w in ("alpha", "beta", "gamma"):
            ch << w
        assert len(ch) == 3
        ch.close()
    r = spawn([binary("tools/zchan/zchan"), "recv", ep, "words"])
    assert [r.line(), r.line(), r.line()] == ["alpha", "beta", "gamma"]
    assert r.wait() == 0


def test_cpp_sends_python_ranges_until_cpp_closes(hub, spawn):
    _, ep = hub("--channel", "words:8:string")
    with zchan.dial(ep, "words", zchan.String) as ch:
        s = spawn([binary("tools/zchan/zchan"), "send", ep, "words", "--close"], stdin=True)
        s.p.stdin.write("one\ntwo\nthree\n")
        s.p.stdin.close()
        assert list(ch) == ["one", "two", "three"]  # the C++ close ends the Python range
        assert ch.recv() is zchan.CLOSED  # and stays ended
        assert s.wait() == 0
        with pytest.raises(zchan.ChannelClosed):
            ch.send("late")
        with pytest.raises(zchan.ChannelClosed):
            ch.close()


def test_python_close_ends_every_range_on_both_sides(hub, spawn):
    _, ep = hub("--channel", "words:0:string")
    with zchan.dial(ep, "words", zchan.String) as ch, \
            zchan.dial(ep, "words", zchan.String, prefetch=8) as ranger:
        py_range = []
        t = threading.Thread(target=lambda: py_range.extend(ranger))
        t.start()
        r = spawn([binary("tools/zchan/zchan"), "recv", ep, "words"])
        for i in range(20):  # rendezvous: each returns once a receiver (or its window) took it
            ch.send(f"w{i}", timeout=WAIT)
        ch.close()
        assert r.wait() == 0  # the C++ range ended
        t.join(WAIT)
        assert not t.is_alive()  # and the Python one
        cpp_range = r.output()
        assert sorted(py_range + cpp_range) == sorted(f"w{i}" for i in range(20))


def test_capacity_is_exact_with_a_python_sender(hub, spawn):
    _, ep = hub("--channel", "q:2:i64")
    with zchan.dial(ep, "q", zchan.I64) as ch:
        ch.send(1)
        ch.send(2)
        with pytest.raises(zchan.Timeout):
            ch.send(3, timeout=0.3)  # the home confirmed the cancel: nothing was queued
        assert len(ch) == 2
        t = threading.Thread(target=ch.send, args=(3,), kwargs={"timeout": WAIT})
        t.start()
        with zchan.dial(ep, "q", zchan.I64) as other:
            assert other.recv(timeout=WAIT) == 1
        t.join(WAIT)
        assert not t.is_alive()
        assert len(ch) == 2
        assert [ch.recv(), ch.recv()] == [2, 3]


def test_unbuffered_python_sender_waits_for_cpp_receiver(hub, spawn):
    _, ep = hub("--channel", "u:0:string")
    with zchan.dial(ep, "u", zchan.String) as ch:
        with pytest.raises(zchan.Timeout):
            ch.send("nobody", timeout=0.3)
        r = spawn([binary("tools/zchan/zchan"), "recv", ep, "u", "-n", "1"])
        ch.send("somebody", timeout=WAIT)
        assert r.line() == "somebody"
        assert r.wait() == 0


def test_unbuffered_cpp_sender_waits_for_python_receiver(hub, spawn):
    _, ep = hub("--channel", "u:0:string")
    with zchan.dial(ep, "u", zchan.String) as ch:
        s = spawn([binary("tools/zchan/zchan"), "send", ep, "u"], stdin=True)
        s.p.stdin.write("rendezvous\n")
        s.p.stdin.close()
        with pytest.raises(subprocess.TimeoutExpired):
            s.p.wait(0.5)  # blocked: no receiver has taken the value
        assert ch.recv(timeout=WAIT) == "rendezvous"
        assert s.wait() == 0


def test_type_mismatch_fails_at_dial(hub):
    _, ep = hub("--channel", "nums:1:i32")
    with pytest.raises(zchan.TypeMismatch, match='channel "nums" carries i32, not string'):
        zchan.dial(ep, "nums", zchan.String)
    zchan.dial(ep, "nums", zchan.I32).disconnect()


def test_dial_creates_a_hub_channel(hub):
    _, ep = hub()
    with pytest.raises(zchan.ConnectError, match="unknown channel"):
        zchan.dial(ep, "fresh", zchan.String)
    with zchan.dial(ep, "fresh", zchan.String, create=3) as ch:
        assert ch.cap == 3
        ch << "a" << "b"
        assert len(ch) == 2


def test_killed_home_is_peer_lost_not_closed_or_timeout(hub):
    h, ep = hub("--channel", "q:1:string", "--heartbeat", "200", "--heartbeat-timeout", "2000")
    with zchan.dial(ep, "q", zchan.String) as ch:
        errors = []
        t = threading.Thread(target=lambda: errors.append(_catch(ch.recv)))
        t.start()
        h.p.kill()
        h.p.wait()
        killed = time.monotonic()
        t.join(WAIT)
        assert not t.is_alive()
        assert isinstance(errors[0], zchan.PeerLost), errors
        # The session's timeout is 2 s (WELCOME); allow a loaded machine plenty on top.
        assert time.monotonic() - killed < 2.0 + WAIT / 3
        with pytest.raises(zchan.PeerLost):
            ch.send("x")
        with pytest.raises(zchan.PeerLost):
            len(ch)


def _catch(fn):
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - the test inspects it
        return e


def test_prefetch_window_streams_in_order(hub, spawn):
    _, ep = hub("--channel", "s:16:string")
    with zchan.dial(ep, "s", zchan.String, prefetch=64) as ch:
        assert ch.prefetch == 64
        s = spawn([binary("tools/zchan/zchan"), "send", ep, "s", "--close"], stdin=True)
        s.p.stdin.write("".join(f"v{i}\n" for i in range(500)))
        s.p.stdin.close()
        assert list(ch) == [f"v{i}" for i in range(500)]
        assert s.wait() == 0


def test_a_range_that_stops_early_leaves_the_rest_receivable(hub):
    _, ep = hub("--channel", "s:16:string")
    with zchan.dial(ep, "s", zchan.String) as w:
        for i in range(10):
            w << f"v{i}"
        w.close()
    with zchan.dial(ep, "s", zchan.String, prefetch=64) as ch:
        while len(ch):  # a STATUS follows the VALUES it counts out: then all 10 are queued
            pass
        for v in ch:  # takes the 10 as one batch and hands out one
            assert v == "v0"
            break
        assert ch.recv(timeout=WAIT) == "v1"  # the rest of the batch was not ACKed (§8.4)
        for v in ch:
            assert v == "v2"
            break
    with zchan.dial(ep, "s", zchan.String, prefetch=64) as ch:  # back at the BYE (§9.2)
        assert list(ch) == [f"v{i}" for i in range(3, 10)]


def test_select_default_timeout_and_cases(hub):
    _, ep = hub("--channel", "a:0:string", "--channel", "b:1:string")
    with zchan.dial(ep, "a", zchan.String) as a, zchan.dial(ep, "b", zchan.String) as b:
        b << "fill"
        cases = (zchan.Recv(a), zchan.Send(b, "more"))
        assert zchan.select(*cases, default=True) == (None, None)
        with pytest.raises(zchan.Timeout):
            zchan.select(*cases, timeout=0.3)
        with zchan.dial(ep, "b", zchan.String) as b2:
            got = []
            t = threading.Thread(target=lambda: got.append(b2.recv(timeout=WAIT)))
            t.start()
            i, v = zchan.select(*cases, timeout=WAIT)  # the receiver frees the slot
            t.join(WAIT)
            assert (i, v) == (1, None) and got == ["fill"]
        assert len(b) == 1 and len(a) == 0
        assert b.recv() == "more"


def test_two_selects_that_send_and_receive_on_one_unbuffered_channel_pair_up(hub):
    """Go's exchange: two threads, each select {send mine; recv}, on one unbuffered channel.
    Each round one sends and the other receives; nobody gets its own value. With select tags
    (protocol.md §8.6.1) a select's own RECV does not wake its watch, so neither spins."""
    _, ep = hub("--channel", "x:0:string")
    rounds = 30
    got = {"a": [], "b": []}
    sent = {"a": 0, "b": 0}

    def player(me):
        with zchan.dial(ep, "x", zchan.String) as ch:
            for _ in range(rounds):
                i, v = zchan.select(zchan.Send(ch, me), zchan.Recv(ch), timeout=WAIT)
                if i == 0:
                    sent[me] += 1
                else:
                    got[me].append(v)

    threads = [threading.Thread(target=player, args=(p,)) for p in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(4 * WAIT)
    assert not any(t.is_alive() for t in threads), "deadlock"
    assert all(v == "b" for v in got["a"]) and all(v == "a" for v in got["b"])
    assert len(got["a"]) == sent["b"] and len(got["b"]) == sent["a"]


def test_a_lone_select_that_sends_and_receives_waits_without_spinning(hub):
    """Alone on an unbuffered channel, select {send; recv} waits quietly until its timeout
    (protocol.md §8.6.1); without tags its own RECV made its watch READY in a loop."""
    _, ep = hub("--channel", "x:0:string")
    with zchan.dial(ep, "x", zchan.String) as ch:
        cpu = time.process_time()
        with pytest.raises(zchan.Timeout):
            zchan.select(zchan.Send(ch, "v"), zchan.Recv(ch), timeout=0.6)
        assert time.process_time() - cpu < 0.3
        assert len(ch) == 0

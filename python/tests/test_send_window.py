"""The send window (protocol.md §9.1) of the Python peer against a C++ hub: credited sends,
flush, exact capacity, REVOKE at a close, resume after resets, asyncio."""

import asyncio
import os
import signal
import time

import pytest

import zchan
from conftest import WAIT, binary
from test_resume import ResettingProxy


def _stopped(pid: int) -> bool:
    """Whether every thread of ``pid`` is stopped (state T): kill() only queues SIGSTOP."""
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] != "T":
                return False
    return True


def _stop(pid: int) -> None:
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + WAIT
    while not _stopped(pid):
        assert time.monotonic() < deadline, "the hub did not stop"
        time.sleep(0.001)  # polling a state the kernel gives no event for


def _recv_all(spawn, ep, name, n):
    return spawn([binary("tools/zchan/zchan"), "recv", ep, name, "-n", str(n)])


def test_credited_sends_reach_cpp_exactly_once_in_order(hub, spawn):
    n = 2000
    _, ep = hub("--channel", "q:16:string")  # a small buffer: credits are granted again and again
    r = _recv_all(spawn, ep, "q", n)
    with zchan.dial(ep, "q", zchan.String, send_window=64) as ch:
        assert 0 < ch.send_window <= 64
        for i in range(n):
            ch.send(f"v{i}", timeout=WAIT)
        ch.flush(timeout=WAIT)
        assert ch.unconfirmed_sends == 0
        ch.close()  # flushes first; nothing left to flush here
    assert r.wait() == 0
    assert r.output() == [f"v{i}" for i in range(n)]


def test_close_flushes_the_credited_values_first(hub, spawn):
    _, ep = hub("--channel", "q:100:i64")
    with zchan.dial(ep, "q", zchan.I64, send_window=64) as ch:
        for i in range(50):
            ch << i  # credited: no round trip each
        ch.close()
        assert ch.unconfirmed_sends == 0
    with zchan.dial(ep, "q", zchan.I64) as rx:
        assert list(rx) == list(range(50))


def test_capacity_stays_exact_and_flush_needs_no_receiver(hub, spawn):
    _, ep = hub("--channel", "q:3:i64")
    with zchan.dial(ep, "q", zchan.I64, send_window=64) as ch:
        assert ch.send_window > 0
        for i in range(3):
            ch.send(i, timeout=WAIT)
        # The channel is full and nobody receives: flush still returns, the values have
        # their reserved slots (confirmed = in the channel, not received).
        ch.flush(timeout=WAIT)
        with pytest.raises(zchan.Timeout):
            ch.send(3, timeout=0.3)  # the (N+1)th send blocks, credited or not
        with zchan.dial(ep, "q", zchan.I64) as other:
            with pytest.raises(zchan.Timeout):
                other.send(99, timeout=0.3)  # another session sees the channel full too
            assert len(other) == 3
            assert other.recv(timeout=WAIT) == 0
        ch.send(3, timeout=WAIT)  # a slot again
        ch.flush(timeout=WAIT)
        assert len(ch) == 3


def test_flush_times_out_while_the_home_does_not_answer(hub, spawn):
    h, ep = hub("--channel", "q:10:i64", "--heartbeat-timeout", "15000")
    with zchan.dial(ep, "q", zchan.I64, send_window=8) as ch:
        assert len(ch) == 0  # a round trip: the CREDIT after the WELCOME has been read
        ch.send(1, timeout=WAIT)
        ch.flush(timeout=WAIT)
        _stop(h.p.pid)
        try:
            ch.send(2, timeout=WAIT)  # credited: returns without the home
            with pytest.raises(zchan.Timeout):
                ch.flush(timeout=0.3)
            assert ch.unconfirmed_sends == 1
        finally:
            os.kill(h.p.pid, signal.SIGCONT)
        ch.flush(timeout=WAIT)  # the value was on its way
        assert ch.unconfirmed_sends == 0
        assert len(ch) == 2


def test_flush_after_the_session_is_lost_is_peer_lost(hub):
    h, ep = hub("--channel", "q:10:i64", "--heartbeat", "200", "--heartbeat-timeout", "2000")
    with zchan.dial(ep, "q", zchan.I64, send_window=8) as ch:
        # The home sends its CREDIT right after the WELCOME; a round trip answered after it
        # means it has been read (a dial returns at the WELCOME, and under ASan the CREDIT was
        # once still unread when the hub was stopped: the send below then waited as an offer).
        assert len(ch) == 0
        # Stopped first, so that the credited value is surely not confirmed when the hub
        # dies (a send after the kill could see the loss first and leave nothing to flush).
        _stop(h.p.pid)
        ch.send(1, timeout=WAIT)  # credited (it had credits): handed to the socket
        assert ch.unconfirmed_sends == 1
        h.p.kill()
        h.p.wait()
        with pytest.raises(zchan.PeerLost):
            ch.flush(timeout=WAIT)


def test_no_window_on_an_unbuffered_channel(hub, spawn):
    _, ep = hub("--channel", "u:0:string")
    with zchan.dial(ep, "u", zchan.String, send_window=64) as ch:
        assert ch.send_window == 0
        with pytest.raises(zchan.Timeout):
            ch.send("nobody", timeout=0.3)  # still a rendezvous
        ch.flush(timeout=0.1)  # nothing to confirm


def test_a_close_revokes_the_credits(hub, spawn):
    _, ep = hub("--channel", "q:10:string")
    with zchan.dial(ep, "q", zchan.String, send_window=8) as ch:
        ch.send("before", timeout=WAIT)
        ch.flush(timeout=WAIT)
        s = spawn([binary("tools/zchan/zchan"), "send", ep, "q", "--close"], stdin=True)
        s.p.stdin.close()
        assert s.wait() == 0
        assert ch.is_closed()  # REVOKE came ahead of the STATUS: the credits are gone
        with pytest.raises(zchan.ChannelClosed):
            ch.send("after", timeout=WAIT)
        # REVOKED went out: the closed channel drains, a range ends.
        r = spawn([binary("tools/zchan/zchan"), "recv", ep, "q"])
        assert r.wait() == 0
        assert r.output() == ["before"]


def test_credited_sends_survive_resets_without_loss_or_duplicates(hub, spawn):
    _, ep = hub("--channel", "q:10000:string", "--heartbeat-timeout", "15000")
    proxy = ResettingProxy(int(ep.rsplit(":", 1)[1]))
    n = 600
    try:
        with zchan.dial(f"tcp://127.0.0.1:{proxy.port}", "q", zchan.String,
                        send_window=64) as ch:
            assert ch.send_window > 0
            for i in range(n):
                ch.send(f"v{i}", timeout=WAIT)
                if i % 150 == 75:
                    proxy.reset()  # values in flight and batched are lost with the connection
            ch.flush(timeout=WAIT)
            assert ch.unconfirmed_sends == 0
            assert ch.engine.resumes >= 1
    finally:
        proxy.close()
    with zchan.dial(ep, "q", zchan.String) as rx:
        assert len(rx) == n
        assert [rx.recv(timeout=WAIT) for _ in range(n)] == [f"v{i}" for i in range(n)]


def test_select_send_case_uses_a_credit(hub):
    _, ep = hub("--channel", "q:4:i64")
    with zchan.dial(ep, "q", zchan.I64, send_window=4) as ch:
        ch.flush(timeout=WAIT)
        i, _ = zchan.select(zchan.Send(ch, 7), timeout=WAIT)
        assert i == 0
        ch.flush(timeout=WAIT)
        assert len(ch) == 1 and ch.recv(timeout=WAIT) == 7


def test_asyncio_credited_sends_reach_cpp_in_order(hub, spawn):
    n = 1000
    _, ep = hub("--channel", "q:32:string")
    r = _recv_all(spawn, ep, "q", n)

    async def main():
        ch = await zchan.aio.dial(ep, "q", zchan.String, send_window=64)
        assert 0 < ch.send_window <= 64
        for i in range(n):
            await (ch << f"a{i}")
        await ch.flush(timeout=WAIT)
        assert ch.unconfirmed_sends == 0
        await ch.close()
        await ch.disconnect()

    asyncio.run(asyncio.wait_for(main(), WAIT * 2))
    assert r.wait() == 0
    assert r.output() == [f"a{i}" for i in range(n)]


# ----------------------------------------------------------------- the engine alone (sans I/O)

def _windowed(window=8):
    import struct
    from zchan import wire
    from zchan.engine import Engine, Options
    e = Engine("q", "string", Options(send_window=window), lambda: 100.0)
    nonce = wire.HEADER.unpack_from(e.take_frames()[0])[4]
    body = struct.pack("<IIQIIII16s", 5, 1000, 4, 3000, 1 << 20, 0, window, b"h" * 16)
    e.on_frame(wire.header(wire.WELCOME, 0, nonce) + body)
    return e, wire, struct


def test_engine_batches_while_a_send_many_waits_and_resends_after_a_resume():
    e, wire, struct = _windowed(8)
    credit = lambda granted, confirmed: (wire.header(wire.CREDIT, 5, granted)  # noqa: E731
                                         + struct.pack("<Q", confirmed))
    assert not e.send_credited(b"x")  # no CREDIT yet: an offer
    e.on_frame(credit(4, 0))
    assert all(e.send_credited(bytes([i])) for i in range(4))
    assert not e.has_credit
    out = e.take_frames()  # the first alone (nothing in flight), the other 3 at the credits' end
    assert [wire.HEADER.unpack_from(f)[1] for f in out] == [wire.SEND_MANY] * 2
    assert [wire.HEADER.unpack_from(f)[4] for f in out] == [1, 2]
    assert struct.unpack_from("<I", out[1], 16)[0] == 3
    e.on_frame(credit(6, 1))  # value 1 confirmed; its frame is no longer kept
    assert e.unconfirmed == 3
    e.on_disconnected()
    e.take_frames()  # HELLO RESUME
    nonce = e._hello_nonce
    body = struct.pack("<IIQIIII16s", 5, 1000, 4, 3000, 1 << 20, 0, 8, b"h" * 16)
    e.on_frame(wire.header(wire.WELCOME, 0, nonce, wire.F_RESUME) + body)
    assert out[1] in e.take_frames()  # the unconfirmed frame again, as it was
    e.on_frame(credit(6, 4))
    assert e.unconfirmed == 0
    e.on_frame(wire.header(wire.REVOKE, 5, 0))
    assert wire.HEADER.unpack_from(e.take_frames()[-1])[1] == wire.REVOKED
    assert not e.has_credit and not e.send_credited(b"late")  # offers from now on

"""Faults across processes: a killed Python consumer, CURVE refusals, hostile frames."""

import os
import signal
import struct
import threading

import pytest
import zmq

import zchan
from zchan import wire
from conftest import WAIT, binary, python_argv

HELPERS = os.path.join(os.path.dirname(__file__), "helpers")


def test_killed_python_consumer_values_reach_cpp_exactly_once(hub, spawn):
    _, ep = hub("--channel", "jobs:100:string")
    n, k = 60, 7
    with zchan.dial(ep, "jobs", zchan.String) as producer:
        for i in range(n):
            producer << f"job{i}"
    victim = spawn(python_argv(os.path.join(HELPERS, "take_then_hang.py"), ep, "jobs", str(k), "32"))
    taken = [victim.line() for _ in range(k)]
    assert victim.line() == "ready"  # 32 more sit unacknowledged in its prefetch queue
    victim.p.send_signal(signal.SIGKILL)
    victim.p.wait()
    r = spawn([binary("tools/zchan/zchan"), "recv", ep, "jobs", "-n", str(n - k)])
    rest = [r.line() for _ in range(n - k)]
    assert r.wait() == 0
    assert sorted(taken + rest, key=lambda s: int(s[3:])) == [f"job{i}" for i in range(n)]
    with zchan.dial(ep, "jobs", zchan.String) as check:
        assert len(check) == 0  # nothing delivered twice, nothing left behind


def _keygen(spawn, tmp_path, who):
    g = spawn([binary("tools/zchan/zchan"), "keygen", str(tmp_path / who)])
    assert g.wait() == 0
    return str(tmp_path / f"{who}.key"), str(tmp_path / f"{who}.pub")


def test_curve_allowed_and_refused(hub, spawn, tmp_path, monkeypatch):
    home_key, home_pub = _keygen(spawn, tmp_path, "home")
    alice_key, alice_pub = _keygen(spawn, tmp_path, "alice")
    mallory_key, _ = _keygen(spawn, tmp_path, "mallory")
    allow = tmp_path / "clients.allow"
    allow.write_text("# who may dial\n" + open(alice_pub).read())
    _, ep = hub("--channel", "secret:2:string",
                env={"ZCHAN_CURVE_ALLOW_FILE": str(allow), "ZCHAN_CURVE_SECRET_KEY_FILE": home_key})
    monkeypatch.setenv("ZCHAN_CURVE_SERVER_KEY_FILE", home_pub)
    monkeypatch.setenv("ZCHAN_CURVE_SECRET_KEY_FILE", alice_key)
    with zchan.dial(ep, "secret", zchan.String, timeout=WAIT) as ch:
        ch << "sealed"
    r = spawn([binary("tools/zchan/zchan"), "recv", ep, "secret", "-n", "1"],
              env={"ZCHAN_CURVE_SERVER_KEY_FILE": home_pub, "ZCHAN_CURVE_SECRET_KEY_FILE": alice_key})
    assert r.line() == "sealed"
    monkeypatch.setenv("ZCHAN_CURVE_SECRET_KEY_FILE", mallory_key)
    with pytest.raises(zchan.AccessDenied, match="allow-list|closed the connection"):
        zchan.dial(ep, "secret", zchan.String, timeout=WAIT)  # refused at once, not timed out
    monkeypatch.delenv("ZCHAN_CURVE_SERVER_KEY_FILE")
    monkeypatch.delenv("ZCHAN_CURVE_SECRET_KEY_FILE")
    with pytest.raises(zchan.AccessDenied):
        zchan.dial(ep, "secret", zchan.String, timeout=WAIT)  # plaintext dial of a CURVE home
    os.chmod(alice_key, 0o644)
    monkeypatch.setenv("ZCHAN_CURVE_SERVER_KEY_FILE", home_pub)
    monkeypatch.setenv("ZCHAN_CURVE_SECRET_KEY_FILE", alice_key)
    with pytest.raises(zchan.ZchanError, match="chmod 600"):
        zchan.dial(ep, "secret", zchan.String)


class FakeHome:
    """A ROUTER that answers HELLO with WELCOME and then sends whatever the test says."""

    def __init__(self) -> None:
        self.sock = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind("tcp://127.0.0.1:*")
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.peer = b""

    def recv(self) -> bytes:
        assert self.sock.poll(WAIT * 1000), "no frame from the peer"
        self.peer, frame = self.sock.recv_multipart()
        return frame

    def welcome(self, channel: int = 7) -> None:
        hello = self.recv()
        nonce = wire.HEADER.unpack_from(hello)[4]
        body = struct.pack("<IIQIIII16s", channel, 1000, 1, 3000, 1 << 20, 0, 0, b"h" * 16)
        self.send(wire.header(wire.WELCOME, 0, nonce) + body)

    def send(self, frame: bytes) -> None:
        self.sock.send_multipart([self.peer, frame])

    def close(self) -> None:
        self.sock.close(0)


def test_hostile_frames_are_dropped_and_a_huge_size_tag_is_a_decode_error():
    home = FakeHome()
    try:
        got = []
        t = threading.Thread(target=lambda: got.append(zchan.dial(home.endpoint, "x", zchan.String)))
        t.start()
        home.welcome()
        t.join(WAIT)
        ch = got[0]
        r = []
        t = threading.Thread(target=lambda: r.append(_catch(ch.recv)))
        t.start()
        recv = home.recv()
        while wire.HEADER.unpack_from(recv)[1] != wire.RECV:
            recv = home.recv()
        rid = wire.HEADER.unpack_from(recv)[4]
        home.send(b"\x01\x26")  # shorter than a header
        home.send(wire.header(wire.VALUE, 99, 4242) + struct.pack("<Q", 1))  # wrong channel
        home.send(wire.header(0x77, 7, 4243))  # unknown type
        bad_values = wire.header(wire.VALUES, 7, 50) + struct.pack("<QI4x", 1, 2) + \
            struct.pack("<I", 1 << 30) + b"abc"  # an entry length past the frame
        home.send(bad_values)
        # A VALUE whose std::string claims 2^62 octets: decoding must refuse, not allocate.
        home.send(wire.header(wire.VALUE, 7, rid) + struct.pack("<QQ", 1, 1 << 62) + b"xy")
        t.join(WAIT)
        assert isinstance(r[0], zchan.DecodeError), r
        assert ch.malformed_frames == 4
        ch.disconnect()
    finally:
        home.close()


def _catch(fn):
    try:
        return fn()
    except Exception as e:  # noqa: BLE001
        return e


def test_hostile_frames_do_not_hurt_a_cpp_hub(hub):
    _, ep = hub("--channel", "q:1:string")
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(ep)
    for junk in (b"", b"\x01", wire.header(wire.SEND, 12345, 1) + b"\xff" * 40,
                 wire.header(wire.HELLO, 0, 1) + b"\x01\x01\xff\xff", b"\x09" * 16,
                 wire.header(wire.ACK, 3, 1 << 40)):
        raw.send(junk)
    with zchan.dial(ep, "q", zchan.String) as ch:  # the hub still serves
        ch << "fine"
        assert ch.recv() == "fine"
        stats = zchan.dial(ep, "$stat", STATS)
        snap = stats.recv(timeout=WAIT)
        stats.disconnect()
        assert snap["malformed"] >= 5
        assert [c["name"] for c in snap["channels"]] == ["q"]
    raw.close(0)


# The $stat snapshot (protocol.md §17.2), as a Struct codec: an exercise for the codecs.
_CHANNEL = zchan.Struct("channel", [
    ("name", zchan.String), ("type", zchan.String), ("len", zchan.U64), ("cap", zchan.U64),
    ("closed", zchan.Bool), ("sessions", zchan.U32), ("senders", zchan.U32),
    ("receivers", zchan.U32), ("values_in", zchan.U64), ("values_out", zchan.U64),
    ("returned", zchan.U64), ("errors", zchan.U64)])
STATS = zchan.Struct("zchan.stats/2", [
    ("endpoint", zchan.String), ("sessions", zchan.U64), ("malformed", zchan.U64),
    ("channels", zchan.Vector(_CHANNEL)), ("refused", zchan.U64)])


def test_a_malformed_answer_to_a_request_loses_the_session():
    home = FakeHome()
    try:
        got = []
        t = threading.Thread(target=lambda: got.append(zchan.dial(home.endpoint, "x", zchan.I32)))
        t.start()
        home.welcome()
        t.join(WAIT)
        ch = got[0]
        r = []
        t = threading.Thread(target=lambda: r.append(_catch(lambda: ch.send(5))))
        t.start()
        send = home.recv()
        while wire.HEADER.unpack_from(send)[1] != wire.SEND:
            send = home.recv()
        seq = wire.HEADER.unpack_from(send)[4]
        home.send(wire.header(wire.SEND_OK, 7, seq) + b"junk")  # SEND_OK has no body (§5.2)
        t.join(WAIT)
        assert isinstance(r[0], zchan.PeerLost) and "malformed" in str(r[0]), r
        ch.disconnect()
    finally:
        home.close()


def test_a_hub_shutting_down_is_peer_lost_with_its_reason(hub, spawn):
    h, ep = hub("--channel", "q:100:string")
    with zchan.dial(ep, "q", zchan.String) as producer:
        for i in range(50):
            producer << f"v{i}"
    with zchan.dial(ep, "q", zchan.String, prefetch=16) as ch:
        assert ch.recv(timeout=WAIT) == "v0"
        h.p.send_signal(signal.SIGTERM)  # the hub ends its sessions: ERROR shutting_down (§12.4)
        with pytest.raises(zchan.PeerLost, match="shutting down"):
            while True:
                ch.recv(timeout=WAIT)  # values taken before the ERROR arrived come first
    assert h.wait() == 0

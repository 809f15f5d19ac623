"""ZCHAN/1 frames: constants, encoders and the peer-side validating decoder.

Everything here is pure: bytes in, bytes or a ``Frame`` out, no sockets and no clocks.
The layout is docs/protocol.md §4 (header), §5 (types and bodies) and §6 (validation).

Invariant: ``decode`` never trusts a length from the wire. Every body length is checked
exactly against the type's formula (protocol.md §6.1 rule 5) before any field is read, and a
VALUES frame's entries are walked and bounds-checked before one is handed out (§6.3).

Thread safety: stateless; safe from any thread.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

VERSION = 1

# Message types, protocol.md §5.2.
HELLO, WELCOME, ERROR = 0x01, 0x02, 0x03
SEND, CANCEL_SEND, SEND_OK, SEND_CLOSED, SEND_FULL, SEND_CANCELLED = 0x10, 0x11, 0x12, 0x13, 0x14, 0x15
CREDIT, WATCH_SEND, CANCEL_WATCH, READY, WATCH_CANCELLED = 0x16, 0x17, 0x18, 0x19, 0x1A
RECV, CANCEL_RECV, ACK, RETURN, RECV_MANY, RECV_CANCELLED = 0x20, 0x21, 0x22, 0x23, 0x24, 0x25
VALUE, CLOSED, EMPTY, VALUES = 0x26, 0x27, 0x28, 0x29
CLOSE, QUERY, CLOSE_OK, STATUS, POLL = 0x30, 0x31, 0x32, 0x33, 0x34  # POLL: §8.9
PING, PONG, BYE = 0x40, 0x41, 0x42
SEND_MANY, REVOKE, REVOKED = 0x1B, 0x1C, 0x1D  # the send window, §9.1

# A POLL case's operation (§5.1 poll-op): the case receives / sends.
POLL_RECV, POLL_SEND = 1, 2

# Flag bits, protocol.md §4.
F_TRY, F_RESUME, F_CREDITED, F_CREATE, F_SELECT = 1, 2, 4, 8, 16

# Error codes, protocol.md §11.2.
E_PROTOCOL, E_VERSION, E_UNKNOWN_CHANNEL, E_TYPE_MISMATCH, E_DECODE = 1, 2, 3, 4, 5
E_TOO_LARGE, E_ALREADY_CLOSED, E_ACCESS_DENIED, E_UNKNOWN_SESSION, E_SHUTTING_DOWN = 6, 7, 8, 9, 10

HEADER = struct.Struct("<BBHIQ")  # version, type, flags, channel, id
_HELLO_BODY = struct.Struct("<BBHHHIIII16s")
_WELCOME_BODY = struct.Struct("<IIQIIII16s")
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_ERROR_HEAD = struct.Struct("<HH")
_STATUS_BODY = struct.Struct("<QQB7s")
_VALUES_HEAD = struct.Struct("<QI4s")
_RECV_MANY_BODY = struct.Struct("<II")
_POLL_CASE = struct.Struct("<IB3x")  # channel id, poll-op, three zero octets (§5.2)

MAX_NAME, MAX_TYPE, MAX_TEXT, MAX_ACKS, MAX_BATCH, MAX_POLL = 255, 1024, 1024, 1024, 65536, 1024
DEFAULT_MAX_FRAME = 64 << 20
VALUE_OVERHEAD = 24  # VALUE header + delivery seq: the largest value is max-frame - 24 (§6.4)

# Types a peer may receive, with the flags each allows (§6.1 rules 3 and 4).
_PEER_RECEIVES = {
    WELCOME: F_RESUME, ERROR: 0, SEND_OK: 0, SEND_CLOSED: 0, SEND_FULL: 0, SEND_CANCELLED: 0,
    CREDIT: 0, READY: 0, WATCH_CANCELLED: 0, RECV_CANCELLED: 0, VALUE: 0, CLOSED: 0, EMPTY: 0,
    VALUES: 0, CLOSE_OK: 0, STATUS: 0, PING: 0, PONG: 0, REVOKE: 0,
}
# Body lengths fixed by §5.2 (VALUE, VALUES and ERROR are computed).
_FIXED_BODY = {WELCOME: 48, STATUS: 24, CREDIT: 8}


class Malformed(Exception):
    """A frame that violates protocol.md §6; the message says which rule."""


@dataclass
class Frame:
    """One decoded home -> peer frame. Fields beyond the header are set per type."""

    type: int
    flags: int
    channel: int
    id: int
    # WELCOME
    new_channel: int = 0
    heartbeat_ms: int = 0
    capacity: int = 0
    timeout_ms: int = 0
    max_frame: int = 0
    prefetch: int = 0
    send_window: int = 0
    instance_id: bytes = b""
    # ERROR
    code: int = 0
    text: str = ""
    # VALUE / VALUES: payloads[i] answers request id+i with delivery seq+i
    seq: int = 0
    payloads: List[bytes] = field(default_factory=list)
    # STATUS
    length: int = 0
    closed: bool = False
    # CREDIT (id: credits granted in total): every credited number up to this was accepted
    confirmed: int = 0


def header(type_: int, channel: int, id_: int, flags: int = 0) -> bytes:
    return HEADER.pack(VERSION, type_, flags, channel, id_)


def hello(nonce: int, name: bytes, type_name: bytes, instance_id: bytes, *, prefetch: int = 0,
          send_window: int = 0, heartbeat_ms: int = 0, create: Optional[int] = None,
          resume: bool = False) -> bytes:
    """HELLO (§5.2 layout, §7.2); ``create`` is the capacity to create a hub channel with (§17.1)."""
    flags = (F_RESUME if resume else 0) | (F_CREATE if create is not None else 0)
    body = _HELLO_BODY.pack(VERSION, VERSION, len(name), len(type_name), 0, prefetch,
                            send_window, heartbeat_ms, create or 0, instance_id)
    return header(HELLO, 0, nonce, flags) + body + name + type_name


def send(channel: int, seq: int, payload: bytes, flags: int = 0) -> bytes:
    return header(SEND, channel, seq, flags) + payload


def send_many(channel: int, first: int, payloads: List[bytes]) -> bytes:
    """SEND_MANY (§9.1): credited values numbered ``first``, ``first``+1, ..."""
    parts = [header(SEND_MANY, channel, first), _RECV_MANY_BODY.pack(len(payloads), 0)]
    for p in payloads:
        parts.append(_U32.pack(len(p)))
        parts.append(p)
    return b"".join(parts)


def ack(channel: int, seqs: List[int]) -> bytes:
    return header(ACK, channel, len(seqs)) + struct.pack(f"<{len(seqs)}Q", *seqs)


def recv_many(channel: int, first: int, count: int) -> bytes:
    return header(RECV_MANY, channel, first) + _RECV_MANY_BODY.pack(count, 0)


def poll_body(cases: Sequence[Tuple[int, int]]) -> bytes:
    """A POLL's body (§5.2): poll-count, four zero octets, then per case its channel id, its
    operation (POLL_RECV or POLL_SEND) and three zero octets. ``cases`` are (channel id, op)
    pairs; the rules of §6.3 are checked here, so that a peer never sends a POLL its home
    must reject (a rejected POLL gets no answer)."""
    if not 1 <= len(cases) <= MAX_POLL:
        raise ValueError(f"zchan: a POLL names 1..{MAX_POLL} cases, not {len(cases)}")
    parts = [_RECV_MANY_BODY.pack(len(cases), 0)]
    for channel, op in cases:
        if channel == 0 or op not in (POLL_RECV, POLL_SEND):
            raise ValueError(f"zchan: POLL case ({channel}, {op}): channel 0 or operation "
                             "not 1 (receive) or 2 (send)")
        parts.append(_POLL_CASE.pack(channel, op))
    return b"".join(parts)


def poll(channel: int, request_id: int, cases: Sequence[Tuple[int, int]]) -> bytes:
    """POLL (§5.1, §8.9): are all of ``cases`` (channel id, op) not ready at one instant? The
    answer (EMPTY or READY) goes to the session ``channel`` with ``request_id``."""
    if channel == 0 or request_id == 0:
        raise ValueError("zchan: a POLL's channel and request id are >= 1")
    return header(POLL, channel, request_id) + poll_body(cases)


def decode(data: bytes, session_channel: int) -> Frame:
    """Validates and decodes one home -> peer frame (§6). Raises Malformed.

    ``session_channel`` is the session's channel id, 0 before WELCOME. WELCOME and ERROR may
    carry channel 0 (they answer a HELLO); PING and PONG may too (§5.1).
    """
    if len(data) < 16:
        raise Malformed("shorter than the 16-octet header")
    version, type_, flags, channel, id_ = HEADER.unpack_from(data)
    if version != VERSION:
        raise Malformed(f"version {version}")
    allowed = _PEER_RECEIVES.get(type_)
    if allowed is None:
        raise Malformed(f"type 0x{type_:02x} is not one a peer receives")
    if flags & ~allowed:
        raise Malformed(f"undefined flags 0x{flags:04x} for type 0x{type_:02x}")
    if channel != session_channel and not (channel == 0 and type_ in (WELCOME, ERROR, PING, PONG)):
        raise Malformed(f"channel {channel} is not the session's {session_channel}")
    if type_ == VALUES:  # the stream's frame (§8.8): no Frame fields beyond these
        f = Frame(type_, flags, channel, id_)
        f.seq, f.payloads = _values(id_, data if type(data) is bytes else bytes(data))
        return f
    body = memoryview(data)[16:]
    f = Frame(type_, flags, channel, id_)
    expect = _FIXED_BODY.get(type_)
    if type_ == ERROR:
        if len(body) < 4:
            raise Malformed("ERROR body shorter than 4")
        f.code, n = _ERROR_HEAD.unpack_from(body)
        if n > MAX_TEXT or len(body) != 4 + n:
            raise Malformed("ERROR text-len does not match the body")
        f.text = bytes(body[4:]).decode("utf-8", "replace")
        return f
    if type_ == VALUE:
        if len(body) < 8:
            raise Malformed("VALUE body shorter than 8")
        _need_id(id_)
        seq = _U64.unpack_from(body)[0]
        _need_id(seq)
        f.seq, f.payloads = seq, [bytes(body[8:])]
        return f
    if expect is None:
        expect = 0
    if len(body) != expect:
        raise Malformed(f"body of {len(body)} octets, type 0x{type_:02x} has {expect}")
    if type_ == WELCOME:
        (f.new_channel, f.heartbeat_ms, f.capacity, f.timeout_ms, f.max_frame, f.prefetch,
         f.send_window, f.instance_id) = _WELCOME_BODY.unpack_from(body)
        if f.new_channel == 0 or f.timeout_ms <= f.heartbeat_ms:
            raise Malformed("WELCOME with channel 0 or a timeout not above the heartbeat")
    elif type_ == STATUS:
        f.length, f.capacity, closed, pad = _STATUS_BODY.unpack_from(body)
        if closed > 1 or any(pad):
            raise Malformed("STATUS closed-flag or padding")
        f.closed = bool(closed)
    elif type_ == CREDIT:
        f.confirmed = _U64.unpack_from(body)[0]  # granted (the id) may be 0: none yet
    elif type_ not in (PING, PONG, REVOKE):
        _need_id(id_)  # seq, request id and credits are >= 1 (§6.1 rule 7)
    return f


def _need_id(v: int) -> None:
    if v == 0:
        raise Malformed("an id that must be >= 1 is 0")


def _values(first: int, data: bytes) -> Tuple[int, List[bytes]]:
    """A VALUES frame's first delivery seq and payloads, the entries checked to fill the body
    exactly before any is used (§6.3)."""
    end = len(data)
    if end < 32:
        raise Malformed("VALUES body shorter than 16")
    seq, n, pad = _VALUES_HEAD.unpack_from(data, 16)
    if not 1 <= n <= MAX_BATCH or any(pad):
        raise Malformed("VALUES batch-count out of range")
    _need_id(first)
    _need_id(seq)
    if first + n - 1 >= 1 << 64 or seq + n - 1 >= 1 << 64:
        raise Malformed("VALUES ids overflow")
    pos = 32
    if end - pos >= 4:
        # Entries of one length (a stream of one fixed-size type, the common case): the body
        # is exactly n strides, and each length field equals the first, checked octet by octet
        # with strided slices instead of a walk in Python.
        m = _U32.unpack_from(data, pos)[0]
        stride = 4 + m
        if end - pos == n * stride:
            lb = data[pos:pos + 4]
            if n == 1 or all(data[pos + k:end:stride] == lb[k:k + 1] * n for k in range(4)):
                return seq, [data[p:p + m] for p in range(pos + 4, end + 4, stride)]
    out = []
    for _ in range(n):
        if end - pos < 4:
            raise Malformed("VALUES entry length runs past the body")
        m = _U32.unpack_from(data, pos)[0]
        pos += 4
        if m > end - pos:
            raise Malformed("VALUES entry runs past the body")
        out.append((pos, m))
        pos += m
    if pos != end:
        raise Malformed("VALUES entries do not fill the body")
    return seq, [data[p:p + m] for p, m in out]

"""The peer's protocol engine for one dialed channel, sans I/O: frames in, frames out, clock ticks.

Both drivers (``zchan.blocking`` for threads, ``zchan.aio`` for asyncio) wrap one ``Engine``
per channel; neither knows the wire. The engine never touches a socket or sleeps: a driver
feeds it received frames (``on_frame``), socket events (``on_disconnected``) and ticks
(``tick``, at least every heartbeat/4), starts user operations through its methods, and sends
whatever ``take_frames`` returns, in order. Payloads are opaque octets here; codecs live in
the channel classes.

Invariants:
* Every request the engine has sent and the home has not finally answered is in ``_pending``
  (id -> Request), or in ``_runs`` if it is a prefetch RECV, until the session is lost; after
  a RESUME WELCOME they are all re-sent in id order, resolutions first (protocol.md §12.2).
* A delivery (VALUE or VALUES entry) is resolved exactly once by this side: ACKed when a user
  operation takes it, RETURNed otherwise (§8.4). Resolutions stay in ``_unconfirmed`` until a
  PONG answers a PING sent after them (§12.5).
* Prefetched values are handed out in delivery-seq order, and only when every lower delivery
  seq of the session has arrived (§12.2), and never after the session was declared lost (§12.5).
* Nothing is sent on a session that is not open (before WELCOME, while resuming, after loss);
  requests made meanwhile are queued in ``_pending`` and leave with the re-send.

The prefetch window (§9.2) has its own records, lean because every streamed value passes
through them: a prefetch RECV has no ``Request``; the ids still waiting for their final answer
are half-open runs ``[lo, hi)`` in ``_runs`` (a RECV_MANY makes one, §8.8, and the home answers
its RECVs in order, so answers take ids off the front of the first run). Their values wait in
``_chunks``, in delivery-seq order: ``[seq, payloads, i]`` holds ``payloads[i:]`` with the
consecutive seqs ``seq, seq+1, ...`` (a VALUES frame answered in order is one chunk, kept as
decoded). A range takes a batch as a ``Loan`` (``lend``), hands its values out without a lock
per value and ACKs each only once handed out: a range that stops early puts the rest back at
the head of the queue (``end_loan``). ACKs are kept as seq ranges (``_acks``), leave as ACK
frames of up to 1024 seqs, and stay in ``_unconfirmed`` as ranges until a PONG confirms them
(§12.5).

The send window (protocol.md §9.1), opt-in with ``Options.send_window`` W: HELLO asks for W
credits and the home grants W' <= W in WELCOME (0 on an unbuffered channel). A user send with a
credit (``send_credited``) numbers its value (1, 2, 3, ... per session), appends it to a batch
and returns; the batch leaves as one SEND_MANY frame by Nagle's rule without a timer, as the
reference peer's (src/send_window.hpp): at once when no SEND_MANY waits for its CREDIT, else
when that CREDIT arrives, when the batch reaches 64 KiB or 4096 values, when the credits run
out, or ahead of any other request (one sender's values keep their order). Invariants:
* ``_sw_confirmed <= _sw_next - 1 <= _sw_granted`` (totals from CREDIT only grow);
* ``_sw_inflight`` holds, in number order, every SEND_MANY sent (or made while resuming) whose
  values are not all confirmed; a RESUME WELCOME re-sends them after the resolutions and
  before the requests (§12.2); the home ignores numbers it already accepted (§9.1 rule 2);
* after REVOKE (the channel closed) the batch has left, REVOKED follows, and no credit is used
  again: later sends are offers. An offer answered SEND_FULL while credits are held crossed a
  CREDIT (rule 3): ``ops.send`` retries, with the credit.
A flush (``ops.flush``) waits until ``credited_confirmed`` reaches ``last_credited``; a lost
session keeps ``unconfirmed``: at most that many values may be lost with it (§9.1).

Thread safety: none. One engine is used by one thread at a time (the blocking driver holds
its lock around every call; the asyncio driver runs on one loop).
"""

from __future__ import annotations

import os
import time
from collections import deque
from typing import Callable, Deque, Dict, List, Optional, Sequence, Set, Tuple

from . import wire
from .errors import (AccessDenied, ChannelClosed, ConnectError, DecodeError, MessageTooLarge,
                     PeerLost, TransportError, TypeMismatch, ZchanError)

_DIALING, _OPEN, _RESUMING, _LOST, _GONE = "dialing", "open", "resuming", "lost", "gone"


class Request:
    """One request to the home. ``answer`` is the final answer's type once final."""

    __slots__ = ("kind", "id", "flags", "payload", "answer", "error", "delivery", "length",
                 "capacity", "closed", "withdrawn", "taken", "tag")

    def __init__(self, kind: int, id_: int, flags: int = 0, payload: bytes = b"") -> None:
        self.kind = kind  # the request's frame type: SEND, RECV, WATCH_SEND, CLOSE, QUERY, POLL
        self.id = id_
        self.flags = flags
        # SEND: the value; RECV: the VALUE's payload once answered; POLL: the body (its cases)
        self.payload = payload
        self.answer: Optional[int] = None
        self.error: Optional[ZchanError] = None
        self.delivery = 0  # RECV answered VALUE: its delivery seq
        self.length = self.capacity = 0  # QUERY answered STATUS
        self.closed = False
        self.withdrawn = False  # the user no longer waits (cancelled or lost a select)
        self.taken = False  # a RECV's value was handed to the user (ACKed)
        self.tag = 0  # a select's RECV or WATCH_SEND: its select tag (§8.6.1), 0: none

    @property
    def final(self) -> bool:
        return self.answer is not None or self.error is not None


class Loan:
    """Queued values a range took to hand out one by one: ``payloads[i]`` has the i-th seq of
    ``ranges`` (``[lo, hi)``, in order). A value is ACKed only once it was handed out (§8.4);
    the rest goes back to the queue, or is dropped with a lost session (§12.5).

    ``left`` holds the indices not yet handed out. The range pops them from the left without
    the handle's lock; the engine pops from the right (at a loss, a shutdown or BYE), under it.
    A deque's pops are atomic, so each value is either handed out or kept back, never both; the
    handed-out ones are a prefix: ``len(payloads) - len(left)`` of them (a range hands out each
    value it popped: the value is yielded right after the pop)."""

    __slots__ = ("payloads", "ranges", "left", "acked")

    def __init__(self, payloads: List[bytes], ranges: List[Tuple[int, int]]) -> None:
        self.payloads = payloads
        self.ranges = ranges
        self.left: Deque[int] = deque(range(len(payloads)))
        self.acked = 0  # the first ``acked`` values are ACKed


class Options:
    """What the user asked for at dial; see ``zchan.dial``."""

    def __init__(self, prefetch: int = 0, heartbeat_ms: int = 0, create: Optional[int] = None,
                 max_frame: int = wire.DEFAULT_MAX_FRAME, send_window: int = 0) -> None:
        if not 0 <= prefetch <= wire.MAX_BATCH:
            raise ValueError("zchan: prefetch is 0..65536")
        if not 0 <= send_window <= 0xFFFFFFFF:
            raise ValueError("zchan: send_window is 0..2^32-1")
        self.prefetch = prefetch
        self.send_window = send_window
        self.heartbeat_ms = heartbeat_ms
        self.create = create
        self.max_frame = max_frame


class Engine:
    """The peer side of one session (protocol.md §7-§12)."""

    def __init__(self, name: str, type_name: str, opts: Options,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name, self.type_name, self.opts, self.clock = name, type_name, opts, clock
        nb, tb = name.encode(), type_name.encode()
        if not 1 <= len(nb) <= wire.MAX_NAME or not 1 <= len(tb) <= wire.MAX_TYPE:
            raise ValueError("zchan: channel name 1..255 octets, type identity 1..1024")
        self._name_b, self._type_b = nb, tb
        # One instance id per handle, as the reference peer does (protocol.md §2): two handles
        # of one process must not share a session or, through the routing id, a connection.
        self.instance_id = os.urandom(16)
        self.state = _DIALING
        self.channel = 0
        self.capacity = 0
        self.heartbeat = 1.0
        self.timeout = 3.0
        self.max_frame = opts.max_frame
        self.window = 0  # granted prefetch
        self.home_instance = b""
        self.dial_error: Optional[ZchanError] = None
        self.lost_error: Optional[PeerLost] = None
        self.malformed = 0  # frames counted and dropped (§11.1)
        self.resumes = 0  # RESUME WELCOMEs accepted (§12.2)
        self._out: List[bytes] = []
        self._next_id = 1
        self._last_select_tag = 0  # select tags handed out (§8.6.1)
        self._hello_nonce = 0
        self._ping_nonce = 0
        self._pending: Dict[int, Request] = {}
        self._acks: List[List[int]] = []  # [lo, hi): taken deliveries not yet ACKed
        self._acks_n = 0  # seqs in _acks
        # (ping epoch, type, lo, hi): resolutions of delivery seqs lo..hi-1 sent, unconfirmed
        self._unconfirmed: List[Tuple[int, int, int, int]] = []
        self._resolved_since_ping = False
        self._contig = 0  # every delivery seq <= this has arrived
        self._above: Set[int] = set()
        # The prefetch window (§9.2); see the top.
        self._runs: List[List[int]] = []  # [lo, hi): prefetch RECV ids without a final answer
        self._stream_n = 0  # ids in _runs
        self._chunks: Deque[List] = deque()  # [seq, payloads, i]: queued deliveries, seq order
        self._queued = 0  # values in _chunks
        self._loans: List[Loan] = []  # values ranges took and are handing out
        self._stream_closed = False  # a prefetch RECV was answered CLOSED
        # The send window (§9.1); see the top.
        self.send_window = 0  # granted W'
        self._sw_granted = 0  # credits granted in total (CREDIT's id)
        self._sw_next = 1  # the next credited value's number
        self._sw_confirmed = 0  # every number up to this one was accepted
        self._sw_inflight: Deque[Tuple[int, bytes]] = deque()  # (last number, SEND_MANY)
        self._sw_batch: List[bytes] = []  # payloads numbered _sw_next - len(batch) ...
        self._sw_batch_bytes = 0
        self._sw_revoked = False
        self._sw_revoked_unsent = False  # REVOKED made while resuming: leaves at the WELCOME
        now = clock()
        self._last_sent = self._last_recv = now
        self._hello(resume=False)

    # ----------------------------------------------------------------- driver interface

    def take_frames(self) -> List[bytes]:
        """The frames to send, in order; the caller sends all of them."""
        out, self._out = self._out, []
        return out

    @property
    def is_open(self) -> bool:
        return self.state in (_OPEN, _RESUMING)

    @property
    def dialing(self) -> bool:
        return self.state == _DIALING

    def on_frame(self, data: bytes) -> None:
        """Dispatches one received frame (§6 validation first; invalid ones are dropped)."""
        if self.state in (_LOST, _GONE):
            return
        if self._stalled():
            return
        try:
            f = wire.decode(data, self.channel if self.state != _DIALING else 0)
        except wire.Malformed:
            self._malformed(data)
            return
        self._last_recv = self.clock()
        handler = _HANDLERS.get(f.type)
        if handler is not None:
            handler(self, f)

    def on_disconnected(self) -> None:
        """The socket monitor saw the connection break: resume (§12.2)."""
        if self.state in (_OPEN, _RESUMING):
            self.state = _RESUMING
            self._hello(resume=True)

    def on_refused(self, why: str) -> None:
        """The security handshake was refused while dialing (§14.3)."""
        if self.state == _DIALING:
            self.dial_error = AccessDenied(f"zchan: {why}: access denied")
            self.state = _GONE

    def tick(self) -> None:
        """Heartbeats, loss detection and ACK flushing (§12.1, §12.5); call every heartbeat/4."""
        if self.state not in (_OPEN, _RESUMING) or self._stalled():
            return
        now = self.clock()
        if now - self._last_recv >= self.timeout:
            self._lose("nothing heard from the home within the timeout")
            return
        if self.state == _RESUMING and now - self._last_sent >= self.heartbeat:
            # The HELLO RESUME may have gone with a connection that broke again unseen: a new
            # one supersedes it (only the latest nonce's WELCOME counts, §12.2).
            self._hello(resume=True)
        for loan in self._loans:  # values handed out since the last tick: ACKed (§8.4)
            self._ack_loan(loan, len(loan.payloads) - len(loan.left))
        if self.state == _OPEN and (self._acks or self._resolved_since_ping
                                    or now - self._last_sent >= self.heartbeat):
            self._ping()

    def next_tick(self) -> float:
        """Seconds until the engine wants its next tick."""
        return self.heartbeat / 4

    # ----------------------------------------------------------------- user operations

    def send(self, payload: bytes, try_: bool = False) -> Request:
        """SEND (an offer, or TRY); §8.2. Credited sends (§9.1) go through ``send_credited``."""
        self._usable()
        if len(payload) + wire.VALUE_OVERHEAD > self.max_frame:
            raise MessageTooLarge("zchan: value larger than the home's maximum frame: "
                                  "message too large")
        return self._request(wire.SEND, wire.F_TRY if try_ else 0, payload)

    # ----------------------------------------------------------------- send window (§9.1)

    SW_BATCH_BYTES = 64 * 1024
    SW_BATCH_VALUES = 4096

    @property
    def has_credit(self) -> bool:
        return (self.send_window != 0 and not self._sw_revoked
                and self._sw_next <= self._sw_granted)

    @property
    def unconfirmed(self) -> int:
        """Credited values sent (or batched) and not yet confirmed by the home."""
        return self._sw_next - 1 - self._sw_confirmed

    @property
    def last_credited(self) -> int:
        """The highest credited number handed out (a flush waits for its confirmation)."""
        return self._sw_next - 1

    @property
    def credited_confirmed(self) -> int:
        return self._sw_confirmed

    def send_credited(self, payload: bytes) -> bool:
        """A send with a credit: batched, True; False if there is no credit (or the value is
        too large for one: the exact way says so), and the caller offers it (§8.2)."""
        self._usable()
        if not self.has_credit or len(payload) + wire.VALUE_OVERHEAD > self.max_frame:
            return False
        self._sw_batch.append(payload)
        self._sw_batch_bytes += len(payload) + 4
        self._sw_next += 1
        if self._sw_should_flush():
            self._sw_flush_batch()
        return True

    def flush_credited(self) -> None:
        """Sends the batch now (a flush waits for its confirmation)."""
        if self._sw_batch:
            self._sw_flush_batch()

    def _sw_should_flush(self) -> bool:
        return bool(self._sw_batch) and (
            not self._sw_inflight or self._sw_batch_bytes >= self.SW_BATCH_BYTES
            or len(self._sw_batch) >= self.SW_BATCH_VALUES or self._sw_next > self._sw_granted)

    def _sw_flush_batch(self) -> None:
        first = self._sw_next - len(self._sw_batch)
        frame = wire.send_many(self.channel, first, self._sw_batch)
        self._sw_batch, self._sw_batch_bytes = [], 0
        self._sw_inflight.append((self._sw_next - 1, frame))
        if self.state == _OPEN:  # else the RESUME WELCOME's re-send carries it
            self._flush_acks()
            self._out.append(frame)
            self._last_sent = self.clock()

    def cancel_send(self, r: Request) -> None:
        """Deadline: ask the home for its verdict (§8.5); the request stays until answered."""
        if not r.final and not r.withdrawn:
            r.withdrawn = True
            self._emit_request(wire.header(wire.CANCEL_SEND, self.channel, r.id))

    def recv(self, try_: bool = False, tag: int = 0) -> Request:
        """RECV (§8.4); use ``take`` or ``withdraw`` on the answer. ``tag``: a select's tag
        (``select_tag``, §8.6.1), 0 for none."""
        self._usable()
        return self._request(wire.RECV, wire.F_TRY if try_ else 0, tag=tag)

    def take(self, r: Request) -> None:
        """A user operation takes a RECV's VALUE: ACK it (batched, §8.4)."""
        if r.answer == wire.VALUE and not r.taken:
            r.taken = True
            self._ack(r.delivery, r.delivery + 1)

    def withdraw(self, r: Request) -> None:
        """Nobody wants this RECV or watch any more (§8.5, §8.6): cancel, or RETURN its value."""
        if r.withdrawn:
            return
        r.withdrawn = True
        if r.answer == wire.VALUE and not r.taken:
            self._give_back(r.delivery)
        elif not r.final and self.state in (_OPEN, _RESUMING):
            t = wire.CANCEL_RECV if r.kind == wire.RECV else wire.CANCEL_WATCH
            self._emit_request(wire.header(t, self.channel, r.id))

    def watch(self, tag: int = 0) -> Request:
        """WATCH_SEND for a select's send case (§8.6), with the select's tag (§8.6.1)."""
        self._usable()
        return self._request(wire.WATCH_SEND, tag=tag)

    def select_tag(self) -> int:
        """A new tag for one wait of one select on this session (§8.6.1); 0 (none) unless the
        channel is unbuffered, where a select's own RECV would otherwise wake its watch."""
        if self.capacity != 0:
            return 0
        self._last_select_tag += 1
        return self._last_select_tag

    def close(self) -> Request:
        self._usable()
        return self._request(wire.CLOSE)

    def query(self) -> Request:
        self._usable()
        return self._request(wire.QUERY)

    def start_poll(self, ops: Sequence[int]) -> Request:
        """POLL (§8.9) for a select's cases on this session, ``ops`` their operations
        (wire.POLL_RECV / POLL_SEND), answered EMPTY (at one instant of the home none was
        ready) or READY (one was, or the home cannot tell).

        The home counts deliveries not yet ACKed and credits not yet used as ready, so what
        this side has already consumed leaves first, on the same connection (§8.9 peer rule
        2): the ACKs of values handed out (those a range handed out from its loan too) and
        the batch of credited values. A handle is its own connection (one DEALER per
        handle), so a POLL names this session only. It cannot be cancelled; it stays in
        ``_pending`` until answered, so a resume re-sends it after the resolutions and the
        credited values, as any request (§12.2); the home runs it again (§12.3)."""
        self._usable()
        for loan in self._loans:
            self._ack_loan(loan, len(loan.payloads) - len(loan.left))
        # _request sends the credited batch, then _emit_request the ACKs, ahead of the POLL.
        return self._request(wire.POLL, payload=wire.poll_body([(self.channel, op) for op in ops]))

    def poll(self) -> Tuple[str, bytes]:
        """Prefetch window (§9.2): ("value", payload) taken from the queue, ("closed", b"")
        once drained and closed, or ("wait", b"")."""
        self._usable()
        chunks = self._chunks
        if chunks and chunks[0][0] <= self._contig:
            c = chunks[0]
            seq, payloads, i = c
            if i + 1 == len(payloads):
                chunks.popleft()
            else:
                c[0], c[2] = seq + 1, i + 1
            self._queued -= 1
            self._ack(seq, seq + 1)
            self._refill()
            return "value", payloads[i]
        if self._stream_closed and not self._stream_n and not chunks:
            return "closed", b""
        self._refill()
        return "wait", b""

    def lend(self, limit: int) -> Optional[Loan]:
        """Prefetch window: up to ``limit`` queued values in order for a range, which hands
        them out one by one without a lock per value, and ends the loan with ``end_loan``;
        None if no value is ready. They are taken from the queue, not yet ACKed."""
        self._usable()
        out: List[bytes] = []
        ranges: List[Tuple[int, int]] = []
        chunks, contig = self._chunks, self._contig
        while chunks and len(out) < limit:
            c = chunks[0]
            seq, payloads, i = c
            if seq > contig:
                break
            k = min(limit - len(out), len(payloads) - i, contig - seq + 1)
            if i + k == len(payloads):
                chunks.popleft()
                if i == 0 and not out:
                    out = payloads  # a whole chunk: no copy
                else:
                    out += payloads[i:]
            else:
                out += payloads[i:i + k]
                c[0], c[2] = seq + k, i + k
            ranges.append((seq, seq + k))
        if not out:
            return None
        self._queued -= len(out)
        loan = Loan(out, ranges)
        self._loans.append(loan)
        self._refill()
        return loan

    def end_loan(self, loan: Loan) -> None:
        """The range is done with ``loan`` (all handed out, or it stopped): the handed-out
        values are ACKed, the others go back to the head of the queue, in order."""
        if loan not in self._loans:
            return  # ended by a loss or BYE: nothing left to do
        self._loans.remove(loan)
        kept = self._keep_back(loan)
        if not kept:
            self._refill()  # what was handed out left the window
            return
        # The kept values are a suffix of the loan, below every queued seq: the queue's head.
        n = len(loan.payloads)
        first = n - kept
        pieces = []
        pos = 0
        for lo, hi in loan.ranges:
            a, b = max(pos, first), pos + hi - lo
            if a < b:
                pieces.append((lo + a - pos, loan.payloads[a:b]))
            pos = b
        for seq, payloads in reversed(pieces):
            self._chunks.appendleft([seq, payloads, 0])
        self._queued += kept
        self._refill()

    def _keep_back(self, loan: Loan) -> int:
        """Stops ``loan``: the values not yet handed out stay with the engine (how many is
        returned), the handed-out ones are ACKed."""
        left = loan.left
        kept = 0
        while True:
            try:
                left.pop()
            except IndexError:
                break
            kept += 1
        self._ack_loan(loan, len(loan.payloads) - kept)
        return kept

    def _ack_loan(self, loan: Loan, upto: int) -> None:
        """ACKs the loan's values ``acked``..``upto``-1 (they were handed out)."""
        pos = 0
        start = loan.acked
        if upto <= start:
            return
        for lo, hi in loan.ranges:
            end = pos + hi - lo
            if start < end and pos < upto:
                self._ack(lo + max(start, pos) - pos, lo + min(upto, end) - pos)
            pos = end
            if pos >= upto:
                break
        loan.acked = upto

    def stream_news(self) -> bool:
        """Prefetch window: whether a ``poll`` may now give something other than "wait"
        (a value in order, the end of the stream, or a lost session). For select's wait."""
        return bool(self._chunks and self._chunks[0][0] <= self._contig) \
            or self._stream_closed or self.state in (_LOST, _GONE)

    def bye(self) -> None:
        """Ends the session (handle released): pending ACKs, then BYE (§9.2, §12.4)."""
        for loan in self._loans:  # the values not handed out go back with the BYE
            self._keep_back(loan)
        self._loans.clear()
        if self.state == _OPEN:
            self._flush_acks()
            self._out.append(wire.header(wire.BYE, self.channel, 0))
        self._fail_all(PeerLost("zchan: handle released: peer lost"))
        self.state = _GONE

    # ----------------------------------------------------------------- internals

    def _usable(self) -> None:
        if self._stalled() or self.state in (_LOST, _GONE):
            raise self.lost_error or PeerLost("zchan: handle released: peer lost")
        if self.state == _DIALING:
            raise ZchanError("zchan: not dialed yet")

    def _stalled(self) -> bool:
        """§12.1: this process itself sent nothing for the timeout (it did not run). Not while
        resuming: nothing may be sent then, and the silence check of ``tick`` decides."""
        if self.state == _OPEN and self.clock() - self._last_sent >= self.timeout:
            self._lose("this process did not run for the timeout")
            return True
        return False

    def _request(self, kind: int, flags: int = 0, payload: bytes = b"", tag: int = 0) -> Request:
        if self._sw_batch:
            self._sw_flush_batch()  # one sender's values in order (§9.1)
        r = Request(kind, self._next_id, flags, payload)
        r.tag = tag
        self._next_id += 1
        self._pending[r.id] = r
        self._emit_request(self._frame_of(r))
        return r

    def _frame_of(self, r: Request) -> bytes:
        if r.kind == wire.SEND:
            return wire.send(self.channel, r.id, r.payload, r.flags)
        if r.kind == wire.POLL:  # payload: the cases (wire.poll_body)
            return wire.header(wire.POLL, self.channel, r.id) + r.payload
        if r.tag:  # §8.6.1: SELECT and the tag, on every (re-)send
            return (wire.header(r.kind, self.channel, r.id, r.flags | wire.F_SELECT)
                    + r.tag.to_bytes(8, "little"))
        return wire.header(r.kind, self.channel, r.id, r.flags)

    def _emit_request(self, frame: bytes) -> None:
        """Requests leave only on an open session; otherwise the resume re-sends them."""
        if self.state == _OPEN:
            self._flush_acks()
            self._out.append(frame)
            self._last_sent = self.clock()

    def _ack(self, lo: int, hi: int) -> None:
        """Deliveries lo..hi-1 were taken by user operations: ACK them (batched, §8.4)."""
        acks = self._acks
        if acks and acks[-1][1] == lo:
            acks[-1][1] = hi
        else:
            acks.append([lo, hi])
        self._acks_n += hi - lo
        # On an unbuffered channel the value's sender waits for this ACK
        # (the rendezvous, protocol.md §8.3): it leaves now.
        if self._acks_n >= wire.MAX_ACKS or self.capacity == 0:
            self._flush_acks()

    def _give_back(self, seq: int) -> None:
        """RETURN a delivery nobody wants (§8.4)."""
        self._flush_acks()  # keep resolutions in order
        self._unconfirmed.append((self._ping_nonce, wire.RETURN, seq, seq + 1))
        self._resolved_since_ping = True
        if self.state == _OPEN:
            self._out.append(wire.header(wire.RETURN, self.channel, seq))
            self._last_sent = self.clock()

    def _flush_acks(self) -> None:
        """The batched ACKs leave ahead of the next frame (§8.4), or at the next tick."""
        if not self._acks or self.state != _OPEN:
            return
        nonce, unconfirmed = self._ping_nonce, self._unconfirmed
        seqs: List[int] = []
        for lo, hi in self._acks:
            seqs += range(lo, hi)
            unconfirmed.append((nonce, wire.ACK, lo, hi))
        for i in range(0, len(seqs), wire.MAX_ACKS):
            self._out.append(wire.ack(self.channel, seqs[i:i + wire.MAX_ACKS]))
        self._acks, self._acks_n = [], 0
        self._resolved_since_ping = True
        self._last_sent = self.clock()

    def _ping(self) -> None:
        self._flush_acks()
        self._ping_nonce += 1
        self._resolved_since_ping = False
        self._out.append(wire.header(wire.PING, self.channel, self._ping_nonce))
        self._last_sent = self.clock()

    def _hello(self, resume: bool) -> None:
        self._hello_nonce = int.from_bytes(os.urandom(8), "little") or 1
        self._out.append(wire.hello(
            self._hello_nonce, self._name_b, self._type_b, self.instance_id, prefetch=self.opts.prefetch,
            send_window=self.opts.send_window,
            heartbeat_ms=self.opts.heartbeat_ms, create=self.opts.create, resume=resume))
        self._last_sent = self.clock()

    def _refill(self) -> None:
        """Keeps the prefetch window full (§9.2): RECV_MANY for what is missing, once at least
        half the window is, so that refills go in bulk (§8.8). Values lent to a range and not
        yet handed out are still in the window: it extends the capacity by P, not more."""
        if not self.window or self._stream_closed or self.state != _OPEN:
            return
        held = self._stream_n + self._queued
        for loan in self._loans:
            held += len(loan.left)
        want = self.window - held
        if want <= 0 or (want < (self.window + 1) // 2 and held):
            return
        first = self._next_id
        self._next_id += want
        runs = self._runs
        if runs and runs[-1][1] == first:
            runs[-1][1] += want
        else:
            runs.append([first, first + want])
        self._stream_n += want
        self._flush_acks()
        self._out.append(wire.recv_many(self.channel, first, want))
        self._last_sent = self.clock()

    def _arrived(self, seq: int) -> bool:
        """Records a delivery seq; False if it had arrived before (a second answer, §12.2)."""
        if seq == self._contig + 1 and not self._above:  # in order, the usual case
            self._contig = seq
            return True
        if seq <= self._contig or seq in self._above:
            return False
        self._above.add(seq)
        while self._contig + 1 in self._above:
            self._contig += 1
            self._above.discard(self._contig)
        return True

    def _in_stream(self, id_: int) -> bool:
        return any(lo <= id_ < hi for lo, hi in self._runs)

    def _stream_take(self, first: int, n: int = 1) -> bool:
        """Prefetch RECVs first..first+n-1 got their final answers: True if they all were
        waiting for one (then they are no longer), False (and nothing changes) otherwise."""
        end = first + n
        runs = self._runs
        for i, run in enumerate(runs):
            lo, hi = run
            if first < lo:
                return False
            if first < hi:
                if end > hi:
                    return False
                if first == lo:
                    if end == hi:
                        del runs[i]
                    else:
                        run[0] = end
                elif end == hi:
                    run[1] = first
                else:
                    run[1] = first
                    runs.insert(i + 1, [end, hi])
                self._stream_n -= n
                return True
        return False

    def _malformed(self, data: bytes) -> None:
        """§11.1: count and drop; a frame that answers one of our requests loses the session."""
        self.malformed += 1
        if len(data) >= 16 and self.state in (_OPEN, _RESUMING):
            id_ = wire.HEADER.unpack_from(data)[4]
            if id_ in self._pending or self._in_stream(id_):
                self._lose("the home answered a request with a malformed frame")

    def _lose(self, why: str) -> None:
        if self.state in (_LOST, _GONE):
            return
        self.lost_error = PeerLost(f"zchan: {why}: peer lost")
        self.state = _LOST
        self._chunks.clear()  # §12.5: these belong to the channel again
        self._queued = 0
        for loan in self._loans:
            loan.left.clear()  # not handed out after the loss either (§12.5)
        self._loans.clear()
        self._fail_all(self.lost_error)

    def _fail_all(self, err: ZchanError) -> None:
        for r in self._pending.values():
            if not r.final:
                r.error = err
        self._pending.clear()
        self._runs.clear()
        self._stream_n = 0

    def _finish(self, id_: int, answer: int) -> Optional[Request]:
        r = self._pending.pop(id_, None)
        if r is not None:
            r.answer = answer
        else:
            self._stream_take(id_)
        return r

    def _resend(self) -> None:
        """After a RESUME WELCOME (§12.2): resolutions first, then every request in id order."""
        seqs: List[int] = []  # consecutive ACKs share frames, in their order
        for _, type_, lo, hi in self._unconfirmed:
            if type_ == wire.ACK:
                seqs += range(lo, hi)
                continue
            for k in range(0, len(seqs), wire.MAX_ACKS):
                self._out.append(wire.ack(self.channel, seqs[k:k + wire.MAX_ACKS]))
            seqs = []
            self._out.append(wire.header(type_, self.channel, lo))
        for k in range(0, len(seqs), wire.MAX_ACKS):
            self._out.append(wire.ack(self.channel, seqs[k:k + wire.MAX_ACKS]))
        self._flush_acks()
        for _, frame in self._sw_inflight:  # credited values, before any request (§9.1)
            self._out.append(frame)
        if self._sw_revoked_unsent:
            self._sw_revoked_unsent = False
            self._out.append(wire.header(wire.REVOKED, self.channel, 0))
        # Requests in id order; the prefetch RECVs' runs as RECV_MANY (§12.2).
        todo: List[Tuple[int, Optional[Request]]] = [(lo, None) for lo, _ in self._runs]
        todo += self._pending.items()
        todo.sort(key=lambda t: t[0])
        runs = {lo: hi for lo, hi in self._runs}
        for id_, r in todo:
            if r is None:
                self._out.append(wire.recv_many(self.channel, id_, runs[id_] - id_))
                continue
            self._out.append(self._frame_of(r))
            if r.withdrawn:
                cancel = {wire.SEND: wire.CANCEL_SEND, wire.RECV: wire.CANCEL_RECV,
                          wire.WATCH_SEND: wire.CANCEL_WATCH}.get(r.kind)
                if cancel:
                    self._out.append(wire.header(cancel, self.channel, id_))
        self._ping()  # confirms the re-sent resolutions (§12.5)

    # ----------------------------------------------------------------- frame handlers

    def _on_welcome(self, f: wire.Frame) -> None:
        if f.id != self._hello_nonce:
            return  # a superseded HELLO's answer (§12.2)
        if self.state == _DIALING:
            self.channel, self.capacity = f.new_channel, f.capacity
            self.heartbeat, self.timeout = f.heartbeat_ms / 1000, f.timeout_ms / 1000
            self.max_frame = min(self.max_frame, f.max_frame)
            self.window = min(f.prefetch, self.opts.prefetch)
            # §9.1: W' <= W, and never on an unbuffered channel (a rendezvous needs the trip).
            self.send_window = min(f.send_window, self.opts.send_window) if f.capacity else 0
            self.home_instance = f.instance_id
            self.state = _OPEN
            self._last_sent = self._last_recv = self.clock()
            self._refill()
        elif self.state == _RESUMING:
            if f.flags & wire.F_RESUME and f.new_channel == self.channel \
                    and f.instance_id == self.home_instance:
                self.state = _OPEN
                self.resumes += 1
                self._resend()
            else:
                why = ("a resume answered by a new home instance (the home restarted)"
                       if f.instance_id != self.home_instance
                       else "a resume answered by a home that no longer knows the session")
                self._out.append(wire.header(wire.BYE, f.new_channel, 0))
                self._lose(why)

    def _on_error(self, f: wire.Frame) -> None:
        if self.state == _DIALING:
            if f.id != self._hello_nonce:
                return
            text = f"zchan: {f.text}"
            self.dial_error = {
                wire.E_TYPE_MISMATCH: lambda: TypeMismatch(text + ": type mismatch"),
                wire.E_UNKNOWN_CHANNEL: lambda: ConnectError(text + ": unknown channel"),
                wire.E_ACCESS_DENIED: lambda: AccessDenied(text + ": access denied"),
            }.get(f.code, lambda: ConnectError(f"{text} (error {f.code})"))()
            self.state = _GONE
            return
        if f.code == wire.E_UNKNOWN_SESSION:
            self.on_disconnected()
            return
        if f.code == wire.E_SHUTTING_DOWN:
            self._shutting_down()
            return
        r = self._pending.get(f.id)
        if r is None:
            # A prefetch RECV's error: nobody waits for it, the window refills.
            if self._stream_take(f.id) and f.code == wire.E_PROTOCOL:
                self._lose(f"the home reported a protocol error: {f.text}")
            return
        self._finish(f.id, wire.ERROR)
        r.error = {
            wire.E_ALREADY_CLOSED: lambda: ChannelClosed("zchan: close of a closed channel"),
            wire.E_DECODE: lambda: DecodeError(f"zchan: {f.text}: decode error"),
            wire.E_TOO_LARGE: lambda: MessageTooLarge(f"zchan: {f.text}: message too large"),
        }.get(f.code, lambda: TransportError(f"zchan: {f.text} (error {f.code})"))()
        if f.code == wire.E_PROTOCOL:
            self._lose(f"the home reported a protocol error: {f.text}")

    def _shutting_down(self) -> None:
        """§12.4: pending ACKs go out, queued deliveries come back newest first, then lost.
        Values a range took and did not hand out yet come back too (they are older)."""
        kept = [(loan, self._keep_back(loan)) for loan in self._loans]
        self._loans.clear()
        self._flush_acks()
        back = [(seq, seq + len(payloads) - i) for seq, payloads, i in self._chunks]
        for loan, k in kept:
            pos, first = 0, len(loan.payloads) - k
            for lo, hi in loan.ranges:
                a, b = max(pos, first), pos + hi - lo
                if a < b:
                    back.append((lo + a - pos, lo + b - pos))
                pos = b
        for lo, hi in sorted(back, reverse=True):
            for d in range(hi - 1, lo - 1, -1):
                self._out.append(wire.header(wire.RETURN, self.channel, d))
        self._chunks.clear()
        self._queued = 0
        self._lose("the home is shutting down")

    def _on_simple(self, f: wire.Frame) -> None:
        """SEND_*, READY, WATCH_CANCELLED, RECV_CANCELLED, EMPTY, CLOSE_OK, STATUS."""
        r = self._finish(f.id, f.type)
        if r is not None and f.type == wire.STATUS:
            r.length, r.capacity, r.closed = f.length, f.capacity, f.closed

    def _on_closed(self, f: wire.Frame) -> None:
        if self._stream_take(f.id):
            self._stream_closed = True
        else:
            self._finish(f.id, wire.CLOSED)

    def _on_values(self, f: wire.Frame) -> None:
        first, seq, payloads = f.id, f.seq, f.payloads
        if seq == self._contig + 1 and not self._above \
                and self._stream_take(first, len(payloads)):
            # The stream in order, the usual case: every entry is new, answers a prefetch RECV
            # and has all lower seqs before it, so it is queued as one chunk, ready.
            self._contig = seq + len(payloads) - 1
            self._enqueue(seq, payloads)
            return
        for i, payload in enumerate(payloads):
            rid, d = first + i, seq + i
            if not self._arrived(d):
                continue  # a second answer repeating the first (§12.2): drop it
            if self._stream_take(rid):
                self._enqueue(d, [payload])
                continue
            r = self._pending.pop(rid, None)
            if r is None:
                # A new delivery for a request already answered, withdrawn long ago or
                # unknown: the home ran a re-sent request again. Give it back (§8.4).
                self._give_back(d)
                continue
            r.answer = wire.VALUE
            if r.withdrawn:
                self._give_back(d)
            else:
                r.payload, r.delivery = payload, d

    def _enqueue(self, seq: int, payloads: List[bytes]) -> None:
        """Queues deliveries seq, seq+1, ... (all new) at their place in seq order."""
        chunks = self._chunks
        c = [seq, payloads, 0]
        if not chunks or chunks[-1][0] + len(chunks[-1][1]) - chunks[-1][2] <= seq:
            chunks.append(c)
        else:  # below a queued one: a value that came again after a resume (§12.2)
            k = 0
            while chunks[k][0] < seq:
                k += 1
            chunks.insert(k, c)
        self._queued += len(payloads)

    def _on_ping(self, f: wire.Frame) -> None:
        if self.state == _OPEN:
            self._flush_acks()
            self._out.append(wire.header(wire.PONG, f.channel, f.id))
            self._last_sent = self.clock()

    def _on_pong(self, f: wire.Frame) -> None:
        if f.id <= self._ping_nonce:
            self._unconfirmed = [u for u in self._unconfirmed if u[0] >= f.id]

    def _on_credit(self, f: wire.Frame) -> None:
        """CREDIT(granted, confirmed), both totals (§9.1 rule 1): keep the largest seen."""
        if not self.send_window:
            self.malformed += 1  # we asked for none, or were granted none: a violation
            return
        if not self._sw_revoked:  # no new credits after REVOKE
            self._sw_granted = max(self._sw_granted, f.id)
        self._sw_confirmed = max(self._sw_confirmed, min(f.confirmed, self._sw_next - 1))
        while self._sw_inflight and self._sw_inflight[0][0] <= self._sw_confirmed:
            self._sw_inflight.popleft()
        if self._sw_should_flush():
            self._sw_flush_batch()

    def _on_revoke(self, f: wire.Frame) -> None:
        """REVOKE (§9.1 rule 4): the channel closed. The batch leaves, then REVOKED."""
        if not self.send_window or self._sw_revoked:
            return
        if self._sw_batch:
            self._sw_flush_batch()
        self._sw_revoked = True
        if self.state == _OPEN:
            self._out.append(wire.header(wire.REVOKED, self.channel, 0))
            self._last_sent = self.clock()
        else:
            self._sw_revoked_unsent = True


_HANDLERS: Dict[int, Callable[[Engine, wire.Frame], None]] = {
    wire.WELCOME: Engine._on_welcome,
    wire.ERROR: Engine._on_error,
    wire.SEND_OK: Engine._on_simple,
    wire.SEND_CLOSED: Engine._on_simple,
    wire.SEND_FULL: Engine._on_simple,
    wire.SEND_CANCELLED: Engine._on_simple,
    wire.READY: Engine._on_simple,
    wire.WATCH_CANCELLED: Engine._on_simple,
    wire.RECV_CANCELLED: Engine._on_simple,
    wire.EMPTY: Engine._on_simple,
    wire.CLOSE_OK: Engine._on_simple,
    wire.STATUS: Engine._on_simple,
    wire.CLOSED: Engine._on_closed,
    wire.VALUE: Engine._on_values,
    wire.VALUES: Engine._on_values,
    wire.PING: Engine._on_ping,
    wire.PONG: Engine._on_pong,
    wire.CREDIT: Engine._on_credit,
    wire.REVOKE: Engine._on_revoke,
}

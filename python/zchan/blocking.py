"""The blocking driver: ``zchan.dial`` for scripts and threads.

Each handle has one background thread that waits on the socket's descriptors (and a wake-up
pipe) for at most heartbeat/4, then, under the handle's lock, pumps the link, ticks the engine
and wakes waiters. A user thread starts its request and pumps under the same lock (so a request
leaves without a thread hop), then waits on an event its handle's listeners set.

Thread safety: a handle may be used from several threads at once; every engine and socket
access holds the handle's lock. ``select`` may mix handles.
"""

from __future__ import annotations

import os
import select as _select
import threading
import time
from typing import Any, Iterator, Optional, Sequence

from . import ops
from .codec import Codec
from .handle import HandleBase
from .values import CLOSED, Value


def _drive(op: ops.Op, chans: Sequence[HandleBase]) -> Any:
    try:
        next(op)  # most operations end here: nothing to wait for, no event to make
    except StopIteration as e:
        return e.value
    ev = threading.Event()
    for c in chans:
        with c._guard():
            c._listeners.add(ev.set)
    try:
        deadline = op.send(None)  # look again, now that a change would set ev
        while True:
            ev.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
            ev.clear()
            deadline = op.send(None)
    except StopIteration as e:
        return e.value
    finally:
        for c in chans:
            with c._guard():
                c._listeners.discard(ev.set)


class Channel(HandleBase):
    """A remote channel handle (blocking). See ``zchan.dial``."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._lock = threading.RLock()
        self._stop = False
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name=f"zchan {self.name}", daemon=True)
        self._thread.start()

    def _guard(self) -> Any:
        return self._lock

    def _run(self) -> None:
        last_tick = time.monotonic()
        fds = list(self.link.fds) + [self._wake_r]
        while not self._stop:
            period = self.engine.next_tick()
            left = max(0.0, last_tick + period - time.monotonic())
            ready, _, _ = _select.select(fds, [], [], left)
            if self._wake_r in ready:
                os.read(self._wake_r, 64)
            with self._lock:
                if self._stop:
                    return
                now = time.monotonic()
                if now - last_tick >= period:
                    last_tick = now
                    self.engine.tick()
                self._pump()

    # ----------------------------------------------------------------- the API

    def send(self, value: Any, timeout: Optional[float] = None) -> None:
        """Sends ``value``; returns once the home accepted it (Go's ``ch <- v``), or, with a
        send window credit (protocol.md §9.1), once it is handed to the socket (see ``flush``).

        Raises ChannelClosed, Timeout (the home confirmed the cancel), PeerLost.
        """
        payload = self.codec.dumps(value)
        if self.engine.send_window:  # ops.send's first step, without its generator
            with self._lock:
                if ops.send_credited(self, payload):
                    return
        _drive(ops.send(self, payload, timeout), [self])

    def flush(self, timeout: Optional[float] = None) -> None:
        """Send window (``send_window``, protocol.md §9.1): blocks until the home confirmed
        every value this handle sent with a credit, i.e. each is in the channel (or already
        received); a credited send itself returns once its value is handed to the socket.
        Confirmation needs no receiver: the value has a reserved slot. Returns None at once
        without a window or with nothing unconfirmed.

        Raises Timeout after ``timeout`` seconds (the values are still on their way; flush
        again), PeerLost if the session is lost: then ``unconfirmed_sends`` values may be lost.
        (The C++ ``flush()``/``flush_for()`` return ok, timeout or peer_lost.)
        """
        _drive(ops.flush(self, timeout), [self])

    def __lshift__(self, value: Any) -> "Channel":
        """``ch << v``: send, as in the seed article."""
        self.send(value)
        return self

    def recv(self, timeout: Optional[float] = None) -> Any:
        """The next value, or ``zchan.CLOSED`` once the channel is closed and drained.

        Raises Timeout, PeerLost, DecodeError.
        """
        done, v = ops.queued(self)
        return v if done else _drive(ops.recv(self, timeout), [self])

    def _receive_into(self, v: Value) -> bool:
        v.value = self.recv()
        return v.ok

    def __iter__(self) -> Iterator[Any]:
        """``for v in ch``: Go's range; ends when the channel is closed and drained.

        With a prefetch window it takes what is queued in batches (one lock per batch) and
        hands the values out one by one; each is ACKed only once handed out, so a loop that
        stops early leaves the rest of its batch queued (protocol.md §8.4)."""
        if self.engine.window:
            loan = None
            try:
                while True:
                    with self._lock:
                        if loan is not None:
                            self.engine.end_loan(loan)
                        loan = self.engine.lend(256)
                        self._flush()
                    if loan is None:
                        v = self.recv()
                        if v is CLOSED:
                            return
                        yield v
                        continue
                    yield from ops.hand_out(loan, self.codec)
            finally:
                if loan is not None:  # stopped early: the rest is queued again, for anyone
                    with self._lock:
                        self.engine.end_loan(loan)
                        self._changed()
        while (v := self.recv()) is not CLOSED:
            yield v

    def close(self) -> None:
        """Closes the channel (Go's ``close(ch)``); raises ChannelClosed if it was closed.
        With a send window it flushes first (waits for the credited values' confirmation)."""
        _drive(ops.close(self), [self])

    def __len__(self) -> int:
        """Values in the channel now (a QUERY round trip, protocol.md §8.7)."""
        return _drive(ops.query(self), [self]).length

    def is_closed(self) -> bool:
        return _drive(ops.query(self), [self]).closed

    def disconnect(self) -> None:
        """Releases the handle: BYE, so the home takes back undelivered prefetched values.
        With a send window it first waits, at most the heartbeat timeout, for the credited
        values' confirmation, and reports on stderr how many were not confirmed (§9.1)."""
        if not self._stop and self.engine.unconfirmed:
            if self.engine.is_open:
                try:
                    self.flush(self.engine.timeout)
                except Exception:
                    pass
            self._report_unconfirmed()
        with self._lock:
            if self._stop:
                return
            self._stop = True
            os.write(self._wake_w, b"x")
        self._thread.join()
        self.link.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def __enter__(self) -> "Channel":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.disconnect()


def dial(endpoint: str, name: str, codec: Codec, *, timeout: float = 5.0, prefetch: int = 0,
         heartbeat_ms: int = 0, create: Optional[int] = None, send_window: int = 0,
         **kw: Any) -> Channel:
    """Dials channel ``name`` served at ``endpoint``, carrying ``codec`` values.

    prefetch: the receive window (protocol.md §9.2; 0 = exact Go semantics). send_window: ask
    for up to this many send credits (§9.1; 0 = exact): a send with a credit returns once the
    value is handed to the socket, ``flush()`` waits for the home's confirmation, ``close()``
    flushes first; capacity stays exact; none on an unbuffered channel. create: on a hub,
    create the channel with this capacity if it does not exist (§17.1). heartbeat_ms: preferred
    heartbeat (0 = the home's). CURVE: ``curve=zchan.security.client(...)``, or the
    ZCHAN_CURVE_* environment variables. Raises ConnectError (AccessDenied), TypeMismatch.
    """
    ch = Channel(endpoint, name, codec, prefetch=prefetch, heartbeat_ms=heartbeat_ms,
                 create=create, send_window=send_window, **kw)
    try:
        _drive(ops.dial(ch, timeout), [ch])
    except BaseException:
        ch.disconnect()
        raise
    return ch


def select(*cases: Any, default: bool = False, timeout: Optional[float] = None) -> Any:
    """Go's select over ``zchan.Recv(ch)`` and ``zchan.Send(ch, v)`` cases.

    Returns ``(index, value)`` (value: received value or CLOSED; None for a send), or
    ``(None, None)`` with ``default=True`` when nothing is ready. Raises Timeout.
    """
    chans = list({id(c.ch): c.ch for c in cases}.values())
    return _drive(ops.select(cases, default, timeout), chans)

"""The asyncio driver: ``await zchan.aio.dial(...)``.

A handle registers its socket's descriptors with the running loop (``add_reader``) and a
timer every heartbeat/4; both pump the link and wake waiters. Operations are the same
generators as the blocking driver's (``zchan.ops``), awaited on an ``asyncio.Event``.

Example (the seed article's arrow notation)::

    ch = await zchan.aio.dial("tcp://127.0.0.1:5555", "numbers", zchan.I32)
    await (ch << 23)
    v = zchan.Value()
    while await (v << ch):
        print(v)

Thread safety: a handle belongs to the event loop it was dialed on; use it from that loop only.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Optional, Sequence

from . import ops
from .codec import Codec
from .handle import HandleBase
from .values import CLOSED, Recv, Send, Value

__all__ = ["dial", "select", "Channel", "Recv", "Send", "Value", "CLOSED"]


async def _drive(op: ops.Op, chans: Sequence[HandleBase]) -> Any:
    try:
        next(op)  # most operations end here: nothing to wait for, no event to make
    except StopIteration as e:
        return e.value
    ev = asyncio.Event()
    for c in chans:
        c._listeners.add(ev.set)
    try:
        deadline = op.send(None)  # the same loop iteration: nothing changed, but be uniform
        while True:
            if deadline is None:
                await ev.wait()
            else:
                try:
                    await asyncio.wait_for(ev.wait(), max(0.0, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    pass
            ev.clear()
            deadline = op.send(None)
    except StopIteration as e:
        return e.value
    finally:
        for c in chans:
            c._listeners.discard(ev.set)


class Channel(HandleBase):
    """A remote channel handle (asyncio). See ``zchan.aio.dial``."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._loop = asyncio.get_running_loop()
        for fd in self.link.fds:
            self._loop.add_reader(fd, self._pump)
        self._timer: Optional[asyncio.TimerHandle] = None
        self._closed_handle = False
        self._schedule()
        self._loop.call_soon(self._pump)

    def _schedule(self) -> None:
        self._timer = self._loop.call_later(self.engine.next_tick(), self._tick)

    def _tick(self) -> None:
        self.engine.tick()
        self._pump()
        self._schedule()

    async def send(self, value: Any, timeout: Optional[float] = None) -> None:
        """Sends ``value``; returns once the home accepted it (Go's ``ch <- v``), or, with a
        send window credit (protocol.md §9.1), once it is handed to the socket (see ``flush``).

        Raises ChannelClosed, Timeout (the home confirmed the cancel), PeerLost.
        """
        await _drive(ops.send(self, self.codec.dumps(value), timeout), [self])

    async def flush(self, timeout: Optional[float] = None) -> None:
        """Send window (``send_window``, protocol.md §9.1): blocks until the home confirmed
        every value this handle sent with a credit, i.e. each is in the channel (or already
        received); a credited send itself returns once its value is handed to the socket.
        Confirmation needs no receiver: the value has a reserved slot. Returns None at once
        without a window or with nothing unconfirmed.

        Raises Timeout after ``timeout`` seconds (the values are still on their way; flush
        again), PeerLost if the session is lost: then ``unconfirmed_sends`` values may be lost.
        (The C++ ``flush()``/``flush_for()`` return ok, timeout or peer_lost.)
        """
        await _drive(ops.flush(self, timeout), [self])

    def __lshift__(self, value: Any) -> Any:
        """``await (ch << v)``: send, as in the seed article."""
        return self.send(value)

    async def recv(self, timeout: Optional[float] = None) -> Any:
        """The next value, or ``zchan.CLOSED`` once the channel is closed and drained.

        Raises Timeout, PeerLost, DecodeError.
        """
        done, v = ops.queued(self)
        return v if done else await _drive(ops.recv(self, timeout), [self])

    async def _receive_into(self, v: Value) -> bool:
        v.value = await self.recv()
        return v.ok

    async def __aiter__(self) -> AsyncIterator[Any]:
        """``async for v in ch``: Go's range; ends when the channel is closed and drained.

        With a prefetch window it takes what is queued in batches and hands the values out one
        by one; each is ACKed only once handed out, so a loop that stops early leaves the rest
        of its batch queued (protocol.md §8.4)."""
        if self.engine.window:
            loan = None
            try:
                while True:
                    if loan is not None:
                        self.engine.end_loan(loan)
                    loan = self.engine.lend(256)
                    self._flush()
                    if loan is None:
                        v = await self.recv()
                        if v is CLOSED:
                            return
                        yield v
                        continue
                    for v in ops.hand_out(loan, self.codec):
                        yield v
            finally:
                if loan is not None:  # stopped early: the rest is queued again, for anyone
                    self.engine.end_loan(loan)
                    self._changed()
        while (v := await self.recv()) is not CLOSED:
            yield v

    async def close(self) -> None:
        """Closes the channel (Go's ``close(ch)``); raises ChannelClosed if it was closed.
        With a send window it flushes first (waits for the credited values' confirmation)."""
        await _drive(ops.close(self), [self])

    async def len(self) -> int:
        """Values in the channel now (a QUERY round trip, protocol.md §8.7)."""
        return (await _drive(ops.query(self), [self])).length

    async def is_closed(self) -> bool:
        return (await _drive(ops.query(self), [self])).closed

    async def disconnect(self) -> None:
        """Releases the handle: BYE, so the home takes back undelivered prefetched values."""
        if self._closed_handle:
            return
        if self.engine.unconfirmed:
            if self.engine.is_open:
                try:  # at most the heartbeat timeout, as the blocking handle (§9.1)
                    await self.flush(self.engine.timeout)
                except Exception:
                    pass
            self._report_unconfirmed()
        self._closed_handle = True
        if self._timer is not None:
            self._timer.cancel()
        for fd in self.link.fds:
            self._loop.remove_reader(fd)
        self.link.close()

    async def __aenter__(self) -> "Channel":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.disconnect()


async def dial(endpoint: str, name: str, codec: Codec, *, timeout: float = 5.0, prefetch: int = 0,
               heartbeat_ms: int = 0, create: Optional[int] = None, send_window: int = 0,
               **kw: Any) -> Channel:
    """As ``zchan.dial`` (``send_window`` included), on the running event loop."""
    ch = Channel(endpoint, name, codec, prefetch=prefetch, heartbeat_ms=heartbeat_ms,
                 create=create, send_window=send_window, **kw)
    try:
        await _drive(ops.dial(ch, timeout), [ch])
    except BaseException:
        await ch.disconnect()
        raise
    return ch


async def select(*cases: Any, default: bool = False, timeout: Optional[float] = None) -> Any:
    """As ``zchan.select``: ``(index, value)``, ``(None, None)`` for default; raises Timeout."""
    chans = list({id(c.ch): c.ch for c in cases}.values())
    return await _drive(ops.select(cases, default, timeout), chans)

"""What both drivers' channel handles share: the engine, the link, the codec, listeners.

Thread safety: see the drivers; ``_listeners`` is changed and called only under the driver's
guard (the blocking handle's lock, or the event loop's thread).
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable, ContextManager, Optional, Set

from . import security
from .codec import Codec
from .engine import Engine, Options
from .link import Link


class HandleBase:
    """A dialed channel: ``name`` at ``endpoint``, values encoded with ``codec``."""

    def __init__(self, endpoint: str, name: str, codec: Codec, *, prefetch: int = 0,
                 heartbeat_ms: int = 0, create: Optional[int] = None, send_window: int = 0,
                 curve: Optional[security.Curve] = None, use_env: bool = True) -> None:
        if curve is None and use_env:
            curve = security.from_env()
        self.endpoint, self.name, self.codec = endpoint, name, codec
        self.engine = Engine(name, codec.name, Options(prefetch, heartbeat_ms, create,
                                                             send_window=send_window))
        self.link = Link(endpoint, self.engine, curve)
        self._listeners: Set[Callable[[], None]] = set()

    def _guard(self) -> ContextManager[Any]:
        return contextlib.nullcontext()

    def _pump(self) -> None:
        """Under the guard: frames out and in, then wake every waiter."""
        self.link.pump()
        self._changed()

    def _flush(self) -> None:
        """Under the guard: sends what the engine has, if anything (the fast path of a receive
        that found its value queued: the driver's reader or thread takes care of input)."""
        if self.engine._out:
            self._pump()

    def _changed(self) -> None:
        for cb in list(self._listeners):
            cb()

    @property
    def cap(self) -> int:
        """The channel's capacity, from WELCOME (0 = unbuffered)."""
        self.engine._usable()
        return self.engine.capacity

    @property
    def prefetch(self) -> int:
        """The prefetch window the home granted (protocol.md §9.2)."""
        return self.engine.window

    @property
    def send_window(self) -> int:
        """The send window the home granted (protocol.md §9.1; 0: every send is exact)."""
        return self.engine.send_window

    @property
    def unconfirmed_sends(self) -> int:
        """Values sent with a credit and not yet confirmed by the home (§9.1): after a
        PeerLost, at most this many of them may be lost."""
        with self._guard():
            return self.engine.unconfirmed

    def _report_unconfirmed(self) -> None:
        """At disconnect, as the reference peer's destructor: say what was not confirmed."""
        n = self.engine.unconfirmed
        if n:
            why = str(self.engine.lost_error) if self.engine.lost_error else \
                "no confirmation in time"
            print(f"zchan: a handle of {self.name!r} was disconnected with {n} sent values not "
                  f"confirmed by the home ({why})", file=sys.stderr)

    @property
    def malformed_frames(self) -> int:
        """Frames from the home that were invalid and dropped (protocol.md §11.1)."""
        return self.engine.malformed

    def __repr__(self) -> str:
        return f"<zchan channel {self.name!r} at {self.endpoint} ({self.codec.name})>"

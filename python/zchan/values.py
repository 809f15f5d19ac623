"""What a receive gives back, the seed article's value holder, and select's cases.

``CLOSED`` is the one closed-and-drained result (Go's ``v, ok := <-ch`` with ok false): every
receive (``recv``, ``Value << ch``, a select's receive case) returns it, none raises for it;
iteration ends on it. Send on a closed channel and close of a closed one raise
``ChannelClosed`` (Go panics there).

Thread safety: ``CLOSED`` is immutable; a ``Value`` is a plain holder, not synchronised.
"""

from __future__ import annotations

from typing import Any


class _Closed:
    """The type of ``CLOSED``; false in a boolean context."""

    _instance = None

    def __new__(cls) -> "_Closed":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "zchan.CLOSED"

    def __reduce__(self) -> str:
        return "CLOSED"


CLOSED: Any = _Closed()


class Value:
    """A holder for ``v << ch`` (blocking) and ``await (v << ch)`` (asyncio), as in the seed.

    After a receive, ``v.value`` is the value received or ``CLOSED``, and ``v.ok`` says
    whether it is a value; the expression itself evaluates to ``v.ok``, so
    ``while await (v << ch): print(v)`` ranges over a channel.
    """

    def __init__(self, value: Any = None) -> None:
        self.value = value

    @property
    def ok(self) -> bool:
        return self.value is not CLOSED

    def __lshift__(self, ch: Any) -> Any:
        return ch._receive_into(self)

    def __str__(self) -> str:
        return str(self.value)

    def __repr__(self) -> str:
        return f"Value({self.value!r})"


class Recv:
    """A select case: receive from ``ch``. Select returns ``(index, value or CLOSED)``."""

    def __init__(self, ch: Any) -> None:
        self.ch = ch


class Send:
    """A select case: send ``value`` on ``ch``. Select returns ``(index, None)``."""

    def __init__(self, ch: Any, value: Any) -> None:
        self.ch = ch
        self.value = value
        self.payload = ch.codec.dumps(value)

"""The exceptions zchan raises, mirroring the C++ ones (include/zchan/errors.hpp).

Closed, timed out and peer lost are three different results (protocol.md §11.3), so they are
three unrelated exception classes; a closed-and-drained *receive* is not an exception at all
but the sentinel ``zchan.CLOSED`` (see ``zchan.values``).

Thread safety: plain exception classes.
"""

from __future__ import annotations


class ZchanError(Exception):
    """Base of every zchan exception."""


class ChannelClosed(ZchanError):
    """Send on a closed channel, or close of a closed one (Go panics in both cases)."""


class Timeout(ZchanError, TimeoutError):
    """The caller's own deadline passed (for a send: the home confirmed the cancel, §8.5)."""


class TransportError(ZchanError):
    """A failure of the connection or of the other side."""


class PeerLost(TransportError):
    """The home is gone: silent past the timeout, shutting down, or restarted (§11.3)."""


class ConnectError(TransportError):
    """Dial failed: no answer in time, unknown channel, unsupported version."""


class AccessDenied(ConnectError):
    """The CURVE handshake was refused (protocol.md §14.3)."""


class TypeMismatch(TransportError):
    """The home serves the channel with another type identity (§7.2 step 4)."""


class DecodeError(TransportError):
    """A payload did not decode as the channel's type (§13)."""


class MessageTooLarge(TransportError):
    """A value does not fit in the home's maximum frame (§6.4); nothing was sent."""

"""zchan for Python: Go channels across processes, a peer of zchan's C++ homes and hubs.

Written from docs/protocol.md (ZCHAN/1). Blocking API here, asyncio API in ``zchan.aio``::

    import zchan
    ch = zchan.dial("tcp://127.0.0.1:5555", "jobs", zchan.String)
    ch << "hello"                 # send (returns once the home accepted it)
    for v in ch:                  # range: ends once closed and drained
        print(v)

A receive returns ``zchan.CLOSED`` (never raises) when the channel is closed and drained.
Closed, timed out and peer lost are different results: ``ChannelClosed``, ``Timeout``,
``PeerLost``.
"""

from . import aio, security
from .blocking import Channel, dial, select
from .codec import (F32, F64, I8, I16, I32, I64, U8, U16, U32, U64, Array, Bool, Bytes, Codec, Map,
                    Optional, Pair, String, Struct, Tuple, Vector)
from .errors import (AccessDenied, ChannelClosed, ConnectError, DecodeError, MessageTooLarge,
                     PeerLost, Timeout, TransportError, TypeMismatch, ZchanError)
from .values import CLOSED, Recv, Send, Value

__version__ = "0.1.0"

__all__ = [
    "aio", "security", "Channel", "dial", "select", "CLOSED", "Recv", "Send", "Value",
    "Codec", "Bool", "Bytes", "String", "I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64",
    "F32", "F64", "Vector", "Array", "Map", "Optional", "Pair", "Tuple", "Struct",
    "ZchanError", "ChannelClosed", "Timeout", "TransportError", "PeerLost", "ConnectError",
    "AccessDenied", "TypeMismatch", "DecodeError", "MessageTooLarge",
]

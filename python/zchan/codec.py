"""Value codecs: cereal's binary layout (protocol.md §13) and zchan's type identities (§7.4).

A codec is an object with ``name`` (the identity ``zchan::type_name<T>`` gives the matching C++
type), ``encode(value, out)`` appending to a bytearray, and ``decode(reader)``. Build composite
codecs from the primitives::

    zchan.Vector(zchan.I32)                          # std::vector<std::int32_t>, "vector<i32>"
    zchan.Struct("myapp.job/1", [("id", zchan.I64), ("name", zchan.String)])

Invariant (allocation bound, as the C++ decoder): a size tag is checked against the octets left
in the payload *before* anything is sized from it, and a container may not claim more elements
than octets left; nesting is bounded (256 items, like the reference). So no length on the wire
makes Python allocate more than the frame could hold.

Thread safety: codecs are immutable; safe from any thread.
"""

from __future__ import annotations

import struct
from typing import Any, Dict, List, Optional, Sequence, Tuple as _Tuple

from .errors import DecodeError

MAX_DEPTH = 256


class Reader:
    """A bounded cursor over one payload."""

    __slots__ = ("buf", "pos", "depth")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0
        self.depth = 0

    def left(self) -> int:
        return len(self.buf) - self.pos

    def take(self, n: int) -> bytes:
        if n > self.left():
            raise DecodeError("zchan: value truncated: decode error")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def size(self, min_elem: int) -> int:
        """A uint64 size tag, checked against the octets left before use (§13)."""
        n = _U64.unpack(self.take(8))[0]
        if n > self.left() or n * min_elem > self.left():
            raise DecodeError("zchan: size tag larger than the bytes left: decode error")
        return n

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise DecodeError("zchan: value nested too deeply: decode error")


_U64 = struct.Struct("<Q")


class Codec:
    """Base class: ``name``, ``encode``, ``decode`` and ``min_size`` (octets per element)."""

    name: str = ""
    min_size: int = 1

    def encode(self, value: Any, out: bytearray) -> None:
        raise NotImplementedError

    def decode(self, r: Reader) -> Any:
        raise NotImplementedError

    def dumps(self, value: Any) -> bytes:
        out = bytearray()
        self.encode(value, out)
        return bytes(out)

    def loads(self, payload: bytes) -> Any:
        """Decodes exactly one value; trailing octets are a decode error (§13)."""
        r = Reader(payload)
        try:
            v = self.decode(r)
        except (struct.error, UnicodeDecodeError, ValueError) as e:
            raise DecodeError(f"zchan: {e}: decode error") from None
        if r.left():
            raise DecodeError("zchan: trailing octets after the value: decode error")
        return v

    def loads_many(self, payloads: List[bytes]) -> Optional[List[Any]]:
        """Decodes a batch (a range takes queued values in batches); None if a payload does
        not decode, and the caller decodes them one by one so that the error comes with that
        value, after the ones before it."""
        try:
            return [self.loads(p) for p in payloads]
        except DecodeError:
            return None

    def __repr__(self) -> str:
        return f"<zchan codec {self.name}>"


class _Scalar(Codec):
    def __init__(self, name: str, fmt: str, lo: float | None = None, hi: float | None = None):
        self.name = name
        self._s = struct.Struct("<" + fmt)
        self.min_size = self._s.size
        self._lo, self._hi = lo, hi

    def encode(self, value: Any, out: bytearray) -> None:
        if self._lo is not None and not (isinstance(value, int) and self._lo <= value <= self._hi):
            raise ValueError(f"zchan: {value!r} does not fit {self.name}")
        out += self._s.pack(value)

    def decode(self, r: Reader) -> Any:
        return self._s.unpack(r.take(self._s.size))[0]


def _int(bits: int, signed: bool) -> _Scalar:
    fmt = {8: "b", 16: "h", 32: "i", 64: "q"}[bits]
    lo, hi = (-(1 << bits - 1), (1 << bits - 1) - 1) if signed else (0, (1 << bits) - 1)
    return _Scalar(("i" if signed else "u") + str(bits), fmt if signed else fmt.upper(), lo, hi)


I8, I16, I32, I64 = (_int(b, True) for b in (8, 16, 32, 64))
U8, U16, U32, U64 = (_int(b, False) for b in (8, 16, 32, 64))
F32 = _Scalar("f32", "f")
F64 = _Scalar("f64", "d")


class _Bool(Codec):
    name = "bool"

    def encode(self, value: Any, out: bytearray) -> None:
        out.append(1 if value else 0)

    def decode(self, r: Reader) -> bool:
        b = r.take(1)[0]
        if b > 1:
            raise DecodeError("zchan: invalid bool: decode error")  # as the reference decoder
        return b == 1


class _String(Codec):
    """std::string <-> str. Octets that are not UTF-8 survive a round trip (surrogateescape)."""

    name = "string"
    min_size = 8

    def encode(self, value: Any, out: bytearray) -> None:
        b = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else bytes(value)
        out += _U64.pack(len(b))
        out += b

    def decode(self, r: Reader) -> str:
        r.enter()
        n = r.size(1)
        s = r.take(n).decode("utf-8", "surrogateescape")
        r.depth -= 1
        return s

    def loads(self, payload: bytes) -> str:
        """The common case without a Reader: one size tag, then exactly that many octets."""
        if len(payload) < 8 or _U64.unpack_from(payload)[0] != len(payload) - 8:
            return super().loads(payload)  # reports the precise error
        return payload[8:].decode("utf-8", "surrogateescape")

    def loads_many(self, payloads: List[bytes]) -> Optional[List[Any]]:
        """Strings of one length (a stream of one kind of value, the common case): every size
        tag is checked at once, octet by octet, with strided slices of the joined payloads."""
        m = len(payloads[0]) if payloads else 0
        if m >= 8 and len(set(map(len, payloads))) == 1:
            joined, tag, n = b"".join(payloads), _U64.pack(m - 8), len(payloads)
            if all(joined[k::m] == tag[k:k + 1] * n for k in range(8)):
                return [p[8:].decode("utf-8", "surrogateescape") for p in payloads]
        return super().loads_many(payloads)


class _Bytes(Codec):
    """std::vector<std::uint8_t> <-> bytes."""

    name = "vector<u8>"
    min_size = 8

    def encode(self, value: Any, out: bytearray) -> None:
        b = bytes(value)
        out += _U64.pack(len(b))
        out += b

    def decode(self, r: Reader) -> bytes:
        r.enter()
        b = r.take(r.size(1))
        r.depth -= 1
        return b


Bool, String, Bytes = _Bool(), _String(), _Bytes()


class Vector(Codec):
    """std::vector<T> <-> list (``Bytes`` is the bytes-valued vector<u8>)."""

    min_size = 8

    def __init__(self, elem: Codec, kind: str = "vector") -> None:
        self.elem = elem
        self.name = f"{kind}<{elem.name}>"

    def encode(self, value: Any, out: bytearray) -> None:
        items = list(value)
        out += _U64.pack(len(items))
        for v in items:
            self.elem.encode(v, out)

    def decode(self, r: Reader) -> List[Any]:
        r.enter()
        n = r.size(max(self.elem.min_size, 1))
        items = [self.elem.decode(r) for _ in range(n)]
        r.depth -= 1
        return items


class Array(Codec):
    """std::array<T,N> <-> list of exactly N: the elements, with no size tag."""

    def __init__(self, elem: Codec, n: int) -> None:
        self.elem, self.n = elem, n
        self.name = f"array<{elem.name},{n}>"
        self.min_size = elem.min_size * n

    def encode(self, value: Any, out: bytearray) -> None:
        items = list(value)
        if len(items) != self.n:
            raise ValueError(f"zchan: {self.name} needs {self.n} elements")
        for v in items:
            self.elem.encode(v, out)

    def decode(self, r: Reader) -> List[Any]:
        r.enter()
        items = [self.elem.decode(r) for _ in range(self.n)]
        r.depth -= 1
        return items


class Map(Codec):
    """std::map<K,V> <-> dict."""

    min_size = 8

    def __init__(self, key: Codec, value: Codec) -> None:
        self.key, self.value = key, value
        self.name = f"map<{key.name},{value.name}>"

    def encode(self, value: Any, out: bytearray) -> None:
        out += _U64.pack(len(value))
        for k in sorted(value):
            self.key.encode(k, out)
            self.value.encode(value[k], out)

    def decode(self, r: Reader) -> Dict[Any, Any]:
        r.enter()
        n = r.size(max(self.key.min_size + self.value.min_size, 1))
        d = {}
        for _ in range(n):
            k = self.key.decode(r)
            d[k] = self.value.decode(r)
        r.depth -= 1
        return d


class Optional(Codec):
    """std::optional<T> <-> value or None: cereal's "nullopt" flag (1 = empty, 0 = a value
    follows; the reverse of unique_ptr's), then the value if there is one."""

    min_size = 1

    def __init__(self, elem: Codec) -> None:
        self.elem = elem
        self.name = f"optional<{elem.name}>"

    def encode(self, value: Any, out: bytearray) -> None:
        out.append(1 if value is None else 0)
        if value is not None:
            self.elem.encode(value, out)

    def decode(self, r: Reader) -> Any:
        r.enter()
        v = None if Bool.decode(r) else self.elem.decode(r)
        r.depth -= 1
        return v


class Tuple(Codec):
    """std::tuple<A...> (or std::pair with ``kind="pair"``) <-> tuple: the fields in order."""

    def __init__(self, *elems: Codec, kind: str = "tuple") -> None:
        self.elems = elems
        self.name = f"{kind}<{','.join(e.name for e in elems)}>"
        self.min_size = sum(e.min_size for e in elems)

    def encode(self, value: Any, out: bytearray) -> None:
        if len(value) != len(self.elems):
            raise ValueError(f"zchan: {self.name} needs {len(self.elems)} fields")
        for c, v in zip(self.elems, value):
            c.encode(v, out)

    def decode(self, r: Reader) -> _Tuple[Any, ...]:
        r.enter()
        t = tuple(c.decode(r) for c in self.elems)
        r.depth -= 1
        return t


def Pair(a: Codec, b: Codec) -> Tuple:
    return Tuple(a, b, kind="pair")


class Struct(Codec):
    """A C++ struct with ``zchan_type_name`` = ``name`` whose ``serialize`` writes ``fields``
    in this order. Decodes to a dict; encodes a mapping or an object with those attributes."""

    def __init__(self, name: str, fields: Sequence[_Tuple[str, Codec]]) -> None:
        self.name = name
        self.fields = list(fields)
        self.min_size = sum(c.min_size for _, c in self.fields)

    def encode(self, value: Any, out: bytearray) -> None:
        get = value.__getitem__ if isinstance(value, dict) else value.__getattribute__
        for f, c in self.fields:
            c.encode(get(f), out)

    def decode(self, r: Reader) -> Dict[str, Any]:
        r.enter()
        d = {f: c.decode(r) for f, c in self.fields}
        r.depth -= 1
        return d

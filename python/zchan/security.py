"""CurveZMQ for dialers: the same key files and ZCHAN_CURVE_* variables as the C++ side
(src/security.cpp, README "Security", protocol.md §14).

A key file holds one Z85 key (40 characters) on a line; ``#`` starts a comment. A secret key
file that group or others may access is refused, as the reference refuses it.

Thread safety: stateless functions; safe from any thread.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Optional

import zmq
from zmq.utils import z85 as _z85

from .errors import ZchanError


class CurveKeyError(ZchanError):
    """A missing, malformed or unsafe key (the C++ ``zchan::curve::key_error``)."""


@dataclass(frozen=True)
class Curve:
    """A dialer's CURVE settings: its keypair and the home's public key, all Z85."""

    secret_key: str
    public_key: str
    server_key: str


def _check(z85: str, what: str) -> str:
    if len(z85) != 40:
        raise CurveKeyError(f"zchan: {what}: malformed CURVE key (expected 40 Z85 characters)")
    try:
        _z85.decode(z85.encode())
    except Exception:
        raise CurveKeyError(f"zchan: {what}: malformed CURVE key") from None
    return z85


def load_key(path: str, secret: bool = False) -> str:
    """The one key in ``path``; a secret key file must not be group/other accessible."""
    try:
        st = os.stat(path)
        with open(path, encoding="ascii") as f:
            text = f.read(1 << 16)
    except OSError as e:
        raise CurveKeyError(f"zchan: cannot read {path}: {e.strerror}") from None
    if secret and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CurveKeyError(f"zchan: secret key file {path} is accessible by group or others; "
                        f"run: chmod 600 {path}")
    keys = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if len(keys) != 1:
        raise CurveKeyError(f"zchan: {path} must hold exactly one key")
    return _check(keys[0], path)


def client(secret_key: str, server_key: str) -> Curve:
    """CURVE settings from Z85 keys (the client's secret key, the home's public key)."""
    _check(secret_key, "secret key")
    _check(server_key, "server key")
    return Curve(secret_key, zmq.curve_public(secret_key.encode()).decode(), server_key)


def _pick(name: str) -> Optional[str]:
    inline = os.environ.get(name, "")
    path = os.environ.get(name + "_FILE", "")
    if inline and path:
        raise CurveKeyError(f"zchan: set {name} or {name}_FILE, not both")
    if inline:
        return _check(inline, name)
    if path:
        return load_key(path, secret=name.endswith("SECRET_KEY"))
    return None


def from_env() -> Optional[Curve]:
    """ZCHAN_CURVE_SERVER_KEY[_FILE] set means dials are secure, with the secret key from
    ZCHAN_CURVE_SECRET_KEY[_FILE]; None when dials are plaintext."""
    server = _pick("ZCHAN_CURVE_SERVER_KEY")
    if server is None:
        return None
    secret = _pick("ZCHAN_CURVE_SECRET_KEY")
    if secret is None:
        raise CurveKeyError("zchan: ZCHAN_CURVE_SERVER_KEY is set but neither ZCHAN_CURVE_SECRET_KEY "
                        "nor ZCHAN_CURVE_SECRET_KEY_FILE")
    return client(secret, server)

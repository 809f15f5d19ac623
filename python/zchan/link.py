"""One DEALER socket and its monitor around one ``Engine``: the I/O half both drivers share.

``pump`` moves frames between the engine and the socket until neither has anything more.
libzmq's ``ZMQ_FD`` is edge-triggered and any send may consume the edge, so whoever touches
the socket drains it completely before waiting on the descriptor again (protocol.md §15 says
the same of the reference peer); ``pump`` always does.

Socket options follow protocol.md §3 and §6.4: one routing id for the socket's life ('z' and
the handle's instance id, so the home's ROUTER_HANDOVER routes to the newest connection), no
high-water marks, ``ZMQ_MAXMSGSIZE`` at the maximum frame, a bounded linger for BYE and ACKs.

Thread safety: none; the blocking driver holds the handle's lock around every call.
"""

from __future__ import annotations

from typing import List, Optional

import zmq
from zmq.utils.monitor import recv_monitor_message

from .engine import Engine
from .errors import ConnectError
from .security import Curve

_EVENTS = (zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
           | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
# ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH (zmq.h; protocol.md §14.3)
_MECHANISM_MISMATCH = getattr(zmq, "PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH", 0x11000002)


class Link:
    def __init__(self, endpoint: str, engine: Engine, curve: Optional[Curve],
                 ctx: Optional[zmq.Context] = None) -> None:
        self.engine = engine
        self.endpoint = endpoint
        self.curve = curve
        ctx = ctx or zmq.Context.instance()
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 1000)
        s.setsockopt(zmq.MAXMSGSIZE, engine.opts.max_frame)
        s.setsockopt(zmq.SNDHWM, 0)
        s.setsockopt(zmq.RCVHWM, 0)
        if curve is not None:
            s.setsockopt_string(zmq.CURVE_SERVERKEY, curve.server_key)
            s.setsockopt_string(zmq.CURVE_PUBLICKEY, curve.public_key)
            s.setsockopt_string(zmq.CURVE_SECRETKEY, curve.secret_key)
        s.setsockopt(zmq.ROUTING_ID, b"z" + engine.instance_id)
        self.monitor = s.get_monitor_socket(_EVENTS)  # before connect: see every event
        self._dropped = 0
        self._backlog: List[bytes] = []
        try:
            s.connect(endpoint)
        except zmq.ZMQError as e:
            s.close(0)
            self.monitor.close(0)
            raise ConnectError(f"zchan: cannot connect to {endpoint}: {e}") from None
        self.sock = s
        self.fds = (s.getsockopt(zmq.FD), self.monitor.getsockopt(zmq.FD))

    def pump(self) -> bool:
        """Sends what the engine has, dispatches what the socket has; True if anything moved."""
        moved = False
        while True:
            self._backlog += self.engine.take_frames()
            while self._backlog:
                try:
                    self.sock.send(self._backlog[0], zmq.NOBLOCK)
                except zmq.Again:
                    break
                del self._backlog[0]
                moved = True
            got = self._drain()
            self._events()
            if not got and not self.engine._out:
                return moved or got
            moved = True

    def _drain(self) -> bool:
        got = False
        # Asking ZMQ_EVENTS first is much cheaper than a recv that raises zmq.Again, and it
        # processes libzmq's pending commands as recv would (the edge of ZMQ_FD is consumed).
        while self.sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            try:
                m = self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return got
            got = True
            if self.sock.getsockopt(zmq.RCVMORE):  # a multipart ZCHAN frame (§3): drop it all
                while self.sock.getsockopt(zmq.RCVMORE):
                    self.sock.recv()
                self.engine.malformed += 1
                continue
            self.engine.on_frame(m)
        return got

    def _events(self) -> None:
        while self.monitor.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            try:
                ev = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            kind, value = ev["event"], ev["value"]
            if kind == zmq.EVENT_DISCONNECTED:
                self.engine.on_disconnected()
            elif self.engine.dialing:
                why = self._refusal(kind, value)
                if why:
                    self.engine.on_refused(f"{self.endpoint}: {why}")

    def _refusal(self, kind: int, value: int) -> Optional[str]:
        """protocol.md §14.3: what a handshake failure while dialing means."""
        curve = self.curve is not None
        if kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            return ("the home's allow-list does not admit this client's CURVE key "
                    f"(ZAP status {value})")
        if kind == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
            if value == _MECHANISM_MISMATCH:
                return ("security handshake failed: this dial uses CURVE but the home is plaintext"
                        if curve else
                        "security handshake failed: the home requires CURVE but this dial is "
                        "plaintext (set ZCHAN_CURVE_SERVER_KEY)")
            return f"security handshake failed: protocol error {value}"
        if kind == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            if curve:
                return ("CURVE handshake failed: the home closed the connection (wrong server "
                        "key, or a plaintext home)")
            self._dropped += 1
            if self._dropped >= 2:
                return ("security handshake failed: the home closed the connection during the "
                        "handshake twice (does it require CURVE?)")
        return None

    def close(self) -> None:
        """BYE leaves (linger), then both sockets close."""
        self.engine.bye()
        try:
            self.pump()
        except zmq.ZMQError:
            pass
        self.sock.disable_monitor()
        self.monitor.close(0)
        self.sock.close()

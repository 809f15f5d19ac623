"""Every user operation, written once for both drivers, as a generator over the engine.

An operation drives its handle's ``Engine`` and, whenever it must wait, yields the deadline
(monotonic seconds, or None) until which it waits for *any* change on its handles; the driver
resumes it when a frame arrived, a tick ran, or the deadline passed, and the operation looks
again. An operation may be resumed when nothing changed (it then simply looks again): the
drivers resume it once right after they start listening, so that a change between its first
look and their listening is not missed. The blocking driver waits on a ``threading.Event``, the asyncio driver awaits an
``asyncio.Event``: that is the only difference between the two APIs. Engine calls happen inside
``ch._guard()`` (the blocking handle's lock; nothing under asyncio).

Results are those of protocol.md §11.3: ``CLOSED`` or ``ChannelClosed`` for closed, ``Timeout``
for the caller's deadline, ``PeerLost`` for a lost session.

Thread safety: a generator is driven by one thread; the engine access is locked per handle.
"""

from __future__ import annotations

import random
import time
from typing import Any, Dict, Generator, List, Optional, Sequence, Tuple

from . import wire
from .engine import Request
from .errors import ChannelClosed, ConnectError, PeerLost, Timeout
from .values import CLOSED, Recv

Op = Generator[Optional[float], None, Any]


def deadline_of(timeout: Optional[float]) -> Optional[float]:
    return None if timeout is None else time.monotonic() + timeout


def _expired(deadline: Optional[float]) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _raise_if_error(r: Request) -> None:
    if r.error is not None:
        raise r.error


def dial(ch: Any, timeout: float) -> Op:
    deadline = deadline_of(timeout)
    while True:
        with ch._guard():
            ch._pump()
            e = ch.engine
            if e.dial_error is not None:
                raise e.dial_error
            if not e.dialing:
                return None
        if _expired(deadline):
            raise ConnectError(f"zchan: {ch.endpoint}: no answer to HELLO within {timeout:g} s: "
                               "connect error")
        yield deadline


def send_credited(ch: Any, payload: bytes) -> bool:
    """Under the guard: sends ``payload`` with a credit (§9.1) if the handle holds one; False
    if it does not (the caller offers it)."""
    if not (ch.engine.send_window and ch.engine.send_credited(payload)):
        return False
    # Only if a frame is due: a value that joined the batch costs no socket call, and the
    # driver (thread or reader) takes the CREDITs that let the batch go.
    ch._flush()
    return True


def send(ch: Any, payload: bytes, timeout: Optional[float]) -> Op:
    """A blocking send: with a credit (§9.1) it returns once the value is handed to the socket;
    else an offer (§8.2); at the deadline, CANCEL_SEND and the home's verdict."""
    deadline = deadline_of(timeout)
    while True:
        with ch._guard():
            if send_credited(ch, payload):
                return None
            r = ch.engine.send(payload)
            ch._pump()
        while not r.final:
            if deadline is not None and _expired(deadline):
                with ch._guard():
                    ch.engine.cancel_send(r)
                    ch._pump()
                deadline = None
                continue
            yield deadline
        _raise_if_error(r)
        if r.answer == wire.SEND_CLOSED:
            raise ChannelClosed("zchan: send on a closed channel")
        if r.answer == wire.SEND_CANCELLED:
            raise Timeout("zchan: send timed out")
        if r.answer != wire.SEND_FULL:
            return None
        # SEND_FULL to a blocking offer: it crossed a CREDIT (§9.1 rule 3), or the window
        # ended meanwhile (REVOKE): offer again, which uses the credit or learns of the close.
        if deadline is not None and _expired(deadline):
            raise Timeout("zchan: send timed out")


def flush(ch: Any, timeout: Optional[float]) -> Op:
    """Send window (§9.1): waits until the home confirmed every credited value sent so far."""
    deadline = deadline_of(timeout)
    with ch._guard():
        e = ch.engine
        if e.unconfirmed == 0:
            return None
        e.flush_credited()
        ch._pump()
        target = e.last_credited
    while True:
        with ch._guard():
            if e.credited_confirmed >= target:
                return None
            if e.lost_error is not None or not e.is_open:
                raise e.lost_error or PeerLost("zchan: handle released: peer lost")
        if _expired(deadline):
            raise Timeout(f"zchan: flush timed out ({e.unconfirmed} values not yet confirmed)")
        yield deadline


def queued(ch: Any) -> Tuple[bool, Any]:
    """The fast path of a receive with a prefetch window: (True, value or CLOSED) if the
    queue answers at once, else (False, None) and the caller runs ``recv``."""
    if not ch.engine.window:
        return False, None
    with ch._guard():
        what, payload = ch.engine.poll()
        ch._flush()
    if what == "value":
        return True, ch.codec.loads(payload)
    return (True, CLOSED) if what == "closed" else (False, None)


def hand_out(loan: Any, codec: Any) -> Generator[Any, None, None]:
    """The values of a range's loan (engine.Loan), decoded, one by one. A value popped from
    ``loan.left`` counts as handed out (it is yielded right after the pop); what a range that
    stops early leaves in ``loan.left`` goes back to the queue (engine.end_loan)."""
    pop = loan.left.popleft
    values = codec.loads_many(loan.payloads)
    if values is None:  # one by one: a DecodeError comes with its value
        values, loads = loan.payloads, codec.loads
    else:
        loads = None
    while True:
        try:
            i = pop()
        except IndexError:
            return
        yield values[i] if loads is None else loads(values[i])


def recv(ch: Any, timeout: Optional[float]) -> Op:
    """A blocking receive: from the prefetch queue (§9.2), or one RECV (§8.4)."""
    deadline = deadline_of(timeout)
    if ch.engine.window:
        while True:
            with ch._guard():
                what, payload = ch.engine.poll()
                ch._flush()
            if what == "value":
                return ch.codec.loads(payload)
            if what == "closed":
                return CLOSED
            if _expired(deadline):
                raise Timeout("zchan: receive timed out")
            yield deadline
    with ch._guard():
        r = ch.engine.recv()
        ch._pump()
    while not r.final:
        if _expired(deadline):
            with ch._guard():
                if not r.final:  # a VALUE that beat the deadline is still used (§8.5)
                    ch.engine.withdraw(r)
                    ch._pump()
                    raise Timeout("zchan: receive timed out")
            break
        yield deadline
    return _recv_result(ch, r)


def _recv_result(ch: Any, r: Request) -> Any:
    _raise_if_error(r)
    if r.answer == wire.VALUE:
        with ch._guard():
            ch.engine.take(r)
        return ch.codec.loads(r.payload)
    return CLOSED  # CLOSED; EMPTY and RECV_CANCELLED are not final answers a user sees here


def close(ch: Any) -> Op:
    yield from flush(ch, None)  # the pending credited values first (§9.1)
    with ch._guard():
        r = ch.engine.close()
        ch._pump()
    while not r.final:
        yield None
    _raise_if_error(r)


def query(ch: Any) -> Op:
    with ch._guard():
        r = ch.engine.query()
        ch._pump()
    while not r.final:
        yield None
    _raise_if_error(r)
    return r


# ------------------------------------------------------------------------------- select


def _try_case(c: Any) -> Op:
    """One case without waiting (§8.6 first pass): (True, result) if it ran, else (False, _)."""
    ch = c.ch
    if isinstance(c, Recv) and ch.engine.window:
        with ch._guard():
            what, payload = ch.engine.poll()
            ch._pump()
        if what == "value":
            return True, ch.codec.loads(payload)
        return (True, CLOSED) if what == "closed" else (False, None)
    with ch._guard():
        if not isinstance(c, Recv) and send_credited(ch, c.payload):
            return True, None  # a credited send runs at once (§9.1)
        r = ch.engine.recv(try_=True) if isinstance(c, Recv) else ch.engine.send(c.payload, True)
        ch._pump()
    while not r.final:
        yield None  # TRY is answered at once (§8.2 step 3, §8.4)
    _raise_if_error(r)
    if isinstance(c, Recv):
        if r.answer == wire.EMPTY:
            return False, None
        return True, _recv_result(ch, r)
    if r.answer == wire.SEND_CLOSED:
        raise ChannelClosed("zchan: send on a closed channel")
    if r.answer == wire.SEND_FULL and ch.engine.send_window:
        with ch._guard():  # a TRY that crossed a CREDIT (§9.1 rule 3): use it
            if send_credited(ch, c.payload):
                return True, None
    return r.answer == wire.SEND_OK, None


def _none_ready(cases: Sequence[Any]) -> Op:
    """True if, at one instant of its home, none of each handle's cases was ready (POLL,
    protocol.md §8.9): the condition for a select's default, once the cases polled one by one
    found nothing. One POLL per handle, naming every case on it (a handle is its own
    connection, so a POLL cannot name another handle's session: the home would answer
    READY); all leave before any answer is awaited. False on any READY, an ERROR or a lost
    session (unsure): the select then polls case by case again, with round trips, and learns
    more (a lost session raises there). Handles dialed to one home are each polled at an
    instant of their own, as cases at several homes are. A handle's cases name one channel, so
    its POLL carries each operation once (cases of one operation on one channel are alike)."""
    per_handle: Dict[int, Tuple[Any, Dict[int, None]]] = {}
    for c in cases:
        per_handle.setdefault(id(c.ch), (c.ch, {}))[1][
            wire.POLL_RECV if isinstance(c, Recv) else wire.POLL_SEND] = None
    asked: List[Request] = []
    for ch, case_ops in per_handle.values():
        with ch._guard():
            asked.append(ch.engine.start_poll(list(case_ops)))
            ch._pump()
    while not all(r.final for r in asked):
        yield None  # answered at once (§8.9: nothing waits), or failed with the session
    return all(r.answer == wire.EMPTY for r in asked)


def select(cases: Sequence[Any], default: bool, timeout: Optional[float]) -> Op:
    """Go's select (protocol.md §8.6): exactly one case runs.

    Returns (index, value) — the value received (or CLOSED) for a receive case, None for a send
    case — or (None, None) when ``default`` is set and no case was ready: polled one by one
    they found nothing, and then the home saw none ready at one instant (``_none_ready``).
    Raises Timeout at the deadline.
    """
    deadline = deadline_of(timeout)
    order = list(range(len(cases)))
    while True:
        random.shuffle(order)  # fairness, as Go's select polls in random order
        for i in order:
            ran, value = yield from _try_case(cases[i])
            if ran:
                return i, value
        if default:
            if (yield from _none_ready(cases)):
                return None, None
            continue  # a case was ready at every instant, or the home is unsure: poll again
        if _expired(deadline):
            raise Timeout("zchan: select timed out")
        regs: List[Tuple[int, Optional[Request]]] = []
        tags: Dict[int, int] = {}  # this wait's tag per session (protocol.md §8.6.1)
        for i in order:
            c = cases[i]
            with c.ch._guard():
                e = c.ch.engine
                if id(e) not in tags:
                    tags[id(e)] = e.select_tag()
                if isinstance(c, Recv):
                    regs.append((i, None if e.window else e.recv(tag=tags[id(e)])))
                else:
                    regs.append((i, e.watch(tag=tags[id(e)])))
                c.ch._pump()
        won: Optional[Tuple[int, Any]] = None
        while True:
            hint = False
            for i, r in regs:
                if r is None:
                    with cases[i].ch._guard():
                        hint = hint or cases[i].ch.engine.stream_news()
                elif r.final:
                    hint = True
            if hint or _expired(deadline):
                break
            yield deadline
        # Withdraw every registration; a VALUE that already arrived for a receive case is taken
        # by the first such case and given back by the others (§8.6).
        for i, r in regs:
            if r is None:
                continue
            ch = cases[i].ch
            with ch._guard():
                if won is None and r.answer == wire.VALUE and not r.withdrawn:
                    won = (i, _recv_result(ch, r))
                else:
                    ch.engine.withdraw(r)
                ch._pump()
        if won is not None:
            return won
        # A hint (READY, CLOSED, queued values, loss): retry every case with TRY.

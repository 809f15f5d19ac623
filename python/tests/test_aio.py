"""The asyncio API against a C++ hub: arrow notation, Value, async for, select, timeouts."""

import asyncio

import pytest

import zchan
from conftest import WAIT, binary


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, WAIT * 2))


def test_arrow_notation_value_holder_and_range(hub, spawn):
    _, ep = hub("--channel", "q:4:string")

    async def main():
        ch = await zchan.aio.dial(ep, "q", zchan.String)
        assert ch.cap == 4
        await (ch << "this is a string")
        await ch.send("second")
        v = zchan.Value()
        assert await (v << ch) is True
        assert v.value == "this is a string" and str(v) == "this is a string"
        assert await ch.len() == 1
        s = spawn([binary("tools/zchan/zchan"), "send", ep, "q", "--close"], stdin=True)
        s.p.stdin.write("third\n")
        s.p.stdin.close()
        got = [x async for x in ch]
        assert got == ["second", "third"]
        assert await (v << ch) is False and v.value is zchan.CLOSED
        with pytest.raises(zchan.ChannelClosed):
            await (ch << "late")
        await ch.disconnect()

    run(main())


def test_timeouts_and_select(hub):
    _, ep = hub("--channel", "a:0:i64", "--channel", "b:1:i64")

    async def main():
        a = await zchan.aio.dial(ep, "a", zchan.I64)
        b = await zchan.aio.dial(ep, "b", zchan.I64, prefetch=4)
        with pytest.raises(zchan.Timeout):
            await a.recv(timeout=0.2)
        with pytest.raises(zchan.Timeout):
            await a.send(1, timeout=0.2)
        assert await zchan.aio.select(zchan.Recv(a), zchan.Recv(b), default=True) == (None, None)
        with pytest.raises(zchan.Timeout):
            await zchan.aio.select(zchan.Recv(a), zchan.Recv(b), timeout=0.2)
        sender = await zchan.aio.dial(ep, "a", zchan.I64)
        task = asyncio.ensure_future(sender.send(42, timeout=WAIT))
        i, v = await zchan.aio.select(zchan.Recv(b), zchan.Recv(a), timeout=WAIT)
        await task
        assert (i, v) == (1, 42)
        await b.close()
        assert await zchan.aio.select(zchan.Recv(b), timeout=WAIT) == (0, zchan.CLOSED)
        for ch in (a, b, sender):
            await ch.disconnect()

    run(main())


def test_an_async_range_that_stops_early_leaves_the_rest_receivable(hub):
    _, ep = hub("--channel", "s:16:i64")

    async def main():
        w = await zchan.aio.dial(ep, "s", zchan.I64)
        for i in range(10):
            await w.send(i)
        await w.close()
        ch = await zchan.aio.dial(ep, "s", zchan.I64, prefetch=64)
        while await ch.len():  # a STATUS follows the VALUES it counts out
            pass
        it = ch.__aiter__()
        assert await it.__anext__() == 0  # takes the 10 as one batch and hands out one
        await it.aclose()  # what `break` leads to once the loop lets go of the generator
        assert await ch.recv(timeout=WAIT) == 1  # the rest was not ACKed (§8.4)
        assert [v async for v in ch] == list(range(2, 10))
        for c in (w, ch):
            await c.disconnect()

    run(main())

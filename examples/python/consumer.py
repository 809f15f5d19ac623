#!/usr/bin/env python3
"""The seed article's consumer, in Python with asyncio, ranging over a channel whose home is a
C++ process (examples/net_producer.cpp) or a `zchan hub` fed by producer.py. In Go:

    for v := range ch { log.Println("Received", v) }
    log.Println("Finished consuming")
    done <- name

Usage: consumer.py ENDPOINT [--name NAME]
  e.g. net_producer & (it prints "listening on tcp://127.0.0.1:PORT")
       consumer.py tcp://127.0.0.1:PORT
"""

import argparse
import asyncio

import zchan
from golog import log_println


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("endpoint")
    ap.add_argument("--name", default="consumer")
    opt = ap.parse_args()
    try:
        ch = await zchan.aio.dial(opt.endpoint, "numbers", zchan.I32, timeout=10)
        done = await zchan.aio.dial(opt.endpoint, "done", zchan.String, timeout=10)
        async for v in ch:  # for v := range ch
            log_println("Received", v)
        log_println("Finished consuming")
        await (done << opt.name)  # done <- name: returns once it is queued at the home
        return 0
    except zchan.PeerLost as e:  # the home died: not the same as close
        log_println("Lost the producer:", e)
    except zchan.TransportError as e:
        log_println("error:", e)
    return 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

#!/usr/bin/env python3
"""The seed article's producer, in Python with asyncio, feeding a consumer in another process
through a `zchan hub` (examples/net_consumer.cpp, or consumer.py). In Go:

    ch := make(chan int, 2)
    for i := 0; i < 5; i++ { log.Println("Sending", i); ch <- i; log.Println("Sent", i); time.Sleep(delay) }
    log.Println("Finished producing"); close(ch)
    log.Println("Waiting for everything to complete"); <-done; log.Println("All done, exiting!")

The hub holds the channels, so this process may exit as soon as the consumers reported on
"done" (they send their name there once their range ended: everything was received).

Usage: producer.py HUB_ENDPOINT [--count N] [--delay-ms MS] [--consumers C]
  e.g. zchan hub tcp://127.0.0.1:5555 &  producer.py tcp://127.0.0.1:5555 &
       net_consumer tcp://127.0.0.1:5555
"""

import argparse
import asyncio

import zchan
from golog import log_println


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("endpoint")
    ap.add_argument("--count", type=int, default=5)
    ap.add_argument("--delay-ms", type=int, default=1000)
    ap.add_argument("--consumers", type=int, default=1)
    opt = ap.parse_args()

    # ch := make(chan int, 2) -- created on the hub by this dial if it does not exist yet
    ch = await zchan.aio.dial(opt.endpoint, "numbers", zchan.I32, create=2)
    done = await zchan.aio.dial(opt.endpoint, "done", zchan.String, create=opt.consumers)
    for i in range(opt.count):
        log_println("Sending", i)
        await (ch << i)  # blocks while the hub's buffer holds 2 values nobody has taken
        log_println("Sent", i)
        await asyncio.sleep(opt.delay_ms / 1000)  # time.Sleep(delay)
    log_println("Finished producing")
    await ch.close()  # close(ch): consumers drain what is left, then their ranges end

    log_println("Waiting for everything to complete")
    who = zchan.Value()
    for _ in range(opt.consumers):
        await (who << done)  # <-done
        log_println(who, "finished consuming")
    log_println("All done, exiting!")
    await ch.disconnect()
    await done.disconnect()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))

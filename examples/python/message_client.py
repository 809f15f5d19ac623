#!/usr/bin/env python3
"""A Python client for the seed article's message server (examples/message_server/server.cpp):
joins, subscribes to topics, publishes, logs what it receives, and leaves cleanly. It speaks the
server's types (examples/message_server/protocol.hpp) through zchan.Struct codecs.

The server expects each client to be the home of its own "commands" and "welcome" channels and
dials them at the endpoint the client gives in its join request. A Python process cannot be a
home, so this client keeps those two channels on a `zchan hub` (started here unless --hub gives
one), creating them there with its dial; the server dials the hub as it would dial a C++ client.

In Go terms (as the C++ client):
    for _, t := range subscribe { commands <- command{subscribe, t} }   // wait for each ack
    for i := 1; i <= count; i++ { commands <- command{publish, topic, body(i)} }
    for received < expect { ev := <-inbox; log.Println("Received", ...) }
    close(commands); for ev := range inbox { ... }                      // until the server closes it

Usage: message_client.py SERVER_ENDPOINT [--name NAME] [--subscribe TOPIC]... [--publish TOPIC]
           [--count N] [--expect M] [--wait-s S] [--hub HUB_ENDPOINT] [--zchan PATH]
Exit status: 0 left cleanly with every expected message; 1 gave up or lost the server.
"""

import argparse
import subprocess
import sys
import time

import zchan
from golog import log_println

# examples/message_server/protocol.hpp, field for field (command_kind and event_kind: uint8_t).
SUBSCRIBE, UNSUBSCRIBE, PUBLISH = 0, 1, 2
MESSAGE, SUBSCRIBED, UNSUBSCRIBED = 0, 1, 2
JOIN = zchan.Struct("zchan.examples.message_server.join/1",
                    [("name", zchan.String), ("endpoint", zchan.String)])
COMMAND = zchan.Struct("zchan.examples.message_server.command/1",
                       [("kind", zchan.U8), ("topic", zchan.String), ("body", zchan.String)])
EVENT = zchan.Struct("zchan.examples.message_server.event/1",
                     [("kind", zchan.U8), ("topic", zchan.String), ("from", zchan.String),
                      ("body", zchan.String)])


def main() -> int:
    ap = argparse.ArgumentParser(description="A Python client for the seed's message server.")
    ap.add_argument("endpoint")
    ap.add_argument("--name", default="client")
    ap.add_argument("--subscribe", action="append", default=[])
    ap.add_argument("--publish", default="")
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--expect", type=int, default=0)
    ap.add_argument("--wait-s", type=float, default=30)
    ap.add_argument("--hub", help="a zchan hub for this client's own channels")
    ap.add_argument("--zchan", default="zchan", help="the zchan tool, to start a hub")
    opt = ap.parse_args()

    hub = None
    hub_ep = opt.hub
    if hub_ep is None:
        hub = subprocess.Popen([opt.zchan, "hub", "tcp://127.0.0.1:*"], stdout=subprocess.PIPE,
                               text=True)
        hub_ep = hub.stdout.readline().strip()
    try:
        return run(opt, hub_ep)
    except zchan.PeerLost as e:
        log_println("Lost the server:", e)
    except zchan.ZchanError as e:
        log_println("error:", e)
    finally:
        if hub is not None:
            hub.terminate()
            hub.wait()
    return 1


def run(opt: argparse.Namespace, hub_ep: str) -> int:
    commands = zchan.dial(hub_ep, "commands", COMMAND, create=1024)
    welcome = zchan.dial(hub_ep, "welcome", zchan.String, create=1)
    with zchan.dial(opt.endpoint, "join", JOIN) as join:
        join << {"name": opt.name, "endpoint": hub_ep}
    inbox_name = welcome.recv(timeout=opt.wait_s)
    inbox = zchan.dial(opt.endpoint, inbox_name, EVENT, prefetch=64)
    log_println("Joined", opt.endpoint, "as", opt.name, "with inbox", inbox_name)

    received = 0
    deadline = time.monotonic() + opt.wait_s

    def next_event() -> int:
        """Receives and logs one event; returns its kind, or -1 once the inbox is closed."""
        nonlocal received
        ev = inbox.recv(timeout=max(0.0, deadline - time.monotonic()))
        if ev is zchan.CLOSED:
            return -1
        if ev["kind"] == MESSAGE:
            received += 1
            log_println("Received", ev["topic"], "from", ev["from"] + ":", ev["body"])
        elif ev["kind"] == SUBSCRIBED:
            log_println("Subscribed to", ev["topic"])
        else:
            log_println("Unsubscribed from", ev["topic"])
        return ev["kind"]

    ok = True
    try:
        for t in opt.subscribe:
            commands << {"kind": SUBSCRIBE, "topic": t, "body": ""}
        confirmed = 0
        while ok and confirmed < len(opt.subscribe):  # every later publish reaches us
            kind = next_event()
            ok = kind != -1
            confirmed += kind == SUBSCRIBED
        for i in range(1, opt.count + 1):
            commands << {"kind": PUBLISH, "topic": opt.publish,
                         "body": f"{opt.publish} message {i}"}
        if opt.count:
            log_println("Published", opt.count, "messages to", opt.publish)
        while ok and received < opt.expect:
            ok = next_event() != -1
        for t in opt.subscribe:
            commands << {"kind": UNSUBSCRIBE, "topic": t, "body": ""}
    except zchan.Timeout:
        log_println("Gave up: received", received, "of", opt.expect, "messages")
        ok = False
    commands.close()  # leave: the server drains our commands, then closes our inbox
    deadline = time.monotonic() + opt.wait_s
    while next_event() != -1:
        pass
    log_println("Left after receiving", received, "messages")
    for ch in (inbox, welcome, commands):
        ch.disconnect()
    return 0 if ok and received == opt.expect else 1


if __name__ == "__main__":
    sys.exit(main())

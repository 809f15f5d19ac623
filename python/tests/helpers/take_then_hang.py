"""Test helper: dial ENDPOINT NAME with a prefetch window, take K values printing each, make
sure the home has their ACKs (a QUERY answered: ACKs leave ahead of the next frame and one
connection's frames are handled in order, protocol.md §8.4), print "ready", then hang until
killed. Usage: take_then_hang.py ENDPOINT NAME K PREFETCH"""

import sys
import threading

import zchan

ep, name, k, prefetch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ch = zchan.dial(ep, name, zchan.String, prefetch=prefetch)
for _ in range(k):
    print(ch.recv(), flush=True)
len(ch)
print("ready", flush=True)
threading.Event().wait()

"""The seed's producer/consumer across processes, Python <-> C++, read from their Go-style logs."""

import re

from conftest import ROOT, binary, python_argv

EXAMPLES = ROOT / "examples" / "python"
STAMP = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (.*)$")


def _msgs(lines):
    out = []
    for ln in lines:
        m = STAMP.match(ln)
        assert m, f"not a Go log line: {ln!r}"
        out.append(m.group(1))
    return out


def test_python_producer_to_cpp_consumer(hub, spawn):
    _, ep = hub()
    prod = spawn(python_argv(EXAMPLES / "producer.py", ep, "--count", "5", "--delay-ms", "0"))
    prod.until("Sending 0")
    cons = spawn([binary("examples/net_consumer"), ep, "--name", "cpp"])
    assert cons.wait() == 0
    assert prod.wait() == 0
    received = _msgs(cons.output())
    assert received == [f"Received {i}" for i in range(5)] + ["Finished consuming"]
    log = _msgs(prod.output())
    for i in range(5):
        assert log.index(f"Sending {i}") < log.index(f"Sent {i}")
    assert log[-4:] == ["Finished producing", "Waiting for everything to complete",
                        "cpp finished consuming", "All done, exiting!"]


def test_cpp_producer_to_python_consumer(spawn):
    prod = spawn([binary("examples/net_producer"), "--count", "5", "--delay-ms", "0"])
    ep = prod.until("listening on").split()[-1]
    cons = spawn(python_argv(EXAMPLES / "consumer.py", ep, "--name", "python"))
    assert cons.wait() == 0
    assert prod.wait() == 0
    assert _msgs(cons.output()) == [f"Received {i}" for i in range(5)] + ["Finished consuming"]
    log = _msgs(prod.output())
    assert log[-2:] == ["python finished consuming", "All done, exiting!"]

"""Python <-> a C++ hub: send, receive, close from either side, capacity, type identity."""

import zchan
from conftest import WAIT, binary


def test_python_sends_cpp_receives(hub, spawn):
    _, ep = hub("--channel", "words:4:string")
    with zchan.dial(ep, "words", zchan.String) as ch:
        assert ch.cap == 4
        for w in ("alpha", "beta", "gamma"):
            ch << w
        assert len(ch) == 3
        ch.close()
    r = spawn([binary("tools/zchan/zchan"), "recv", ep, "words"])
    assert [r.line(), r.line(), r.line()] == ["alpha", "beta", "gamma"]
    assert r.wait() == 0

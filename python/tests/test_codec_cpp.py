"""The codecs against the C++ encoder itself (tests/python/codec_echo.cpp): the same type
identity, the same octets for the same value, and values that survive a round trip through
a C++ channel of that type."""

import math

import zchan
from conftest import WAIT, binary

JOB = zchan.Struct("myapp.job/1", [("id", zchan.I64), ("name", zchan.String)])
VALUE = zchan.Tuple(zchan.F64, zchan.F32, zchan.Bool, zchan.Vector(zchan.Optional(zchan.I16)),
                    zchan.Bytes, zchan.Map(zchan.String, zchan.U32), zchan.Pair(zchan.I8, zchan.U64),
                    JOB, zchan.Array(zchan.U16, 2))
SAMPLE = (1.5, -0.25, True, [-3, None, 7], bytes([0, 255, 10]), {"a": 1, "bb": 4000000000},
          (-128, 2**64 - 1), {"id": 42, "name": "answer"}, [65535, 1])


def test_identity_octets_and_round_trip_match_cpp(spawn):
    echo = spawn([binary("tests/python/codec_echo")], stdin=True)
    assert echo.line() == "type " + VALUE.name
    assert echo.line() == "sample " + VALUE.dumps(SAMPLE).hex()
    ep = echo.line().split()[-1]
    values = [SAMPLE, (-math.inf, 3.0, False, [], b"", {}, (0, 0), {"id": -1, "name": "é"},
                       [0, 0])]
    with zchan.dial(ep, "in", VALUE) as cin, zchan.dial(ep, "out", VALUE) as cout:
        for v in values:
            cin << v
        cin.close()
        assert list(cout) == values  # decoded by C++, re-encoded by C++, decoded here
    echo.p.stdin.close()
    assert echo.wait(WAIT) == 0

"""POLL (protocol.md §8.9): the frame's layout (§5.1, §5.2) and validation (§6.3)."""

import pytest

from zchan import wire


# ---------------------------------------------------------------------------- wire

def test_poll_encodes_as_the_grammar_says():
    f = wire.poll(7, 9, [(7, wire.POLL_RECV), (0x01020304, wire.POLL_SEND)])
    assert wire.POLL == 0x34 and (wire.POLL_RECV, wire.POLL_SEND) == (1, 2)
    assert f == bytes([
        0x01, 0x34, 0x00, 0x00,  # version, type, flags
        0x07, 0x00, 0x00, 0x00,  # channel: the session that receives the answer
        0x09, 0, 0, 0, 0, 0, 0, 0,  # request id
        0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  # poll-count, four zero octets
        0x07, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,  # case: channel, receive, 3 zeros
        0x04, 0x03, 0x02, 0x01, 0x02, 0x00, 0x00, 0x00,  # case: channel, send, 3 zeros
    ])
    assert len(f) == 16 + 8 + 8 * 2  # §5.2: body 8 + 8 x poll-count


def test_poll_takes_1_to_1024_cases_and_valid_ones_only():
    assert len(wire.poll(1, 1, [(1, wire.POLL_RECV)] * 1024)) == 16 + 8 + 8 * 1024
    for bad in ([], [(1, wire.POLL_RECV)] * 1025, [(0, wire.POLL_RECV)], [(1, 0)], [(1, 3)]):
        with pytest.raises(ValueError):
            wire.poll(1, 1, bad)
    with pytest.raises(ValueError):
        wire.poll(0, 1, [(1, wire.POLL_RECV)])  # a header channel and request id are >= 1
    with pytest.raises(ValueError):
        wire.poll(1, 0, [(1, wire.POLL_RECV)])


def test_a_peer_does_not_accept_a_poll():
    with pytest.raises(wire.Malformed):  # a home -> peer frame it is not (§6.1 rule 3)
        wire.decode(wire.poll(5, 1, [(5, wire.POLL_RECV)]), 5)

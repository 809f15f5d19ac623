"""Codecs: cereal's binary layout (protocol.md §13), type identities (§7.4), bounded decoding."""

import struct

import pytest

import zchan
from zchan.errors import DecodeError


def test_type_identities_match_zchan_type_name():
    assert [c.name for c in (zchan.I8, zchan.I16, zchan.I32, zchan.I64)] == \
        ["i8", "i16", "i32", "i64"]
    assert [c.name for c in (zchan.U8, zchan.U16, zchan.U32, zchan.U64)] == \
        ["u8", "u16", "u32", "u64"]
    assert (zchan.F32.name, zchan.F64.name, zchan.Bool.name) == ("f32", "f64", "bool")
    assert (zchan.String.name, zchan.Bytes.name) == ("string", "vector<u8>")
    assert zchan.Tuple(zchan.I64, zchan.String).name == "tuple<i64,string>"
    assert zchan.Optional(zchan.Vector(zchan.U16)).name == "optional<vector<u16>>"
    assert zchan.Map(zchan.String, zchan.I32).name == "map<string,i32>"
    assert zchan.Pair(zchan.I8, zchan.Bool).name == "pair<i8,bool>"
    assert zchan.Struct("myapp.job/1", [("id", zchan.I64)]).name == "myapp.job/1"


def test_layouts_are_cereal_binary():
    assert zchan.String.dumps("hi") == struct.pack("<Q", 2) + b"hi"
    assert zchan.I32.dumps(-2) == struct.pack("<i", -2)
    assert zchan.Optional(zchan.U8).dumps(None) == b"\x01"  # cereal's flag says "nullopt"
    assert zchan.Optional(zchan.U8).dumps(7) == b"\x00\x07"
    job = zchan.Struct("myapp.job/1", [("id", zchan.I64), ("name", zchan.String)])
    assert job.dumps({"id": 5, "name": "x"}) == struct.pack("<qQ", 5, 1) + b"x"
    assert job.loads(job.dumps({"id": 5, "name": "x"})) == {"id": 5, "name": "x"}
    v = zchan.Vector(zchan.Tuple(zchan.Bool, zchan.F64))
    assert v.loads(v.dumps([(True, 1.5), (False, -2.0)])) == [(True, 1.5), (False, -2.0)]


def test_decoding_is_bounded_and_exact():
    huge = struct.pack("<Q", 1 << 62) + b"abc"  # a size tag far beyond the payload
    with pytest.raises(DecodeError):
        zchan.String.loads(huge)
    with pytest.raises(DecodeError):
        zchan.Vector(zchan.I64).loads(struct.pack("<Q", 2) + b"\0" * 15)  # 2 x 8 > 15
    with pytest.raises(DecodeError):
        zchan.I32.loads(b"\0" * 5)  # trailing octet
    with pytest.raises(DecodeError):
        zchan.Bool.loads(b"\x02")
    nested = zchan.String
    for _ in range(300):
        nested = zchan.Optional(nested)
    with pytest.raises(DecodeError):
        nested.loads(b"\x00" * 300 + struct.pack("<Q", 0))
    with pytest.raises(ValueError):
        zchan.U8.dumps(256)


def test_a_batch_decodes_as_its_values_one_by_one_or_not_at_all():
    s = zchan.String
    same = [s.dumps(w) for w in ("ab", "cd", "\udcff\udcfe", "ef")]  # one length, 2 octets
    mixed = [s.dumps(w) for w in ("", "a", "héllo")]
    for batch in (same, mixed, [], [s.dumps("x")]):
        assert s.loads_many(batch) == [s.loads(p) for p in batch]
    bad_tag = same[:2] + [struct.pack("<Q", 3) + b"ab"]  # same length, a wrong size tag
    assert s.loads_many(bad_tag) is None
    assert s.loads_many([b"\0" * 8, b"\0" * 7]) is None
    assert zchan.I32.loads_many([zchan.I32.dumps(-1), zchan.I32.dumps(2)]) == [-1, 2]
    assert zchan.I32.loads_many([b"\0" * 4, b"\0" * 5]) is None

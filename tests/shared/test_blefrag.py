# BLE fragmentation and reassembly; runs on CPython and MicroPython.
from meshlink.blefrag import (
    MAX_FRAGMENTS,
    Fragmenter,
    FragmentError,
    Reassembler,
    fragment,
    max_message_bytes_for,
)
from meshlink.errors import DecodeError, FrameTooLargeError, LocalProtocolError
from vectors import expect_raises, load, tohex, unhex

_COUNTERS = ("short_fragments", "out_of_order", "abandoned", "oversize")


def test_split_vectors():
    for case in load("blefrag")["split"]:
        frags = fragment(unhex(case["message"]), case["att_payload_bytes"], case["counter"])
        assert [tohex(f) for f in frags] == case["fragments"]
        for f in frags:
            assert len(f) <= case["att_payload_bytes"]


def test_reassemble_vectors():
    for case in load("blefrag")["split"]:
        r = Reassembler()
        got = [r.feed(unhex(f)) for f in case["fragments"]]
        assert got[-1] == unhex(case["message"])
        for g in got[:-1]:
            assert g is None
        assert not r.in_progress()


def test_feed_error_cases():
    for case in load("blefrag")["feed"]:
        r = Reassembler()
        got = []
        for f in case["fragments"]:
            m = r.feed(unhex(f))
            if m is not None:
                got.append(tohex(m))
        assert got == case["messages"], case["comment"]
        for name in _COUNTERS:
            assert getattr(r, name) == case["counts"].get(name, 0), (case["comment"], name)
        for e in r.take_errors():
            assert isinstance(e, FragmentError)


def test_oversize_message_dropped():
    r = Reassembler(30)
    frags = fragment(bytes(40), 20, 1)
    got = [r.feed(f) for f in frags]
    assert got == [None, None, None]
    assert r.oversize == 1
    errs = r.take_errors()
    assert len(errs) == 1 and isinstance(errs[0], FrameTooLargeError)
    assert r.feed(fragment(b"ok", 20, 2)[0]) == b"ok"


def test_fragmenter_counter_wraps():
    f = Fragmenter(20, 254)
    assert f.split(b"a")[0][0] == 254
    assert f.split(b"b")[0][0] == 255
    assert f.split(b"c")[0][0] == 0


def test_limits_are_local_errors():
    expect_raises(LocalProtocolError, fragment, b"x", 2, 0)
    expect_raises(LocalProtocolError, fragment, b"x", 20, 256)
    too_big = bytes(max_message_bytes_for(20) + 1)
    expect_raises(LocalProtocolError, fragment, too_big, 20, 0)
    assert len(fragment(bytes(max_message_bytes_for(20)), 20, 0)) == MAX_FRAGMENTS
    expect_raises(LocalProtocolError, Reassembler, 0)


def test_garbage_never_raises():
    r = Reassembler(64)
    for i in range(300):
        b = bytes(((i * 7) & 0xFF, (i * 13) & 0xFF)) + bytes(i % 23)
        m = r.feed(b)
        assert m is None or len(m) <= 64
    assert r.error_count() > 0
    for e in r.take_errors():
        assert isinstance(e, DecodeError)

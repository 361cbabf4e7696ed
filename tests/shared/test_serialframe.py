# Serial framing (COBS + CRC-32, 0x00 delimited); runs on CPython and MicroPython.
from meshlink.errors import DecodeError, FrameTooLargeError, LocalProtocolError
from meshlink.serialframe import (
    CobsError,
    CrcError,
    SerialDecoder,
    cobs_decode,
    cobs_encode,
    decode,
    encode,
    max_encoded_bytes,
)
from vectors import expect_raises, load, tohex, unhex

_COUNTERS = ("crc_errors", "cobs_errors", "short_frames", "oversize_frames")


def _check_counts(d, counts):
    for name in _COUNTERS:
        assert getattr(d, name) == counts.get(name, 0), name


def test_cobs_published_vectors():
    for case in load("serialframe")["cobs"]:
        raw = unhex(case["raw"])
        assert tohex(cobs_encode(raw)) == case["encoded"], case["raw"]
        assert cobs_decode(unhex(case["encoded"])) == raw


def test_encode_vectors():
    for case in load("serialframe")["encode"]:
        payload = unhex(case["payload"])
        frame = encode(payload)
        assert tohex(frame) == case["frame"]
        assert frame.count(b"\x00") == 2  # only the two delimiters
        assert decode(frame[1:-1]) == payload


def test_stream_cases_whole():
    for case in load("serialframe")["stream"]:
        d = SerialDecoder()
        got = d.feed(unhex(case["stream"]))
        assert [tohex(p) for p in got] == case["payloads"], case["comment"]
        _check_counts(d, case["counts"])
        errors = d.take_errors()
        assert len(errors) == d.error_count()
        for e in errors:
            assert isinstance(e, DecodeError)
        assert d.take_errors() == []


def test_stream_every_split():
    for case in load("serialframe")["stream"]:
        stream = unhex(case["stream"])
        for cut in range(0, len(stream) + 1, 3):
            d = SerialDecoder()
            got = d.feed(stream[:cut]) + d.feed(stream[cut:])
            assert [tohex(p) for p in got] == case["payloads"], (case["comment"], cut)
            _check_counts(d, case["counts"])


def test_byte_at_a_time():
    case = load("serialframe")["stream"][0]
    d = SerialDecoder()
    got = []
    for b in unhex(case["stream"]):
        got.extend(d.feed(bytes((b,))))
    assert [tohex(p) for p in got] == case["payloads"]
    assert d.buffered_bytes() == 0


def test_oversize_skipped_and_bounded():
    for case in load("serialframe")["oversize"]:
        d = SerialDecoder(case["max_payload_bytes"])
        got = d.feed(unhex(case["stream"]))
        assert [tohex(p) for p in got] == case["payloads"]
        _check_counts(d, case["counts"])
        errs = d.take_errors()
        assert len(errs) == 1 and isinstance(errs[0], FrameTooLargeError)


def test_endless_garbage_never_raises_and_stays_bounded():
    d = SerialDecoder(64)
    junk = bytes(range(1, 256))
    for _ in range(20):
        assert d.feed(junk) == []
        assert d.buffered_bytes() <= max_encoded_bytes(64)
    assert d.feed(b"\x00") == []
    assert d.oversize_frames == 1
    assert d.feed(encode(b"ok")) == [b"ok"]


def test_error_list_is_bounded():
    d = SerialDecoder()
    bad = b"\x00\x05ab\x00"
    for _ in range(50):
        d.feed(bad)
    assert d.cobs_errors == 50
    assert len(d.take_errors()) == 8
    assert d.errors_dropped == 42


def test_decode_errors_are_typed():
    frame = bytearray(encode(b"payload"))
    frame[3] ^= 1
    expect_raises(CrcError, decode, bytes(frame[1:-1]))
    expect_raises(CobsError, decode, b"")
    expect_raises(CobsError, decode, b"\x05ab")
    expect_raises(CobsError, cobs_decode, b"\x02a\x00")


def test_encode_refuses_oversized():
    expect_raises(LocalProtocolError, encode, b"x" * 17, 16)
    expect_raises(LocalProtocolError, SerialDecoder, 0)


def test_roundtrip_edge_sizes():
    d = SerialDecoder(600)
    for n in (0, 1, 249, 250, 253, 254, 255, 508, 509, 600):
        payload = bytes((i % 255) + 1 for i in range(n))
        assert d.feed(encode(payload, 600)) == [payload], n
    assert d.error_count() == 0

# Frame vectors and deframer behaviour; runs on CPython and MicroPython.
from meshlink.errors import DecodeError, FrameTooLargeError, LocalProtocolError
from meshlink.frames import Deframer, decode_datagram, encode_frame
from vectors import expect_raises, load, tohex, unhex


def test_encode_vectors():
    for case in load("frames")["encode"]:
        assert tohex(encode_frame(unhex(case["payload"]))) == case["frame"]


def test_stream_every_split():
    for case in load("frames")["stream"]:
        stream = unhex(case["stream"])
        want = case["frames"]
        for cut in range(len(stream) + 1):
            d = Deframer()
            got = d.feed(stream[:cut]) + d.feed(stream[cut:])
            assert [tohex(f) for f in got] == want, cut
            assert d.buffered_bytes() == case["buffered_bytes"]


def test_stream_byte_at_a_time():
    case = load("frames")["stream"][0]
    d = Deframer()
    got = []
    for b in unhex(case["stream"]):
        got.extend(d.feed(bytes([b])))
    assert [tohex(f) for f in got] == case["frames"]


def test_oversized_refused_before_allocating():
    for case in load("frames")["oversized"]:
        d = Deframer(case["max_frame_bytes"])
        stream = unhex(case["stream"])
        if "frames_before" in case:
            # the good frame arrives in an earlier read, then the bad header
            assert [tohex(f) for f in d.feed(stream[:6])] == case["frames_before"]
            stream = stream[6:]
        expect_raises(FrameTooLargeError, d.feed, stream)
        # the deframer stays failed: the stream position is lost
        expect_raises(FrameTooLargeError, d.feed, b"\x00\x00\x00\x01a")
        assert d.buffered_bytes() == 0


def test_encode_refuses_oversized():
    expect_raises(LocalProtocolError, encode_frame, b"x" * 17, 16)


def test_datagram():
    assert decode_datagram(b"abc") == b"abc"
    expect_raises(FrameTooLargeError, decode_datagram, b"x" * 17, 16)
    expect_raises(DecodeError, decode_datagram, b"")

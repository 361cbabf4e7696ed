"""Property tests (hypothesis) for the BLE fragmenter and the serial framer."""

from hypothesis import given, settings
from hypothesis import strategies as st
from meshlink.blefrag import Fragmenter, Reassembler, fragment, max_message_bytes_for
from meshlink.serialframe import SerialDecoder, encode, max_encoded_bytes

ATT = st.integers(min_value=3, max_value=512)


@given(att=ATT, data=st.data())
def test_ble_roundtrip_any_size(att, data):
    limit = min(max_message_bytes_for(att), 4096)
    message = data.draw(st.binary(max_size=limit))
    counter = data.draw(st.integers(0, 255))
    frags = fragment(message, att, counter)
    assert all(2 <= len(f) <= att for f in frags)
    r = Reassembler(4096)
    out = [r.feed(f) for f in frags]
    assert out[-1] == message
    assert all(o is None for o in out[:-1])
    assert r.error_count() == 0


@given(st.lists(st.binary(max_size=60), max_size=200))
def test_ble_garbage_never_raises_and_is_bounded(frags):
    r = Reassembler(100)
    for f in frags:
        m = r.feed(f)
        assert m is None or len(m) <= 100
        assert r._n <= 100


@settings(max_examples=200)
@given(att=st.integers(3, 64),
       messages=st.lists(st.binary(max_size=300), min_size=1, max_size=40),
       drops=st.sets(st.integers(0, 400)))
def test_ble_loss_never_splices_messages(att, messages, drops):
    """With fragments lost, every message delivered is one that was sent."""
    f = Fragmenter(att)
    wire = [frag for m in messages for frag in f.split(m)]
    r = Reassembler(4096)
    got = [r.feed(frag) for i, frag in enumerate(wire) if i not in drops]
    delivered = [m for m in got if m is not None]
    sent = list(messages)
    for m in delivered:  # in order, each one of the sent messages
        assert m in sent
        sent = sent[sent.index(m) + 1:]
    if not drops & set(range(len(wire))):
        assert delivered == messages


GARBAGE = st.binary(max_size=40)


@given(payloads=st.lists(st.binary(max_size=300), max_size=12),
       garbage=st.lists(GARBAGE, min_size=13, max_size=13),
       cut=st.integers(0, 10_000))
def test_serial_recovers_after_any_garbage(payloads, garbage, cut):
    pairs = zip(garbage[:-1], payloads, strict=False)
    stream = b"".join(g + encode(p) for g, p in pairs) + garbage[-1]
    cut = cut % (len(stream) + 1)
    d = SerialDecoder(300)
    out = d.feed(stream[:cut]) + d.feed(stream[cut:])
    assert out == payloads
    assert d.buffered_bytes() <= max_encoded_bytes(300)


@given(payloads=st.lists(st.binary(min_size=1, max_size=100), min_size=1, max_size=8),
       data=st.data())
def test_serial_bit_flip_loses_at_most_two_frames(payloads, data):
    stream = bytearray(b"".join(encode(p) for p in payloads))
    pos = data.draw(st.integers(0, len(stream) - 1))
    stream[pos] ^= 1 << data.draw(st.integers(0, 7))
    out = SerialDecoder(100).feed(bytes(stream))
    rest = list(payloads)
    for p in out:  # a subsequence of what was sent
        assert p in rest
        rest = rest[rest.index(p) + 1:]
    assert len(out) >= len(payloads) - 2

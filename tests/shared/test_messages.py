# Message vectors: canonical bytes per type, and malformed input -> typed errors.
# Runs on CPython and MicroPython.
from meshlink import errors, messages
from meshlink.nodeid import format_id, node_id_from_public_key, parse_id
from vectors import expect_raises, load


def _raw(text):
    if text == "\\xff":
        return b"\xff"
    return text.encode()


def test_valid_roundtrip_exact_bytes():
    cases = load("messages")["valid"]
    seen = set()
    for case in cases:
        raw = case["encoded"].encode()
        msg = messages.decode(raw)
        assert msg.TYPE == case["type"]
        assert msg.encode() == raw, case["type"]
        # the relay fast path (no re-validation) yields the very same bytes
        assert msg.encode(check=False) == raw, case["type"]
        seen.add(msg.TYPE)
    # every registered type has a vector
    for name in messages.MESSAGE_TYPES:
        assert name in seen, name


def test_invalid_inputs_raise_typed_errors():
    for case in load("messages")["invalid"]:
        cls = getattr(errors, case["error"])
        e = expect_raises(errors.MeshLinkError, messages.decode, _raw(case["input"]))
        assert isinstance(e, cls), (case["name"], type(e).__name__)


def test_broadcast_and_origin_default():
    i = "01234567-89ab-cdef-0123-456789abcdef"
    msg = messages.MeshMessage(src=i, dst=None, data=b"x", message_id=i, ttl=3, path=[])
    assert msg.origin_id == i
    back = messages.decode(msg.encode())
    assert back.dst is None and back == msg


def test_encode_refuses_invalid_fields():
    i = "01234567-89ab-cdef-0123-456789abcdef"
    bad = messages.MeshMessage(src=i, dst=None, data=b"x", message_id=i, ttl=300, path=[])
    expect_raises(errors.LocalProtocolError, bad.encode)
    expect_raises(errors.LocalProtocolError, messages.Close)


def test_node_id_derivation():
    raw = node_id_from_public_key(b"\x01" * 32)
    assert len(raw) == 16
    text = format_id(raw)
    assert parse_id(text) == raw
    # independent value: sha256(b"meshlink/1 node-id" + 32 * b"\x01")[:16]
    assert text == "adba14e2-b648-aa28-dc48-56b27a3fdfc6"

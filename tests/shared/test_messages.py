# Message vectors: canonical bytes per type, and malformed input -> typed errors.
# Runs on CPython and MicroPython.
from meshlink import errors, messages
from meshlink.nodeid import format_id, node_id_from_public_key, parse_id
from vectors import expect_raises, iter_lines


def _raw(case):
    """The case's input bytes: "input" text ("\\xff" = the raw byte) or
    "input_parts" [[text, repeat], ...] for inputs too long for one line."""
    if "input_parts" in case:
        return "".join([text * n for text, n in case["input_parts"]]).encode()
    if case["input"] == "\\xff":
        return b"\xff"
    return case["input"].encode()


def test_valid_roundtrip_exact_bytes():
    seen = set()
    for line in iter_lines("messages"):
        case = line.get("valid")
        if case is None:
            continue
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
    n = 0
    for line in iter_lines("messages"):
        case = line.get("invalid")
        if case is None:
            continue
        n += 1
        cls = getattr(errors, case["error"])
        e = expect_raises(errors.MeshLinkError, messages.decode, _raw(case))
        assert isinstance(e, cls), (case["name"], type(e).__name__)
    assert n >= 26, n  # every malformed case was read


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

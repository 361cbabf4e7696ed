# Small shims so the same core runs on MicroPython and CPython.
# Rule: nothing here may import a CPython-only module at top level.
try:
    from micropython import const  # noqa: F401
except ImportError:  # CPython

    def const(value):
        """Identity function standing in for micropython.const."""
        return value


import binascii

from meshlink.errors import DecodeError


def ct_equal(a, b):
    """Compare two byte strings in time that depends only on their length.

    MicroPython has no hmac.compare_digest, so XOR-accumulate over the full
    length with no early exit. A length mismatch is not secret (tags have a
    fixed size), so it returns False at once.
    """
    if len(a) != len(b):
        return False
    diff = 0
    for i in range(len(a)):
        diff |= a[i] ^ b[i]
    return diff == 0


def xor_bytes(a, b):
    """XOR two equal-length byte strings (int round-trip: ~20x a byte loop)."""
    n = len(a)
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(n, "big")


_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


def b64encode(data):
    """Standard base64 (with padding) as str, no newline."""
    return binascii.b2a_base64(data)[:-1].decode()


# Used by the CPython fast path. Built on MicroPython too on purpose: it
# interns the 64 one-character strings early, while the heap is still
# unfragmented (the firmware's 112K heap budget was measured with it).
_B64_VALUE = {chr(c): i for i, c in enumerate(_B64_ALPHABET[:64])}


def _b64decode_cpython(text):
    # CPython: the C decoder's strict mode checks alphabet and padding; the
    # re-encode comparison rejects non-canonical trailing bits as below.
    if not isinstance(text, str):
        raise DecodeError("base64 field must be a string")
    try:
        out = binascii.a2b_base64(text, strict_mode=True)
    except (ValueError, binascii.Error):
        raise DecodeError("invalid base64")
    # Canonical means the bits the padding leaves unused are zero: check the
    # one character before the padding instead of re-encoding everything.
    if text.endswith("=="):
        if _B64_VALUE[text[-3]] & 15:
            raise DecodeError("non-canonical base64")
    elif text.endswith("=") and _B64_VALUE[text[-2]] & 3:
        raise DecodeError("non-canonical base64")
    return out


def b64decode(text):
    """Strict standard base64 decode.

    MicroPython's a2b_base64 silently skips invalid characters, so check the
    alphabet and length ourselves.

    Raises:
        DecodeError: not a str, bad length or a character outside the alphabet.
    """
    if not isinstance(text, str):
        raise DecodeError("base64 field must be a string")
    raw = text.encode()
    if len(raw) % 4:
        raise DecodeError("base64 length not a multiple of 4")
    for ch in raw:
        if ch not in _B64_ALPHABET:
            raise DecodeError("invalid base64 character")
    pad = raw.find(b"=")
    if pad != -1 and (pad < len(raw) - 2 or raw[pad:] not in (b"=", b"==")):
        raise DecodeError("misplaced base64 padding")
    try:
        out = binascii.a2b_base64(raw)
    except ValueError:
        raise DecodeError("invalid base64")
    if b64encode(out) != text:  # rejects non-canonical trailing bits
        raise DecodeError("non-canonical base64")
    return out


try:
    binascii.a2b_base64(b"", strict_mode=True)
    b64decode = _b64decode_cpython  # noqa: F811 (CPython >= 3.11 fast path)
except TypeError:  # MicroPython: no strict_mode keyword, keep the checked loop
    pass

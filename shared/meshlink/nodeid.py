# Node and message identifiers. Rule: pure functions, no I/O.
# A node ID is the first 16 bytes of SHA-256(label || identity public key
# bytes): unforgeable (a peer must prove the key in the handshake) and
# printable in the whitepaper's UUID form.
import hashlib

from meshlink.errors import DecodeError

NODE_ID_LABEL = b"meshlink/1 node-id"
ID_BYTES = 16
_HEX = "0123456789abcdef"


def node_id_from_public_key(public_key_bytes):
    """Derive the 16-byte node ID from identity public-key bytes."""
    h = hashlib.sha256(NODE_ID_LABEL)
    h.update(public_key_bytes)
    return h.digest()[:ID_BYTES]


def format_id(raw):
    """16 bytes -> lowercase UUID text (8-4-4-4-12)."""
    if len(raw) != ID_BYTES:
        raise DecodeError("an ID is 16 bytes")
    h = "".join(_HEX[b >> 4] + _HEX[b & 15] for b in raw)
    return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]


def parse_id(text):
    """Lowercase UUID text -> 16 bytes.

    Raises:
        DecodeError: not a str in canonical lowercase 8-4-4-4-12 form.
    """
    if not isinstance(text, str) or len(text) != 36:
        raise DecodeError("an ID is a 36-character UUID string")
    for i in (8, 13, 18, 23):
        if text[i] != "-":
            raise DecodeError("malformed UUID")
    digits = text[0:8] + text[9:13] + text[14:18] + text[19:23] + text[24:36]
    out = bytearray(ID_BYTES)
    for i in range(ID_BYTES):
        hi = _HEX.find(digits[2 * i])
        lo = _HEX.find(digits[2 * i + 1])
        if hi < 0 or lo < 0:
            raise DecodeError("UUID must be lowercase hex")
        out[i] = (hi << 4) | lo
    return bytes(out)


def is_id(text):
    """True if text is a canonical lowercase UUID string.

    Hot path on relays (every path entry of every message), so it avoids the
    per-character loop of parse_id: strip() removes hex digits from both
    ends and leaves anything else behind.
    """
    if type(text) is not str or len(text) != 36:
        return False
    if text[8] != "-" or text[13] != "-" or text[18] != "-" or text[23] != "-":
        return False
    digits = text[0:8] + text[9:13] + text[14:18] + text[19:23] + text[24:36]
    return digits.strip("0123456789abcdef") == ""


def node_id_text_from_public_key(public_key_bytes):
    """Derive the node ID and print it in UUID form."""
    return format_id(node_id_from_public_key(public_key_bytes))


def new_message_id(random_bytes16):
    """A message ID in UUID form from 16 caller-supplied random bytes."""
    return format_id(random_bytes16)


try:  # CPython: one C regex call instead of slicing (relays call this a lot)
    import re

    _UUID_RE = re.compile("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    _fullmatch = _UUID_RE.fullmatch

    def is_id(text):  # noqa: F811
        """True if text is a canonical lowercase UUID string."""
        return type(text) is str and _fullmatch(text) is not None
except (ImportError, AttributeError):  # MicroPython's re has no fullmatch
    pass


NAME_MAX = 32  # characters of a node name (docs/PROTOCOL.md §12)
_NAME_FIRST = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_NAME_CHARS = _NAME_FIRST + "._-"


def is_name(text):
    """True for a node name: 1-32 of [A-Za-z0-9._-], starting with a letter or
    digit (printable anywhere, never mistaken for markup or a terminal escape)."""
    if type(text) is not str or not 0 < len(text) <= NAME_MAX or text[0] not in _NAME_FIRST:
        return False
    for c in text:
        if c not in _NAME_CHARS:
            return False
    return True

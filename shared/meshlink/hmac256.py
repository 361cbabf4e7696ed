# HMAC-SHA256 (RFC 2104 / RFC 4231) and HKDF-SHA256 (RFC 5869) over hashlib.
# Rules: pure functions, no I/O, runs unchanged on MicroPython and CPython.
# MicroPython has no hmac module, and its hashlib.sha256 has no copy() and is
# final after digest(), so every MAC hashes the padded key block afresh; the
# padded blocks are computed once per key (HmacKey). Tags are compared only
# with meshlink._compat.ct_equal, never with ==.
import hashlib

from meshlink._compat import const
from meshlink.errors import LocalProtocolError

DIGEST_BYTES = const(32)  # SHA-256 output
BLOCK_BYTES = const(64)  # SHA-256 input block
MAX_HKDF_BYTES = const(8160)  # 255 * DIGEST_BYTES (RFC 5869 section 2.3)

_IPAD = int.from_bytes(b"\x36" * BLOCK_BYTES, "big")
_OPAD = int.from_bytes(b"\x5c" * BLOCK_BYTES, "big")


def _check_bytes(name, value):
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise LocalProtocolError("%s must be bytes" % name)


class HmacKey:
    """An HMAC-SHA256 key with its padded blocks precomputed.

    Reuse one object for many MACs under the same key: each digest() costs
    two SHA-256 runs plus the message, and no key processing.
    """

    def __init__(self, key):
        """Raises LocalProtocolError: key is not bytes."""
        _check_bytes("HMAC key", key)
        if len(key) > BLOCK_BYTES:
            key = hashlib.sha256(key).digest()
        k = int.from_bytes(bytes(key) + bytes(BLOCK_BYTES - len(key)), "big")
        self._ipad = (k ^ _IPAD).to_bytes(BLOCK_BYTES, "big")
        self._opad = (k ^ _OPAD).to_bytes(BLOCK_BYTES, "big")

    def digest(self, *parts):
        """HMAC-SHA256 over the concatenation of parts (bytes-like); 32 bytes."""
        inner = hashlib.sha256(self._ipad)
        for part in parts:
            inner.update(part)
        outer = hashlib.sha256(self._opad)
        outer.update(inner.digest())
        return outer.digest()


def hmac_sha256(key, *parts):
    """HMAC-SHA256(key, concatenation of parts) -> 32 bytes.

    Raises:
        LocalProtocolError: key is not bytes.
    """
    return HmacKey(key).digest(*parts)


def hkdf_extract(salt, ikm):
    """HKDF-Extract (RFC 5869 2.2): PRK = HMAC(salt, IKM); empty salt = 32 zero bytes.

    Raises:
        LocalProtocolError: salt or ikm is not bytes.
    """
    _check_bytes("HKDF salt", salt)
    _check_bytes("HKDF ikm", ikm)
    if not len(salt):
        salt = bytes(DIGEST_BYTES)
    return hmac_sha256(salt, ikm)


def hkdf_expand(prk, info, length):
    """HKDF-Expand (RFC 5869 2.3): length bytes of output keying material.

    Raises:
        LocalProtocolError: prk shorter than 32 bytes, info not bytes, or
            length outside 0..8160.
    """
    _check_bytes("HKDF prk", prk)
    _check_bytes("HKDF info", info)
    if len(prk) < DIGEST_BYTES:
        raise LocalProtocolError("HKDF PRK must be at least 32 bytes")
    if type(length) is not int or length < 0 or length > MAX_HKDF_BYTES:
        raise LocalProtocolError("HKDF length must be 0..%d" % MAX_HKDF_BYTES)
    key = HmacKey(prk)
    okm = bytearray()
    block = b""
    counter = 1
    while len(okm) < length:
        block = key.digest(block, info, bytes((counter,)))
        okm.extend(block)
        counter += 1
    return bytes(okm[:length])


def hkdf(salt, ikm, info, length):
    """HKDF-SHA256 extract-then-expand (RFC 5869). Raises LocalProtocolError on bad arguments."""
    return hkdf_expand(hkdf_extract(salt, ikm), info, length)

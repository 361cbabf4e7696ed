"""HKDF-SHA256 (RFC 5869) and the PQMESH/1 symmetric state (Noise-style h, ck).

Rule: pure functions and one small state class; no I/O, no clock.

The symmetric state follows the Noise framework (rev 34 §5.2): `h` is a
running SHA-256 transcript hash, `ck` a chaining key. Every derivation is
HKDF-SHA256 with the chaining key as salt and a distinct ASCII label as info,
so no two derivations can collide.
"""

from __future__ import annotations

import hashlib
import hmac

from meshlink.errors import LocalProtocolError

HASH_BYTES = 32
_HASH = "sha256"


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    """RFC 5869 HKDF-Extract with SHA-256 (empty salt = 32 zero bytes)."""
    return hmac.digest(salt or bytes(HASH_BYTES), ikm, _HASH)


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF-Expand with SHA-256.

    Raises:
        LocalProtocolError: length is outside 0..8160.
    """
    if not 0 <= length <= 255 * HASH_BYTES:
        raise LocalProtocolError("HKDF-SHA256 output is limited to 8160 bytes")
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes((counter,)), _HASH)
        out += block
        counter += 1
    return out[:length]


def hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF-SHA256: Expand(Extract(salt, ikm), info, length)."""
    return hkdf_expand(hkdf_extract(salt, ikm), info, length)


class SymmetricState:
    """The running transcript hash `h` and chaining key `ck` of one handshake."""

    __slots__ = ("h", "ck")

    def __init__(self, protocol_name: bytes) -> None:
        self.h = hashlib.sha256(protocol_name).digest()
        self.ck = self.h

    def mix_hash(self, data: bytes) -> None:
        """h = SHA-256(h || data)."""
        self.h = hashlib.sha256(self.h + data).digest()

    def mix_key(self, ikm: bytes, label: bytes, n_keys: int) -> list[bytes]:
        """ck, k1..kn = HKDF(salt=ck, ikm, info=label); return [k1..kn] (32 bytes each)."""
        okm = hkdf(self.ck, ikm, label, HASH_BYTES * (1 + n_keys))
        self.ck = okm[:HASH_BYTES]
        return [okm[HASH_BYTES * i:HASH_BYTES * (i + 1)] for i in range(1, 1 + n_keys)]

    def mix_key_and_hash(self, ikm: bytes, label: bytes) -> None:
        """ck, t = HKDF(salt=ck, ikm, info=label); h = SHA-256(h || t) (Noise psk mixing)."""
        (t,) = self.mix_key(ikm, label, 1)
        self.mix_hash(t)

"""PQMESH/1 cookies: a responder under load answers M1 without any KEM work (sans-I/O).

In the spirit of WireGuard's mac2 / cookie reply (docs/PROTOCOL.md §5.3.1):

    cookie        = HMAC-SHA256(secret, "pqmesh/1 cookie" || source)[:16]
    mac2          = HMAC-SHA256(cookie, "pqmesh/1 mac2" || offer || e_i || ek || mac1)[:16]
    cookie reply  = HandshakeCookie(body = nonce 24 | AES-256-GCM(k_n, 0^12, cookie, AD = mac1))
    k_n           = HMAC-SHA256(cookie_key, nonce)
    cookie_key    = HKDF("", psk, "pqmesh/1 cookie", 32)

The secret is 32 random bytes replaced every COOKIE_SECRET_ROTATE_MS; a cookie
made under the current or the previous secret is accepted. Nothing is kept
per source: a cookie is recomputed from the source address when it is checked.
Rule: no sockets, no clock (now_ms comes in), randomness injected.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from meshlink import messages
from meshlink.errors import AuthError, DecodeError

from meshlink_gw.crypto.kdf import hkdf
from meshlink_gw.crypto.session import IV_BYTES, TAG_BYTES, aead_decrypt, aead_encrypt

COOKIE_SECRET_ROTATE_MS = 120_000  # a new secret every 2 minutes (WireGuard's value)
COOKIE_BYTES = 16
MAC2_BYTES = 16
COOKIE_NONCE_BYTES = 24  # random per reply: each reply has a key of its own
COOKIE_REPLY_BODY_BYTES = COOKIE_NONCE_BYTES + COOKIE_BYTES + TAG_BYTES  # 56

LABEL_COOKIE = b"pqmesh/1 cookie"
LABEL_MAC2 = b"pqmesh/1 mac2"
_ZERO_NONCE = bytes(IV_BYTES)


def cookie_key(psk: bytes) -> bytes:
    """HKDF(salt="", ikm=psk, info="pqmesh/1 cookie", 32): encrypts cookie replies."""
    return hkdf(b"", psk, LABEL_COOKIE, 32)


def compute_mac2(cookie: bytes, covered: bytes) -> bytes:
    """mac2 = HMAC-SHA256(cookie, "pqmesh/1 mac2" || covered)[:16], where covered is
    offer || e_i || ek || mac1 (everything mac1 covers, and mac1)."""
    return hmac.digest(cookie, LABEL_MAC2 + covered, "sha256")[:MAC2_BYTES]


def _reply_aead(key: bytes, nonce: bytes) -> AESGCM:
    return AESGCM(hmac.digest(key, nonce, "sha256"))


def open_cookie_reply(psk: bytes, body: bytes, mac1: bytes) -> bytes:
    """The cookie in a reply to the M1 whose mac1 is given (the initiator's side).

    Raises:
        DecodeError: the body is not 56 bytes.
        AuthError: the reply is not for this M1 or not from a holder of the network key.
    """
    if len(body) != COOKIE_REPLY_BODY_BYTES:
        raise DecodeError("cookie reply body must be %d bytes, got %d"
                          % (COOKIE_REPLY_BODY_BYTES, len(body)))
    nonce, sealed = body[:COOKIE_NONCE_BYTES], body[COOKIE_NONCE_BYTES:]
    try:
        return aead_decrypt(_reply_aead(cookie_key(psk), nonce), _ZERO_NONCE, sealed, mac1)
    except AuthError:
        raise AuthError("cookie reply does not open (not an answer to our M1)")


class CookieJar:
    """The responder's rotating secret: makes cookies and checks mac2, keeping
    nothing per source. now_ms must not go backwards."""

    def __init__(self, psk: bytes, rng: Callable[[int], bytes] = os.urandom,
                 rotate_ms: int = COOKIE_SECRET_ROTATE_MS) -> None:
        self._key = cookie_key(psk)
        self._rng = rng
        self._rotate_ms = rotate_ms
        self._secret = rng(32)
        self._previous: bytes | None = None
        self._since_ms: int | None = None
        self.replies = 0  # cookie replies made

    def _rotate(self, now_ms: int) -> None:
        """A new secret at every rotate_ms boundary (counted from the first use),
        so a cookie is accepted for one to two periods after it was made."""
        if self._since_ms is None:
            self._since_ms = now_ms
            return
        periods = (now_ms - self._since_ms) // self._rotate_ms
        if periods >= 1:
            # a secret more than one period old (a long idle) is gone too
            self._previous = self._secret if periods == 1 else None
            self._secret = self._rng(32)
            self._since_ms += periods * self._rotate_ms

    @staticmethod
    def _cookie(secret: bytes, source: str) -> bytes:
        return hmac.digest(secret, LABEL_COOKIE + source.encode(), "sha256")[:COOKIE_BYTES]

    def cookie_for(self, source: str, now_ms: int) -> bytes:
        """The current cookie of source (its IP address as text)."""
        self._rotate(now_ms)
        return self._cookie(self._secret, source)

    def mac2_valid(self, source: str, now_ms: int, covered: bytes, mac2: bytes) -> bool:
        """mac2 was made with source's cookie under the current or the previous secret
        (constant-time compares)."""
        self._rotate(now_ms)
        ok = False
        for secret in (self._secret, self._previous):
            if secret is not None:
                want = compute_mac2(self._cookie(secret, source), covered)
                ok = hmac.compare_digest(want, mac2) or ok
        return ok

    def reply(self, source: str, now_ms: int, mac1: bytes) -> bytes:
        """The HandshakeCookie payload answering an M1 (with this mac1) from source."""
        nonce = self._rng(COOKIE_NONCE_BYTES)
        sealed = aead_encrypt(_reply_aead(self._key, nonce), _ZERO_NONCE,
                              self.cookie_for(source, now_ms), mac1)
        self.replies += 1
        return messages.HandshakeCookie(body=nonce + sealed).encode()

"""Sealed mesh payloads: end-to-end AES-256-GCM between origin and destination
(docs/PROTOCOL.md §13), keyed by a hybrid X25519 + ML-KEM-768 pair setup.

Rule: sans-I/O (now_ms and randomness are passed in or drawn by the caller's
`random` callable); every failure is a meshlink.errors type.

* `KeyRecord`: a node's signed identity record (its X25519 and ML-KEM-768
  public keys, bound to its node ID by its Ed25519 signature).
* `KeyPair`: the private half of one record (what a destination holds).
* `PairSender`: one origin -> destination session. The first message (and
  every message until one is acknowledged) carries the setup: an ephemeral
  X25519 key and an ML-KEM-768 ciphertext to the destination's record.
* `PairOpener`: a destination's sessions, by (origin, session ID).

Sessions are one-way (A->B and B->A are independent), so no round trip is
needed before the first sealed message.
"""

from __future__ import annotations

import binascii
import hashlib
import struct
from typing import Callable

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from meshlink.errors import AuthError, DecodeError, HandshakeError, LocalProtocolError
from meshlink.nodeid import node_id_text_from_public_key

from meshlink_gw.crypto.kdf import hkdf
from meshlink_gw.crypto.kem import (
    MLKEM768_CT_BYTES,
    MLKEM768_EK_BYTES,
    X25519_BYTES,
    KemBackend,
)
from meshlink_gw.crypto.session import aead_decrypt

RECORD_LABEL = b"meshlink/1 e2e keys\x00"
SEAL_LABEL = b"meshlink/1 e2e seal\x00"
KEY_INFO = b"meshlink/1 e2e pair key"
KIND_SETUP = 1
KIND_DATA = 2
SID_BYTES = 4
CTR_BYTES = 4
TAG_BYTES = 16
DATA_HEADER_BYTES = 1 + SID_BYTES + CTR_BYTES  # kind, sid, ctr
# setup header: kind, sid, ctr, record issued_s (8), ephemeral X25519, ML-KEM ct
SETUP_HEADER_BYTES = DATA_HEADER_BYTES + 8 + X25519_BYTES + MLKEM768_CT_BYTES
RECORD_BODY_BYTES = 16 + X25519_BYTES + MLKEM768_EK_BYTES + 8
RECORD_BYTES = RECORD_BODY_BYTES + 32 + 64  # + Ed25519 key and signature
REKEY_AFTER_MSGS = 1 << 16  # a sender starts a new pair session after this many ...
REKEY_AFTER_MS = 3_600_000  # ... or this long
REJECT_AFTER_MS = 2 * REKEY_AFTER_MS  # a destination forgets sessions this old
SESSIONS_PER_ORIGIN = 4  # a destination keeps this many sessions per origin (newest)

_DATA = struct.Struct(">BII")
_SETUP_TAIL = struct.Struct(">Q")


def _raw(uuid_text: str) -> bytes:
    return binascii.unhexlify(uuid_text.replace("-", ""))


class KeyRecord:
    """A node's published keys: node_id, X25519 and ML-KEM-768 public keys,
    issued_s (the issuer's clock, seconds; newer replaces older), signed by
    the Ed25519 key that names node_id."""

    __slots__ = ("node_id", "x25519", "mlkem_ek", "issued_s", "key", "sig")

    def __init__(self, node_id: str, x25519: bytes, mlkem_ek: bytes, issued_s: int,
                 key: bytes = b"", sig: bytes = b"") -> None:
        self.node_id = node_id
        self.x25519 = x25519
        self.mlkem_ek = mlkem_ek
        self.issued_s = issued_s
        self.key = key
        self.sig = sig

    def body(self) -> bytes:
        return b"".join((_raw(self.node_id), self.x25519, self.mlkem_ek,
                         _SETUP_TAIL.pack(self.issued_s)))

    def encode(self) -> bytes:
        """The record's wire form (RECORD_BYTES)."""
        return self.body() + self.key + self.sig

    @classmethod
    def decode(cls, data: bytes) -> KeyRecord:
        """Parse (not check) a record. Raises DecodeError on a wrong length."""
        if len(data) != RECORD_BYTES:
            raise DecodeError("key record must be %d bytes" % RECORD_BYTES)
        node = binascii.hexlify(data[:16]).decode()
        node_id = "-".join((node[:8], node[8:12], node[12:16], node[16:20], node[20:]))
        x = data[16:16 + X25519_BYTES]
        at = 16 + X25519_BYTES
        ek = data[at:at + MLKEM768_EK_BYTES]
        at += MLKEM768_EK_BYTES
        (issued_s,) = _SETUP_TAIL.unpack_from(data, at)
        at += 8
        return cls(node_id, x, ek, issued_s, data[at:at + 32], data[at + 32:])

    def check(self, verify: Callable[[bytes, bytes, bytes], bool]) -> None:
        """Raise AuthError unless key names node_id and signed this record."""
        if len(self.key) != 32 or len(self.sig) != 64:
            raise AuthError("key record: malformed key or signature")
        if node_id_text_from_public_key(self.key) != self.node_id:
            raise AuthError("key record: key does not name " + self.node_id)
        if not verify(self.key, RECORD_LABEL + self.body(), self.sig):
            raise AuthError("key record: bad signature for " + self.node_id)


class KeyPair:
    """The private keys behind one KeyRecord (a destination's)."""

    def __init__(self, backend: KemBackend, x25519_private: bytes, mlkem_seed: bytes,
                 node_id: str, issued_s: int) -> None:
        x_pub, self.x25519 = backend.x25519_keygen(x25519_private)
        ek, self.mlkem = backend.mlkem_keygen(mlkem_seed)
        self.record = KeyRecord(node_id, x_pub, ek, issued_s)

    def sign(self, public_key: bytes, sign: Callable[[bytes], bytes]) -> KeyRecord:
        """Sign the record with the node's Ed25519 identity (public_key, sign)."""
        r = self.record
        r.key = public_key
        r.sig = sign(RECORD_LABEL + r.body())
        return r


def _derive(x_ss: bytes, kem_ss: bytes, src: str, dst: str, header: bytes,
            record: KeyRecord) -> AESGCM:
    # the salt binds the pair, the destination's record and the whole setup
    # header (ephemeral key and KEM ciphertext): a changed byte changes the key
    th = hashlib.sha256(b"".join((SEAL_LABEL, _raw(src), _raw(dst), record.x25519,
                                  hashlib.sha256(record.mlkem_ek).digest(),
                                  header))).digest()
    return AESGCM(hkdf(th, x_ss + kem_ss, KEY_INFO, 32))


def _nonce(sid: int, ctr: int) -> bytes:
    # unique per key: the key is fresh per session, ctr never repeats in it
    return b"\x00\x00\x00\x00" + struct.pack(">II", sid, ctr)


def _ad(src: str, dst: str, header: bytes) -> bytes:
    return _raw(src) + _raw(dst) + header


class PairSender:
    """One origin -> destination pair session (sealing side).

    Args:
        backend: the KEM backend; record: the destination's checked KeyRecord;
        src, dst: node IDs; now_ms: the session's start; random(n) -> n bytes.
    """

    def __init__(self, backend: KemBackend, record: KeyRecord, src: str, dst: str,
                 now_ms: int, random: Callable[[int], bytes]) -> None:
        if record.node_id != dst:
            raise LocalProtocolError("key record is not the destination's")
        self.src, self.dst, self.started_ms = src, dst, now_ms
        self.sid = int.from_bytes(random(SID_BYTES), "big")
        self.ctr = 0
        self.confirmed = False  # an Ack proved the destination holds the session
        eph_pub, eph = backend.x25519_keygen(random(X25519_BYTES))
        x_ss = backend.x25519_exchange(eph, record.x25519)
        kem_ss, kem_ct = backend.mlkem_encapsulate(record.mlkem_ek, random(32))
        # the ephemeral private key dies with this frame: forward secrecy
        self._setup_tail = _SETUP_TAIL.pack(record.issued_s) + eph_pub + kem_ct
        self._aead = _derive(x_ss, kem_ss, src, dst, self._setup_tail, record)

    def needs_rekey(self, now_ms: int) -> bool:
        return self.ctr >= REKEY_AFTER_MSGS or now_ms - self.started_ms >= REKEY_AFTER_MS

    def seal(self, plaintext: bytes) -> bytes:
        """The sealed payload (the setup form until `confirmed`)."""
        ctr = self.ctr
        self.ctr += 1
        head = _DATA.pack(KIND_DATA if self.confirmed else KIND_SETUP, self.sid, ctr)
        if not self.confirmed:
            head += self._setup_tail
        return head + self._aead.encrypt(_nonce(self.sid, ctr), plaintext,
                                         _ad(self.src, self.dst, head))


class PairOpener:
    """A destination's pair sessions and its current (and previous) key pairs.

    Args:
        backend: the KEM backend; keys: key pairs by issued_s (the current
            one, and the previous one for a grace period after a rotation).
    """

    def __init__(self, backend: KemBackend, keys: dict[int, KeyPair]) -> None:
        self._backend = backend
        self.keys = keys
        self._sessions: dict[tuple[str, int], tuple[AESGCM, int]] = {}
        self._by_origin: dict[str, list[int]] = {}
        self.setups = 0  # sessions established (KEM decapsulations that opened)

    def open(self, src: str, dst: str, sealed: bytes, now_ms: int) -> bytes:
        """The plaintext of a sealed payload from src to dst (one of ours).

        Raises:
            DecodeError: malformed; AuthError: it does not open (tampered, or
            an unknown or expired session).
        """
        if len(sealed) < DATA_HEADER_BYTES + TAG_BYTES:
            raise DecodeError("sealed payload too short")
        kind, sid, ctr = _DATA.unpack_from(sealed)
        if kind == KIND_SETUP:
            return self._open_setup(src, dst, sealed, sid, ctr, now_ms)
        if kind != KIND_DATA:
            raise DecodeError("unknown sealed payload kind %d" % kind)
        s = self._sessions.get((src, sid))
        if s is None or now_ms - s[1] >= REJECT_AFTER_MS:
            raise AuthError("no pair session %08x from %s" % (sid, src))
        head = sealed[:DATA_HEADER_BYTES]
        return aead_decrypt(s[0], _nonce(sid, ctr), sealed[DATA_HEADER_BYTES:],
                            _ad(src, dst, head))

    def _open_setup(self, src: str, dst: str, sealed: bytes, sid: int, ctr: int,
                    now_ms: int) -> bytes:
        if len(sealed) < SETUP_HEADER_BYTES + TAG_BYTES:
            raise DecodeError("sealed setup too short")
        tail = sealed[DATA_HEADER_BYTES:SETUP_HEADER_BYTES]
        (issued_s,) = _SETUP_TAIL.unpack_from(tail)
        pair = self.keys.get(issued_s)
        if pair is None or pair.record.node_id != dst:
            raise AuthError("setup names no key record of ours (%d)" % issued_s)
        s = self._sessions.get((src, sid))
        if s is None:
            aead = self._setup_aead(src, dst, tail, pair)
        else:
            aead = s[0]
        head = sealed[:SETUP_HEADER_BYTES]
        plain = aead_decrypt(aead, _nonce(sid, ctr), sealed[SETUP_HEADER_BYTES:],
                             _ad(src, dst, head))
        if s is None:  # keep a session only once a message under it opened
            self._remember(src, sid, aead, now_ms)
        return plain

    def _setup_aead(self, src: str, dst: str, tail: bytes, pair: KeyPair) -> AESGCM:
        eph = tail[8:8 + X25519_BYTES]
        kem_ct = tail[8 + X25519_BYTES:]
        try:
            x_ss = self._backend.x25519_exchange(pair.x25519, eph)
        except HandshakeError:
            raise AuthError("setup: low-order ephemeral key")
        kem_ss = self._backend.mlkem_decapsulate(pair.mlkem, kem_ct)
        return _derive(x_ss, kem_ss, src, dst, tail, pair.record)

    def _remember(self, src: str, sid: int, aead: AESGCM, now_ms: int) -> None:
        self.setups += 1
        sids = self._by_origin.setdefault(src, [])
        sids.append(sid)
        self._sessions[(src, sid)] = (aead, now_ms)
        while len(sids) > SESSIONS_PER_ORIGIN:
            self._sessions.pop((src, sids.pop(0)), None)

    def forget_expired(self, now_ms: int) -> int:
        """Drop sessions older than REJECT_AFTER_MS (their keys with them)."""
        old = [k for k, v in self._sessions.items() if now_ms - v[1] >= REJECT_AFTER_MS]
        for k in old:
            del self._sessions[k]
            self._by_origin[k[0]].remove(k[1])
        return len(old)


def new_key_pair(backend: KemBackend, node_id: str, issued_s: int,
                 random: Callable[[int], bytes]) -> KeyPair:
    """A fresh key pair for node_id (X25519 private 32, ML-KEM seed 64)."""
    return KeyPair(backend, random(X25519_BYTES), random(64), node_id, issued_s)


__all__ = ["KeyRecord", "KeyPair", "PairSender", "PairOpener", "new_key_pair"]

"""Transport records of an established PQMESH/1 session: AES-256-GCM per direction.

Rule: no I/O; time only as a `now_ms` argument. A record is

    epoch (1) | seq (8, big-endian) | AES-256-GCM(ciphertext || tag 16)

with AD = the 9 header bytes and nonce = iv XOR be64(seq) (RFC 8446 §5.3).
The stream is ordered (TCP), so a record opens only if its seq is exactly the
next one expected; a rejected record leaves the state unchanged, so the next
valid record still opens. Limits: rekey after 120 s or 2^23 records in either
direction; refuse after 180 s or 2^24 records (below the ~2^24.5 full-size
record bound of RFC 8446 §5.5; WireGuard's timers).
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from meshlink.errors import (
    AuthError,
    DecodeError,
    LocalProtocolError,
    ReplayError,
    SessionExpiredError,
)

KEY_BYTES = 32
IV_BYTES = 12
TAG_BYTES = 16
RECORD_HEADER_BYTES = 9
RECORD_OVERHEAD_BYTES = RECORD_HEADER_BYTES + TAG_BYTES
REKEY_AFTER_MS = 120_000
REJECT_AFTER_MS = 180_000
REKEY_AFTER_RECORDS = 1 << 23
REJECT_AFTER_RECORDS = 1 << 24

_HEADER = struct.Struct(">BQ")
_pack_header = _HEADER.pack
_unpack_header = _HEADER.unpack_from


def aead_encrypt(aead: AESGCM, nonce: bytes, plaintext: bytes, ad: bytes) -> bytes:
    """AES-GCM encrypt; returns ciphertext || tag."""
    return aead.encrypt(nonce, plaintext, ad)


def aead_decrypt(aead: AESGCM, nonce: bytes, ciphertext: bytes, ad: bytes) -> bytes:
    """AES-GCM decrypt and verify.

    Raises:
        AuthError: the tag does not verify (wrong key, nonce, AD or data).
    """
    try:
        return aead.decrypt(nonce, ciphertext, ad)
    except InvalidTag:
        raise AuthError("AEAD tag did not verify")


class Session:
    """Keys and counters of one session epoch (one completed handshake).

    Attributes: epoch (1..255), created_ms (None until the first call given a
    now_ms), handshake_hash (32-byte channel binding), is_initiator,
    sent_records, received_records.
    """

    __slots__ = ("epoch", "created_ms", "handshake_hash", "is_initiator", "_send_aead",
                 "_send_iv", "_recv_aead", "_recv_iv", "_send_seq", "_recv_seq",
                 "rekey_after_ms", "reject_after_ms")

    def __init__(self, *, send_key: bytes, send_iv: bytes, recv_key: bytes, recv_iv: bytes,
                 epoch: int = 1, created_ms: int | None = None,
                 handshake_hash: bytes = b"", is_initiator: bool = False) -> None:
        if len(send_key) != KEY_BYTES or len(recv_key) != KEY_BYTES:
            raise LocalProtocolError("session keys are 32 bytes")
        if len(send_iv) != IV_BYTES or len(recv_iv) != IV_BYTES:
            raise LocalProtocolError("session IVs are 12 bytes")
        if not 0 <= epoch <= 255:
            raise LocalProtocolError("epoch must fit one byte")
        self.epoch = epoch
        self.created_ms = created_ms
        self.handshake_hash = handshake_hash
        self.is_initiator = is_initiator
        self._send_aead = AESGCM(send_key)  # built once: no per-record key setup
        self._recv_aead = AESGCM(recv_key)
        self._send_iv = int.from_bytes(send_iv, "big")
        self._recv_iv = int.from_bytes(recv_iv, "big")
        self._send_seq = 0
        self._recv_seq = 0
        self.rekey_after_ms = REKEY_AFTER_MS
        self.reject_after_ms = REJECT_AFTER_MS

    def shorten_lifetime(self, rekey_after_ms: int, reject_after_ms: int) -> None:
        """Lower the time limits (an operator's stricter policy); never raise them.

        Raises:
            LocalProtocolError: rekey_after_ms is not below reject_after_ms.
        """
        if not 0 < rekey_after_ms < reject_after_ms:
            raise LocalProtocolError("need 0 < rekey_after_ms < reject_after_ms")
        self.rekey_after_ms = min(self.rekey_after_ms, rekey_after_ms)
        self.reject_after_ms = min(self.reject_after_ms, reject_after_ms)

    @property
    def sent_records(self) -> int:
        return self._send_seq

    @property
    def received_records(self) -> int:
        return self._recv_seq

    def seal(self, plaintext: bytes, now_ms: int | None = None) -> bytes:
        """Encrypt plaintext into the next record.

        Raises:
            SessionExpiredError: 2^24 records sealed, or (given now_ms) 180 s old.
        """
        seq = self._send_seq
        if seq >= REJECT_AFTER_RECORDS or (now_ms is not None and self._is_expired(now_ms)):
            raise SessionExpiredError("session used up its budget; rekey")
        header = _pack_header(self.epoch, seq)
        sealed = self._send_aead.encrypt((self._send_iv ^ seq).to_bytes(IV_BYTES, "big"),
                                         plaintext, header)
        self._send_seq = seq + 1
        return header + sealed

    def open(self, record: bytes, now_ms: int | None = None) -> bytes:
        """Verify and decrypt the next record; on any error the state is unchanged.

        Raises:
            DecodeError: shorter than 25 bytes, or another epoch's record.
            ReplayError: seq below the next expected (replay) or above it
                (reordered/gap).
            SessionExpiredError: seq at the 2^24 limit or (given now_ms) 180 s old.
            AuthError: the tag does not verify.
        """
        if len(record) < RECORD_OVERHEAD_BYTES:
            raise DecodeError("record shorter than %d bytes" % RECORD_OVERHEAD_BYTES)
        epoch, seq = _unpack_header(record)
        if epoch != self.epoch:
            raise DecodeError("record of epoch %d, session epoch %d" % (epoch, self.epoch))
        if seq != self._recv_seq:
            raise self._seq_error(seq)
        if seq >= REJECT_AFTER_RECORDS or (now_ms is not None and self._is_expired(now_ms)):
            raise SessionExpiredError("session used up its budget; rekey")
        try:
            plaintext = self._recv_aead.decrypt(
                (self._recv_iv ^ seq).to_bytes(IV_BYTES, "big"),
                memoryview(record)[RECORD_HEADER_BYTES:], record[:RECORD_HEADER_BYTES])
        except InvalidTag:
            raise AuthError("record %d failed authentication" % seq)
        self._recv_seq = seq + 1
        return plaintext

    def needs_rekey(self, now_ms: int) -> bool:
        """True once the session is rekey_after_ms (120 s) old or either direction
        reached 2^23 records."""
        return (self._age_ms(now_ms) >= self.rekey_after_ms
                or self._send_seq >= REKEY_AFTER_RECORDS
                or self._recv_seq >= REKEY_AFTER_RECORDS)

    def expired(self, now_ms: int) -> bool:
        """True once seal/open refuse: reject_after_ms (180 s) old or a direction
        at 2^24 records."""
        return (self._is_expired(now_ms) or self._send_seq >= REJECT_AFTER_RECORDS
                or self._recv_seq >= REJECT_AFTER_RECORDS)

    def _age_ms(self, now_ms: int) -> int:
        if self.created_ms is None:  # anchor on the first time-aware call
            self.created_ms = now_ms
        return now_ms - self.created_ms

    def _is_expired(self, now_ms: int) -> bool:
        return self._age_ms(now_ms) >= self.reject_after_ms

    def _seq_error(self, seq: int) -> ReplayError:
        if seq < self._recv_seq:
            return ReplayError("replayed record: seq %d, expected %d" % (seq, self._recv_seq))
        return ReplayError("reordered/gap: seq %d, expected %d" % (seq, self._recv_seq))

    def __repr__(self) -> str:
        return "Session(epoch=%d, sent=%d, received=%d)" % (
            self.epoch, self._send_seq, self._recv_seq)


def record_epoch(record: bytes) -> int:
    """The epoch byte of a record, to pick the session during a rekey.

    Raises:
        DecodeError: the record is empty.
    """
    if not record:
        raise DecodeError("empty record")
    return record[0]

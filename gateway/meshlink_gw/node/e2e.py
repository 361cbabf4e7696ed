"""A node's end-to-end sealing state (docs/PROTOCOL.md §13): its own and its
served IDs' key pairs, the key records it has checked, and its pair sessions.

Rule: no I/O and no clock (now_ms is passed in); the node decides what to
send. Key pairs live in memory only: a restarted node publishes a fresh
record, so nothing on disk can ever open earlier traffic.
"""

from __future__ import annotations

import os
from typing import Callable

from meshlink.errors import AuthError, DecodeError

from meshlink_gw.crypto.identity import verify
from meshlink_gw.crypto.kem import KemBackend, get_backend
from meshlink_gw.crypto.seal import (
    KIND_DATA,
    KIND_SETUP,
    KeyPair,
    KeyRecord,
    PairOpener,
    PairSender,
    new_key_pair,
)

KEYS_REQUEST = b"\x00meshlink/1 keys?"  # a directed message asking for the destination's record
KEYS_REPLY = b"\x00meshlink/1 keys\x00"  # followed by the 1,336-byte record
RECORDS_MAX = 4096  # checked records kept (oldest dropped first)
ROTATE_AFTER_S = 6 * 3600  # a new record this often; the previous one still opens until the next


def is_sealed(data: bytes) -> bool:
    return bool(data) and data[0] in (KIND_SETUP, KIND_DATA)


def keys_record(data: bytes) -> bytes | None:
    """The record bytes of a keys reply, or None if data is not one."""
    return data[len(KEYS_REPLY):] if data.startswith(KEYS_REPLY) else None


class EndToEnd:
    """Seals what we originate and opens what is addressed to us.

    Args:
        backend: the KEM backend (None: the best available).
        random: random(n) -> n bytes.
    """

    def __init__(self, backend: KemBackend | None = None,
                 random: Callable[[int], bytes] = os.urandom) -> None:
        self.backend = backend or get_backend()
        self.random = random
        self._pairs: dict[str, KeyPair] = {}  # our node IDs -> current key pair
        self._signers: dict[str, tuple[bytes, Callable[[bytes], bytes]]] = {}
        self._openers: dict[str, PairOpener] = {}
        self.records: dict[str, KeyRecord] = {}  # checked records of others
        self._senders: dict[tuple[str, str], PairSender] = {}
        self.counters = {"sealed": 0, "opened": 0, "unopened": 0, "setups_sent": 0,
                         "records_refused": 0}

    # -- our identities --------------------------------------------------
    def add_identity(self, node_id: str, public_key: bytes, sign: Callable[[bytes], bytes],
                     issued_s: int) -> None:
        """Publish a fresh record for node_id (ours or a served board's)."""
        pair = new_key_pair(self.backend, node_id, issued_s, self.random)
        pair.sign(public_key, sign)
        self._pairs[node_id] = pair
        self._signers[node_id] = (public_key, sign)
        self._openers[node_id] = PairOpener(self.backend, {issued_s: pair})

    def rotate(self, issued_s: int) -> None:
        """A new record for each of our IDs; the one before stays openable (for
        origins that have not fetched the new one yet), older ones are erased:
        a later memory theft opens nothing set up to them (forward secrecy)."""
        for node_id, (public_key, sign) in self._signers.items():
            old = self._pairs[node_id]
            pair = new_key_pair(self.backend, node_id, issued_s, self.random)
            pair.sign(public_key, sign)
            self._pairs[node_id] = pair
            self._openers[node_id].keys = {old.record.issued_s: old, issued_s: pair}

    def remove_identity(self, node_id: str) -> None:
        self._pairs.pop(node_id, None)
        self._openers.pop(node_id, None)
        self._signers.pop(node_id, None)

    def record_of(self, node_id: str) -> bytes | None:
        pair = self._pairs.get(node_id)
        return pair.record.encode() if pair is not None else None

    # -- others' records -------------------------------------------------
    def learn(self, src: str, raw: bytes) -> bool:
        """Check and cache src's record; False (counted) if it is not src's."""
        try:
            rec = KeyRecord.decode(raw)
            if rec.node_id != src:
                raise AuthError("key record for %s sent by %s" % (rec.node_id, src))
            rec.check(verify)
        except (DecodeError, AuthError):
            self.counters["records_refused"] += 1
            return False
        old = self.records.get(src)
        if old is not None and old.encode() == rec.encode():
            return True
        if len(self.records) >= RECORDS_MAX:
            self.records.pop(next(iter(self.records)))
        self.records[src] = rec
        for key in [k for k in self._senders if k[1] == src]:
            del self._senders[key]  # a new record: sessions to the old one are useless
        return True

    def forget(self, dst: str) -> None:
        """Drop dst's record and our sessions to it (it may have restarted)."""
        self.records.pop(dst, None)
        for key in [k for k in self._senders if k[1] == dst]:
            del self._senders[key]

    # -- sealing -----------------------------------------------------------
    def seal(self, src: str, dst: str, plaintext: bytes, now_ms: int) -> tuple[bytes, int] | None:
        """(sealed payload, session ID) from src to dst, or None without dst's record."""
        s = self._senders.get((src, dst))
        if s is None or s.needs_rekey(now_ms):
            rec = self.records.get(dst)
            if rec is None:
                return None
            s = self._senders[(src, dst)] = PairSender(self.backend, rec, src, dst, now_ms,
                                                       self.random)
            self.counters["setups_sent"] += 1
        self.counters["sealed"] += 1
        return s.seal(plaintext), s.sid

    def confirmed(self, src: str, dst: str, sid: int) -> None:
        """An Ack proved dst holds session sid: later messages drop the setup."""
        s = self._senders.get((src, dst))
        if s is not None and s.sid == sid:
            s.confirmed = True

    def open(self, src: str, dst: str, sealed: bytes, now_ms: int) -> bytes:
        """Plaintext of a sealed payload to dst (ours). Raises DecodeError/AuthError."""
        opener = self._openers.get(dst)
        if opener is None:
            raise AuthError("no key pair for " + dst)
        try:
            plain = opener.open(src, dst, sealed, now_ms)
        except (DecodeError, AuthError):
            self.counters["unopened"] += 1
            raise
        self.counters["opened"] += 1
        return plain

"""PQMESH/1 cryptography for CPython nodes: identity, hybrid KEM, handshake, session.

Rule: sans-I/O (no sockets, no clock: pass now_ms in). The only file access is
Identity.load / load_or_create. Every failure is a meshlink.errors type.
"""

from meshlink_gw.crypto.handshake import (
    HANDSHAKE_TIMEOUT_MS,
    SUITE,
    VERSION,
    Initiator,
    Responder,
)
from meshlink_gw.crypto.identity import Identity, verify
from meshlink_gw.crypto.kem import KemBackend, get_backend
from meshlink_gw.crypto.session import (
    REJECT_AFTER_MS,
    REJECT_AFTER_RECORDS,
    REKEY_AFTER_MS,
    REKEY_AFTER_RECORDS,
    Session,
    record_epoch,
)

__all__ = [
    "HANDSHAKE_TIMEOUT_MS", "SUITE", "VERSION", "Initiator", "Responder", "Identity", "verify",
    "KemBackend", "get_backend", "REJECT_AFTER_MS", "REJECT_AFTER_RECORDS", "REKEY_AFTER_MS",
    "REKEY_AFTER_RECORDS", "Session", "record_epoch",
]

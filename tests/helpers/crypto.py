"""Handshake fixtures for the tests/gateway/test_crypto_* modules: fixed
identities, a seeded rng, initiator/responder pairs and payload mutations.

Vectors are read only from tests/vectors/ inside the repository, or from the
installed cryptography_vectors package.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from meshlink import messages
from meshlink_gw.crypto.handshake import Initiator, Responder
from meshlink_gw.crypto.identity import Identity
from meshlink_gw.crypto.kem import BACKEND_NAMES, get_backend

VECTOR_DIR = Path(__file__).resolve().parents[1] / "vectors"
WYCHEPROOF_DIR = VECTOR_DIR / "wycheproof"
BACKENDS = BACKEND_NAMES  # ("cryptography", "kyber-py")

ALICE = Identity.from_seed(bytes(range(32)))
BOB = Identity.from_seed(bytes(range(32, 64)))
PSK = bytes(range(100, 132))


def wycheproof(name: str) -> list[tuple[dict, dict]]:
    """(group, test) pairs of tests/vectors/wycheproof/<name>.json."""
    data = json.loads((WYCHEPROOF_DIR / (name + ".json")).read_text())
    return [(g, t) for g in data["testGroups"] for t in g["tests"]]


def seeded_rng(seed: bytes):
    """A deterministic rng(n) for reproducible handshakes (SHA-256 in counter mode)."""
    state = {"counter": 0}

    def rng(n_bytes: int) -> bytes:
        out = b""
        while len(out) < n_bytes:
            block = seed + state["counter"].to_bytes(8, "big")
            out += hashlib.sha256(block).digest()
            state["counter"] += 1
        return out[:n_bytes]

    return rng


def pair(init_backend="cryptography", resp_backend="cryptography", *, init_psk=None,
         resp_psk=None, expected_node_id=None, initiator=ALICE, responder=BOB, **kw):
    """A fresh (Initiator, Responder) pair."""
    init = Initiator(initiator, listen_port=7001, network_psk=init_psk,
                     expected_node_id=expected_node_id, backend=get_backend(init_backend),
                     **kw.get("init_kw", {}))
    resp = Responder(responder, listen_port=7002, network_psk=resp_psk,
                     backend=get_backend(resp_backend), **kw.get("resp_kw", {}))
    return init, resp


def full_handshake(init, resp):
    """Run M1..M3; return the three payloads."""
    m1 = init.start()
    m2 = resp.receive_hello(m1)
    m3 = init.receive(m2)
    resp.receive_finish(m3)
    return m1, m2, m3


def with_body(payload: bytes, mutate) -> bytes:
    """Decode a handshake payload, replace its body by mutate(body), re-encode."""
    msg = messages.decode(payload)
    msg.body = mutate(bytearray(msg.body))
    return msg.encode()


def flip(index: int, mask: int = 0x01):
    """A body mutation that XORs one byte."""

    def mutate(body: bytearray) -> bytes:
        body[index] ^= mask
        return bytes(body)

    return mutate

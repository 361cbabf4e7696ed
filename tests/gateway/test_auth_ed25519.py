"""The end-to-end vectors (tests/vectors/auth.json) with real Ed25519: each
signature re-derives from its seed and verifies through meshlink.auth with
the node's verifier; a tampered one does not."""

from __future__ import annotations

import json
from pathlib import Path

from meshlink import messages
from meshlink.auth import Auth
from meshlink_gw.crypto.identity import Identity, verify

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "auth.json"


def _cases() -> list[dict]:
    return json.loads(VECTORS.read_text())["lines"]


def test_vectors_resign_and_verify():
    auth = Auth(verify)
    for c in _cases():
        ident = Identity.from_seed(bytes.fromhex(c["seed"]))
        assert ident.public_bytes.hex() == c["key_hex"]
        assert ident.sign(bytes.fromhex(c["signed_hex"])).hex() == c["sig_hex"]
        msg = messages.decode(c["encoded"].encode())
        if c["form"] == "mesh":
            assert auth.check_mesh(msg)
            msg.data += b"!"
            assert not auth.check_mesh(msg)
        elif c["form"] == "ack":
            assert auth.check_ack(msg)
            msg.ack_for = msg.dst  # any other attempt
            assert not auth.check_ack(msg)
        else:
            dst, seq, _hops, proof = msg.routes[0]
            assert auth.check_announce(dst, seq, proof)
            assert not Auth(verify).check_announce(dst, seq + 1, proof)

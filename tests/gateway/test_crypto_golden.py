"""Golden PQMESH/1 transcript: fixed identities, PSK and randomness give fixed bytes.

kyber-py encapsulates deterministically, so a kyber-py handshake reproduces
every byte of M1, M2, M3 and the first records. The cryptography backend
derives keys from the same seeds, so its initiator must emit the same M1 and,
fed the golden M2, the same M3 and session keys: a cross-backend check that
pins the wire format and key schedule. Regenerate (only on a deliberate
protocol change) with: python tests/gateway/test_crypto_golden.py --write
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from meshlink_gw.crypto.handshake import Initiator, Responder
from meshlink_gw.crypto.identity import Identity
from meshlink_gw.crypto.kem import get_backend

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: run as a script too
from helpers.crypto import VECTOR_DIR, seeded_rng  # noqa: E402

GOLDEN = VECTOR_DIR / "pqmesh1_handshake.json"
PARAMS = {"initiator_seed": bytes(range(32)).hex(), "responder_seed": bytes(range(32, 64)).hex(),
          "network_psk": bytes(range(100, 132)).hex(), "initiator_rng_seed": "init",
          "responder_rng_seed": "resp", "initiator_port": 4001, "responder_port": 4002}


def _initiator(backend_name: str) -> Initiator:
    return Initiator(Identity.from_seed(bytes.fromhex(PARAMS["initiator_seed"])),
                     listen_port=PARAMS["initiator_port"],
                     network_psk=bytes.fromhex(PARAMS["network_psk"]),
                     backend=get_backend(backend_name),
                     rng=seeded_rng(PARAMS["initiator_rng_seed"].encode()))


def _responder(backend_name: str) -> Responder:
    return Responder(Identity.from_seed(bytes.fromhex(PARAMS["responder_seed"])),
                     listen_port=PARAMS["responder_port"],
                     network_psk=bytes.fromhex(PARAMS["network_psk"]),
                     backend=get_backend(backend_name),
                     rng=seeded_rng(PARAMS["responder_rng_seed"].encode()))


def generate() -> dict:
    """Run the deterministic kyber-py handshake and collect every output."""
    init, resp = _initiator("kyber-py"), _responder("kyber-py")
    m1 = init.start()
    m2 = resp.receive_hello(m1)
    m3 = init.receive(m2)
    resp.receive_finish(m3)
    return dict(PARAMS, m1=m1.decode(), m2=m2.decode(), m3=m3.decode(),
                initiator_node_id=resp.peer_node_id, responder_node_id=init.peer_node_id,
                handshake_hash=init.session.handshake_hash.hex(),
                record_i2r=init.session.seal(b"hello responder").hex(),
                record_r2i=resp.session.seal(b"hello initiator").hex())


def test_kyber_py_reproduces_golden_transcript():
    assert generate() == json.loads(GOLDEN.read_text())


def test_cryptography_initiator_matches_golden_transcript():
    golden = json.loads(GOLDEN.read_text())
    init = _initiator("cryptography")
    assert init.start() == golden["m1"].encode()
    assert init.receive(golden["m2"].encode()) == golden["m3"].encode()
    assert init.session.handshake_hash.hex() == golden["handshake_hash"]
    assert init.session.seal(b"hello responder").hex() == golden["record_i2r"]
    assert init.session.open(bytes.fromhex(golden["record_r2i"])) == b"hello initiator"


def test_cryptography_responder_accepts_golden_m1():
    golden = json.loads(GOLDEN.read_text())
    resp = _responder("cryptography")
    assert resp.receive_hello(golden["m1"].encode())  # fresh encapsulation, valid mac1


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    GOLDEN.write_text(json.dumps(generate(), indent=1, sort_keys=True) + "\n")
    print("wrote", GOLDEN)

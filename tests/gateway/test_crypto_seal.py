"""Sealed payloads (docs/PROTOCOL.md §13): key records, pair setup, sealing,
rekeying, tampering, and the deterministic vectors in tests/vectors/seal.json
(built with kyber-py, whose encapsulation honours its randomness; opened with
every available backend)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from meshlink.errors import AuthError, DecodeError
from meshlink_gw.crypto.identity import Identity, verify
from meshlink_gw.crypto.kem import get_backend
from meshlink_gw.crypto.seal import (
    DATA_HEADER_BYTES,
    RECORD_BYTES,
    REJECT_AFTER_MS,
    REKEY_AFTER_MS,
    REKEY_AFTER_MSGS,
    SETUP_HEADER_BYTES,
    TAG_BYTES,
    KeyPair,
    KeyRecord,
    PairOpener,
    PairSender,
    new_key_pair,
)
from meshlink_gw.node.e2e import EndToEnd

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "seal.json"
BACKENDS = [n for n in ("cryptography", "kyber-py")]


def _chunks(*parts: bytes):
    queue = list(parts)

    def random(n: int) -> bytes:
        out = queue.pop(0)
        assert len(out) == n
        return out
    return random


def _pair(backend=None, issued_s: int = 100):
    a, b = Identity.generate(), Identity.generate()
    be = backend or get_backend()
    kp = new_key_pair(be, b.node_id, issued_s, os.urandom)
    kp.sign(b.public_bytes, b.sign)
    return be, a, b, kp


def test_record_round_trip_and_forgeries_refused():
    _, _, b, kp = _pair()
    raw = kp.record.encode()
    assert len(raw) == RECORD_BYTES
    rec = KeyRecord.decode(raw)
    rec.check(verify)
    assert rec.node_id == b.node_id
    for i in (20, 16 + 32 + 5, RECORD_BYTES - 1):  # x25519, ML-KEM key, signature
        bad = bytearray(raw)
        bad[i] ^= 1
        with pytest.raises(AuthError):
            KeyRecord.decode(bytes(bad)).check(verify)
    other = Identity.generate()  # someone else signing b's record
    forged = KeyRecord.decode(raw)
    forged.key, forged.sig = other.public_bytes, other.sign(b"x")
    with pytest.raises(AuthError):
        forged.check(verify)
    with pytest.raises(DecodeError):
        KeyRecord.decode(raw[:-1])


def test_setup_then_data_and_overhead():
    be, a, b, kp = _pair()
    s = PairSender(be, kp.record, a.node_id, b.node_id, 0, os.urandom)
    o = PairOpener(be, {100: kp})
    first = s.seal(b"hello")
    assert len(first) == SETUP_HEADER_BYTES + TAG_BYTES + 5
    assert o.open(a.node_id, b.node_id, first, 0) == b"hello"
    again = s.seal(b"again, still with the setup")  # not confirmed yet
    assert o.open(a.node_id, b.node_id, again, 1) == b"again, still with the setup"
    s.confirmed = True
    later = s.seal(b"steady")
    assert len(later) - len(b"steady") == DATA_HEADER_BYTES + TAG_BYTES == 25
    assert o.open(a.node_id, b.node_id, later, 2) == b"steady"
    assert o.setups == 1


def test_tampering_wrong_pair_and_unknown_sessions_refused():
    be, a, b, kp = _pair()
    s = PairSender(be, kp.record, a.node_id, b.node_id, 0, os.urandom)
    o = PairOpener(be, {100: kp})
    setup = s.seal(b"x")
    for i in (1, 20, 100, len(setup) - 1):  # sid, ephemeral key, KEM ciphertext, tag
        bad = bytearray(setup)
        bad[i] ^= 1
        with pytest.raises((AuthError, DecodeError)):
            o.open(a.node_id, b.node_id, bytes(bad), 0)
    with pytest.raises(AuthError):  # bound to the pair: another origin cannot replay it
        o.open(Identity.generate().node_id, b.node_id, setup, 0)
    s.confirmed = True
    data = s.seal(b"y")
    with pytest.raises(AuthError):  # its session was never established
        o.open(a.node_id, b.node_id, data, 0)
    o.open(a.node_id, b.node_id, setup, 0)
    assert o.open(a.node_id, b.node_id, data, 0) == b"y"
    with pytest.raises(AuthError):  # expired
        o.open(a.node_id, b.node_id, data, REJECT_AFTER_MS)
    with pytest.raises(DecodeError):
        o.open(a.node_id, b.node_id, b"\x07" + bytes(40), 0)


def test_a_record_we_no_longer_hold_does_not_open():
    be, a, b, kp = _pair()
    s = PairSender(be, kp.record, a.node_id, b.node_id, 0, os.urandom)
    restarted = PairOpener(be, {200: new_key_pair(be, b.node_id, 200, os.urandom)})
    with pytest.raises(AuthError):
        restarted.open(a.node_id, b.node_id, s.seal(b"x"), 0)


def test_rekey_by_count_and_time_through_the_node_state():
    be, a, b, kp = _pair()
    e2e = EndToEnd(be)
    e2e.records[b.node_id] = kp.record
    _, sid = e2e.seal(a.node_id, b.node_id, b"1", 0) or (b"", 0)
    assert e2e.seal(a.node_id, b.node_id, b"2", REKEY_AFTER_MS - 1)[1] == sid  # type: ignore
    _, sid2 = e2e.seal(a.node_id, b.node_id, b"3", REKEY_AFTER_MS) or (b"", 0)
    assert sid2 != sid and e2e.counters["setups_sent"] == 2
    e2e._senders[(a.node_id, b.node_id)].ctr = REKEY_AFTER_MSGS
    _, sid3 = e2e.seal(a.node_id, b.node_id, b"4", REKEY_AFTER_MS) or (b"", 0)
    assert sid3 != sid2 and e2e.counters["setups_sent"] == 3


def test_node_state_refuses_a_record_from_someone_else():
    be, a, b, kp = _pair()
    e2e = EndToEnd(be)
    assert not e2e.learn(a.node_id, kp.record.encode())  # b's record, sent by a
    assert e2e.learn(b.node_id, kp.record.encode())
    assert e2e.counters["records_refused"] == 1


def test_rotation_keeps_the_previous_record_only():
    be, a, b, _ = _pair()
    dest, orig = EndToEnd(be), EndToEnd(be)
    dest.add_identity(b.node_id, b.public_bytes, b.sign, 1)
    raw1 = dest.record_of(b.node_id)
    assert orig.learn(b.node_id, raw1 or b"")
    first = orig.seal(a.node_id, b.node_id, b"under record 1", 0)
    dest.rotate(2)
    assert dest.record_of(b.node_id) != raw1
    assert dest.open(a.node_id, b.node_id, first[0], 0) == b"under record 1"  # type: ignore
    orig.forget(b.node_id)
    orig.learn(b.node_id, raw1 or b"")  # an origin still on record 1, after two rotations
    late = orig.seal(a.node_id, b.node_id, b"too late", 0)
    dest.rotate(3)
    with pytest.raises(AuthError):  # record 1's private keys are gone
        dest.open(a.node_id, b.node_id, late[0], 0)  # type: ignore


def _vector_case(v: dict, backend) -> tuple[KeyPair, bytes, bytes]:
    b = Identity.from_seed(bytes.fromhex(v["dst_ed25519_seed"]))
    kp = KeyPair(backend, bytes.fromhex(v["dst_x25519_private"]),
                 bytes.fromhex(v["dst_mlkem_seed"]), b.node_id, v["issued_s"])
    kp.sign(b.public_bytes, b.sign)
    rnd = _chunks(bytes.fromhex(v["sid"]), bytes.fromhex(v["ephemeral_x25519_private"]),
                  bytes.fromhex(v["mlkem_encaps_m"]))
    s = PairSender(backend, KeyRecord.decode(kp.record.encode()), v["src"], b.node_id, 0, rnd)
    setup = s.seal(bytes.fromhex(v["plaintext1"]))
    s.confirmed = True
    return kp, setup, s.seal(bytes.fromhex(v["plaintext2"]))


def make_vectors() -> dict:
    """The vector file's content (run by hand to regenerate: kyber-py, fixed inputs)."""
    v = {"comment": "Sealed payloads (docs/PROTOCOL.md \u00a713): the destination's record "
                    "from fixed keys, then a setup-form and a data-form payload from src to "
                    "it under fixed randomness (ML-KEM encapsulation m per FIPS 203).",
         "src": "00112233-4455-6677-8899-aabbccddeeff",
         "dst_ed25519_seed": bytes(range(32, 64)).hex(),
         "dst_x25519_private": bytes(range(64, 96)).hex(),
         "dst_mlkem_seed": bytes(range(96, 160)).hex(), "issued_s": 1764032400,
         "sid": "0a0b0c0d", "ephemeral_x25519_private": bytes(range(160, 192)).hex(),
         "mlkem_encaps_m": bytes(range(192, 224)).hex(),
         "plaintext1": b"temperature=21.5".hex(), "plaintext2": b"door=open".hex()}
    kp, setup, data = _vector_case(v, get_backend("kyber-py"))
    v.update(record_hex=kp.record.encode().hex(), sealed_setup_hex=setup.hex(),
             sealed_data_hex=data.hex())
    return v


@pytest.mark.parametrize("name", BACKENDS)
def test_vectors(name):
    v = json.loads(VECTORS.read_text())
    be = get_backend(name)
    b = Identity.from_seed(bytes.fromhex(v["dst_ed25519_seed"]))
    kp = KeyPair(be, bytes.fromhex(v["dst_x25519_private"]), bytes.fromhex(v["dst_mlkem_seed"]),
                 b.node_id, v["issued_s"])
    kp.sign(b.public_bytes, b.sign)
    assert kp.record.encode().hex() == v["record_hex"]
    if be.deterministic_encaps:
        _, setup, data = _vector_case(v, be)
        assert (setup.hex(), data.hex()) == (v["sealed_setup_hex"], v["sealed_data_hex"])
    o = PairOpener(be, {v["issued_s"]: kp})
    setup, data = bytes.fromhex(v["sealed_setup_hex"]), bytes.fromhex(v["sealed_data_hex"])
    assert o.open(v["src"], b.node_id, setup, 0).hex() == v["plaintext1"]
    assert o.open(v["src"], b.node_id, data, 0).hex() == v["plaintext2"]

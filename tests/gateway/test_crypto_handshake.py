"""PQMESH/1 handshake: both backends x both roles, PSK, downgrade, identities, misuse."""

from __future__ import annotations

import base64
import itertools

import pytest
from helpers.crypto import (
    ALICE,
    BACKENDS,
    BOB,
    PSK,
    flip,
    full_handshake,
    pair,
    with_body,
    wycheproof,
)
from meshlink import messages
from meshlink.errors import (
    AuthError,
    DecodeError,
    HandshakeError,
    LocalProtocolError,
    VersionError,
)
from meshlink_gw.crypto import handshake as hs
from meshlink_gw.crypto.handshake import (
    HANDSHAKE_TIMEOUT_MS,
    SUITE,
    Initiator,
    Responder,
    compute_mac1,
    mac1_key,
    offer_bytes,
)
from meshlink_gw.crypto.identity import Identity
from meshlink_gw.crypto.kem import MLKEM768_EK_BYTES, get_backend


def forge_m1(m1: bytes, *, versions=None, suites=None, body=None, psk=None) -> bytes:
    """Rewrite M1's clear fields (and/or body) and recompute a valid mac1, as an
    active attacker who knows the network key (or when there is none) can."""
    msg = messages.decode(m1)
    msg.versions = msg.versions if versions is None else versions
    msg.suites = msg.suites if suites is None else suites
    raw = bytes(msg.body if body is None else body)
    e_pub, ek = raw[:32], raw[32:1216]
    offer = offer_bytes(msg.versions, msg.suites, msg.listen_port)
    msg.body = e_pub + ek + compute_mac1(mac1_key(psk), offer, e_pub, ek)
    return msg.encode()


@pytest.mark.parametrize("init_backend,resp_backend", list(itertools.product(BACKENDS, repeat=2)))
def test_full_handshake_every_backend_pairing(init_backend, resp_backend):
    init, resp = pair(init_backend, resp_backend, expected_node_id=BOB.node_id)
    m1, m2, m3 = full_handshake(init, resp)
    assert (init.peer_node_id, resp.peer_node_id) == (BOB.node_id, ALICE.node_id)
    assert (init.peer_listen_port, resp.peer_listen_port) == (7002, 7001)
    assert init.peer_public_bytes == BOB.public_bytes
    assert init.session.handshake_hash == resp.session.handshake_hash
    assert init.session.is_initiator and not resp.session.is_initiator
    assert resp.session.open(init.session.seal(b"to responder")) == b"to responder"
    assert init.session.open(resp.session.seal(b"to initiator")) == b"to initiator"
    assert len(messages.decode(m1).body) == hs.M1_BODY_BYTES == 1232
    assert len(messages.decode(m2).body) == hs.M2_BODY_BYTES == 1248
    assert len(messages.decode(m3).body) == hs.M3_BODY_BYTES == 128


def test_first_flight_shows_mlkem_key_and_no_identity():
    init, resp = pair()
    m1, m2, m3 = full_handshake(init, resp)
    hello = messages.decode(m1)
    assert isinstance(hello, messages.Handshake)
    assert hello.versions == [1] and hello.suites == [SUITE]
    ek = hello.body[32:32 + MLKEM768_EK_BYTES]
    assert len(ek) == 1184
    get_backend().mlkem_encapsulate(ek, bytes(32))  # a valid ML-KEM-768 key
    wire = m1 + m2 + m3
    for ident in (ALICE, BOB):  # a passive observer learns no identity
        for form in (ident.public_bytes, base64.b64encode(ident.public_bytes)[:40],
                     ident.node_id.encode(), ident.public_bytes.hex().encode()):
            assert form not in wire
    assert b"to responder" not in wire


def test_network_psk_both_sides_ok_and_session_differs():
    init, resp = pair(init_psk=PSK, resp_psk=PSK)
    full_handshake(init, resp)
    other_i, other_r = pair()
    full_handshake(other_i, other_r)
    assert init.session.handshake_hash != other_i.session.handshake_hash


@pytest.mark.parametrize("init_psk,resp_psk", [(PSK, bytes(32)), (None, PSK), (PSK, None)])
def test_wrong_network_psk_refused_at_mac1(init_psk, resp_psk, monkeypatch):
    init, resp = pair(init_psk=init_psk, resp_psk=resp_psk)
    calls = []
    monkeypatch.setattr(resp._backend, "mlkem_encapsulate",
                        lambda *a: calls.append(a))  # no KEM work before mac1
    with pytest.raises(AuthError, match="mac1"):
        resp.receive_hello(init.start())
    assert calls == []


def test_psk_is_also_in_the_key_schedule():
    """Even with mac1 bypassed, a wrong PSK fails at M2 (WireGuard psk style)."""
    init, resp = pair(init_psk=PSK, resp_psk=bytes(32))
    resp._mac1_key = mac1_key(PSK)  # simulate an attacker who passes mac1
    m2 = resp.receive_hello(init.start())
    with pytest.raises(AuthError):
        init.receive(m2)


def test_wrong_expected_node_id():
    init, resp = pair(expected_node_id=Identity.generate().node_id)
    with pytest.raises(AuthError, match="expected node"):
        init.receive(resp.receive_hello(init.start()))
    with pytest.raises(HandshakeError):  # failed for good
        init.receive(b"{}")


@pytest.mark.parametrize("versions,suites", [
    ([2], [SUITE]),
    ([], [SUITE]),
    ([1], []),
    ([1], ["pqmesh1-x25519-ed25519-aes256gcm-sha256"]),  # classical-only: no fallback
    ([1], [SUITE.upper()]),
])
def test_offer_without_our_version_or_suite_is_version_error(versions, suites):
    init, resp = pair()
    with pytest.raises(VersionError):
        resp.receive_hello(forge_m1(init.start(), versions=versions, suites=suites))


def test_extended_offer_is_signed_so_a_mitm_change_is_caught():
    init, resp = pair()
    tampered = forge_m1(init.start(), versions=[1, 2], suites=["classical", SUITE])
    m2 = resp.receive_hello(tampered)  # responder accepts: it still sees our suite
    with pytest.raises(AuthError):
        init.receive(m2)  # but the signed transcript differs from what I sent


@pytest.mark.parametrize("field,value", [("version", 2), ("suite", "classical")])
def test_responder_choice_other_than_ours_is_version_error(field, value):
    init, resp = pair()
    ack = messages.decode(resp.receive_hello(init.start()))
    setattr(ack, field, value)
    with pytest.raises(VersionError):
        init.receive(ack.encode())


def test_mitm_replacing_ephemeral_keys_is_caught():
    init, resp = pair()
    m1 = init.start()
    mitm = Initiator(Identity.generate(), listen_port=1)
    own = messages.decode(mitm.start()).body
    m2 = resp.receive_hello(forge_m1(m1, body=own))
    with pytest.raises(AuthError):
        init.receive(m2)


def test_low_order_x25519_points_are_refused():
    init, resp = pair()
    m1 = init.start()
    body = bytes(32) + messages.decode(m1).body[32:]
    with pytest.raises(HandshakeError, match="zero"):
        resp.receive_hello(forge_m1(m1, body=body))
    init, resp = pair()
    m2 = resp.receive_hello(init.start())
    with pytest.raises(HandshakeError, match="zero"):
        init.receive(with_body(m2, lambda b: bytes(32) + bytes(b[32:])))


def test_non_canonical_mlkem_key_is_refused():
    bad_ek = next(bytes.fromhex(t["ek"]) for _g, t in wycheproof("mlkem_768_encaps_test")
                  if "ModulusOverflow" in t["flags"])
    init, resp = pair()
    m1 = init.start()
    body = messages.decode(m1).body
    with pytest.raises(HandshakeError, match="canonical"):
        resp.receive_hello(forge_m1(m1, body=body[:32] + bad_ek + body[1216:]))


@pytest.mark.parametrize("region", ["e_i", "ek", "mac1"])
def test_tampered_m1_body_region_fails_mac1(region):
    index = {"e_i": 5, "ek": 600, "mac1": 1220}[region]
    init, resp = pair()
    with pytest.raises(AuthError, match="mac1"):
        resp.receive_hello(with_body(init.start(), flip(index)))


@pytest.mark.parametrize("index", [0, 31, 32, 700, 1119, 1120, 1150, 1168, 1200, 1247])
def test_tampered_m2_body_is_auth_error(index):
    init, resp = pair()
    m2 = resp.receive_hello(init.start())
    with pytest.raises(AuthError):
        init.receive(with_body(m2, flip(index)))


@pytest.mark.parametrize("index", [0, 20, 47, 48, 100, 127])
def test_tampered_m3_body_is_auth_error(index):
    init, resp = pair()
    m3 = init.receive(resp.receive_hello(init.start()))
    with pytest.raises(AuthError):
        resp.receive_finish(with_body(m3, flip(index)))


def test_wrong_body_lengths_are_decode_errors():
    init, resp = pair()
    m1 = init.start()
    with pytest.raises(DecodeError):
        resp.receive_hello(with_body(m1, lambda b: bytes(b[:-1])))
    init, resp = pair()
    m2 = resp.receive_hello(init.start())
    with pytest.raises(DecodeError):
        init.receive(with_body(m2, lambda b: bytes(b) + b"\0"))
    init, resp = pair()
    m3 = init.receive(resp.receive_hello(init.start()))
    with pytest.raises(DecodeError):
        resp.receive_finish(with_body(m3, lambda b: bytes(b[:64])))


def test_replayed_m3_into_another_session_is_refused():
    init, resp = pair()
    m1, _m2, m3 = full_handshake(init, resp)
    replay = Responder(BOB, listen_port=7002)
    replay.receive_hello(m1)  # replayed M1 gets a fresh M2 (new ephemeral keys)
    with pytest.raises(AuthError):
        replay.receive_finish(m3)


def test_duplicate_messages_after_completion_do_not_reinstall_keys():
    init, resp = pair()
    m1, m2, m3 = full_handshake(init, resp)
    session_r, session_i = resp.session, init.session
    record = session_i.seal(b"first")
    assert session_r.open(record) == b"first"
    with pytest.raises(HandshakeError):
        resp.receive_finish(m3)
    with pytest.raises(HandshakeError):
        resp.receive_hello(m1)
    with pytest.raises(HandshakeError):
        init.receive(m2)
    assert resp.session is session_r and init.session is session_i
    assert session_r.received_records == 1  # counters untouched


def test_wrong_message_types_and_misuse():
    init, resp = pair()
    with pytest.raises(LocalProtocolError):
        init.receive(b"{}")  # before start()
    m1 = init.start()
    with pytest.raises(LocalProtocolError):
        init.start()
    with pytest.raises(LocalProtocolError):
        _ = init.session
    assert not init.complete
    with pytest.raises(HandshakeError):
        resp.receive_finish(m1)  # finish before hello
    with pytest.raises(HandshakeError, match="expected handshake_ack"):
        init.receive(m1)
    init2, resp2 = pair()
    resp2.receive_hello(init2.start())
    with pytest.raises(HandshakeError, match="expected handshake_finish"):
        resp2.receive_finish(messages.Ping(seq=1, sent_ms=2).encode())


def test_oversized_payload_is_refused_before_decoding():
    _init, resp = pair()
    with pytest.raises(DecodeError, match="too large"):
        resp.receive_hello(b" " * (hs.MAX_HANDSHAKE_PAYLOAD_BYTES + 1))


def test_connecting_to_ourselves_is_refused():
    init, resp = pair(initiator=ALICE, responder=ALICE)
    with pytest.raises(HandshakeError, match="our own identity"):
        init.receive(resp.receive_hello(init.start()))


def test_now_ms_epoch_and_constants():
    init, resp = pair(init_kw={"epoch": 3}, resp_kw={"epoch": 3})
    m2 = resp.receive_hello(init.start())
    resp.receive_finish(init.receive(m2, now_ms=5_000), now_ms=5_001)
    assert (init.session.created_ms, resp.session.created_ms) == (5_000, 5_001)
    assert init.session.epoch == resp.session.epoch == 3
    assert HANDSHAKE_TIMEOUT_MS == 10_000


def test_local_argument_checks():
    with pytest.raises(LocalProtocolError):
        Initiator(ALICE, listen_port=70000)
    with pytest.raises(LocalProtocolError):
        Responder(BOB, listen_port=1, network_psk=b"short")


def test_non_canonical_json_is_refused():
    """Whitespace or key order changes keep the values but change the bytes."""
    init, resp = pair()
    m1 = init.start()
    for variant in (m1.replace(b'"v":1', b'"v": 1'), b" " + m1, m1 + b"\n",
                    m1.replace(b'"listen_port":7001', b'"listen_port":7001.0')):
        with pytest.raises(DecodeError, match="canonical"):
            pair()[1].receive_hello(variant)
    m2 = resp.receive_hello(m1)
    with pytest.raises(DecodeError, match="canonical"):
        init.receive(m2.replace(b":", b": ", 1))

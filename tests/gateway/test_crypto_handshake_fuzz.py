"""Every-byte tampering and hypothesis fuzzing of PQMESH/1 handshake payloads.

Property: whatever bytes arrive, the handshake raises only MeshLinkError
subclasses, and a changed payload never leads to an established session.
"""

from __future__ import annotations

from helpers.crypto import pair
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from meshlink import messages
from meshlink.errors import MeshLinkError
from meshlink_gw.crypto.handshake import SUITE, compute_mac1, mac1_key, offer_bytes

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def _tampered(payload: bytes, index: int, mask: int = 0x01) -> bytes:
    bad = bytearray(payload)
    bad[index] ^= mask
    return bytes(bad)


def _m1_fails(m1_bad: bytes, init) -> bool:
    """True if a changed M1 is refused by the responder or, failing that, by the
    initiator on the resulting M2."""
    _i, resp = pair()
    try:
        m2 = resp.receive_hello(m1_bad)
    except MeshLinkError:
        return True
    try:
        init.receive(m2)
    except MeshLinkError:
        return True
    return False


def test_every_byte_of_m1_tampered():
    n_bytes = len(pair()[0].start())
    for index in range(n_bytes):
        init, _r = pair()
        m1 = init.start()
        assert _m1_fails(_tampered(m1, index), init), index


def test_every_byte_of_m2_tampered():
    init, resp = pair()
    n_bytes = len(resp.receive_hello(init.start()))
    for index in range(n_bytes):
        init, resp = pair()
        m2 = resp.receive_hello(init.start())
        try:
            init.receive(_tampered(m2, index))
        except MeshLinkError:
            continue
        raise AssertionError("tampered M2 byte %d accepted" % index)


def test_every_byte_of_m3_tampered():
    init, resp = pair()
    m3 = init.receive(resp.receive_hello(init.start()))
    for index in range(len(m3)):
        init, resp = pair()
        m3 = init.receive(resp.receive_hello(init.start()))
        try:
            resp.receive_finish(_tampered(m3, index, 0x80))
        except MeshLinkError:
            continue
        raise AssertionError("tampered M3 byte %d accepted" % index)


@FUZZ
@given(st.binary(max_size=3000))
def test_random_bytes_as_m1(data):
    _i, resp = pair()
    try:
        resp.receive_hello(data)
    except MeshLinkError:
        return
    raise AssertionError("random M1 accepted")


@FUZZ
@given(st.binary(max_size=3000))
def test_random_bytes_as_m2_and_m3(data):
    init, resp = pair()
    m2 = resp.receive_hello(init.start())
    for receive in (init.receive, resp.receive_finish):
        try:
            receive(data)
        except MeshLinkError:
            continue
        raise AssertionError("random payload accepted by %s" % receive.__name__)
    assert m2  # the genuine M2 was produced


def _mutate(payload: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Apply (kind, position, value) edits: 0 replace, 1 insert, 2 delete."""
    out = bytearray(payload)
    for kind, pos, value in edits:
        if not out:
            break
        pos %= len(out)
        if kind == 0:
            out[pos] = value
        elif kind == 1:
            out.insert(pos, value)
        else:
            del out[pos]
    return bytes(out)


EDITS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 1 << 16), st.integers(0, 255)),
                 min_size=1, max_size=4)


@FUZZ
@given(EDITS, st.integers(0, 2))
def test_mutated_genuine_payloads(edits, which):
    init, resp = pair()
    m1 = init.start()
    if which == 0:
        bad = _mutate(m1, edits)
        if bad != m1:
            assert _m1_fails(bad, init)
        return
    m2 = resp.receive_hello(m1)
    if which == 1:
        genuine, receive = m2, init.receive
    else:
        genuine, receive = init.receive(m2), resp.receive_finish
    bad = _mutate(genuine, edits)
    if bad == genuine:  # e.g. an insert undone by a delete
        return
    try:
        receive(bad)
    except MeshLinkError:
        return
    raise AssertionError("a mutated payload was accepted")


VERSIONS = st.lists(st.integers(0, (1 << 53) - 1), max_size=5)
SUITES = st.lists(st.sampled_from([SUITE, "classical", ""]) | st.text(max_size=60), max_size=5)


@FUZZ
@given(versions=VERSIONS, suites=SUITES, body=st.binary(max_size=1400),
       port=st.integers(0, 65535))
def test_structured_garbage_m1(versions, suites, body, port):
    payload = messages.Handshake(versions=versions, suites=suites, listen_port=port,
                                 body=body).encode()
    _i, resp = pair()
    try:
        resp.receive_hello(payload)
    except MeshLinkError:
        return
    raise AssertionError("forged M1 without a valid mac1 accepted")


@FUZZ
@given(versions=VERSIONS, suites=SUITES, keys=st.binary(min_size=1216, max_size=1216))
def test_forged_m1_with_valid_mac1_and_random_keys(versions, suites, keys):
    """An attacker who knows the (absent) network key: random e/ek with a valid
    mac1 either fails typed or yields an M2 that no initiator will accept."""
    offer = offer_bytes(versions, suites, 9)
    mac1 = compute_mac1(mac1_key(None), offer, keys[:32], keys[32:])
    payload = messages.Handshake(versions=versions, suites=suites, listen_port=9,
                                 body=keys + mac1).encode()
    init, resp = pair()
    init.start()
    try:
        m2 = resp.receive_hello(payload)
    except MeshLinkError:
        return
    try:
        init.receive(m2)
    except MeshLinkError:
        return
    raise AssertionError("forged M1 led to a session")

# End-to-end signed forms (meshlink.auth, docs/PROTOCOL.md §11); runs on
# CPython and MicroPython. Ed25519 is injected, so here a verifier that knows
# the vectors' (key, signed bytes, signature) triples stands in for it
# (tests/gateway/test_auth_ed25519.py checks the same vectors with real Ed25519).
from meshlink import messages
from meshlink.auth import (
    ACK_LABEL,
    ANNOUNCE_LABEL,
    MESH_LABEL,
    Auth,
    ack_signed_bytes,
    announce_signed_bytes,
    mesh_signed_bytes,
)
from meshlink.delivery import Delivery
from meshlink.errors import LocalProtocolError
from vectors import expect_raises, iter_lines, unhex

_FORMS = {"mesh": mesh_signed_bytes, "ack": ack_signed_bytes}


def _cases():
    return list(iter_lines("auth"))


def _known_verifier(cases):
    good = set()
    for c in cases:
        good.add((unhex(c["key_hex"]), unhex(c["signed_hex"]), unhex(c["sig_hex"])))
    calls = []

    def verify(key, data, sig):
        calls.append(data)
        return (bytes(key), bytes(data), bytes(sig)) in good

    return verify, calls


def test_vectors_signed_bytes_and_wire_form():
    for c in _cases():
        msg = messages.decode(c["encoded"].encode())
        assert msg.encode() == c["encoded"].encode()
        if c["form"] == "announce":
            dst, seq, _hops, _proof = msg.routes[0]
            assert announce_signed_bytes(dst, seq) == unhex(c["signed_hex"])
            continue
        assert _FORMS[c["form"]](msg) == unhex(c["signed_hex"])
        assert msg.key == unhex(c["key_hex"]) and msg.sig == unhex(c["sig_hex"])


def test_labels_separate_the_forms():
    labels = (MESH_LABEL, ACK_LABEL, ANNOUNCE_LABEL)
    for a in labels:
        for b in labels:
            assert a == b or not a.startswith(b)


def test_check_mesh_covers_all_but_ttl_and_path():
    cases = _cases()
    verify, _calls = _known_verifier(cases)
    auth = Auth(verify)
    for c in cases:
        if c["form"] != "mesh":
            continue
        msg = messages.decode(c["encoded"].encode())
        assert auth.check_mesh(msg)
        msg.ttl, msg.path = 1, msg.path + [msg.src]  # what relays change
        assert auth.check_mesh(msg)
        for attr, value in (("data", b"x"), ("origin_id", "00000000-0000-4000-8000-000000000001"),
                            ("message_id", "00000000-0000-4000-8000-000000000002"),
                            ("dst", "00000000-0000-4000-8000-000000000003"),
                            ("src", "00000000-0000-4000-8000-000000000004"),
                            ("sig", b""), ("key", b"\x00" * 32)):
            forged = messages.decode(c["encoded"].encode())
            setattr(forged, attr, value)
            assert not auth.check_mesh(forged), attr


def test_announcements_verified_once_per_dst_and_seq():
    cases = [c for c in _cases() if c["form"] == "announce"]
    verify, calls = _known_verifier(cases)
    auth = Auth(verify)
    c = cases[0]
    dst, seq, _hops, proof = messages.decode(c["encoded"].encode()).routes[0]
    for _ in range(3):
        assert auth.check_announce(dst, seq, proof)
    assert len(calls) == 1  # cached after the first
    assert not auth.check_announce(dst, seq, proof[:-4] + "AAA=")  # cached pair, other proof
    assert not auth.check_announce(dst, seq + 1, proof)  # a fresher seq needs its own
    assert auth.check_announce(dst, seq, "")  # a bare entry for the pair we verified
    assert not auth.check_announce(dst, seq + 1, "")  # ... but not for any other pair
    assert not Auth(verify).check_announce(dst, seq, "")  # nor where it was never verified
    assert auth.announce_proof(dst, seq) == proof  # relays pass the destination's on


def _toy_signer(key):
    # not a signature scheme: a stand-in with the right sizes for the logic tests
    import hashlib

    def sign(data):
        h = hashlib.sha256(key + data).digest()
        return h + h

    return sign


def _toy_verify(key, data, sig):
    return _toy_signer(bytes(key))(bytes(data)) == bytes(sig)


def _toy_auth(*keys):
    from meshlink.nodeid import node_id_text_from_public_key
    auth = Auth(_toy_verify)
    ids = []
    for k in keys:
        nid = node_id_text_from_public_key(k)
        auth.add_signer(nid, k, _toy_signer(k))
        ids.append(nid)
    return auth, ids


def _new_ids():
    n = [0]

    def new_id():
        n[0] += 1
        return "00000000-0000-4000-9000-%012x" % n[0]

    return new_id


def test_delivery_counts_only_the_destinations_proof():
    auth, (a, b, x) = _toy_auth(b"a" * 32, b"b" * 32, b"x" * 32)
    d = Delivery(_new_ids(), auth=auth)
    msg = d.message(a, b, b"hi")
    assert auth.check_mesh(msg) and d.authentic(msg)
    d.track(msg, 0)
    # the destination's ID with someone else's key; the relay's own valid proof
    fake = messages.Ack(src=b, dst=a, ack_for=msg.message_id, message_id=d.new_id(), ttl=8,
                        path=[])
    fake.key, fake.sig = b"x" * 32, _toy_signer(b"x" * 32)(ack_signed_bytes(fake))
    assert d.on_ack(fake, 5) is None
    own = auth.sign_ack(messages.Ack(src=x, dst=a, ack_for=msg.message_id,
                                     message_id=d.new_id(), ttl=8, path=[]))
    assert d.on_ack(own, 6) is None
    assert d.forged_acks == 2 and d.pending_count() == 1
    proof = d.ack_for(msg)  # what b sends: signed by b
    assert proof.src == b and auth.check_ack(proof)
    done = d.on_ack(proof, 9)
    assert done is not None and done.origin_id == msg.origin_id
    # a retry is signed afresh (new message_id, same origin)
    m2 = d.message(a, b, b"again")
    d.track(m2, 10)
    retry = d.handle_timer(10 + 2000)[0].msg
    assert retry.message_id != m2.message_id and auth.check_mesh(retry)


def test_no_key_no_signature():
    auth, (a,) = _toy_auth(b"a" * 32)
    d = Delivery(_new_ids(), auth=auth)
    expect_raises(LocalProtocolError, d.message, "00000000-0000-4000-8000-00000000000b",
                  a, b"not ours")
    expect_raises(LocalProtocolError, auth.add_signer, a, b"b" * 32, _toy_signer(b"b" * 32))
    forged = messages.MeshMessage(src=a, dst=None, data=b"", message_id=d.new_id(), ttl=1,
                                  path=[])
    assert not d.authentic(forged)  # unsigned

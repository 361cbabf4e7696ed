"""PQMESH/1 cookies (PROTOCOL.md §5.3.1): the vector, recomputed from the spec's
formulas with the standard library and `cryptography` alone, must match the
product code byte for byte; then the behaviours: a responder under load
answers M1 without mac2 with a cookie reply and does no KEM work, an M1 that
carries mac2 over the cookie of its source gets M2, a cookie is bound to its
source and to the secret's two most recent periods, and a cookie reply opens
only for the M1 it answers. Regenerate the vector (only on a deliberate
protocol change) with: python tests/gateway/test_crypto_cookie.py --write
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from meshlink import messages
from meshlink.errors import AuthError, DecodeError
from meshlink_gw.crypto.cookie import (
    COOKIE_SECRET_ROTATE_MS,
    CookieJar,
    compute_mac2,
    open_cookie_reply,
)
from meshlink_gw.crypto.handshake import CookieRequired, Initiator, Responder
from meshlink_gw.crypto.identity import Identity
from meshlink_gw.crypto.kem import get_backend

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: run as a script too
from helpers.crypto import VECTOR_DIR, seeded_rng  # noqa: E402

VECTOR = VECTOR_DIR / "pqmesh1_cookie.json"
PARAMS = {"network_psk": bytes(range(100, 132)).hex(), "secret": bytes(range(7, 39)).hex(),
          "reply_nonce": bytes(range(200, 224)).hex(), "source": "192.0.2.7",
          "initiator_seed": bytes(range(32)).hex(), "initiator_rng_seed": "init",
          "initiator_port": 4001}


def _fixed_rng(*chunks: bytes):
    queue = list(chunks)

    def rng(n: int) -> bytes:
        out = queue.pop(0)
        assert len(out) == n
        return out
    return rng


def _initiator(cookie: bytes | None = None) -> Initiator:
    return Initiator(Identity.from_seed(bytes.fromhex(PARAMS["initiator_seed"])),
                     listen_port=PARAMS["initiator_port"],
                     network_psk=bytes.fromhex(PARAMS["network_psk"]),
                     backend=get_backend("kyber-py"),
                     rng=seeded_rng(PARAMS["initiator_rng_seed"].encode()), cookie=cookie)


def generate() -> dict:
    """Every output of the product code for PARAMS."""
    psk = bytes.fromhex(PARAMS["network_psk"])
    jar = CookieJar(psk, rng=_fixed_rng(bytes.fromhex(PARAMS["secret"]),
                                        bytes.fromhex(PARAMS["reply_nonce"])))
    init = _initiator()
    m1 = init.start()
    mac1 = messages.decode(m1).body[1216:1232]
    reply = jar.reply(PARAMS["source"], 0, mac1)
    cookie = open_cookie_reply(psk, messages.decode(reply).body, mac1)
    m1_mac2 = _initiator(cookie).start()
    return dict(PARAMS, m1=m1.decode(), cookie_reply=reply.decode(), cookie=cookie.hex(),
                m1_with_mac2=m1_mac2.decode())


def _hkdf(ikm: bytes, info: bytes) -> bytes:  # RFC 5869 with an empty salt, L = 32
    prk = hmac.digest(bytes(32), ikm, "sha256")
    return hmac.digest(prk, info + b"\x01", "sha256")


def test_product_reproduces_the_vector():
    assert generate() == json.loads(VECTOR.read_text())


def test_vector_follows_the_spec_formulas():
    """An outside implementer's recomputation from PROTOCOL.md §5.3.1 alone."""
    v = json.loads(VECTOR.read_text())
    psk, secret = bytes.fromhex(v["network_psk"]), bytes.fromhex(v["secret"])
    cookie = hmac.digest(secret, b"pqmesh/1 cookie" + v["source"].encode(), "sha256")[:16]
    assert cookie.hex() == v["cookie"]
    m1 = json.loads(v["m1"])
    body = messages.b64decode(m1["body"])
    offer = json.dumps({"listen_port": m1["listen_port"], "suites": m1["suites"],
                        "versions": m1["versions"]}, separators=(",", ":")).encode()
    mac1 = body[1216:1232]
    # the cookie reply: nonce 24 | AES-256-GCM(HMAC(cookie_key, nonce), 0^12, cookie, AD=mac1)
    reply = messages.b64decode(json.loads(v["cookie_reply"])["body"])
    assert len(reply) == 56
    nonce = reply[:24]
    assert nonce.hex() == v["reply_nonce"]
    key_n = hmac.digest(_hkdf(psk, b"pqmesh/1 cookie"), nonce, "sha256")
    assert AESGCM(key_n).encrypt(bytes(12), cookie, mac1) == reply[24:]
    # M1 retried: the same fields, body + mac2 over offer || e_i || ek || mac1
    m1b = json.loads(v["m1_with_mac2"])
    body2 = messages.b64decode(m1b["body"])
    assert len(body2) == 1248 and body2[:1232] == body
    mac2 = hmac.digest(cookie, b"pqmesh/1 mac2" + offer + body, "sha256")[:16]
    assert body2[1232:] == mac2
    assert hashlib.sha256(v["m1"].encode()).digest() != hashlib.sha256(
        v["m1_with_mac2"].encode()).digest()


class _CountingBackend:
    """The default KEM backend, counting encapsulations (the responder's KEM work)."""

    def __init__(self) -> None:
        self.inner = get_backend()
        self.encapsulations = 0

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def mlkem_encapsulate(self, ek: bytes, rnd: bytes):
        self.encapsulations += 1
        return self.inner.mlkem_encapsulate(ek, rnd)


def test_under_load_m1_without_mac2_gets_a_cookie_and_no_kem_work():
    jar = CookieJar(bytes(32))
    backend = _CountingBackend()
    ident = Identity.generate()
    init = Initiator(Identity.generate(), listen_port=1)
    m1 = init.start()
    for _ in range(5):  # the same M1 replayed: a cookie each time, never M2
        resp = Responder(ident, listen_port=2, backend=backend)
        out = resp.receive_hello(m1, cookies=jar, source="10.0.0.1", now_ms=1000)
        assert resp.cookie_sent and type(messages.decode(out)) is messages.HandshakeCookie
        assert len(out) < 200  # a small reply: 56 bytes of body
    assert backend.encapsulations == 0
    with pytest.raises(CookieRequired) as e:
        init.receive(out)
    # the retry with the cookie completes, under load, from the same source
    init2 = Initiator(Identity.generate(), listen_port=1, cookie=e.value.cookie)
    resp = Responder(ident, listen_port=2, backend=backend)
    m2 = resp.receive_hello(init2.start(), cookies=jar, source="10.0.0.1", now_ms=2000)
    assert not resp.cookie_sent and backend.encapsulations == 1
    resp.receive_finish(init2.receive(m2))
    assert resp.session.handshake_hash == init2.session.handshake_hash


def test_cookie_is_bound_to_source_and_recent_secrets():
    jar = CookieJar(bytes(32))
    init = Initiator(Identity.generate(), listen_port=1)
    reply = Responder(Identity.generate(), listen_port=2).receive_hello(
        init.start(), cookies=jar, source="10.0.0.1", now_ms=0)
    with pytest.raises(CookieRequired) as e:
        init.receive(reply)
    cookie = e.value.cookie

    def answer(source: str, now_ms: int) -> bool:
        """True if an M1 with mac2 over cookie is answered with M2."""
        resp = Responder(Identity.generate(), listen_port=2)
        m1 = Initiator(Identity.generate(), listen_port=1, cookie=cookie).start()
        resp.receive_hello(m1, cookies=jar, source=source, now_ms=now_ms)
        return not resp.cookie_sent

    assert answer("10.0.0.1", 10)
    assert not answer("10.0.0.2", 10)  # another source: its mac2 does not verify
    assert answer("10.0.0.1", COOKIE_SECRET_ROTATE_MS + 5)  # previous secret still good
    assert not answer("10.0.0.1", 2 * COOKIE_SECRET_ROTATE_MS + 10)  # two rotations on


def test_a_cookie_lives_one_to_two_periods_whatever_the_traffic():
    """Secrets change on period boundaries, not at the first use after one: a
    sparse use never stretches a cookie's life."""
    period = COOKIE_SECRET_ROTATE_MS
    jar = CookieJar(bytes(32))
    jar.cookie_for("10.0.0.1", 0)  # the periods start here
    made = jar.cookie_for("10.0.0.1", period - 1)  # late in the first period

    def valid(now_ms: int) -> bool:
        covered = b"x" * 40
        return jar.mac2_valid("10.0.0.1", now_ms, covered, compute_mac2(made, covered))

    assert valid(period + period // 2)  # the next period: the previous secret
    assert not valid(2 * period)  # two periods on: gone, however sparse the traffic
    jar2 = CookieJar(bytes(32))
    jar2.cookie_for("10.0.0.1", 0)
    old = jar2.cookie_for("10.0.0.1", 10)
    covered = b"y" * 40
    # a long idle, then a use: both the current and previous secrets are new
    assert not jar2.mac2_valid("10.0.0.1", 5 * period + 3, covered,
                               compute_mac2(old, covered))


def test_without_load_mac2_is_ignored():
    """Not under load (no cookies given): an M1 with a mac2 over a made-up cookie
    is answered as any M1, and its exact bytes (mac2 too) enter the transcript."""
    init = Initiator(Identity.generate(), listen_port=1, cookie=bytes(16))
    resp = Responder(Identity.generate(), listen_port=2)
    m2 = resp.receive_hello(init.start())
    assert type(messages.decode(m2)) is messages.HandshakeAck
    resp.receive_finish(init.receive(m2))
    assert resp.session.handshake_hash == init.session.handshake_hash


def test_cookie_reply_opens_only_for_its_m1_and_network():
    psk = bytes(range(32))
    jar = CookieJar(psk)
    init_a = Initiator(Identity.generate(), listen_port=1, network_psk=psk)
    init_b = Initiator(Identity.generate(), listen_port=1, network_psk=psk)
    m1_a = init_a.start()
    init_b.start()
    reply_a = Responder(Identity.generate(), listen_port=2, network_psk=psk).receive_hello(
        m1_a, cookies=jar, source="10.0.0.1", now_ms=0)
    with pytest.raises(AuthError):  # a reply to someone else's M1
        init_b.receive(reply_a)
    body = messages.decode(reply_a).body
    with pytest.raises(AuthError):  # another network key cannot read it
        open_cookie_reply(bytes(32), body, messages.decode(m1_a).body[1216:1232])
    with pytest.raises(DecodeError):
        open_cookie_reply(psk, body[:-1], messages.decode(m1_a).body[1216:1232])
    # a wrong mac1 is refused before any cookie work, under load or not
    other = Initiator(Identity.generate(), listen_port=1, network_psk=bytes(32)).start()
    resp = Responder(Identity.generate(), listen_port=2, network_psk=psk)
    with pytest.raises(AuthError):
        resp.receive_hello(other, cookies=jar, source="10.0.0.1", now_ms=0)
    assert jar.replies == 1


def test_bad_mac2_length_is_a_decode_error():
    init = Initiator(Identity.generate(), listen_port=1)
    m1 = messages.decode(init.start())
    m1.body += b"\x00" * 8  # 1240 bytes: neither layout
    with pytest.raises(DecodeError):
        Responder(Identity.generate(), listen_port=2).receive_hello(
            m1.encode(), cookies=CookieJar(bytes(32)), source="10.0.0.1", now_ms=0)


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    VECTOR.write_text(json.dumps(generate(), indent=1, sort_keys=True) + "\n")
    print("wrote", VECTOR)

"""PQMESH/1: the hybrid post-quantum handshake between CPython nodes (sans-I/O).

Rule: no sockets, no clock, no logging of secrets. Payload bytes go in, payload
bytes come out; the runtime frames them, enforces HANDSHAKE_TIMEOUT_MS and
closes the link on any error. Every failure is a typed MeshLink error and
leaves the object failed (no retry, no weaker fallback).

    M1 I->R  Handshake(versions, suites, listen_port, body = e_i 32 | ek 1184 | mac1 16)
    M2 R->I  HandshakeAck(version, suite, listen_port,
                          body = e_r 32 | ct 1088 | AEAD(id_R) 48 | AEAD(sig_R) 80)
    M3 I->R  HandshakeFinish(body = AEAD(id_I) 48 | AEAD(sig_I) 80)

Noise-style symmetric state (h, ck) with the network PSK mixed in first,
hybrid X25519 + ML-KEM-768 secrets (ML-KEM first) into HKDF-SHA256, SIGMA-I
Ed25519 signatures over the transcript hash. docs/PROTOCOL.md §5 has
the byte layouts and every label.
"""

from __future__ import annotations

import hmac
import os
from typing import Any, Callable, cast

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from meshlink import cjson, messages
from meshlink.errors import (
    AuthError,
    DecodeError,
    HandshakeError,
    LocalProtocolError,
    MeshLinkError,
    VersionError,
)
from meshlink.nodeid import node_id_text_from_public_key

from meshlink_gw.crypto import kem
from meshlink_gw.crypto.cookie import MAC2_BYTES, CookieJar, compute_mac2, open_cookie_reply
from meshlink_gw.crypto.identity import (
    ED25519_PUBLIC_BYTES,
    ED25519_SIGNATURE_BYTES,
    Identity,
    verify,
)
from meshlink_gw.crypto.kdf import SymmetricState, hkdf
from meshlink_gw.crypto.session import (
    IV_BYTES,
    KEY_BYTES,
    TAG_BYTES,
    Session,
    aead_decrypt,
    aead_encrypt,
)

VERSION = 1
SUITE = "pqmesh1-x25519mlkem768-ed25519-aes256gcm-sha256"
PROTOCOL_NAME = b"PQMESH/1 X25519MLKEM768 Ed25519 AES256GCM SHA256"
HANDSHAKE_TIMEOUT_MS = 10_000  # the runtime closes a handshake not done by then
MAX_HANDSHAKE_PAYLOAD_BYTES = 8192  # M1/M2 are ~1.8 KB; refuse bigger before decoding

LABEL_PSK = b"pqmesh/1 psk"
LABEL_MAC1 = b"pqmesh/1 mac1"
LABEL_HYBRID = b"pqmesh/1 hybrid x25519mlkem768"
LABEL_SIG_RESPONDER = b"pqmesh/1 responder signature\x00"
LABEL_SIG_INITIATOR = b"pqmesh/1 initiator signature\x00"
LABEL_SPLIT = b"pqmesh/1 split"

PSK_BYTES = 32
MAC1_BYTES = 16
ENC_ID_BYTES = ED25519_PUBLIC_BYTES + TAG_BYTES  # 48
ENC_SIG_BYTES = ED25519_SIGNATURE_BYTES + TAG_BYTES  # 80
AUTH_BYTES = ENC_ID_BYTES + ENC_SIG_BYTES  # 128 = the whole M3 body
M1_BODY_BYTES = kem.X25519_BYTES + kem.MLKEM768_EK_BYTES + MAC1_BYTES  # 1232
M1_COOKIE_BODY_BYTES = M1_BODY_BYTES + MAC2_BYTES  # 1248: M1 retried with mac2 (§5.3.1)
M2_BODY_BYTES = kem.X25519_BYTES + kem.MLKEM768_CT_BYTES + AUTH_BYTES  # 1248
M3_BODY_BYTES = AUTH_BYTES

_NONCE_ID = bytes(IV_BYTES)  # each handshake key encrypts exactly two payloads
_NONCE_SIG = (1).to_bytes(IV_BYTES, "big")
_ZERO_PSK = bytes(PSK_BYTES)


def _psk_bytes(network_psk: bytes | None) -> bytes:
    """The 32-byte PSK mixed into the state: the network key or 32 zero bytes."""
    if network_psk is None:
        return _ZERO_PSK
    if len(network_psk) != PSK_BYTES:
        raise LocalProtocolError("the network PSK must be 32 bytes")
    return bytes(network_psk)


def mac1_key(network_psk: bytes | None) -> bytes:
    """HKDF(salt="", ikm=psk, info="pqmesh/1 mac1", 32): keys mac1 of M1."""
    return hkdf(b"", _psk_bytes(network_psk), LABEL_MAC1, 32)


def offer_bytes(versions: list[int], suites: list[str], listen_port: int) -> bytes:
    """Canonical JSON of M1's clear fields, as covered by mac1."""
    return cjson.dumps({"listen_port": listen_port, "suites": suites, "versions": versions})


def ack_header_bytes(version: int, suite: str, listen_port: int) -> bytes:
    """Canonical JSON of M2's clear fields, hashed before the responder signs."""
    return cjson.dumps({"listen_port": listen_port, "suite": suite, "version": version})


def compute_mac1(key: bytes, offer: bytes, e_pub: bytes, ek: bytes) -> bytes:
    """mac1 = HMAC-SHA256(key, "pqmesh/1 mac1" || offer || e_pub || ek)[:16]."""
    return hmac.digest(key, LABEL_MAC1 + offer + e_pub + ek, "sha256")[:MAC1_BYTES]


class CookieRequired(HandshakeError):
    """The responder is under load and answered M1 with a cookie reply instead of
    M2 (PROTOCOL.md §5.3.1): dial again with Initiator(..., cookie=e.cookie)."""

    def __init__(self, cookie: bytes) -> None:
        super().__init__("responder under load answered with a cookie: retry with it")
        self.cookie = cookie


def _decode(payload: bytes, cls: type[messages.Message] | tuple[type[messages.Message], ...]
            ) -> Any:
    """Decode one handshake payload and check its type.

    Raises:
        DecodeError: too large, malformed or not canonical JSON (so that a
        payload cannot change without a decoded value changing).
        VersionError: wrong envelope version.
        HandshakeError: a valid message of another type.
    """
    if len(payload) > MAX_HANDSHAKE_PAYLOAD_BYTES:
        raise DecodeError("handshake payload of %d bytes is too large" % len(payload))
    obj = cjson.loads(payload)
    try:  # canonical only: every changed byte must change a decoded value
        canonical = cjson.dumps(obj) == bytes(payload)
    except LocalProtocolError:
        canonical = False  # e.g. a float: not a message type at all
    if not canonical:
        raise DecodeError("handshake payload is not canonical JSON")
    msg = messages.from_obj(obj)
    wanted = cls if isinstance(cls, tuple) else (cls,)
    if type(msg) not in wanted:
        raise HandshakeError("expected %s, got %s" % (wanted[0].TYPE, msg.TYPE))
    return msg


def _check_body(body: bytes, n_bytes: int, what: str) -> None:
    if len(body) != n_bytes:
        raise DecodeError("%s body must be %d bytes, got %d" % (what, n_bytes, len(body)))


def _seal_auth(state: SymmetricState, key: bytes, identity: Identity, label: bytes) -> bytes:
    """EncryptAndHash(id), sign label || h, EncryptAndHash(sig); return both blobs."""
    aead = AESGCM(key)
    enc_id = aead_encrypt(aead, _NONCE_ID, identity.public_bytes, state.h)
    state.mix_hash(enc_id)
    signature = identity.sign(label + state.h)
    enc_sig = aead_encrypt(aead, _NONCE_SIG, signature, state.h)
    state.mix_hash(enc_sig)
    return enc_id + enc_sig


def _open_auth(state: SymmetricState, key: bytes, blob: bytes, label: bytes,
               expected_node_id: str | None) -> bytes:
    """Decrypt and verify the peer's identity and signature; return its public key.

    Raises:
        AuthError: a tag or the signature fails, or the node ID is not the expected one.
    """
    aead = AESGCM(key)
    enc_id, enc_sig = blob[:ENC_ID_BYTES], blob[ENC_ID_BYTES:]
    peer_public = aead_decrypt(aead, _NONCE_ID, enc_id, state.h)
    state.mix_hash(enc_id)
    if expected_node_id is not None and \
            node_id_text_from_public_key(peer_public) != expected_node_id:
        raise AuthError("peer is not the expected node %s" % expected_node_id)
    signature = aead_decrypt(aead, _NONCE_SIG, enc_sig, state.h)
    if not verify(peer_public, label + state.h, signature):
        raise AuthError("peer's transcript signature does not verify")
    state.mix_hash(enc_sig)
    return peer_public


class _Handshake:
    """State shared by both roles: symmetric state, outcome, failure handling."""

    def __init__(self, identity: Identity, listen_port: int, network_psk: bytes | None,
                 backend: kem.KemBackend | None, rng: Callable[[int], bytes],
                 epoch: int) -> None:
        if not 0 <= listen_port <= 65535:
            raise LocalProtocolError("listen_port must be 0..65535")
        self._identity = identity
        self._listen_port = listen_port
        self._psk = _psk_bytes(network_psk)
        self._mac1_key = mac1_key(network_psk)
        self._backend = backend if backend is not None else kem.get_backend()
        self._rng = rng
        self._epoch = epoch
        self._state = SymmetricState(PROTOCOL_NAME)
        self._state.mix_key_and_hash(self._psk, LABEL_PSK)
        self._phase = "new"
        self._session: Session | None = None
        self.peer_node_id: str | None = None
        self.peer_listen_port: int | None = None
        self.peer_public_bytes: bytes | None = None

    @property
    def session(self) -> Session:
        """The established session.

        Raises:
            LocalProtocolError: the handshake has not completed.
        """
        if self._session is None:
            raise LocalProtocolError("handshake not complete (phase %s)" % self._phase)
        return self._session

    @property
    def complete(self) -> bool:
        return self._session is not None

    def _run(self, expected_phase: str, step: Callable[[bytes, int | None], bytes | None],
             payload: bytes, now_ms: int | None) -> bytes | None:
        """Run one step; on any error mark the handshake failed and raise typed."""
        if self._phase != expected_phase:
            raise HandshakeError("unexpected handshake message in phase %s" % self._phase)
        try:
            return step(payload, now_ms)
        except MeshLinkError:
            self._fail()
            raise
        except (ValueError, TypeError, OverflowError, IndexError, KeyError) as e:
            self._fail()  # never let peer input escape as a raw Python error
            raise HandshakeError("malformed handshake input (%s)" % type(e).__name__)

    def _fail(self) -> None:
        self._phase = "failed"
        self._state = SymmetricState(b"failed")  # drop secrets we can drop
        self._private = None

    def _accept_peer(self, peer_public: bytes, listen_port: int) -> None:
        if peer_public == self._identity.public_bytes:
            raise HandshakeError("peer presented our own identity (connected to self?)")
        self.peer_public_bytes = peer_public
        self.peer_node_id = node_id_text_from_public_key(peer_public)
        self.peer_listen_port = listen_port

    def _split(self, is_initiator: bool, now_ms: int | None) -> None:
        """Derive the transport keys from ck and the final h; enter phase done."""
        okm = hkdf(self._state.ck, self._state.h, LABEL_SPLIT, 2 * KEY_BYTES + 2 * IV_BYTES)
        k_i2r, k_r2i = okm[0:32], okm[32:64]
        iv_i2r, iv_r2i = okm[64:76], okm[76:88]
        if is_initiator:
            keys = dict(send_key=k_i2r, send_iv=iv_i2r, recv_key=k_r2i, recv_iv=iv_r2i)
        else:
            keys = dict(send_key=k_r2i, send_iv=iv_r2i, recv_key=k_i2r, recv_iv=iv_i2r)
        self._session = Session(**keys, epoch=self._epoch, created_ms=now_ms,
                                handshake_hash=self._state.h, is_initiator=is_initiator)
        self._phase = "done"
        self._private = None


class Initiator(_Handshake):
    """The dialling side. start() -> M1; receive(M2) -> M3; then .session.

    expected_node_id, if given, must match the responder's identity (AuthError
    otherwise, checked before its signature). rng(n) supplies key material.
    cookie, if given (from a CookieRequired), adds mac2 to M1 (§5.3.1).
    """

    def __init__(self, identity: Identity, *, listen_port: int,
                 network_psk: bytes | None = None, expected_node_id: str | None = None,
                 backend: kem.KemBackend | None = None,
                 rng: Callable[[int], bytes] = os.urandom, epoch: int = 1,
                 cookie: bytes | None = None) -> None:
        super().__init__(identity, listen_port, network_psk, backend, rng, epoch)
        self._expected_node_id = expected_node_id
        self._private: Any = None
        self._cookie = cookie
        self._mac1 = b""

    def start(self) -> bytes:
        """Build M1 (a messages.Handshake payload).

        Raises:
            LocalProtocolError: already started.
        """
        if self._phase != "new":
            raise LocalProtocolError("start() called twice")
        e_pub, e_priv = self._backend.x25519_keygen(self._rng(kem.X25519_BYTES))
        ek, dk = self._backend.mlkem_keygen(self._rng(kem.MLKEM768_SEED_BYTES))
        self._private = (e_priv, dk)
        offer = offer_bytes([VERSION], [SUITE], self._listen_port)
        mac1 = compute_mac1(self._mac1_key, offer, e_pub, ek)
        self._mac1 = mac1
        body = e_pub + ek + mac1
        if self._cookie is not None:
            body += compute_mac2(self._cookie, offer + body)
        payload = messages.Handshake(versions=[VERSION], suites=[SUITE],
                                     listen_port=self._listen_port, body=body).encode()
        self._state.mix_hash(payload)
        self._phase = "sent_m1"
        return payload

    def receive(self, payload: bytes, *, now_ms: int | None = None) -> bytes:
        """Process M2 (messages.HandshakeAck); return M3 (messages.HandshakeFinish).

        now_ms, if given, becomes session.created_ms.

        Raises:
            CookieRequired: the responder answered with a cookie reply (this object
            is then spent: dial again with a new Initiator given the cookie).
            LocalProtocolError: start() not called yet.
            HandshakeError: wrong message/phase, bad KEM or X25519 input.
            VersionError: not our version/suite. DecodeError: malformed.
            AuthError: wrong PSK, tag, signature or expected node ID.
        """
        if self._phase == "new":
            raise LocalProtocolError("receive() before start()")
        return cast(bytes, self._run("sent_m1", self._receive_m2, payload, now_ms))

    def _receive_m2(self, payload: bytes, now_ms: int | None) -> bytes:
        ack = _decode(payload, (messages.HandshakeAck, messages.HandshakeCookie))
        if type(ack) is messages.HandshakeCookie:
            raise CookieRequired(open_cookie_reply(self._psk, ack.body, self._mac1))
        if ack.version != VERSION or ack.suite != SUITE:
            raise VersionError("responder chose version %r suite %r" % (ack.version, ack.suite))
        _check_body(ack.body, M2_BODY_BYTES, "M2")
        e_r, ct = ack.body[:32], ack.body[32:1120]
        state = self._state
        state.mix_hash(ack_header_bytes(ack.version, ack.suite, ack.listen_port))
        state.mix_hash(e_r)
        state.mix_hash(ct)
        e_priv, dk = self._private
        ss_kem = self._backend.mlkem_decapsulate(dk, ct)
        ss_x = self._backend.x25519_exchange(e_priv, e_r)
        k_resp, k_init = state.mix_key(ss_kem + ss_x, LABEL_HYBRID + state.h, 2)
        peer_public = _open_auth(state, k_resp, ack.body[1120:], LABEL_SIG_RESPONDER,
                                 self._expected_node_id)
        self._accept_peer(peer_public, ack.listen_port)
        state.mix_hash(bytes(payload))
        auth = _seal_auth(state, k_init, self._identity, LABEL_SIG_INITIATOR)
        finish = messages.HandshakeFinish(body=auth).encode()
        state.mix_hash(finish)
        self._split(True, now_ms)
        return finish


class Responder(_Handshake):
    """The accepting side. receive_hello(M1) -> M2; receive_finish(M3); then .session.

    The responder must not send application data before receive_finish returns.
    """

    def __init__(self, identity: Identity, *, listen_port: int,
                 network_psk: bytes | None = None, backend: kem.KemBackend | None = None,
                 rng: Callable[[int], bytes] = os.urandom, epoch: int = 1) -> None:
        super().__init__(identity, listen_port, network_psk, backend, rng, epoch)
        self._private: Any = None
        self._peer_listen_port = 0
        self._cookies: CookieJar | None = None
        self._source = ""
        self._now_ms = 0
        self.cookie_sent = False

    def receive_hello(self, payload: bytes, *, cookies: CookieJar | None = None,
                      source: str = "", now_ms: int = 0) -> bytes:
        """Process M1 (messages.Handshake); return M2 (messages.HandshakeAck).

        mac1 is checked before any asymmetric work. cookies, when given, means
        the responder is under load (§5.3.1): an M1 without a valid mac2 for
        source's cookie is answered with a cookie reply instead (no KEM work;
        cookie_sent is then True and the handshake is over).

        Raises:
            VersionError: the offer lacks version 1 or our suite (no fallback).
            DecodeError: malformed. AuthError: bad mac1 (wrong network PSK).
            HandshakeError: wrong message/phase, bad ML-KEM key, low-order X25519 key.
        """
        self._cookies, self._source, self._now_ms = cookies, source, now_ms
        return cast(bytes, self._run("new", self._receive_m1, payload, None))

    def receive_finish(self, payload: bytes, *, now_ms: int | None = None) -> None:
        """Process M3 (messages.HandshakeFinish); the session is then established.

        now_ms, if given, becomes session.created_ms.

        Raises:
            HandshakeError: wrong message/phase. DecodeError: malformed.
            AuthError: a tag or the initiator's signature fails.
        """
        self._run("sent_m2", self._receive_m3, payload, now_ms)

    def _check_offer(self, hello: Any) -> None:  # a messages.Handshake
        if VERSION not in hello.versions:
            raise VersionError("no supported version in offer %r" % (hello.versions,))
        if SUITE not in hello.suites:
            raise VersionError("suite %s not offered (no classical fallback)" % SUITE)
        if len(hello.body) != M1_COOKIE_BODY_BYTES:
            _check_body(hello.body, M1_BODY_BYTES, "M1")
        e_i, ek, mac1 = hello.body[:32], hello.body[32:1216], hello.body[1216:1232]
        offer = offer_bytes(hello.versions, hello.suites, hello.listen_port)
        if not hmac.compare_digest(mac1, compute_mac1(self._mac1_key, offer, e_i, ek)):
            raise AuthError("M1 mac1 does not verify (wrong network key?)")

    def _cookie_reply(self, hello: Any) -> bytes | None:
        """Under load, the cookie reply for an M1 without a valid mac2; else None."""
        jar = self._cookies
        if jar is None:
            return None
        body = hello.body
        mac2 = body[M1_BODY_BYTES:]
        covered = offer_bytes(hello.versions, hello.suites, hello.listen_port) + \
            body[:M1_BODY_BYTES]
        if len(mac2) == MAC2_BYTES and jar.mac2_valid(self._source, self._now_ms, covered,
                                                      mac2):
            return None
        return jar.reply(self._source, self._now_ms, body[1216:M1_BODY_BYTES])

    def _receive_m1(self, payload: bytes, now_ms: int | None) -> bytes:
        hello = _decode(payload, messages.Handshake)
        self._check_offer(hello)
        reply = self._cookie_reply(hello)
        if reply is not None:  # stateless: nothing kept, nothing asymmetric computed
            self.cookie_sent = True
            self._fail()
            return reply
        e_i, ek = hello.body[:32], hello.body[32:1216]
        state = self._state
        state.mix_hash(bytes(payload))
        e_pub, e_priv = self._backend.x25519_keygen(self._rng(kem.X25519_BYTES))
        ss_x = self._backend.x25519_exchange(e_priv, e_i)
        ss_kem, ct = self._backend.mlkem_encapsulate(ek, self._rng(kem.ENCAPS_RANDOM_BYTES))
        state.mix_hash(ack_header_bytes(VERSION, SUITE, self._listen_port))
        state.mix_hash(e_pub)
        state.mix_hash(ct)
        k_resp, k_init = state.mix_key(ss_kem + ss_x, LABEL_HYBRID + state.h, 2)
        self._private = k_init
        self._peer_listen_port = hello.listen_port
        auth = _seal_auth(state, k_resp, self._identity, LABEL_SIG_RESPONDER)
        ack = messages.HandshakeAck(version=VERSION, suite=SUITE, listen_port=self._listen_port,
                                    body=e_pub + ct + auth).encode()
        state.mix_hash(ack)
        self._phase = "sent_m2"
        return ack

    def _receive_m3(self, payload: bytes, now_ms: int | None) -> None:
        finish = _decode(payload, messages.HandshakeFinish)
        _check_body(finish.body, M3_BODY_BYTES, "M3")
        state = self._state
        peer_public = _open_auth(state, self._private, finish.body, LABEL_SIG_INITIATOR, None)
        self._accept_peer(peer_public, self._peer_listen_port)
        state.mix_hash(bytes(payload))
        self._split(False, now_ms)

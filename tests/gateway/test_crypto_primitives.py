"""HKDF-SHA256 (RFC 5869, Wycheproof), AES-GCM helpers (Wycheproof), symmetric state."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from helpers.crypto import wycheproof
from meshlink.errors import AuthError, LocalProtocolError
from meshlink_gw.crypto.kdf import SymmetricState, hkdf, hkdf_expand, hkdf_extract
from meshlink_gw.crypto.session import aead_decrypt, aead_encrypt

cryptography_vectors = pytest.importorskip("cryptography_vectors")


def _rfc5869_cases() -> list[dict[str, str]]:
    with cryptography_vectors.open_vector_file("KDF/rfc-5869-HKDF-SHA256.txt", "r") as f:
        text = f.read()
    cases, current = [], {}
    for line in text.splitlines():
        if "=" not in line or line.startswith("#"):
            continue
        key, value = (s.strip() for s in line.split("=", 1))
        if key == "COUNT" and current:
            cases.append(current)
            current = {}
        current[key] = value
    cases.append(current)
    return cases


def test_rfc5869_hkdf_sha256():
    cases = _rfc5869_cases()
    assert len(cases) == 3
    for c in cases:
        ikm, salt, info = (bytes.fromhex(c[k]) for k in ("IKM", "salt", "info"))
        prk = hkdf_extract(salt, ikm)
        assert prk.hex() == c["PRK"]
        assert hkdf_expand(prk, info, int(c["L"])).hex() == c["OKM"]
        assert hkdf(salt, ikm, info, int(c["L"])).hex() == c["OKM"]


def test_wycheproof_hkdf_sha256():
    cases = wycheproof("hkdf_sha256_test")
    assert len(cases) == 86
    for _group, case in cases:
        args = [bytes.fromhex(case[k]) for k in ("salt", "ikm", "info")]
        if case["result"] == "valid":
            assert hkdf(*args, case["size"]).hex() == case["okm"], case["tcId"]
        else:
            with pytest.raises(LocalProtocolError):
                hkdf(*args, case["size"])


def test_wycheproof_aes_gcm_96_bit_iv():
    checked = 0
    for group, case in wycheproof("aes_gcm_test"):
        if group["ivSize"] != 96:
            continue  # pyca and PQMESH only use 96-bit nonces
        checked += 1
        aead = AESGCM(bytes.fromhex(case["key"]))
        iv, aad, msg = (bytes.fromhex(case[k]) for k in ("iv", "aad", "msg"))
        sealed = bytes.fromhex(case["ct"] + case["tag"])
        if case["result"] == "valid":
            assert aead_encrypt(aead, iv, msg, aad) == sealed, case["tcId"]
            assert aead_decrypt(aead, iv, sealed, aad) == msg, case["tcId"]
        else:
            with pytest.raises(AuthError):
                aead_decrypt(aead, iv, sealed, aad)
    assert checked == 197


def test_symmetric_state_mixing():
    s = SymmetricState(b"name")
    assert s.h == s.ck == hashlib.sha256(b"name").digest()
    s.mix_hash(b"abc")
    assert s.h == hashlib.sha256(hashlib.sha256(b"name").digest() + b"abc").digest()
    ck0 = s.ck
    k1, k2 = s.mix_key(b"secret", b"label", 2)
    okm = hkdf(ck0, b"secret", b"label", 96)
    assert (s.ck, k1, k2) == (okm[:32], okm[32:64], okm[64:96])
    h0, ck1 = s.h, s.ck
    s.mix_key_and_hash(b"psk", b"pqmesh/1 psk")
    okm = hkdf(ck1, b"psk", b"pqmesh/1 psk", 64)
    assert s.ck == okm[:32] and s.h == hashlib.sha256(h0 + okm[32:]).digest()


def test_hkdf_expand_limit():
    with pytest.raises(LocalProtocolError):
        hkdf_expand(bytes(32), b"", 255 * 32 + 1)
    assert len(hkdf_expand(bytes(32), b"", 255 * 32)) == 8160

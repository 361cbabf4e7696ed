"""Identity: Ed25519 keys, node IDs, key files on disk, Wycheproof Ed25519."""

from __future__ import annotations

import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from helpers.crypto import wycheproof
from meshlink.errors import ConfigError, LocalProtocolError
from meshlink.nodeid import is_id, node_id_text_from_public_key
from meshlink_gw.crypto.identity import KEY_FILENAME, Identity, verify


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_generate_sign_verify():
    ident = Identity.generate()
    assert len(ident.public_bytes) == 32
    assert ident.node_id == node_id_text_from_public_key(ident.public_bytes)
    assert is_id(ident.node_id)
    sig = ident.sign(b"transcript")
    assert len(sig) == 64
    assert verify(ident.public_bytes, b"transcript", sig)
    assert not verify(ident.public_bytes, b"transcripT", sig)
    assert not verify(Identity.generate().public_bytes, b"transcript", sig)
    bad = bytearray(sig)
    bad[10] ^= 1
    assert not verify(ident.public_bytes, b"transcript", bytes(bad))


def test_verify_malformed_inputs_return_false():
    ident = Identity.generate()
    sig = ident.sign(b"x")
    assert not verify(ident.public_bytes[:31], b"x", sig)
    assert not verify(ident.public_bytes, b"x", sig[:63])
    assert not verify(ident.public_bytes, b"x", sig + b"\0")
    assert not verify(b"", b"x", b"")


def test_from_seed_is_deterministic_and_checked():
    assert Identity.from_seed(bytes(32)).node_id == Identity.from_seed(bytes(32)).node_id
    with pytest.raises(LocalProtocolError):
        Identity.from_seed(bytes(31))


def test_repr_does_not_leak_key():
    ident = Identity.from_seed(bytes(range(32)))
    assert ident.node_id in repr(ident)
    assert bytes(range(32)).hex() not in repr(ident)


def test_load_or_create_modes_and_reload(tmp_path):
    data_dir = tmp_path / "a" / "node"
    first = Identity.load_or_create(data_dir)
    key_file = data_dir / KEY_FILENAME
    assert _mode(data_dir) == 0o700
    assert _mode(key_file) == 0o600
    assert Identity.load_or_create(data_dir).node_id == first.node_id
    assert Identity.load(data_dir).public_bytes == first.public_bytes
    assert [p.name for p in data_dir.iterdir()] == [KEY_FILENAME]  # no temp file left
    pem = key_file.read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")


def test_load_missing_is_config_error(tmp_path):
    with pytest.raises(ConfigError):
        Identity.load(tmp_path)


def test_load_refuses_group_or_world_readable_key(tmp_path):
    Identity.load_or_create(tmp_path)
    os.chmod(tmp_path / KEY_FILENAME, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        Identity.load(tmp_path)


def test_load_refuses_garbage_and_wrong_key_type(tmp_path):
    key_file = tmp_path / KEY_FILENAME
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"not a key")
    os.close(fd)
    with pytest.raises(ConfigError):
        Identity.load(tmp_path)
    x_pem = X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    key_file.write_bytes(x_pem)
    with pytest.raises(ConfigError, match="not an Ed25519"):
        Identity.load(tmp_path)


def test_load_or_create_existing_key_kept(tmp_path):
    ident = Identity.generate()
    fd = os.open(tmp_path / KEY_FILENAME, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, ident.private_pem())
    os.close(fd)
    assert Identity.load_or_create(tmp_path).node_id == ident.node_id


def test_wycheproof_ed25519_verify():
    cases = wycheproof("ed25519_test")
    assert len(cases) == 151
    for group, case in cases:
        public = bytes.fromhex(group["publicKey"]["pk"])
        got = verify(public, bytes.fromhex(case["msg"]), bytes.fromhex(case["sig"]))
        assert got == (case["result"] == "valid"), case["tcId"]

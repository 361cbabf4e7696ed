"""Long-term node identity: one Ed25519 key pair (PQMESH/1, v1 suite).

Rule: the only file I/O in this package lives here (loading and creating the
key file); no sockets, no clock. The node ID is derived from the Ed25519
public key by meshlink.nodeid (SHA-256 with a label, shown as UUID text).

On disk: <data_dir>/identity_ed25519.pem, unencrypted PKCS#8 PEM (readable by
`openssl pkey`), file mode 0600 inside a 0700 directory. Like ssh, loading
refuses a key file that group or others may read.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from meshlink.errors import ConfigError, LocalProtocolError
from meshlink.nodeid import node_id_text_from_public_key

KEY_FILENAME = "identity_ed25519.pem"
ED25519_PUBLIC_BYTES = 32
ED25519_SIGNATURE_BYTES = 64
ED25519_SEED_BYTES = 32
_DIR_MODE = 0o700
_FILE_MODE = 0o600


class Identity:
    """An Ed25519 identity: signs handshake transcripts, names the node."""

    __slots__ = ("_private", "public_bytes", "node_id")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private = private_key
        self.public_bytes: bytes = private_key.public_key().public_bytes_raw()
        self.node_id: str = node_id_text_from_public_key(self.public_bytes)

    @classmethod
    def generate(cls) -> Identity:
        """A fresh random identity (not stored anywhere)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        """A deterministic identity from a 32-byte seed (tests, golden vectors).

        Raises:
            LocalProtocolError: seed is not 32 bytes.
        """
        if len(seed) != ED25519_SEED_BYTES:
            raise LocalProtocolError("an Ed25519 seed is 32 bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(bytes(seed)))

    @classmethod
    def from_pem(cls, pem: bytes) -> Identity:
        """The identity in an unencrypted PKCS#8 PEM (a board's, from the registry).

        Raises:
            ConfigError: not an unencrypted Ed25519 PEM key.
        """
        return cls(_parse_private_pem(pem, Path("<pem>")))

    @classmethod
    def load(cls, data_dir: Path) -> Identity:
        """Load the identity stored in data_dir.

        Raises:
            ConfigError: the key file is missing, unreadable, not an Ed25519
                PKCS#8 key, or readable by group/others.
        """
        path = Path(data_dir) / KEY_FILENAME
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError as e:
            raise ConfigError("cannot open identity key %s: %s" % (path, e.strerror))
        with os.fdopen(fd, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ConfigError("identity key %s is accessible by group/others "
                                  "(mode %o); run chmod 600" % (path, stat.S_IMODE(mode)))
            pem = f.read()
        return cls(_parse_private_pem(pem, path))

    @classmethod
    def load_or_create(cls, data_dir: Path) -> Identity:
        """Load data_dir's identity, creating the directory (0700) and key (0600) if absent.

        Creation is atomic: the key is written to a temporary file and linked
        into place, so a crash never leaves a half-written key and two racing
        processes end up with the same identity.

        Raises:
            ConfigError: the directory or key cannot be created, or load() fails.
        """
        data_dir = Path(data_dir)
        try:
            if not data_dir.exists():
                data_dir.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
                os.chmod(data_dir, _DIR_MODE)  # mkdir's mode is masked by umask
            if not (data_dir / KEY_FILENAME).exists():
                _create_key_file(data_dir, Ed25519PrivateKey.generate())
        except OSError as e:
            raise ConfigError("cannot create identity in %s: %s" % (data_dir, e.strerror))
        return cls.load(data_dir)

    def sign(self, data: bytes) -> bytes:
        """Ed25519 signature (64 bytes) over data."""
        return self._private.sign(data)

    def private_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM (what load() reads)."""
        return self._private.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption())

    def __repr__(self) -> str:
        return "Identity(node_id=%s)" % self.node_id  # never the key


def verify(public_bytes: bytes, data: bytes, signature: bytes) -> bool:
    """True if signature is a valid Ed25519 signature of data under public_bytes.

    Malformed keys or signatures give False, never an exception.
    """
    if len(public_bytes) != ED25519_PUBLIC_BYTES or len(signature) != ED25519_SIGNATURE_BYTES:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(bytes(public_bytes)).verify(bytes(signature), data)
    except (InvalidSignature, ValueError):
        return False
    return True


def _parse_private_pem(pem: bytes, path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ConfigError("identity key %s is not an unencrypted PEM key" % path)
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError("identity key %s is not an Ed25519 key" % path)
    return key


def _create_key_file(data_dir: Path, key: Ed25519PrivateKey) -> None:
    """Write key to a 0600 temp file, fsync, then hard-link it into place."""
    final = data_dir / KEY_FILENAME
    tmp = data_dir / (".%s.%d.tmp" % (KEY_FILENAME, os.getpid()))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)  # left over by a crashed process with our pid
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(Identity(key).private_pem())
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, final)  # fails if another process won the race: keep theirs
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)

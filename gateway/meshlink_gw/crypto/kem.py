"""Hybrid key-exchange primitives: ML-KEM-768 (FIPS 203) and X25519.

Rule: no I/O, no clock. Two interchangeable backends share one interface:

* ``cryptography`` (primary): pyca/cryptography >= 46 built on an OpenSSL with
  ML-KEM. Constant-time, fast (~0.2 ms for keygen + encaps + decaps).
* ``kyber-py`` (fallback): pure Python ``kyber_py.ml_kem.ML_KEM_768``, for an
  older distro ``cryptography`` without ML-KEM (e.g. on a Pi). About 3 ms per
  operation and *not* constant-time (its README says so): acceptable as a
  fallback and as a test oracle, not preferred.

X25519 always comes from ``cryptography`` (present since 2.0), so only the
ML-KEM half differs between backends. Every failure caused by peer input is a
typed MeshLink error; a bad local argument is a LocalProtocolError.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from meshlink.errors import ConfigError, DecodeError, HandshakeError, LocalProtocolError

MLKEM768_EK_BYTES = 1184  # encapsulation (public) key
MLKEM768_CT_BYTES = 1088  # ciphertext
MLKEM768_SEED_BYTES = 64  # d || z (FIPS 203 §7.1 seed form of the private key)
MLKEM_SS_BYTES = 32  # shared secret
X25519_BYTES = 32  # public key, private key and shared secret
ENCAPS_RANDOM_BYTES = 32  # the message m of FIPS 203 Algorithm 17

BACKEND_NAMES = ("cryptography", "kyber-py")
_ZERO32 = bytes(32)


class KemBackend:
    """ML-KEM-768 + X25519 behind one interface. Subclasses supply ML-KEM.

    Private keys are opaque handles; public values are plain bytes.
    """

    name = ""
    deterministic_encaps = False  # True if mlkem_encapsulate honours `randomness`

    def mlkem_keygen(self, seed: bytes) -> tuple[bytes, Any]:
        """Derive (encapsulation key bytes, private handle) from a 64-byte seed d||z.

        Raises:
            LocalProtocolError: the seed is not 64 bytes.
        """
        raise NotImplementedError

    def mlkem_encapsulate(self, ek: bytes, randomness: bytes) -> tuple[bytes, bytes]:
        """Encapsulate to a peer's key; return (shared secret 32, ciphertext 1088).

        randomness (32 bytes) is used only where deterministic_encaps is True.

        Raises:
            HandshakeError: ek has the wrong length or fails the FIPS 203 §7.2
                modulus check.
        """
        raise NotImplementedError

    def mlkem_decapsulate(self, private: Any, ct: bytes) -> bytes:
        """Decapsulate ct; a modified ct yields an unrelated secret (implicit rejection).

        Raises:
            DecodeError: ct is not 1088 bytes.
        """
        raise NotImplementedError

    def x25519_keygen(self, private_bytes: bytes) -> tuple[bytes, X25519PrivateKey]:
        """Return (public key bytes, private handle) from 32 random bytes.

        Raises:
            LocalProtocolError: private_bytes is not 32 bytes.
        """
        if len(private_bytes) != X25519_BYTES:
            raise LocalProtocolError("X25519 private key must be 32 bytes")
        private = X25519PrivateKey.from_private_bytes(bytes(private_bytes))
        return private.public_key().public_bytes_raw(), private

    def x25519_exchange(self, private: X25519PrivateKey, peer_public: bytes) -> bytes:
        """X25519 with a peer's public key; refuse an all-zero shared secret.

        Raises:
            DecodeError: peer_public is not 32 bytes.
            HandshakeError: the result is all zeros (low-order peer point).
        """
        if len(peer_public) != X25519_BYTES:
            raise DecodeError("X25519 public key must be 32 bytes")
        try:
            shared = private.exchange(X25519PublicKey.from_public_bytes(bytes(peer_public)))
        except ValueError:  # pyca raises on an all-zero result
            raise HandshakeError("X25519 shared secret is all zeros (low-order point)")
        if shared == _ZERO32:  # belt and braces: never trust a library default
            raise HandshakeError("X25519 shared secret is all zeros (low-order point)")
        return shared


def _check_len(data: bytes, n_bytes: int, what: str, exc: type[Exception]) -> None:
    if len(data) != n_bytes:
        raise exc("%s must be %d bytes, got %d" % (what, n_bytes, len(data)))


class CryptographyBackend(KemBackend):
    """ML-KEM-768 from pyca/cryptography (OpenSSL). Encapsulation draws its own
    randomness from OpenSSL, so `randomness` is ignored."""

    name = "cryptography"

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import mlkem

        self._mlkem = mlkem

    def mlkem_keygen(self, seed: bytes) -> tuple[bytes, Any]:
        _check_len(seed, MLKEM768_SEED_BYTES, "ML-KEM seed", LocalProtocolError)
        private = self._mlkem.MLKEM768PrivateKey.from_seed_bytes(bytes(seed))
        return private.public_key().public_bytes_raw(), private

    def mlkem_encapsulate(self, ek: bytes, randomness: bytes) -> tuple[bytes, bytes]:
        _check_len(ek, MLKEM768_EK_BYTES, "ML-KEM-768 encapsulation key", HandshakeError)
        try:
            public = self._mlkem.MLKEM768PublicKey.from_public_bytes(bytes(ek))
        except ValueError:  # FIPS 203 §7.2 modulus check failed
            raise HandshakeError("ML-KEM-768 encapsulation key is not canonical")
        shared, ct = public.encapsulate()
        return shared, ct

    def mlkem_decapsulate(self, private: Any, ct: bytes) -> bytes:
        _check_len(ct, MLKEM768_CT_BYTES, "ML-KEM-768 ciphertext", DecodeError)
        try:
            return private.decapsulate(bytes(ct))
        except ValueError:
            raise DecodeError("ML-KEM-768 ciphertext rejected")


class KyberPyBackend(KemBackend):
    """ML-KEM-768 from pure-Python kyber-py. Deterministic given its inputs,
    which also makes it the oracle for encapsulation known-answer tests."""

    name = "kyber-py"
    deterministic_encaps = True

    def __init__(self) -> None:
        from kyber_py.ml_kem import ML_KEM_768

        self._kem = ML_KEM_768

    def mlkem_keygen(self, seed: bytes) -> tuple[bytes, Any]:
        _check_len(seed, MLKEM768_SEED_BYTES, "ML-KEM seed", LocalProtocolError)
        ek, dk = self._kem.key_derive(bytes(seed))
        return ek, dk

    def mlkem_encapsulate(self, ek: bytes, randomness: bytes) -> tuple[bytes, bytes]:
        _check_len(ek, MLKEM768_EK_BYTES, "ML-KEM-768 encapsulation key", HandshakeError)
        _check_len(randomness, ENCAPS_RANDOM_BYTES, "encapsulation randomness",
                   LocalProtocolError)
        try:  # _encaps_internal = FIPS 203 Algorithm 17 with caller-chosen m
            shared, ct = self._kem._encaps_internal(bytes(ek), bytes(randomness))
        except ValueError:  # type or modulus check (FIPS 203 §7.2)
            raise HandshakeError("ML-KEM-768 encapsulation key is not canonical")
        return shared, ct

    def mlkem_decapsulate(self, private: Any, ct: bytes) -> bytes:
        _check_len(ct, MLKEM768_CT_BYTES, "ML-KEM-768 ciphertext", DecodeError)
        try:
            return self._kem.decaps(private, bytes(ct))
        except ValueError:
            raise DecodeError("ML-KEM-768 ciphertext rejected")


_FACTORIES: dict[str, Callable[[], KemBackend]] = {
    "cryptography": CryptographyBackend,
    "kyber-py": KyberPyBackend,
}
_cache: dict[str, KemBackend] = {}


def _probe(name: str) -> KemBackend:
    """Build a backend and prove it works with one keygen + encaps + decaps."""
    backend = _FACTORIES[name]()
    ek, private = backend.mlkem_keygen(os.urandom(MLKEM768_SEED_BYTES))
    shared, ct = backend.mlkem_encapsulate(ek, os.urandom(ENCAPS_RANDOM_BYTES))
    if backend.mlkem_decapsulate(private, ct) != shared:
        raise ConfigError("ML-KEM backend %s failed its self-test" % name)
    return backend


def get_backend(name: str | None = None) -> KemBackend:
    """Return a working backend: `name`, or cryptography if it has ML-KEM, else kyber-py.

    Raises:
        ConfigError: unknown name, or the requested/any backend is unavailable.
    """
    if name is not None and name not in _FACTORIES:
        raise ConfigError("unknown KEM backend %r (choose from %s)" % (name, BACKEND_NAMES))
    for candidate in (name,) if name else BACKEND_NAMES:
        if candidate in _cache:
            return _cache[candidate]
        try:
            _cache[candidate] = _probe(candidate)
            return _cache[candidate]
        # ImportError, AttributeError (old pyca without mlkem) or pyca's
        # UnsupportedAlgorithm (OpenSSL without ML-KEM): try the next one.
        except Exception as e:
            last_error = "%s: %s" % (candidate, type(e).__name__)
    raise ConfigError("no usable ML-KEM-768 backend (%s)" % last_error)

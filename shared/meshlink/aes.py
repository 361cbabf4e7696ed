# AES backend shim for the board link: one API on MicroPython and CPython.
# Rules: no I/O; only LocalProtocolError comes out (for our own misuse).
# MicroPython: cryptolib.aes. Native CTR (mode 6) is used where the build has
# it; stock ESP32 and unix builds compile it out, so CTR is then built from
# ECB, encrypting a run of counter blocks per call (bounded chunks, so a large
# record never needs a large buffer). CPython: pyca `cryptography`.
# set_ctr_backend("ecb") forces the ECB-built CTR on both interpreters, so
# tests run both paths and check that they give identical bytes.
# Counters are 128-bit big-endian and wrap modulo 2^128 (NIST SP 800-38A).
import struct
import sys

from meshlink._compat import const, xor_bytes
from meshlink.errors import LocalProtocolError

BLOCK_BYTES = const(16)
_CHUNK_BLOCKS = const(32)  # counter blocks per ECB call: 512 bytes of keystream
_MODE_ECB = const(1)
_MODE_CTR = const(6)
_MASK128 = (1 << 128) - 1

_MPY = sys.implementation.name == "micropython"
if _MPY:
    import cryptolib
else:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def _probe_native_ctr():
    if not _MPY:
        return True
    try:
        cryptolib.aes(bytes(16), _MODE_CTR, bytes(16))
    except ValueError:  # "mode": MICROPY_PY_CRYPTOLIB_CTR is 0 in this build
        return False
    return True


_NATIVE_CTR = _probe_native_ctr()
_use_ecb = not _NATIVE_CTR


def has_native_ctr():
    """True if this interpreter has a native AES-CTR (pyca, or cryptolib mode 6)."""
    return _NATIVE_CTR


def set_ctr_backend(name):
    """Choose how AesCtr objects created from now on run CTR.

    name: "auto" (native where available, else ECB-built), "ecb" (always
    ECB-built) or "native". Returns the previous setting's name.

    Raises:
        LocalProtocolError: unknown name, or "native" without native CTR.
    """
    global _use_ecb
    previous = "ecb" if _use_ecb else "native"
    if name == "auto":
        _use_ecb = not _NATIVE_CTR
    elif name == "ecb":
        _use_ecb = True
    elif name == "native" and _NATIVE_CTR:
        _use_ecb = False
    else:
        raise LocalProtocolError("unknown or unavailable CTR backend: %r" % (name,))
    return previous


def ctr_backend():
    """Name of the CTR path new AesCtr objects use, e.g. "cryptolib-ecb", "pyca-ctr"."""
    lib = "cryptolib" if _MPY else "pyca"
    return lib + ("-ecb" if _use_ecb else "-ctr")


def _check_key(key):
    if not isinstance(key, (bytes, bytearray)) or len(key) not in (16, 32):
        raise LocalProtocolError("AES key must be 16 or 32 bytes")
    return bytes(key)


class AesEcb:
    """AES-ECB encryption (the one primitive CTR needs); reusable for many calls."""

    def __init__(self, key):
        """Raises LocalProtocolError: key is not 16 or 32 bytes."""
        key = _check_key(key)
        if _MPY:
            self._enc = cryptolib.aes(key, _MODE_ECB).encrypt
        else:
            self._enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor().update

    def encrypt(self, blocks):
        """Encrypt whole 16-byte blocks.

        Raises:
            LocalProtocolError: length not a multiple of 16.
        """
        if len(blocks) % BLOCK_BYTES:
            raise LocalProtocolError("ECB input must be whole 16-byte blocks")
        return self._enc(blocks)


class AesCtr:
    """AES-CTR keystream XOR under one key; the counter block is given per call.

    The backend (native or ECB-built) is fixed when the object is created,
    from set_ctr_backend(). Encryption and decryption are the same call.
    """

    def __init__(self, key):
        """Raises LocalProtocolError: key is not 16 or 32 bytes."""
        self._key = _check_key(key)
        self.backend = ctr_backend()
        self._ecb = AesEcb(self._key) if _use_ecb else None
        if not _use_ecb and not _MPY:
            self._algo = algorithms.AES(self._key)

    def xor(self, counter_block, data):
        """XOR data with the keystream starting at counter_block (16 bytes) -> bytes.

        Raises LocalProtocolError: counter block is not 16 bytes.
        """
        out = bytearray(len(data))
        self.xor_into(counter_block, data, out)
        return bytes(out)

    def xor_into(self, counter_block, data, out):
        """Like xor(), but write the len(data) result bytes into out, a writable
        buffer (bytearray or memoryview slice) of exactly len(data) bytes.
        Saves a copy of the data on small heaps.

        Raises LocalProtocolError: counter block not 16 bytes, or out has another length.
        """
        if len(counter_block) != BLOCK_BYTES:
            raise LocalProtocolError("CTR counter block must be 16 bytes")
        if len(out) != len(data):
            raise LocalProtocolError("CTR output buffer must match the input length")
        if not len(data):
            return
        if self._ecb is not None:
            _ctr_from_ecb(self._ecb, bytes(counter_block), data, out)
        elif _MPY:
            cryptolib.aes(self._key, _MODE_CTR, bytes(counter_block)).encrypt(data, out)
        else:
            enc = Cipher(self._algo, modes.CTR(bytes(counter_block))).encryptor()
            out[:] = enc.update(bytes(data)) + enc.finalize()


def _counter_run(counter_block, first, count):
    """count consecutive 16-byte counter blocks, from counter_block + first."""
    out = bytearray(count * BLOCK_BYTES)
    low = struct.unpack(">I", counter_block[12:])[0] + first
    if low + count <= 0x100000000:  # common case: only the low 32 bits move
        prefix = counter_block[:12]
        for i in range(count):
            out[i * BLOCK_BYTES:i * BLOCK_BYTES + 12] = prefix
            struct.pack_into(">I", out, i * BLOCK_BYTES + 12, low + i)
        return out
    base = int.from_bytes(counter_block, "big") + first
    for i in range(count):  # carry into the upper 96 bits, wrap at 2^128
        out[i * BLOCK_BYTES:(i + 1) * BLOCK_BYTES] = ((base + i) & _MASK128).to_bytes(16, "big")
    return out


def _ctr_from_ecb(ecb, counter_block, data, out):
    """CTR built from ECB, one ECB call per chunk of up to _CHUNK_BLOCKS blocks."""
    n = len(data)
    pos = 0
    block_no = 0
    while pos < n:
        take = min(n - pos, _CHUNK_BLOCKS * BLOCK_BYTES)
        count = (take + BLOCK_BYTES - 1) // BLOCK_BYTES
        stream = ecb.encrypt(_counter_run(counter_block, block_no, count))
        out[pos:pos + take] = xor_bytes(bytes(data[pos:pos + take]), stream[:take])
        pos += take
        block_no += count

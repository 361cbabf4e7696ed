# AES-CTR known answers on every CTR path this interpreter has: native CTR
# (pyca, or cryptolib mode 6 where the build has it) and CTR built from ECB.
# Both paths must give identical bytes. Runs on CPython and MicroPython.
from meshlink import aes
from meshlink.errors import LocalProtocolError
from vectors import expect_raises, load, tohex, unhex


def _backends():
    names = ["ecb"]
    if aes.has_native_ctr():
        names.append("native")
    return names


def _with_backend(name, fn):
    previous = aes.set_ctr_backend(name)
    try:
        return fn()
    finally:
        aes.set_ctr_backend(previous)


def _check_cases(backend):
    cases = load("aes_ctr")["cases"]
    for case in cases:
        ctr = aes.AesCtr(unhex(case["key"]))
        assert ctr.backend.endswith("-ecb") == (backend == "ecb"), ctr.backend
        out = ctr.xor(unhex(case["counter"]), unhex(case["input"]))
        assert tohex(out) == case["output"], (backend, case["name"])
    return len(cases)


def test_known_answers_every_backend():
    for name in _backends():
        assert _with_backend(name, lambda n=name: _check_cases(n)) >= 8


def test_nist_sp800_38a_present():
    names = [c["name"] for c in load("aes_ctr")["cases"]]
    assert "SP 800-38A F.5.5 CTR-AES256.Encrypt" in names
    assert "SP 800-38A F.5.6 CTR-AES256.Decrypt" in names


def test_ecb_built_matches_native_every_length():
    if not aes.has_native_ctr():
        return  # nothing to compare against here; the vectors cover the ECB path
    key = bytes(range(32))
    data = bytes(range(256)) * 3
    counters = (bytes(16), b"\x01" * 12 + b"\xff\xff\xff\xf0", b"\xff" * 16)
    for counter in counters:
        for n in (0, 1, 15, 16, 17, 100, 511, 512, 513, 700):
            def run(c=counter, m=n):
                return aes.AesCtr(key).xor(c, data[:m])
            native = _with_backend("native", run)
            built = _with_backend("ecb", run)
            assert native == built, (tohex(counter), n)


def test_ctr_roundtrip_and_reuse():
    for name in _backends():
        def run():
            ctr = aes.AesCtr(b"k" * 32)
            counter = b"\x00" * 15 + b"\x01"
            msg = b"the quick brown fox jumps over the lazy dog" * 20
            ct = ctr.xor(counter, msg)
            assert ct != msg and len(ct) == len(msg)
            assert ctr.xor(counter, ct) == msg  # same object, second call
            assert ctr.xor(bytearray(counter), bytearray(ct)) == msg
            assert ctr.xor(counter, b"") == b""
        _with_backend(name, run)


def test_ecb_single_block():
    # FIPS-197 C.3 AES-256
    ecb = aes.AesEcb(unhex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"))
    out = ecb.encrypt(unhex("00112233445566778899aabbccddeeff"))
    assert tohex(out) == "8ea2b7ca516745bfeafc49904b496089"


def test_misuse_is_refused():
    expect_raises(LocalProtocolError, aes.AesCtr, b"short")
    expect_raises(LocalProtocolError, aes.AesCtr, "k" * 32)
    expect_raises(LocalProtocolError, aes.AesCtr(b"k" * 32).xor, b"\x00" * 15, b"x")
    expect_raises(LocalProtocolError, aes.AesEcb(b"k" * 16).encrypt, b"x" * 15)
    expect_raises(LocalProtocolError, aes.set_ctr_backend, "rot13")
    if not aes.has_native_ctr():
        expect_raises(LocalProtocolError, aes.set_ctr_backend, "native")


def test_backend_names():
    prev = aes.set_ctr_backend("ecb")
    try:
        assert aes.ctr_backend().endswith("-ecb")
    finally:
        aes.set_ctr_backend(prev)
    assert aes.ctr_backend().endswith("-ctr") == aes.has_native_ctr()

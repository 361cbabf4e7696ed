# HMAC-SHA256 (RFC 4231) and HKDF-SHA256 (RFC 5869) known answers; runs on
# CPython and MicroPython (tools/run_mpy_tests.py).
from meshlink.errors import LocalProtocolError
from meshlink.hmac256 import HmacKey, hkdf, hkdf_expand, hkdf_extract, hmac_sha256
from vectors import expect_raises, load, tohex, unhex


def test_hmac_rfc4231():
    cases = load("hmac_rfc4231")["cases"]
    assert len(cases) == 7
    for case in cases:
        mac = hmac_sha256(unhex(case["key"]), unhex(case["data"]))
        want = case["mac"]
        assert tohex(mac[:len(want) // 2]) == want, case["name"]


def test_hmac_truncated_case_is_present():
    names = [c["name"] for c in load("hmac_rfc4231")["cases"]]
    assert "RFC 4231 case 5 (truncated to 128 bits)" in names


def test_hmac_key_reusable_and_parts_concatenate():
    # MicroPython's sha256 is final after digest(): a reused key must still work.
    case = load("hmac_rfc4231")["cases"][1]
    key = HmacKey(unhex(case["key"]))
    data = unhex(case["data"])
    for _ in range(3):
        assert tohex(key.digest(data)) == case["mac"]
    assert tohex(key.digest(data[:5], b"", data[5:])) == case["mac"]
    assert tohex(key.digest(bytearray(data))) == case["mac"]


def test_hmac_long_key_is_hashed_first():
    cases = load("hmac_rfc4231")["cases"]
    long_key_case = cases[5]  # case 6: 131-byte key
    assert len(unhex(long_key_case["key"])) > 64
    mac = HmacKey(unhex(long_key_case["key"])).digest(unhex(long_key_case["data"]))
    assert tohex(mac) == long_key_case["mac"]


def test_hkdf_rfc5869():
    cases = load("hkdf_rfc5869")["cases"]
    assert len(cases) == 3
    for case in cases:
        ikm, salt, info = unhex(case["ikm"]), unhex(case["salt"]), unhex(case["info"])
        prk = hkdf_extract(salt, ikm)
        assert tohex(prk) == case["prk"], case["name"]
        assert tohex(hkdf_expand(prk, info, case["length"])) == case["okm"], case["name"]
        assert tohex(hkdf(salt, ikm, info, case["length"])) == case["okm"], case["name"]


def test_hkdf_lengths():
    prk = hkdf_extract(b"salt", b"ikm")
    long = hkdf_expand(prk, b"info", 8160)
    assert len(long) == 8160
    for n in (0, 1, 31, 32, 33, 64, 100):
        assert hkdf_expand(prk, b"info", n) == long[:n]


def test_hkdf_refuses_misuse():
    prk = bytes(32)
    expect_raises(LocalProtocolError, hkdf_expand, prk, b"", 8161)
    expect_raises(LocalProtocolError, hkdf_expand, prk, b"", -1)
    expect_raises(LocalProtocolError, hkdf_expand, prk, b"", True)
    expect_raises(LocalProtocolError, hkdf_expand, bytes(31), b"", 32)
    expect_raises(LocalProtocolError, hkdf_expand, prk, "info", 32)
    expect_raises(LocalProtocolError, hkdf_extract, b"", "ikm")
    expect_raises(LocalProtocolError, hmac_sha256, "key", b"data")

"""Generate the board-link crypto test vectors in tests/vectors/.

Writes:
  hkdf_rfc5869.json      RFC 5869 SHA-256 cases 1-3 (from cryptography-vectors)
  hmac_rfc4231.json      RFC 4231 SHA-256 cases 1-7, case 5 truncated to 128 bits
  aes_ctr.json           NIST SP 800-38A F.5.5/F.5.6, RFC 3686 AES-256, multi-block cases
  boardlink_session.json a full board-link session with exact bytes and negative cases

Every value is computed twice: once with meshlink (shared/meshlink) and once
independently with pyca `cryptography` and the standard library (hmac,
hashlib, HKDF, AES-CTR, byte concatenation instead of struct). The script
fails if the two disagree, so the vectors are not merely self-consistent.

Usage: .venv/bin/python tools/gen_boardlink_vectors.py [--check]
  --check  regenerate in memory and fail if a file on disk differs.
"""

import argparse
import hashlib
import hmac
import json
import pathlib
import sys

import cryptography_vectors
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "shared"))

from meshlink import aes, boardlink  # noqa: E402
from meshlink import errors as ml_errors  # noqa: E402
from meshlink.hmac256 import hkdf, hkdf_expand, hkdf_extract, hmac_sha256  # noqa: E402

OUT_DIR = ROOT / "tests" / "vectors"


def check(cond, what):
    if not cond:
        raise SystemExit("cross-check failed: " + what)


def hx(b: bytes) -> str:
    return b.hex()


def read_vectors(relpath: str) -> list[dict[str, str]]:
    """Parse a cryptography-vectors 'KEY = value' file into blocks."""
    text = pathlib.Path(cryptography_vectors.__file__).parent.joinpath(relpath).read_text()
    blocks: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("["):
            continue
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if key in ("COUNT", "Len") and cur:
            blocks.append(cur)
            cur = {}
        cur[key] = value
    if cur:
        blocks.append(cur)
    return blocks


# ------------------------------------------------------------ independent

def ind_hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(hashes.SHA256(), length, salt, info).derive(ikm)


def ind_hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def ind_ctr(key: bytes, counter: bytes, data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.CTR(counter)).encryptor()
    return enc.update(data) + enc.finalize()


def our_ctr_both(key: bytes, counter: bytes, data: bytes) -> bytes:
    """Our CTR on the native and the ECB-built path; they must agree."""
    prev = aes.set_ctr_backend("native")
    native = aes.AesCtr(key).xor(counter, data)
    aes.set_ctr_backend("ecb")
    built = aes.AesCtr(key).xor(counter, data)
    aes.set_ctr_backend(prev)
    check(native == built, "native CTR != ECB-built CTR")
    return native


def det_bytes(label: str, n: int) -> bytes:
    """Deterministic filler: SHA-256 in counter mode over a label."""
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b"%s/%d" % (label.encode(), i)).digest()
        i += 1
    return out[:n]


# ---------------------------------------------------------- RFC and NIST

def gen_hkdf() -> dict:
    cases = []
    for b in read_vectors("KDF/rfc-5869-HKDF-SHA256.txt"):
        ikm, salt, info = (bytes.fromhex(b[k]) for k in ("IKM", "salt", "info"))
        length, prk, okm = int(b["L"]), bytes.fromhex(b["PRK"]), bytes.fromhex(b["OKM"])
        check(hkdf_extract(salt, ikm) == prk, "HKDF PRK case %s" % b["COUNT"])
        check(hkdf_expand(prk, info, length) == okm, "HKDF OKM case %s" % b["COUNT"])
        check(hkdf(salt, ikm, info, length) == okm, "HKDF case %s" % b["COUNT"])
        check(ind_hkdf(salt, ikm, info, length) == okm, "pyca HKDF case %s" % b["COUNT"])
        cases.append({"name": "RFC 5869 A.%s" % b["COUNT"], "ikm": hx(ikm), "salt": hx(salt),
                      "info": hx(info), "length": length, "prk": hx(prk), "okm": hx(okm)})
    check(len(cases) == 3, "expected RFC 5869 SHA-256 cases 1-3")
    return {"source": "RFC 5869 appendix A.1-A.3 (cryptography-vectors "
                      "KDF/rfc-5869-HKDF-SHA256.txt)", "cases": cases}


# RFC 4231 section 4.6: the file in cryptography-vectors leaves it out.
_RFC4231_CASE5 = {"key": "0c" * 20, "data": b"Test With Truncation".hex(),
                  "mac": "a3b6167473100ee06e0c796c2955552b"}


def gen_hmac() -> dict:
    numbers = [1, 2, 3, 4, 6, 7]  # order of the cases in the file
    cases = []
    for num, b in zip(numbers, read_vectors("HMAC/rfc-4231-sha256.txt"), strict=True):
        key, msg, mac = bytes.fromhex(b["Key"]), bytes.fromhex(b["Msg"]), bytes.fromhex(b["MD"])
        check(hmac_sha256(key, msg) == mac == ind_hmac(key, msg), "HMAC case %d" % num)
        cases.append({"name": "RFC 4231 case %d" % num, "key": hx(key), "data": hx(msg),
                      "mac": hx(mac)})
    c5 = _RFC4231_CASE5
    key, msg = bytes.fromhex(c5["key"]), bytes.fromhex(c5["data"])
    check(ind_hmac(key, msg)[:16].hex() == c5["mac"], "RFC 4231 case 5")
    check(hmac_sha256(key, msg)[:16].hex() == c5["mac"], "our HMAC case 5")
    cases.insert(4, {"name": "RFC 4231 case 5 (truncated to 128 bits)", "key": c5["key"],
                     "data": c5["data"], "mac": c5["mac"]})
    return {"source": "RFC 4231 section 4 (cases 1-4, 6, 7 from cryptography-vectors "
                      "HMAC/rfc-4231-sha256.txt; case 5 from the RFC text)", "cases": cases}


# NIST SP 800-38A F.5.5 (CTR-AES256.Encrypt) and F.5.6 (Decrypt).
_SP800_38A_KEY = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"
_SP800_38A_CTR = "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
_SP800_38A_PT = ("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
                 "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")
_SP800_38A_CT = ("601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c5"
                 "2b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6")


def _ctr_case(name: str, key: bytes, counter: bytes, data: bytes, want: bytes | None) -> dict:
    got = ind_ctr(key, counter, data)
    if want is not None:
        check(got == want, "pyca " + name)
    check(our_ctr_both(key, counter, data) == got, "meshlink " + name)
    return {"name": name, "key": hx(key), "counter": hx(counter), "input": hx(data),
            "output": hx(got)}


def gen_aes() -> dict:
    key, ctr = bytes.fromhex(_SP800_38A_KEY), bytes.fromhex(_SP800_38A_CTR)
    pt, ct = bytes.fromhex(_SP800_38A_PT), bytes.fromhex(_SP800_38A_CT)
    cases = [_ctr_case("SP 800-38A F.5.5 CTR-AES256.Encrypt", key, ctr, pt, ct),
             _ctr_case("SP 800-38A F.5.6 CTR-AES256.Decrypt", key, ctr, ct, pt)]
    for b in read_vectors("ciphers/AES/CTR/aes-256-ctr.txt"):
        cases.append(_ctr_case("RFC 3686 AES-256 #%s" % b["COUNT"], bytes.fromhex(b["KEY"]),
                               bytes.fromhex(b["IV"]), bytes.fromhex(b["PLAINTEXT"]),
                               bytes.fromhex(b["CIPHERTEXT"])))
    key2 = det_bytes("aes key", 32)
    extra = [("1 byte", "00" * 16, 1), ("17 bytes", "01" * 16, 17),
             ("255 bytes", "0102030405060708090a0b0c00000001", 255),
             ("one full ECB chunk + 1 (513 bytes)", "02" * 12 + "00000001", 513),
             ("low 32 bits wrap", "03" * 12 + "fffffffe", 80),
             ("128-bit wrap", "ff" * 15 + "fe", 64)]
    for name, counter, n in extra:
        cases.append(_ctr_case("multi-block: " + name + " (pyca)", key2, bytes.fromhex(counter),
                               det_bytes(name, n), None))
    return {"source": "NIST SP 800-38A F.5.5/F.5.6; RFC 3686 (cryptography-vectors "
                      "ciphers/AES/CTR/aes-256-ctr.txt); multi-block cases computed with pyca",
            "cases": cases}


# ----------------------------------------------------------- board link

PSK = bytes(range(32))
WRONG_PSK = bytes(range(1, 33))
BOARD_ID = b"mlboard1"
BOOT_CTR = 42
BOARD_NONCE = bytes(range(0xA0, 0xB0))
GATEWAY_NONCE = bytes(range(0xB0, 0xC0))
SID = 0x5EED0001
OLD_SID = 0x5EED0000
NOW_MS = 1000
B2G_LATE = 30  # sealed early, delivered after seq 80: inside the window
B2G_LOST = 5  # sealed, never delivered: more than 64 below 80 -> too old


def ind_handshake(psk: bytes, boot_ctr: int, sid: int, board_nonce: bytes) -> dict:
    """The handshake computed from the spec with pyca and the stdlib only."""
    hello = b"\x01\x01" + BOARD_ID + boot_ctr.to_bytes(4, "big") + board_nonce
    k_auth = ind_hkdf(b"meshlink/1 board", psk, b"meshlink/1 board auth" + BOARD_ID, 32)
    body = b"\x02" + sid.to_bytes(4, "big") + GATEWAY_NONCE
    t = hashlib.sha256(hello + body).digest()
    okm = ind_hkdf(t, psk, b"meshlink/1 board session" + BOARD_ID, 128)
    return {"hello": hello, "k_auth": k_auth, "transcript": t,
            "challenge": body + ind_hmac(k_auth, b"G" + t)[:16],
            "confirm": b"\x03" + sid.to_bytes(4, "big") + ind_hmac(k_auth, b"B" + t)[:16],
            "enc_b2g": okm[0:32], "mac_b2g": okm[32:64],
            "enc_g2b": okm[64:96], "mac_g2b": okm[96:128], "sid": sid}


def ind_record(hs: dict, direction: str, seq: int, plaintext: bytes) -> bytes:
    header = b"\x04" + hs["sid"].to_bytes(4, "big") + seq.to_bytes(8, "big")
    dir_byte = b"\x01" if direction == "b2g" else b"\x02"
    block = dir_byte + b"\x00\x00\x00" + seq.to_bytes(8, "big") + b"\x00\x00\x00\x01"
    ct = ind_ctr(hs["enc_" + direction], block, plaintext)
    return header + ct + ind_hmac(hs["mac_" + direction], header + ct)[:16]


def our_pair(psk: bytes, boot_ctr: int, sid: int, board_nonce: bytes):
    board = boardlink.BoardClient(psk, BOARD_ID, boot_ctr, board_nonce)
    gw = boardlink.GatewaySession(psk, BOARD_ID)
    challenge = gw.handle_hello(board.hello(), sid, GATEWAY_NONCE, NOW_MS)
    confirm = board.handle_challenge(challenge, NOW_MS)
    check(gw.handle_confirm(confirm, NOW_MS) is True, "gateway installs keys")
    return board, gw, challenge, confirm


def seal_run(sender, hs: dict, direction: str, plaintexts: dict[int, bytes], upto: int) -> dict:
    """Seal seq 0..upto with our code; cross-check each kept record independently."""
    kept = {}
    for seq in range(upto + 1):
        pt = plaintexts.get(seq, b"dropped %d" % seq)
        rec = sender.seal(pt, NOW_MS + seq)
        check(rec == ind_record(hs, direction, seq, pt), "%s record seq %d" % (direction, seq))
        if seq in plaintexts:
            kept[seq] = rec
    return kept


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    b = bytearray(data)
    b[index] ^= mask
    return bytes(b)


def other_records(direction: str, seq: int) -> tuple[bytes, bytes]:
    """(wrong-key record, old-sid record) for direction at seq, cross-checked."""
    pt = b"from another session"
    out = []
    for psk, boot, sid, nonce in ((WRONG_PSK, BOOT_CTR, SID, BOARD_NONCE),
                                  (PSK, BOOT_CTR - 1, OLD_SID, bytes(16))):
        board, gw, _c, _f = our_pair(psk, boot, sid, nonce)
        hs = ind_handshake(psk, boot, sid, nonce)
        sender = board if direction == "b2g" else gw
        out.append(seal_run(sender, hs, direction, {seq: pt}, seq)[seq])
    return out[0], out[1]


def record_negatives(direction: str, valid: dict[int, bytes], fresh: bytes, seq: int) -> list:
    wrong_key, old_sid = other_records(direction, seq)
    n = len(fresh)
    cases = [("bit flip in ciphertext", flip(fresh, 13 + 2), "AuthError"),
             ("bit flip in tag", flip(fresh, n - 1, 0x80), "AuthError"),
             ("bit flip in seq (seq + 2^24)", flip(fresh, 9), "AuthError"),
             ("bit flip in sid (old sid)", flip(fresh, 4), "ReplayError"),
             ("truncated below header + tag", fresh[:28], "DecodeError"),
             ("truncated by one byte", fresh[:-1], "AuthError"),
             ("tag extended by one byte", fresh + b"\x00", "AuthError"),
             ("wrong type byte", b"\x05" + fresh[1:], "DecodeError"),
             ("seq at the 2^32 limit", fresh[:5] + (1 << 32).to_bytes(8, "big") + fresh[13:],
              "DecodeError"),
             ("wrong key (other PSK)", wrong_key, "AuthError"),
             ("record of an old session (old sid)", old_sid, "ReplayError"),
             ("empty", b"", "DecodeError")]
    for s, rec in sorted(valid.items()):
        cases.append(("replayed seq %d" % s, rec, "ReplayError"))
    return [{"name": a, "record": hx(b), "error": c} for a, b, c in cases]


def handshake_negatives(hs: dict) -> list:
    wrong = ind_handshake(WRONG_PSK, BOOT_CTR, SID, BOARD_NONCE)
    gw = boardlink.GatewaySession(WRONG_PSK, BOARD_ID)
    check(gw.handle_hello(hs["hello"], SID, GATEWAY_NONCE, NOW_MS) == wrong["challenge"],
          "wrong-PSK challenge")
    ch, cf, he = hs["challenge"], hs["confirm"], hs["hello"]
    cases = [("board_challenge", "wrong PSK", wrong["challenge"], "AuthError"),
             ("board_challenge", "bit flip in tag", flip(ch, 36), "AuthError"),
             ("board_challenge", "bit flip in sid", flip(ch, 1), "AuthError"),
             ("board_challenge", "bit flip in gateway nonce", flip(ch, 10), "AuthError"),
             ("board_challenge", "truncated", ch[:-1], "DecodeError"),
             ("board_challenge", "wrong type byte", b"\x03" + ch[1:], "DecodeError"),
             ("board_challenge", "empty", b"", "DecodeError"),
             ("gateway_hello", "truncated", he[:-1], "DecodeError"),
             ("gateway_hello", "version 2", he[:1] + b"\x02" + he[2:], "VersionError"),
             ("gateway_hello", "another board", he[:2] + b"mlboard2" + he[10:],
              "HandshakeError"),
             ("gateway_hello", "wrong type byte", b"\x02" + he[1:], "DecodeError"),
             ("gateway_confirm", "wrong PSK", wrong["confirm"], "AuthError"),
             ("gateway_confirm", "bit flip in tag", flip(cf, 20), "AuthError"),
             ("gateway_confirm", "another sid", flip(cf, 4), "HandshakeError"),
             ("gateway_confirm", "truncated", cf[:-1], "DecodeError"),
             ("gateway_fresh", "CONFIRM before HELLO", cf, "HandshakeError")]
    return [{"side": s, "name": n, "data": hx(d), "error": e} for s, n, d, e in cases]


def gen_session() -> dict:
    hs = ind_handshake(PSK, BOOT_CTR, SID, BOARD_NONCE)
    board, gw, challenge, confirm = our_pair(PSK, BOOT_CTR, SID, BOARD_NONCE)
    check(board.hello() == hs["hello"] and challenge == hs["challenge"], "HELLO/CHALLENGE")
    check(confirm == hs["confirm"], "CONFIRM")
    check(boardlink.derive_auth_key(PSK, BOARD_ID) == hs["k_auth"], "K_auth")
    check(board.transcript == gw.transcript == hs["transcript"], "transcript T")
    keys = boardlink.derive_session_keys(PSK, BOARD_ID, hs["transcript"])
    names = ("enc_b2g", "mac_b2g", "enc_g2b", "mac_g2b")
    check(keys == tuple(hs[k] for k in names), "session keys")
    b2g_pts = {0: b"", 1: b'{"temp_c":21.5}', 2: det_bytes("b2g payload", 256),
               B2G_LATE: b"late but inside the window", B2G_LOST: b"lost on the radio",
               80: b"after 77 lost records", 81: b"still working"}
    b2g = seal_run(board, hs, "b2g", b2g_pts, 81)
    g2b_pts = {0: b"ack", 1: det_bytes("g2b payload", 256), 2: b"\x00\x01\x02", 3: b"ok"}
    g2b = seal_run(gw, hs, "g2b", g2b_pts, 3)
    b2g_order = [0, 1, 2, 80, B2G_LATE]
    b2g_neg = record_negatives("b2g", {s: b2g[s] for s in b2g_order}, b2g[81], 81)
    b2g_neg.insert(0, {"name": "too old (seq 5, never delivered)", "record": hx(b2g[B2G_LOST]),
                       "error": "ReplayError"})
    g2b_neg = record_negatives("g2b", {s: g2b[s] for s in (0, 1, 2)}, g2b[3], 3)
    return {
        "about": "Board-link session (docs/PROTOCOL.md §6). Deliver 'b2g' records to "
                 "the gateway and 'g2b' to the board in list order; then every *_negative "
                 "record raises 'error' (exact class name) and leaves the session working, "
                 "so *_after opens. Records of seq not listed were sealed and dropped. "
                 "Handshake negatives: board_challenge goes to a fresh BoardClient, "
                 "gateway_hello to a fresh GatewaySession, gateway_confirm to one that "
                 "answered 'hello', gateway_fresh to a fresh GatewaySession's handle_confirm.",
        "psk": hx(PSK), "board_id": hx(BOARD_ID), "boot_ctr": BOOT_CTR,
        "board_nonce": hx(BOARD_NONCE), "gateway_nonce": hx(GATEWAY_NONCE), "sid": SID,
        "now_ms": NOW_MS, "k_auth": hx(hs["k_auth"]), "transcript": hx(hs["transcript"]),
        "keys": {k: hx(hs[k]) for k in names},
        "hello": hx(hs["hello"]), "challenge": hx(challenge), "confirm": hx(confirm),
        "b2g": [{"seq": s, "plaintext": hx(b2g_pts[s]), "record": hx(b2g[s])} for s in b2g_order],
        "g2b": [{"seq": s, "plaintext": hx(g2b_pts[s]), "record": hx(g2b[s])} for s in (0, 1, 2)],
        "b2g_negative": b2g_neg, "g2b_negative": g2b_neg,
        "b2g_after": {"seq": 81, "plaintext": hx(b2g_pts[81]), "record": hx(b2g[81])},
        "g2b_after": {"seq": 3, "plaintext": hx(g2b_pts[3]), "record": hx(g2b[3])},
        "handshake_negative": handshake_negatives(hs),
        "stale": stale_vector(),
    }


def stale_vector() -> dict:
    """STALE (gateway -> board: no session with this sid), from the byte table."""
    stale = bytes([0x05]) + SID.to_bytes(4, "big")
    return {"sid": SID, "data": hx(stale), "negative": [
        {"name": "truncated", "data": hx(stale[:4]), "error": "DecodeError"},
        {"name": "too long", "data": hx(stale + b"\x00"), "error": "DecodeError"},
        {"name": "unknown type 0x06", "data": hx(b"\x06" + stale[1:]), "error": "DecodeError"},
    ]}


def self_test_session(v: dict) -> None:
    """Replay the vector through our code: every negative raises exactly its error."""
    board, gw, _c, _f = our_pair(PSK, BOOT_CTR, SID, BOARD_NONCE)
    for direction, receiver in (("b2g", gw), ("g2b", board)):
        for r in v[direction]:
            check(receiver.open(bytes.fromhex(r["record"]), NOW_MS).hex() == r["plaintext"],
                  "open %s seq %d" % (direction, r["seq"]))
        for case in v[direction + "_negative"]:
            try:
                receiver.open(bytes.fromhex(case["record"]), NOW_MS)
            except ml_errors.MeshLinkError as e:
                check(type(e).__name__ == case["error"], "%s: %s" % (case["name"], e))
            else:
                check(False, "no error for " + case["name"])
        after = v[direction + "_after"]
        check(receiver.open(bytes.fromhex(after["record"]), NOW_MS).hex() == after["plaintext"],
              direction + " after negatives")


def dump(obj: dict) -> str:
    return json.dumps(obj, indent=1) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if a file on disk differs")
    args = ap.parse_args()
    session = gen_session()
    self_test_session(session)
    files = {"hkdf_rfc5869": gen_hkdf(), "hmac_rfc4231": gen_hmac(), "aes_ctr": gen_aes(),
             "boardlink_session": session}
    stale = 0
    for name, obj in files.items():
        path = OUT_DIR / (name + ".json")
        text = dump(obj)
        if args.check:
            if not path.exists() or path.read_text() != text:
                print("stale: " + str(path), file=sys.stderr)
                stale += 1
        else:
            path.write_text(text)
            print("wrote %s (%d bytes)" % (path.relative_to(ROOT), len(text)))
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())

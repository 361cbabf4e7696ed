"""Write tests/vectors/serialframe.json and tests/vectors/blefrag.json.

The expected bytes come from a deliberately different, byte-at-a-time
reference written here (plus zlib.crc32), not from the code under test, and
the COBS cases include the published examples from Cheshire & Baker /
Wikipedia. Run: .venv/bin/python tools/gen_link_vectors.py
"""

import json
import pathlib
import zlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "vectors"

# Published COBS examples (Wikipedia, "Consistent Overhead Byte Stuffing").
PUBLISHED_COBS = [
    ("00", "0101"),
    ("0000", "010101"),
    ("001100", "01021101"),
    ("11220033", "0311220233"),
    ("11223344", "0511223344"),
    ("11000000", "0211010101"),
    (bytes(range(1, 255)).hex(), "ff" + bytes(range(1, 255)).hex()),
    ("00" + bytes(range(1, 255)).hex(), "01ff" + bytes(range(1, 255)).hex()),
    (bytes(range(1, 256)).hex(), "ff" + bytes(range(1, 255)).hex() + "02ff"),
    (bytes(range(2, 256)).hex() + "00", "ff" + bytes(range(2, 256)).hex() + "0101"),
    (bytes(range(3, 256)).hex() + "0001", "fe" + bytes(range(3, 256)).hex() + "0201"),
]


def ref_cobs(data: bytes) -> bytes:
    """Byte-at-a-time COBS encoder (the textbook algorithm)."""
    out = bytearray([0])
    code_at = 0
    code = 1
    for b in data:
        if b == 0:
            out[code_at] = code
            code_at = len(out)
            out.append(0)
            code = 1
            continue
        out.append(b)
        code += 1
        if code == 0xFF:
            out[code_at] = code
            code_at = len(out)
            out.append(0)
            code = 1
    out[code_at] = code
    if code == 1 and len(data) and data[-1] != 0 and _ends_full_block(data):
        out.pop()  # no final code byte after a trailing full block
    return bytes(out)


def _ends_full_block(data: bytes) -> bool:
    run = 0
    for b in data:
        run = 0 if b == 0 else (run + 1) % 254
    return run == 0


def ref_frame(payload: bytes) -> bytes:
    body = payload + (zlib.crc32(payload) & 0xFFFFFFFF).to_bytes(4, "big")
    return b"\x00" + ref_cobs(body) + b"\x00"


def serial_vectors() -> dict:
    for raw, enc in PUBLISHED_COBS:
        assert ref_cobs(bytes.fromhex(raw)).hex() == enc, raw
    payloads = [b"", b"\x00", b"hello board", bytes(range(256)), b"\x00" * 300,
                bytes(range(1, 255)) * 2]
    encode = [{"payload": p.hex(), "frame": ref_frame(p).hex()} for p in payloads]
    a, b, c = ref_frame(b"first"), ref_frame(b"\x00second\x00"), ref_frame(b"third")
    corrupt = bytearray(ref_frame(b"corrupt me"))
    corrupt[4] ^= 0x20
    bad_cobs = b"\x00\x09abc\x00"  # code byte promises 8 bytes, only 3 follow
    short = b"\x00" + ref_cobs(b"\x01\x02") + b"\x00"  # decodes to 2 bytes < CRC
    stream = [
        _case("boot chatter then frames", b"ets Jun  8 2016 00:22:57\r\nrst:0x1\r\n" + a + b,
              [b"first", b"\x00second\x00"], {"cobs_errors": 1}),
        _case("partial frame cut by the next frame's delimiter", a[:-5] + b + c,
              [b"\x00second\x00", b"third"], {"cobs_errors": 1}),
        _case("corrupted byte", a + bytes(corrupt) + c, [b"first", b"third"], {"crc_errors": 1}),
        _case("bad COBS block", a + bad_cobs + c, [b"first", b"third"], {"cobs_errors": 1}),
        _case("too short for a CRC", short + a, [b"first"], {"short_frames": 1}),
        _case("idle delimiters", b"\x00\x00\x00" + a + b"\x00\x00" + c, [b"first", b"third"], {}),
        _case("garbage with zeros", b"\xff\x00\x03\x12\x34\x00\x00" + a,
              [b"first"], {"cobs_errors": 1, "short_frames": 1}),
    ]
    big = ref_frame(b"x" * 40)
    oversize = [{"comment": "40-byte payload against a 16-byte limit, then a good frame",
                 "max_payload_bytes": 16, "stream": (big + a).hex(),
                 "payloads": [b"first".hex()], "counts": {"oversize_frames": 1}}]
    return {"comment": "0x00 | COBS(payload | CRC-32/IEEE big-endian) | 0x00",
            "cobs": [{"raw": r, "encoded": e} for r, e in PUBLISHED_COBS],
            "encode": encode, "stream": stream, "oversize": oversize}


def _case(comment, stream, payloads, counts):
    return {"comment": comment, "stream": stream.hex(),
            "payloads": [p.hex() for p in payloads], "counts": counts}


def ref_fragments(message: bytes, att: int, counter: int) -> list[bytes]:
    step = att - 2
    chunks = [message[i:i + step] for i in range(0, len(message), step)] or [b""]
    out = []
    for i, chunk in enumerate(chunks):
        flags = i | (0x80 if i == len(chunks) - 1 else 0)
        out.append(bytes([counter, flags]) + chunk)
    return out


def ble_vectors() -> dict:
    cases = [(b"", 20, 0), (b"hi", 20, 1), (bytes(range(18)), 20, 2), (bytes(range(19)), 20, 3),
             (bytes(range(100)), 20, 255), (bytes(range(256)) * 2, 244, 7)]
    split = [{"message": m.hex(), "att_payload_bytes": att, "counter": ctr,
              "fragments": [f.hex() for f in ref_fragments(m, att, ctr)]}
             for m, att, ctr in cases]
    f1 = ref_fragments(bytes(range(40)), 20, 5)
    f2 = ref_fragments(b"after", 20, 6)
    feed = [
        _ble("missing middle fragment drops the message", [f1[0], f1[2]] + f2,
             [b"after"], {"out_of_order": 1}),
        _ble("new message abandons the old", [f1[0], f1[1]] + f2, [b"after"], {"abandoned": 1}),
        _ble("short fragment", [b"\x05"] + f2, [b"after"], {"short_fragments": 1}),
        _ble("stray continuation", [f1[1], f1[2]] + f2, [b"after"], {"out_of_order": 1}),
        _ble("rest of a dropped message is skipped quietly", [f1[0], f1[2], f1[1]] + f2,
             [b"after"], {"out_of_order": 1}),
        _ble("wrong counter mid-message", [f1[0], bytes([9]) + f1[1][1:], f1[2]] + f2,
             [b"after"], {"out_of_order": 1}),
    ]
    return {"comment": "byte0 counter, byte1 LAST(0x80)|index(0..127), then data",
            "split": split, "feed": feed}


def _ble(comment, frags, messages, counts):
    return {"comment": comment, "fragments": [f.hex() for f in frags],
            "messages": [m.hex() for m in messages], "counts": counts}


def main() -> None:
    for name, data in (("serialframe", serial_vectors()), ("blefrag", ble_vectors())):
        (OUT / f"{name}.json").write_text(json.dumps(data, indent=1) + "\n")
        print(f"wrote tests/vectors/{name}.json")


if __name__ == "__main__":
    main()

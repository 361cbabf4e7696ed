"""Write tests/vectors/messages.json: one canonical encoding per message type
plus malformed inputs with the error class each must raise.

The valid encodings are checked byte for byte on CPython and MicroPython, so
they prove both interpreters produce and accept the same bytes.
"""

import json
import pathlib

from meshlink import messages as m

A = "6f1c2a3b-0d4e-4f50-8a61-72839405a6b7"
B = "0a1b2c3d-4e5f-4061-8273-8495a6b7c8d9"
C = "f0e1d2c3-b4a5-4697-8877-66554433221a"
MID = "11111111-2222-4333-8444-555555555555"
MID2 = "99999999-8888-4777-8666-555555555555"

VALID = [
    m.Handshake(versions=[1], suites=["x25519-mlkem768/ed25519/aes256gcm/sha256"],
                listen_port=7400, body=bytes(range(40))),
    m.HandshakeAck(version=1, suite="x25519-mlkem768/ed25519/aes256gcm/sha256",
                   listen_port=7401, body=b"\xff" * 33),
    m.HandshakeFinish(body=b"\x00\x01\x02"),
    m.Data(data=b"raw application bytes"),
    m.Ping(seq=7, sent_ms=123456789),
    m.Pong(seq=7, sent_ms=123456789),
    m.MeshMessage(src=A, dst=B, data="température 21°C".encode(), message_id=MID,
                  ttl=8, path=[A, C]),
    m.MeshMessage(src=A, dst=None, data=b"", message_id=MID2, origin_id=MID, ttl=0, path=[]),
    m.Ack(src=B, dst=A, ack_for=MID, message_id=MID2, ttl=8, path=[B]),
    m.Error(code="bad_frame", reason='quote " backslash \\ newline \n tab \t ctl \x01'),
    m.Close(reason="shutdown"),
    m.Beacon(node_id=A, port=7400),
    m.GatewayBeacon(node_id=A, udp_port=7410, tcp_port=7411),
    m.IHave(ids=[MID, MID2]),
    m.Graft(ids=[MID]),
    m.Prune(),
    m.Routes(routes=[[A, 1764032400, 0], [B, 17, 255]]),
]

MESH = VALID[6].to_obj()


def variant(**changes):
    obj = dict(MESH)
    for k, v in changes.items():
        if v is None and k.startswith("del_"):
            obj.pop(k[4:])
        else:
            obj[k] = v
    return json.dumps(obj)


INVALID = [
    ("not json", "{", "DecodeError"),
    ("not utf-8", "\\xff", "DecodeError"),
    ("json array", "[1,2]", "DecodeError"),
    ("no version", '{"type":"close","reason":"x"}', "DecodeError"),
    ("future version", '{"type":"close","reason":"x","v":2}', "VersionError"),
    ("version is a string", '{"type":"close","reason":"x","v":"1"}', "DecodeError"),
    ("unknown type", '{"type":"teleport","v":1}', "DecodeError"),
    ("extra field", '{"type":"close","reason":"x","v":1,"evil":1}', "DecodeError"),
    ("missing field", variant(del_ttl=None), "DecodeError"),
    ("ttl negative", variant(ttl=-1), "DecodeError"),
    ("ttl too big", variant(ttl=256), "DecodeError"),
    ("ttl is bool", variant(ttl=True), "DecodeError"),
    ("ttl is float", variant(ttl=1.5), "DecodeError"),
    ("uppercase node id", variant(**{"from": A.upper()}), "DecodeError"),
    ("short node id", variant(to=B[:-1]), "DecodeError"),
    ("bad base64", variant(data="!!!!"), "DecodeError"),
    ("base64 bad padding", variant(data="QQ="), "DecodeError"),
    ("path not list", variant(path=A), "DecodeError"),
    ("path with bad id", variant(path=[A, "x"]), "DecodeError"),
    ("path too long", variant(path=[A] * 65), "DecodeError"),
    ("reason too long", '{"type":"close","reason":"%s","v":1}' % ("x" * 257), "DecodeError"),
    ("routes entry hops above 255", '{"type":"routes","v":1,"routes":[["%s",1,256]]}' % A,
     "DecodeError"),
    ("routes entry not a triple", '{"type":"routes","v":1,"routes":[["%s",1]]}' % A,
     "DecodeError"),
    ("routes entry id not a uuid", '{"type":"routes","v":1,"routes":[["x",1,2]]}', "DecodeError"),
    # long inputs are [text, repeat] parts (see main): a short line to read
    ("routes list longer than 256", [['{"type":"routes","v":1,"routes":[', 1],
                                     ['["%s",1,2],' % A, m.MAX_ROUTES],
                                     ['["%s",1,2]]}' % A, 1]], "DecodeError"),
    ("deep nesting", [["[", 5000], ["]", 5000]], "DecodeError"),
]


COMMENT = ("valid: canonical JSON bytes (utf-8 text) per message type; invalid: input text "
           "(\\xff means the raw byte) and the error class decode() raises. One case per "
           "line so a 96K MicroPython heap parses one case at a time (vectors.iter_lines).")


def main() -> None:
    lines = [{"valid": {"type": msg.TYPE, "encoded": msg.encode().decode()}} for msg in VALID]
    # "input_parts" [[text, repeat], ...] spells a long input in a short line:
    # a 96K heap cannot read a 12 KB line and also build the input from it.
    lines += [{"invalid": {"name": n, ("input" if type(i) is str else "input_parts"): i,
                           "error": e}} for n, i, e in INVALID]
    body = ",\n".join(json.dumps(obj, ensure_ascii=False) for obj in lines)
    text = '{"comment": %s,\n "lines": [\n%s\n]}\n' % (json.dumps(COMMENT), body)
    json.loads(text)  # the layout is still one JSON document
    path = pathlib.Path(__file__).resolve().parent.parent / "tests/vectors/messages.json"
    path.write_text(text)
    print("wrote", path)


if __name__ == "__main__":
    main()

"""Property-based fuzzing of every decoder a remote party reaches (issue 14):
node-link frames, messages (beacons included), PQMESH/1 handshake flights (a
loaded responder's M1 with mac2, the initiator's cookie reply) and session
records, board-link messages and records, serial and BLE framing, board
record payloads and MQTT command topics.

Property: whatever bytes arrive, the decoder returns or raises a MeshLinkError
subclass (the typed error); nothing else escapes. Inputs are random bytes and
mutations (flips, truncations, splices) of valid encodings.

Budget: MESHLINK_FUZZ_EXAMPLES inputs per decoder (default 300 inside
`make test`; `make fuzz` runs 16 000 per decoder, over 200 000 in total).
"""

from __future__ import annotations

import os

from helpers.crypto import ALICE, BOB, pair, seeded_rng
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from meshlink import blefrag, boardlink, cjson, messages, serialframe
from meshlink.errors import MeshLinkError
from meshlink.frames import Deframer, encode_frame
from meshlink_gw.boards.records import decode_record
from meshlink_gw.bridges.mqtt_topics import Topics
from meshlink_gw.crypto.cookie import CookieJar
from meshlink_gw.crypto.handshake import Initiator, Responder
from meshlink_gw.crypto.session import Session

EXAMPLES = int(os.environ.get("MESHLINK_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))

PSK = bytes(range(32))
BOARD_ID = b"\x01" * 8
_ID = "0f0e0d0c-0b0a-0908-0706-050403020100"


def _valid_samples() -> list[bytes]:
    return [messages.Ping(seq=1, sent_ms=2).encode(),
            messages.Beacon(node_id=_ID, port=7400).encode(),
            messages.Close(reason="x").encode(),
            messages.MeshMessage(src=_ID, dst=None, data=b"hello", message_id=_ID,
                                 origin_id=_ID, ttl=4, path=[_ID]).encode()]


def mutated(valid: list[bytes]) -> st.SearchStrategy[bytes]:
    """Random bytes, or a valid encoding with flips, a cut, or a splice."""
    base = st.sampled_from(valid)

    def flip(b: bytes, flips: list[tuple[int, int]]) -> bytes:
        out = bytearray(b)
        for i, v in flips:
            if out:
                out[i % len(out)] ^= v or 1
        return bytes(out)

    flips = st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=4)
    return st.one_of(
        st.binary(max_size=2048),
        st.builds(flip, base, flips),
        st.builds(lambda b, n: b[:n], base, st.integers(0, 4096)),
        st.builds(lambda b, x, n: b[:n] + x + b[n:], base, st.binary(max_size=64),
                  st.integers(0, 4096)),
    )


def typed(fn, *args) -> None:
    try:
        fn(*args)
    except MeshLinkError:
        pass


@FUZZ
@given(mutated(_valid_samples()))
def test_messages(data):
    typed(messages.decode, data)
    typed(cjson.loads, data)


@FUZZ
@given(st.lists(mutated([encode_frame(s) for s in _valid_samples()]), max_size=4))
def test_node_link_frames(chunks):
    d = Deframer(65536)
    for c in chunks:
        typed(d.feed, c)


_M1 = pair()[0].start()


@FUZZ
@given(mutated([_M1]))
def test_handshake_m1(data):
    _i, resp = pair()
    typed(resp.receive_hello, data)


def _m2_m3() -> tuple[bytes, bytes]:
    init, resp = pair()
    m2 = resp.receive_hello(init.start())
    return m2, init.receive(m2)


_M2, _M3 = _m2_m3()


@FUZZ
@given(mutated([_M2]))
def test_handshake_m2(data):
    init, _r = pair()
    init.start()
    typed(init.receive, data)


@FUZZ
@given(mutated([_M3]))
def test_handshake_m3(data):
    init, resp = pair()
    resp.receive_hello(init.start())
    typed(resp.receive_finish, data)


_JAR = CookieJar(bytes(32), rng=lambda n: bytes(n))  # a fixed secret: fixed cookies


def _seeded_initiator(cookie: bytes | None = None) -> Initiator:
    """The same M1 every time (so a cookie reply to it stays valid)."""
    return Initiator(ALICE, listen_port=7001, rng=seeded_rng(b"fuzz"), cookie=cookie)


_REPLY = Responder(BOB, listen_port=7002).receive_hello(
    _seeded_initiator().start(), cookies=_JAR, source="10.0.0.1", now_ms=0)
_M1_MAC2 = _seeded_initiator(_JAR.cookie_for("10.0.0.1", 0)).start()


@FUZZ
@given(mutated([_M1, _M1_MAC2]))
def test_handshake_m1_under_load(data):
    """A loaded responder: M1 with or without mac2 (cookie reply, M2 or typed error)."""
    resp = Responder(BOB, listen_port=7002)
    typed(lambda d: resp.receive_hello(d, cookies=_JAR, source="10.0.0.1", now_ms=0), data)


@FUZZ
@given(mutated([_REPLY, _M2]))
def test_handshake_cookie_reply(data):
    """The initiator's answer to M1: a cookie reply, or M2, or anything."""
    init = _seeded_initiator()
    init.start()
    typed(init.receive, data)


def _sessions() -> tuple[Session, Session]:
    keys = {"send_key": b"k" * 32, "send_iv": b"i" * 12, "recv_key": b"k" * 32,
            "recv_iv": b"i" * 12}
    return Session(**keys, created_ms=0), Session(**keys, created_ms=0)


_RECORD = _sessions()[0].seal(b'{"t":"ping"}', 0)


@FUZZ
@given(mutated([_RECORD]))
def test_session_records(data):
    _tx, rx = _sessions()
    typed(rx.open, data, 1)


def _board_samples() -> list[bytes]:
    client = boardlink.BoardClient(PSK, BOARD_ID, 1, b"n" * 16)
    hello = client.hello()
    gw = boardlink.GatewaySession(PSK, BOARD_ID)
    challenge = gw.handle_hello(hello, 7, b"g" * 16, 0)
    confirm = client.handle_challenge(challenge, 0)
    gw.handle_confirm(confirm, 0)
    record = client.seal(b'{"t":"reading"}', 0)
    return [hello, challenge, confirm, record]


_BOARD = _board_samples()


@FUZZ
@given(mutated(_BOARD))
def test_board_link_wire(data):
    for fn in (boardlink.message_type, boardlink.decode_hello, boardlink.decode_challenge,
               boardlink.decode_confirm, boardlink.decode_record_header):
        typed(fn, data)


@FUZZ
@given(mutated(_BOARD))
def test_board_link_sessions(data):
    gw = boardlink.GatewaySession(PSK, BOARD_ID)
    typed(gw.handle_hello, data, 9, b"g" * 16, 0)
    client = boardlink.BoardClient(PSK, BOARD_ID, 1, b"n" * 16)
    client.hello()
    typed(client.handle_challenge, data, 0)
    hello = boardlink.BoardClient(PSK, BOARD_ID, 1, b"m" * 16).hello()
    gw2 = boardlink.GatewaySession(PSK, BOARD_ID)
    gw2.handle_hello(hello, 9, b"g" * 16, 0)
    typed(gw2.handle_confirm, data, 0)


@FUZZ
@given(mutated(_BOARD))
def test_board_link_records(data):
    client = boardlink.BoardClient(PSK, BOARD_ID, 1, b"n" * 16)
    gw = boardlink.GatewaySession(PSK, BOARD_ID)
    gw.handle_confirm(client.handle_challenge(
        gw.handle_hello(client.hello(), 7, b"g" * 16, 0), 0), 0)
    typed(gw.open, data, 0)


@FUZZ
@given(mutated([b'{"t":"reading","sensor":"a","value_milli":1,"unit":"C","seq":1}',
                b'{"t":"msg","to":null,"data":"aGk="}', b'{"t":"ping","seq":3}']))
def test_board_record_payloads(data):
    typed(decode_record, data)


@FUZZ
@given(st.lists(mutated([serialframe.encode(s) for s in _valid_samples()]), max_size=4))
def test_serial_framing(chunks):
    dec = serialframe.SerialDecoder()
    for c in chunks:
        typed(dec.feed, c)
    typed(serialframe.decode, b"".join(chunks))


@FUZZ
@given(st.lists(mutated(blefrag.fragment(_valid_samples()[0], 20, 1)), max_size=8))
def test_ble_fragments(frags):
    r = blefrag.Reassembler()
    for f in frags:
        typed(r.feed, f)


_TOPICS = Topics("meshlink", "gw")


@FUZZ
@given(st.one_of(st.text(max_size=200),
                 st.builds(lambda s: "meshlink/gw/cmd/" + s, st.text(max_size=100))))
def test_mqtt_command_topics(topic):
    parsed = _TOPICS.parse_command(topic)
    assert parsed is None or (parsed[0] and parsed[1])

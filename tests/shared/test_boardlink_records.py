# Board-link record layer: replay window, out-of-order delivery, rekey and
# hard limits, codecs and argument checks. Runs on CPython and MicroPython
# (split from test_boardlink so each module compiles within a 96K heap).
import sys

from meshlink import boardlink
from meshlink.boardlink import BoardClient, GatewaySession
from meshlink.errors import DecodeError, LocalProtocolError, ReplayError, SessionExpiredError
from vectors import expect_raises

PSK = bytes(range(32))
BOARD_ID = b"mlboard1"


def _pair(now_ms=0):
    board = BoardClient(PSK, BOARD_ID, 1, b"b" * 16)
    gw = GatewaySession(PSK, BOARD_ID)
    confirm = board.handle_challenge(gw.handle_hello(board.hello(), 7, b"g" * 16, now_ms), now_ms)
    assert gw.handle_confirm(confirm, now_ms) is True
    return board, gw, None, None


# ------------------------------------------------------------ replay window

# (seq, accepted?) in order, starting from an empty window: modelled on
# wireguard-go's replay_test.go, for a 64-entry window.
_WINDOW_TABLE = (
    (0, True), (1, True), (1, False), (9, True), (8, True), (7, True), (7, False),
    (63, True), (0, False), (64, True), (0, False), (1, False), (2, True), (2, False),
    (127, True), (63, False), (64, False), (65, True), (65, False), (200, True),
    (136, False), (137, True), (199, True), (199, False), (1000, True), (937, True),
    (936, False), (999, True), (1000, False), (2000, True), (1001, False),
    (2064, True), (2000, False), (2001, True), (2127, True), (2064, False), (2065, True),
)


def test_replay_window_table():
    w = boardlink.ReplayWindow()
    for i, (seq, ok) in enumerate(_WINDOW_TABLE):
        try:
            w.check(seq)
        except ReplayError:
            assert not ok, (i, seq)
            continue
        assert ok, (i, seq)
        w.mark(seq)


def test_replay_window_every_seq_once():
    w = boardlink.ReplayWindow()
    order = [5, 3, 4, 0, 1, 2, 70, 10, 6, 69, 7]
    accepted = []
    for seq in order:
        try:
            w.check(seq)
        except ReplayError:
            continue
        w.mark(seq)
        accepted.append(seq)
    assert accepted == [5, 3, 4, 0, 1, 2, 70, 10, 69, 7]  # 6 is 64 below 70
    for seq in accepted:
        expect_raises(ReplayError, w.check, seq)


def test_records_out_of_order_and_lost():
    board, gw, _c, _f = _pair()
    recs = [board.seal(b"%d" % i, 0) for i in range(80)]
    for i in (3, 0, 79, 20, 16):
        assert gw.open(recs[i], 0) == b"%d" % i
    expect_raises(ReplayError, gw.open, recs[15], 0)  # 64 below 79
    expect_raises(ReplayError, gw.open, recs[20], 0)
    assert gw.open(recs[78], 0) == b"78"
    assert gw.highest_seq_received == 79


# ---------------------------------------------------------- limits, rekey

def test_needs_rekey_by_count_and_time():
    board, gw, _c, _f = _pair(now_ms=1000)
    assert not board.needs_rekey(1000)
    assert board.needs_rekey(1000 + boardlink.REKEY_AFTER_MS)
    assert not board.needs_rekey(1000 + boardlink.REKEY_AFTER_MS - 1)
    board._tx_seq = boardlink.REKEY_AFTER_RECORDS - 1
    rec = board.seal(b"x", 1000)
    assert board.needs_rekey(1000)
    assert not gw.needs_rekey(1000)
    assert gw.open(rec, 1000) == b"x"
    assert gw.needs_rekey(1000)  # the peer's count counts too
    fresh = BoardClient(PSK, BOARD_ID, 1, b"b" * 16)
    assert not fresh.needs_rekey(0)


def test_hard_stop_at_2_to_32_records():
    board, gw, _c, _f = _pair()
    board._tx_seq = boardlink.REJECT_AFTER_RECORDS - 1
    last = board.seal(b"last", 0)
    assert boardlink.decode_record_header(last)[1] == 0xFFFFFFFF
    expect_raises(SessionExpiredError, board.seal, b"one too many", 0)
    assert board.state == boardlink.EXPIRED
    assert board.needs_rekey(0)
    expect_raises(SessionExpiredError, board.seal, b"again", 0)
    expect_raises(SessionExpiredError, board.open, gw.seal(b"x", 0), 0)
    assert gw.open(last, 0) == b"last"


def test_hard_stop_by_time():
    board, gw, _c, _f = _pair(now_ms=500)
    rec = board.seal(b"x", 500)
    late = 500 + boardlink.REJECT_AFTER_MS
    assert gw.open(rec, late - 1) == b"x"
    expect_raises(SessionExpiredError, gw.open, board.seal(b"y", 500), late)
    expect_raises(SessionExpiredError, gw.seal, b"z", late)
    expect_raises(SessionExpiredError, board.seal, b"z", late)


# ------------------------------------------------------- codecs and misuse

def test_codecs_roundtrip_and_validate():
    hello = boardlink.encode_hello(BOARD_ID, 0xFFFFFFFF, b"n" * 16)
    assert len(hello) == boardlink.HELLO_BYTES
    assert boardlink.decode_hello(hello) == (BOARD_ID, 0xFFFFFFFF, b"n" * 16)
    assert boardlink.decode_confirm(boardlink.encode_confirm(5, b"t" * 16)) == (5, b"t" * 16)
    body = boardlink.encode_challenge_body(0xFFFFFFFF, b"g" * 16)
    assert boardlink.decode_challenge(body + b"t" * 16) == (0xFFFFFFFF, b"g" * 16, b"t" * 16)
    assert boardlink.message_type(hello) == boardlink.T_HELLO
    expect_raises(DecodeError, boardlink.message_type, b"")
    expect_raises(DecodeError, boardlink.message_type, b"\x7b")
    expect_raises(LocalProtocolError, boardlink.encode_hello, BOARD_ID, 1 << 32, b"n" * 16)
    expect_raises(LocalProtocolError, boardlink.encode_hello, BOARD_ID, -1, b"n" * 16)
    expect_raises(LocalProtocolError, boardlink.encode_hello, b"short", 1, b"n" * 16)
    expect_raises(LocalProtocolError, boardlink.encode_hello, BOARD_ID, True, b"n" * 16)
    expect_raises(LocalProtocolError, boardlink.encode_challenge_body, 1 << 32, b"g" * 16)
    expect_raises(LocalProtocolError, boardlink.encode_confirm, 1, b"t" * 15)
    expect_raises(DecodeError, boardlink.decode_hello, "not bytes")


def test_constructor_and_argument_misuse():
    expect_raises(LocalProtocolError, BoardClient, b"k" * 31, BOARD_ID, 1, b"n" * 16)
    expect_raises(LocalProtocolError, BoardClient, PSK, BOARD_ID, 1, b"n" * 15)
    expect_raises(LocalProtocolError, GatewaySession, PSK, b"123")
    board = BoardClient(PSK, BOARD_ID, 1, b"b" * 16)
    gw = GatewaySession(PSK, BOARD_ID)
    expect_raises(LocalProtocolError, gw.handle_hello, board.hello(), -1, b"g" * 16, 0)
    expect_raises(LocalProtocolError, gw.handle_hello, board.hello(), 1, b"g" * 15, 0)
    expect_raises(LocalProtocolError, gw.handle_hello, board.hello(), 1, b"g" * 16, -5)
    assert gw.state == boardlink.AWAIT_HELLO
    board, gw, _c, _f = _pair()
    expect_raises(LocalProtocolError, board.seal, "text", 0)
    if sys.implementation.name != "micropython":  # 16 KiB does not fit a fragmented 96K heap
        too_big = b"x" * (boardlink.MAX_PLAINTEXT_BYTES + 1)
        expect_raises(LocalProtocolError, board.seal, too_big, 0)


def test_sizes_and_large_record():
    board, gw, _c, _f = _pair()
    assert len(board.seal(b"", 0)) == boardlink.RECORD_OVERHEAD_BYTES
    big = bytes(range(256)) * 8  # 2 KiB: a large record for a board
    rec = board.seal(big, 0)
    assert len(rec) == len(big) + boardlink.RECORD_OVERHEAD_BYTES
    assert gw.open(rec, 0) == big
    assert gw.open(bytearray(board.seal(b"ba", 0)), 0) == b"ba"
    assert gw.open(memoryview(board.seal(b"mv", 0)), 0) == b"mv"

# Board-link handshake state machines: retransmissions never reinstall keys
# (KRACK), out-of-order messages, wrong PSK, reboot. Vectors are in
# test_boardlink_vectors, the record layer in test_boardlink_records.
# Runs on CPython and MicroPython (tools/run_mpy_tests.py, 96K heap).
from meshlink import boardlink
from meshlink.boardlink import BoardClient, GatewaySession
from meshlink.errors import (
    AuthError,
    HandshakeError,
    LocalProtocolError,
    ReplayError,
)
from vectors import expect_raises

PSK = bytes(range(32))
BOARD_ID = b"mlboard1"


def _pair(psk=PSK, boot_ctr=1, sid=7, board_nonce=b"b" * 16, gw_psk=None, now_ms=0):
    board = BoardClient(psk, BOARD_ID, boot_ctr, board_nonce)
    gw = GatewaySession(gw_psk or psk, BOARD_ID)
    challenge = gw.handle_hello(board.hello(), sid, b"g" * 16, now_ms)
    confirm = board.handle_challenge(challenge, now_ms)
    assert gw.handle_confirm(confirm, now_ms) is True
    return board, gw, challenge, confirm


# ------------------------------------------------- key installation (KRACK)

def test_retransmitted_challenge_does_not_reinstall_keys():
    board, gw, challenge, confirm = _pair()
    r0 = board.seal(b"one", 0)
    board.seal(b"two", 0)
    assert board.handle_challenge(challenge, 5) == confirm  # same CONFIRM again
    r2 = board.seal(b"three", 0)
    assert boardlink.decode_record_header(r2) == (7, 2)  # counter not reset
    assert board.established_ms == 0
    assert gw.open(r0, 0) == b"one"
    assert gw.open(r2, 0) == b"three"
    # a different CHALLENGE once established is out of order
    gw2 = GatewaySession(PSK, BOARD_ID)
    other = gw2.handle_hello(board.hello(), 8, b"h" * 16, 0)
    expect_raises(HandshakeError, board.handle_challenge, other, 0)
    assert board.seal(b"four", 0)[5:13] == b"\x00" * 7 + b"\x03"


def test_retransmitted_confirm_is_ignored():
    board, gw, challenge, confirm = _pair()
    r0 = board.seal(b"x", 0)
    assert gw.open(r0, 0) == b"x"
    g0 = gw.seal(b"y", 0)
    assert gw.handle_confirm(confirm, 9) is False
    expect_raises(ReplayError, gw.open, r0, 0)  # window not reset
    assert boardlink.decode_record_header(gw.seal(b"z", 0))[1] == 1  # counter not reset
    assert board.open(g0, 0) == b"y"
    bad = bytearray(confirm)
    bad[-1] ^= 1
    expect_raises(HandshakeError, gw.handle_confirm, bytes(bad), 0)


def test_retransmitted_hello():
    board = BoardClient(PSK, BOARD_ID, 1, b"b" * 16)
    assert board.hello() == board.hello()
    gw = GatewaySession(PSK, BOARD_ID)
    c1 = gw.handle_hello(board.hello(), 7, b"g" * 16, 0)
    # while waiting for CONFIRM: same CHALLENGE (not a new sid or nonce)
    assert gw.handle_hello(board.hello(), 99, b"z" * 16, 1) == c1
    confirm = board.handle_challenge(c1, 0)
    assert gw.handle_confirm(confirm, 0)
    assert gw.handle_hello(board.hello(), 7, b"g" * 16, 2) is None  # established: ignored
    other = BoardClient(PSK, BOARD_ID, 2, b"c" * 16)
    expect_raises(HandshakeError, gw.handle_hello, other.hello(), 7, b"g" * 16, 0)


def test_record_before_confirm_and_recovery():
    board = BoardClient(PSK, BOARD_ID, 1, b"b" * 16)
    gw = GatewaySession(PSK, BOARD_ID)
    expect_raises(LocalProtocolError, board.seal, b"x", 0)
    challenge = gw.handle_hello(board.hello(), 7, b"g" * 16, 0)
    board.handle_challenge(challenge, 0)  # the CONFIRM is lost
    rec = board.seal(b"early", 0)
    expect_raises(HandshakeError, gw.open, rec, 0)
    expect_raises(LocalProtocolError, gw.seal, b"x", 0)
    # the gateway resends its CHALLENGE; the board answers with the cached CONFIRM
    confirm = board.handle_challenge(gw.challenge, 0)
    assert gw.handle_confirm(confirm, 0) is True
    assert gw.open(rec, 0) == b"early"


def test_open_before_challenge_is_out_of_order():
    board = BoardClient(PSK, BOARD_ID, 1, b"b" * 16)
    _b, gw, _c, _f = _pair()
    expect_raises(HandshakeError, board.open, gw.seal(b"x", 0), 0)


def test_forged_challenge_keeps_board_waiting():
    board = BoardClient(PSK, BOARD_ID, 1, b"b" * 16)
    wrong = GatewaySession(b"w" * 32, BOARD_ID).handle_hello(board.hello(), 7, b"g" * 16, 0)
    expect_raises(AuthError, board.handle_challenge, wrong, 0)
    assert board.state == boardlink.AWAIT_CHALLENGE
    good = GatewaySession(PSK, BOARD_ID).handle_hello(board.hello(), 7, b"g" * 16, 0)
    assert board.handle_challenge(good, 0)
    assert board.state == boardlink.ESTABLISHED


def test_reboot_gives_new_keys_and_old_records_fail():
    board1, gw1, _c, _f = _pair(boot_ctr=1, sid=7)
    old = board1.seal(b"before reboot", 0)
    # same (broken-RNG) nonce, next boot counter: the transcript still differs
    board2, gw2, c2, _f2 = _pair(boot_ctr=2, sid=8)
    assert board2.transcript != board1.transcript
    expect_raises(ReplayError, gw2.open, old, 0)  # old sid
    # an old CHALLENGE replayed to the rebooted board does not verify
    board3 = BoardClient(PSK, BOARD_ID, 3, b"b" * 16)
    expect_raises(AuthError, board3.handle_challenge, c2, 0)
    # same sid reused by a careless gateway: the record still fails (other keys)
    board4, gw4, _c4, _f4 = _pair(boot_ctr=4, sid=7)
    expect_raises(AuthError, gw4.open, old, 0)


def test_wrong_psk_refused_at_both_ends():
    board = BoardClient(PSK, BOARD_ID, 1, b"b" * 16)
    gw = GatewaySession(b"w" * 32, BOARD_ID)
    expect_raises(AuthError, board.handle_challenge, gw.handle_hello(board.hello(), 7,
                                                                     b"g" * 16, 0), 0)
    # a board with the wrong PSK cannot produce a valid CONFIRM either
    gw_ok = GatewaySession(PSK, BOARD_ID)
    bad_board = BoardClient(b"w" * 32, BOARD_ID, 1, b"b" * 16)
    ch = gw_ok.handle_hello(bad_board.hello(), 7, b"g" * 16, 0)
    forged = boardlink.encode_confirm(7, b"\x00" * 16)
    expect_raises(AuthError, bad_board.handle_challenge, ch, 0)
    expect_raises(AuthError, gw_ok.handle_confirm, forged, 0)
    assert gw_ok.state == boardlink.AWAIT_CONFIRM

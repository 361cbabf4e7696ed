# Board-link resumption across deep sleep (PROTOCOL.md §6.7): the resumed
# client talks to the gateway's kept session, continues the seqs (never
# reuses one), refuses anything recorded before sleep, and malformed state
# is refused. Runs on CPython and MicroPython (tools/run_mpy_tests.py).
from meshlink import boardlink
from meshlink.boardlink import BoardClient, GatewaySession
from meshlink.boardlink_resume import resume_client, suspend_state
from meshlink.errors import HandshakeError, LocalProtocolError, ReplayError
from vectors import expect_raises

PSK = bytes(range(32))
BOARD_ID = b"mlboard1"


def _pair(now_ms=0):
    board = BoardClient(PSK, BOARD_ID, 3, b"b" * 16)
    gw = GatewaySession(PSK, BOARD_ID)
    challenge = gw.handle_hello(board.hello(), 9, b"g" * 16, now_ms)
    gw.handle_confirm(board.handle_challenge(challenge, now_ms), now_ms)
    return board, gw, challenge


def test_resumed_session_continues_seqs_both_ways():
    board, gw, _ = _pair()
    for i in range(3):
        assert gw.open(board.seal(b"r%d" % i, 10), 10) == b"r%d" % i
    old_g2b = gw.seal(b"before sleep", 10)
    assert board.open(old_g2b, 10) == b"before sleep"
    state = suspend_state(board, 500)
    assert state[0] == 9 and state[2] == 3 and state[3] == 0 and state[4] == 500
    woke = resume_client(PSK, BOARD_ID, 4, state, 0)  # a fresh clock after wake
    rec = woke.seal(b"after wake", 0)
    assert boardlink.decode_record_header(rec) == (9, 3)  # seq 3: never reused
    assert gw.open(rec, 20) == b"after wake"
    assert woke.open(gw.seal(b"queued", 20), 1) == b"queued"
    # a gateway record sent before sleep (recorded by an attacker) is refused
    expect_raises(ReplayError, woke.open, old_g2b, 1)
    assert woke.established_ms == -500  # age carries over: rekey deadlines hold


def test_resumed_session_refuses_a_challenge_and_keeps_limits():
    board, gw, challenge = _pair()
    woke = resume_client(PSK, BOARD_ID, 3, suspend_state(board, 0), 0)
    expect_raises(HandshakeError, woke.handle_challenge, challenge, 0)
    aged = resume_client(PSK, BOARD_ID, 3, (9, board.transcript, 0, -1,
                                             boardlink.REKEY_AFTER_MS - 1), 0)
    assert not aged.needs_rekey(0)
    assert aged.needs_rekey(1)


def test_wrong_psk_resumes_into_records_the_gateway_refuses():
    board, gw, _ = _pair()
    woke = resume_client(bytes(32), BOARD_ID, 3, suspend_state(board, 0), 0)
    from meshlink.errors import AuthError

    expect_raises(AuthError, gw.open, woke.seal(b"x", 0), 0)


def test_malformed_state_is_refused():
    board, _, _ = _pair()
    good = suspend_state(board, 0)
    bad = [None, (), good[:4], (-1,) + good[1:], (9, b"short") + good[2:],
           good[:2] + (-1,) + good[3:], good[:2] + (1 << 32,) + good[3:],
           good[:3] + (-2,) + good[4:], good[:4] + (-5,), good[:4] + ("1",)]
    for state in bad:
        expect_raises(LocalProtocolError, resume_client, PSK, BOARD_ID, 3, state, 0)
    fresh = BoardClient(PSK, BOARD_ID, 3, b"c" * 16)
    expect_raises(LocalProtocolError, suspend_state, fresh, 0)

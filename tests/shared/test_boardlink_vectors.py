# Board-link vectors (tests/vectors/boardlink_session.json): exact bytes of
# the handshake and of records both ways, negative cases with the exact error
# class, on every CTR backend. Runs on CPython and MicroPython (96K heap).
from meshlink import aes, boardlink, errors
from meshlink.boardlink import BoardClient, GatewaySession
from vectors import expect_raises, load, tohex, unhex


def _vector_pair(v):
    board = BoardClient(unhex(v["psk"]), unhex(v["board_id"]), v["boot_ctr"],
                        unhex(v["board_nonce"]))
    gw = GatewaySession(unhex(v["psk"]), unhex(v["board_id"]))
    return board, gw


def _expect_exact(exc_name, fn, *args):
    e = expect_raises(errors.MeshLinkError, fn, *args)
    assert type(e).__name__ == exc_name, (exc_name, type(e).__name__, str(e))


def test_vector_handshake_exact_bytes():
    v = load("boardlink_session")
    psk, board_id = unhex(v["psk"]), unhex(v["board_id"])
    board, gw = _vector_pair(v)
    assert tohex(board.hello()) == v["hello"]
    challenge = gw.handle_hello(board.hello(), v["sid"], unhex(v["gateway_nonce"]), v["now_ms"])
    assert tohex(challenge) == v["challenge"]
    assert tohex(board.handle_challenge(challenge, v["now_ms"])) == v["confirm"]
    assert gw.handle_confirm(unhex(v["confirm"]), v["now_ms"]) is True
    assert tohex(boardlink.derive_auth_key(psk, board_id)) == v["k_auth"]
    assert tohex(board.transcript) == v["transcript"] == tohex(gw.transcript)
    keys = boardlink.derive_session_keys(psk, board_id, unhex(v["transcript"]))
    k = v["keys"]
    assert [tohex(x) for x in keys] == [k["enc_b2g"], k["mac_b2g"], k["enc_g2b"], k["mac_g2b"]]


def _run_record_vector(v):
    board, gw = _vector_pair(v)
    now = v["now_ms"]
    gw.handle_hello(board.hello(), v["sid"], unhex(v["gateway_nonce"]), now)
    gw.handle_confirm(board.handle_challenge(unhex(v["challenge"]), now), now)
    for direction, sender, receiver in (("b2g", board, gw), ("g2b", gw, board)):
        want = {}
        for r in v[direction]:
            want[r["seq"]] = r["record"]
        after = v[direction + "_after"]
        want[after["seq"]] = after["record"]
        for seq in range(after["seq"] + 1):  # seal every seq; unlisted ones are "lost"
            pt = b"dropped %d" % seq
            for r in v[direction]:
                if r["seq"] == seq:
                    pt = unhex(r["plaintext"])
            if seq == after["seq"]:
                pt = unhex(after["plaintext"])
            rec = sender.seal(pt, now)
            if seq in want:
                assert tohex(rec) == want[seq], (direction, seq)
        for r in v[direction]:
            assert tohex(receiver.open(unhex(r["record"]), now)) == r["plaintext"]
        for case in v[direction + "_negative"]:
            _expect_exact(case["error"], receiver.open, unhex(case["record"]), now)
        # the session keeps working after every negative case
        assert tohex(receiver.open(unhex(after["record"]), now)) == after["plaintext"]


def test_vector_records_every_ctr_backend():
    v = load("boardlink_session")
    names = ["ecb", "native"] if aes.has_native_ctr() else ["ecb"]
    for name in names:
        previous = aes.set_ctr_backend(name)
        try:
            _run_record_vector(v)
        finally:
            aes.set_ctr_backend(previous)


def test_vector_handshake_negatives():
    v = load("boardlink_session")
    now = v["now_ms"]
    for case in v["handshake_negative"]:
        board, gw = _vector_pair(v)
        data = unhex(case["data"])
        side = case["side"]
        if side == "board_challenge":
            _expect_exact(case["error"], board.handle_challenge, data, now)
            # still waiting: the genuine CHALLENGE is accepted afterwards
            assert tohex(board.handle_challenge(unhex(v["challenge"]), now)) == v["confirm"]
        elif side == "gateway_hello":
            _expect_exact(case["error"], gw.handle_hello, data, v["sid"],
                          unhex(v["gateway_nonce"]), now)
            assert gw.state == boardlink.AWAIT_HELLO
        elif side == "gateway_confirm":
            gw.handle_hello(board.hello(), v["sid"], unhex(v["gateway_nonce"]), now)
            _expect_exact(case["error"], gw.handle_confirm, data, now)
            assert gw.handle_confirm(unhex(v["confirm"]), now) is True
        else:
            assert side == "gateway_fresh"
            _expect_exact(case["error"], gw.handle_confirm, data, now)




def test_vector_stale():
    v = load("boardlink_session")["stale"]
    assert tohex(boardlink.encode_stale(v["sid"])) == v["data"]
    assert boardlink.decode_stale(unhex(v["data"])) == v["sid"]
    assert boardlink.message_type(unhex(v["data"])) == boardlink.T_STALE
    for case in v["negative"]:
        data = unhex(case["data"])
        e = expect_raises(errors.MeshLinkError, lambda d=data: (boardlink.message_type(d),
                                                               boardlink.decode_stale(d)))
        assert type(e).__name__ == case["error"], case["name"]

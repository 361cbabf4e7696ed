# Provisioning WiFi credentials over serial (PROTOCOL.md §9.3): the right
# board opens them; another board's key, another exchange (replay) and any
# changed byte are refused before decrypting. Runs on CPython and MicroPython.
from meshlink import provision as p
from meshlink.errors import AuthError, DecodeError, LocalProtocolError
from vectors import expect_raises

PSK = bytes(range(32))
OTHER_PSK = bytes(range(1, 33))
BOARD_ID = b"mlboard1"
NB = b"n" * 16
NG = b"g" * 16


def test_round_trip_and_done_proof():
    hello = p.encode_hello(BOARD_ID, NB)
    assert p.kind(hello) == p.T_PROV_HELLO and p.decode_hello(hello) == (BOARD_ID, NB)
    creds = p.seal_creds(PSK, BOARD_ID, NB, NG, "field-net", "s3cret pass")
    assert b"s3cret" not in creds and b"field-net" not in creds  # a sniffer learns nothing
    assert p.open_creds(PSK, BOARD_ID, NB, creds) == ("field-net", "s3cret pass", NG)
    done = p.encode_done(PSK, BOARD_ID, NB, NG)
    p.check_done(PSK, BOARD_ID, NB, NG, done)
    expect_raises(AuthError, p.check_done, OTHER_PSK, BOARD_ID, NB, NG, done)
    assert p.decode_refused(p.encode_refused(p.REFUSED_TAG)) == p.REFUSED_TAG


def test_wrong_board_replay_and_tampering_are_refused():
    creds = p.seal_creds(PSK, BOARD_ID, NB, NG, "field-net", "pw")
    expect_raises(AuthError, p.open_creds, OTHER_PSK, BOARD_ID, NB, creds)  # another board
    expect_raises(AuthError, p.open_creds, PSK, b"mlboard2", NB, creds)
    expect_raises(AuthError, p.open_creds, PSK, BOARD_ID, b"m" * 16, creds)  # a replay
    for i in range(len(creds)):
        bad = bytearray(creds)
        bad[i] ^= 0x01
        if i == 0:
            expect_raises(DecodeError, p.open_creds, PSK, BOARD_ID, NB, bytes(bad))
        else:
            expect_raises(AuthError, p.open_creds, PSK, BOARD_ID, NB, bytes(bad))
    expect_raises(DecodeError, p.open_creds, PSK, BOARD_ID, NB, creds[:20])
    expect_raises(DecodeError, p.decode_hello, b"\x10short")


def test_bad_local_arguments():
    expect_raises(LocalProtocolError, p.seal_creds, PSK, BOARD_ID, NB, NG, "", "pw")
    expect_raises(LocalProtocolError, p.seal_creds, PSK, BOARD_ID, NB, NG, "x" * 33, "pw")
    expect_raises(LocalProtocolError, p.seal_creds, PSK, BOARD_ID, NB, NG, "net", "p" * 65)
    expect_raises(LocalProtocolError, p.seal_creds, PSK[:16], BOARD_ID, NB, NG, "net", "pw")

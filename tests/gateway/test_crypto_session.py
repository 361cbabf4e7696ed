"""Session records: format, nonces, replay/reorder/tamper, rekey and hard limits."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from meshlink.errors import (
    AuthError,
    DecodeError,
    LocalProtocolError,
    MeshLinkError,
    ReplayError,
    SessionExpiredError,
)
from meshlink_gw.crypto.session import (
    REJECT_AFTER_MS,
    REJECT_AFTER_RECORDS,
    REKEY_AFTER_MS,
    REKEY_AFTER_RECORDS,
    Session,
    record_epoch,
)

KEY_AB, KEY_BA = bytes(range(32)), bytes(range(32, 64))
IV_AB, IV_BA = bytes(range(12)), bytes(range(12, 24))


def make_pair(epoch: int = 1, created_ms: int | None = 0) -> tuple[Session, Session]:
    a = Session(send_key=KEY_AB, send_iv=IV_AB, recv_key=KEY_BA, recv_iv=IV_BA,
                epoch=epoch, created_ms=created_ms, is_initiator=True)
    b = Session(send_key=KEY_BA, send_iv=IV_BA, recv_key=KEY_AB, recv_iv=IV_AB,
                epoch=epoch, created_ms=created_ms)
    return a, b


def raw_record(seq: int, plaintext: bytes, epoch: int = 1) -> bytes:
    """A record built directly with AESGCM, independent of Session."""
    header = bytes([epoch]) + seq.to_bytes(8, "big")
    nonce = bytes(a ^ b for a, b in zip(IV_AB, bytes(4) + seq.to_bytes(8, "big"), strict=True))
    return header + AESGCM(KEY_AB).encrypt(nonce, plaintext, header)


def test_round_trip_both_directions():
    a, b = make_pair()
    for i in range(5):
        assert b.open(a.seal(b"ping %d" % i)) == b"ping %d" % i
        assert a.open(b.seal(b"pong %d" % i)) == b"pong %d" % i
    assert (a.sent_records, a.received_records) == (5, 5)


def test_record_format_matches_independent_construction():
    a, _b = make_pair(epoch=7)
    for seq in range(3):
        assert a.seal(b"payload") == raw_record(seq, b"payload", epoch=7)
    rec = a.seal(b"")
    assert len(rec) == 9 + 16 and rec[0] == 7 and rec[1:9] == (3).to_bytes(8, "big")
    assert record_epoch(rec) == 7


def test_replay_is_rejected_and_state_unchanged():
    a, b = make_pair()
    r0, r1 = a.seal(b"zero"), a.seal(b"one")
    assert b.open(r0) == b"zero"
    with pytest.raises(ReplayError, match="replayed"):
        b.open(r0)
    assert b.open(r1) == b"one"


def test_reordered_or_gap_is_rejected_then_next_valid_opens():
    a, b = make_pair()
    r0, r1, r2 = a.seal(b"0"), a.seal(b"1"), a.seal(b"2")
    with pytest.raises(ReplayError, match="reordered/gap"):
        b.open(r1)
    with pytest.raises(ReplayError, match="reordered/gap"):
        b.open(r2)
    assert [b.open(r) for r in (r0, r1, r2)] == [b"0", b"1", b"2"]


def test_every_single_bit_flip_is_rejected_with_typed_error():
    a, b = make_pair()
    rec = a.seal(b"x" * 40)
    for i in range(len(rec)):
        for bit in range(8):
            bad = bytearray(rec)
            bad[i] ^= 1 << bit
            expected = DecodeError if i == 0 else ReplayError if i < 9 else AuthError
            with pytest.raises(expected):
                b.open(bytes(bad))
    assert b.open(rec) == b"x" * 40  # nothing advanced


def test_short_and_wrong_epoch():
    a, b = make_pair()
    rec = a.seal(b"abc")
    for n in range(25):
        with pytest.raises(DecodeError):
            b.open(rec[:n])
    with pytest.raises(AuthError):
        b.open(rec[:-1])  # truncated tag still parses, fails authentication
    other_epoch, _ = make_pair(epoch=2)
    with pytest.raises(DecodeError, match="epoch"):
        b.open(other_epoch.seal(b"abc"))
    with pytest.raises(DecodeError):
        record_epoch(b"")
    assert b.open(rec) == b"abc"


def test_wrong_key_is_auth_error():
    a, _ = make_pair()
    stranger = Session(send_key=os.urandom(32), send_iv=IV_AB, recv_key=os.urandom(32),
                       recv_iv=IV_AB)
    with pytest.raises(AuthError):
        stranger.open(a.seal(b"hi"))


def test_rekey_and_expiry_by_time():
    a, b = make_pair(created_ms=1_000)
    assert not a.needs_rekey(1_000 + REKEY_AFTER_MS - 1)
    assert a.needs_rekey(1_000 + REKEY_AFTER_MS)
    assert not a.expired(1_000 + REJECT_AFTER_MS - 1)
    rec = a.seal(b"late", now_ms=1_000 + REJECT_AFTER_MS - 1)
    assert b.open(rec, now_ms=1_000 + REJECT_AFTER_MS - 1) == b"late"
    assert a.expired(1_000 + REJECT_AFTER_MS)
    with pytest.raises(SessionExpiredError):
        a.seal(b"too late", now_ms=1_000 + REJECT_AFTER_MS)
    rec = a.seal(b"no clock given")  # without now_ms only the count limit applies
    with pytest.raises(SessionExpiredError):
        b.open(rec, now_ms=1_000 + REJECT_AFTER_MS)
    assert b.received_records == 1  # refused record did not advance


def test_created_ms_anchors_on_first_time_aware_call():
    a, _ = make_pair(created_ms=None)
    assert not a.needs_rekey(50_000)
    assert a.created_ms == 50_000
    assert a.needs_rekey(50_000 + REKEY_AFTER_MS)


def test_rekey_and_refusal_by_count():
    a, b = make_pair()
    a._send_seq = REKEY_AFTER_RECORDS - 1  # inject a counter near the limits
    assert not a.needs_rekey(0)
    a.seal(b"")
    assert a.needs_rekey(0)
    a._send_seq = REJECT_AFTER_RECORDS - 1
    b._recv_seq = REJECT_AFTER_RECORDS - 1
    assert b.needs_rekey(0) and not b.expired(0)
    assert b.open(a.seal(b"last")) == b"last"
    assert a.expired(0) and b.expired(0)
    with pytest.raises(SessionExpiredError):
        a.seal(b"one too many")
    with pytest.raises(SessionExpiredError):
        b.open(raw_record(REJECT_AFTER_RECORDS, b"forged beyond the limit"))


def test_nonces_never_repeat_in_a_session():
    a, _ = make_pair()
    nonces = set()
    for _ in range(1000):
        rec = a.seal(b"")
        nonces.add(int.from_bytes(IV_AB, "big") ^ int.from_bytes(rec[1:9], "big"))
    assert len(nonces) == 1000


def test_constructor_checks():
    with pytest.raises(LocalProtocolError):
        Session(send_key=bytes(16), send_iv=IV_AB, recv_key=KEY_BA, recv_iv=IV_BA)
    with pytest.raises(LocalProtocolError):
        Session(send_key=KEY_AB, send_iv=bytes(8), recv_key=KEY_BA, recv_iv=IV_BA)
    with pytest.raises(LocalProtocolError):
        Session(send_key=KEY_AB, send_iv=IV_AB, recv_key=KEY_BA, recv_iv=IV_BA, epoch=256)


def test_open_accepts_memoryview_and_bytearray():
    a, b = make_pair()
    assert b.open(memoryview(a.seal(b"mv"))) == b"mv"
    assert b.open(bytearray(a.seal(b"ba"))) == b"ba"


def test_garbage_only_raises_meshlink_errors():
    _, b = make_pair()
    for n in (0, 1, 9, 24, 25, 26, 100):
        for _ in range(20):
            with pytest.raises(MeshLinkError):
                b.open(bytes([1]) + os.urandom(max(0, n - 1)) if n else b"")

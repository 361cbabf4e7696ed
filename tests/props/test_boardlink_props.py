"""Property tests for the board link (CPython only, hypothesis).

- Random and mutated input to every board-link decoder and handler raises
  only MeshLinkError subclasses, and a failed record leaves the session working.
- A mutated record or handshake message never verifies.
- Any delivery order with loss and duplicates accepts each seq at most once,
  exactly as a reference model of the 64-entry window says.
- Records framed on a stream survive any split of the bytes.
- Differential: HMAC, HKDF and both AES-CTR paths agree with the stdlib / pyca.
- A handshake with retransmitted and duplicated messages installs keys once.
"""

import hashlib
import hmac
import pathlib
import subprocess
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from meshlink import aes, boardlink
from meshlink.boardlink import BoardClient, GatewaySession
from meshlink.errors import MeshLinkError, ReplayError
from meshlink.frames import Deframer, encode_frame
from meshlink.hmac256 import hkdf, hmac_sha256

ROOT = pathlib.Path(__file__).resolve().parents[2]
PSK = bytes(range(32))
BOARD_ID = b"propbrd1"
FAST = settings(max_examples=150, deadline=None)


def pair(sid=7, boot_ctr=1):
    board = BoardClient(PSK, BOARD_ID, boot_ctr, b"b" * 16)
    gw = GatewaySession(PSK, BOARD_ID)
    challenge = gw.handle_hello(board.hello(), sid, b"g" * 16, 0)
    confirm = board.handle_challenge(challenge, 0)
    assert gw.handle_confirm(confirm, 0)
    return board, gw, challenge, confirm


def only_typed_errors(fn, *args):
    """Call fn; return True if it succeeded, False if it raised a MeshLinkError."""
    try:
        fn(*args)
    except MeshLinkError:
        return False
    return True


# A mutation: bit flips, truncation, extension, or a byte overwritten.
mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(0, 7)),
    st.tuples(st.just("cut"), st.integers(0, 10_000), st.just(0)),
    st.tuples(st.just("extend"), st.binary(min_size=1, max_size=20), st.just(0)),
    st.tuples(st.just("set"), st.integers(0, 10_000), st.integers(0, 255)),
)


def mutate(data: bytes, m) -> bytes:
    kind, a, b = m
    if kind == "flip":
        out = bytearray(data)
        out[a % len(out)] ^= 1 << b
        return bytes(out)
    if kind == "cut":
        return data[: a % len(data)]
    if kind == "extend":
        return data + a
    out = bytearray(data)
    out[a % len(out)] = b
    return bytes(out)


# ----------------------------------------------------------- decoders

@FAST
@given(st.binary(max_size=120))
def test_decoders_random_bytes_raise_only_typed_errors(data):
    for decode in (boardlink.message_type, boardlink.decode_hello, boardlink.decode_challenge,
                   boardlink.decode_confirm, boardlink.decode_record_header):
        only_typed_errors(decode, data)


@FAST
@given(st.sampled_from([1, 2, 3, 4]), st.binary(max_size=80))
def test_decoders_typed_prefix(msg_type, rest):
    data = bytes([msg_type]) + rest  # right type byte, random body: reaches the parsers
    for decode in (boardlink.decode_hello, boardlink.decode_challenge,
                   boardlink.decode_confirm, boardlink.decode_record_header):
        only_typed_errors(decode, data)


@FAST
@given(st.binary(max_size=120), st.sampled_from([1, 2, 3, 4]))
def test_handlers_random_bytes_raise_only_typed_errors(data, msg_type):
    data = bytes([msg_type]) + data
    fresh_board = BoardClient(PSK, BOARD_ID, 1, b"b" * 16)
    fresh_gw = GatewaySession(PSK, BOARD_ID)
    only_typed_errors(fresh_board.handle_challenge, data, 0)
    only_typed_errors(fresh_board.open, data, 0)
    only_typed_errors(fresh_gw.handle_confirm, data, 0)
    only_typed_errors(fresh_gw.open, data, 0)
    only_typed_errors(fresh_gw.handle_hello, data, 1, b"g" * 16, 0)
    board, gw, _c, _f = pair()
    for fn in (board.open, gw.open, gw.handle_confirm, board.handle_challenge):
        assert not only_typed_errors(fn, data, 0)


# ------------------------------------------------------------ mutation

@FAST
@given(st.binary(max_size=300), st.lists(mutation, min_size=1, max_size=3),
       st.booleans())
def test_mutated_record_never_opens_and_session_survives(plaintext, mutations, to_board):
    board, gw, _c, _f = pair()
    sender, receiver = (gw, board) if to_board else (board, gw)
    record = sender.seal(plaintext, 0)
    bad = record
    for m in mutations:
        bad = mutate(bad, m) if bad else bad
    if bad != record:
        assert not only_typed_errors(receiver.open, bad, 0)
    assert receiver.open(record, 0) == plaintext
    assert not only_typed_errors(receiver.open, record, 0)  # replay


@FAST
@given(st.lists(mutation, min_size=1, max_size=3))
def test_mutated_handshake_never_verifies(mutations):
    board = BoardClient(PSK, BOARD_ID, 1, b"b" * 16)
    gw = GatewaySession(PSK, BOARD_ID)
    challenge = gw.handle_hello(board.hello(), 7, b"g" * 16, 0)
    bad = challenge
    for m in mutations:
        bad = mutate(bad, m) if bad else bad
    if bad != challenge:
        assert not only_typed_errors(board.handle_challenge, bad, 0)
    confirm = board.handle_challenge(challenge, 0)
    bad = confirm
    for m in mutations:
        bad = mutate(bad, m) if bad else bad
    if bad != confirm:
        assert not only_typed_errors(gw.handle_confirm, bad, 0)
    assert gw.handle_confirm(confirm, 0) is True
    assert gw.open(board.seal(b"ok", 0), 0) == b"ok"


@FAST
@given(st.lists(mutation, min_size=1, max_size=3))
def test_mutated_hello_is_typed_error_or_a_different_session(mutations):
    board = BoardClient(PSK, BOARD_ID, 1, b"b" * 16)
    bad = board.hello()
    for m in mutations:
        bad = mutate(bad, m) if bad else bad
    gw = GatewaySession(PSK, BOARD_ID)
    try:
        challenge = gw.handle_hello(bad, 7, b"g" * 16, 0)
    except MeshLinkError:
        return
    if bad != board.hello():  # a well-formed but different HELLO: the board refuses
        assert not only_typed_errors(board.handle_challenge, challenge, 0)


# ------------------------------------------------- delivery and window

def model_accepts(order):
    """Reference model: accept seq if new and within 64 of the highest accepted."""
    seen: set[int] = set()
    highest = -1
    accepted = []
    for seq in order:
        if seq in seen or seq <= highest - 64:
            continue
        seen.add(seq)
        highest = max(highest, seq)
        accepted.append(seq)
    return accepted


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 199), max_size=120))
def test_any_delivery_order_matches_window_model(order):
    board, gw, _c, _f = pair()
    records = [board.seal(b"%d" % i, 0) for i in range(200)]
    accepted = []
    for seq in order:
        try:
            assert gw.open(records[seq], 0) == b"%d" % seq
            accepted.append(seq)
        except ReplayError:
            pass
    assert accepted == model_accepts(order)


@FAST
@given(st.lists(st.binary(max_size=64), min_size=1, max_size=8),
       st.lists(st.integers(0, 2000), max_size=6))
def test_framed_records_survive_any_split(plaintexts, cuts):
    board, gw, _c, _f = pair()
    stream = b"".join(encode_frame(board.seal(p, 0)) for p in plaintexts)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    deframer = Deframer()
    got = []
    for piece in pieces:
        for frame in deframer.feed(piece):
            got.append(gw.open(frame, 0))
    assert got == plaintexts


# --------------------------------------------------------- differential

@FAST
@given(st.binary(max_size=200), st.binary(max_size=300))
def test_hmac_matches_stdlib(key, msg):
    assert hmac_sha256(key, msg) == hmac.new(key, msg, hashlib.sha256).digest()


@FAST
@given(st.binary(max_size=80), st.binary(max_size=80), st.binary(max_size=80),
       st.integers(1, 600))
def test_hkdf_matches_pyca(salt, ikm, info, length):
    want = HKDF(hashes.SHA256(), length, salt or None, info).derive(ikm)
    assert hkdf(salt, ikm, info, length) == want


@FAST
@given(st.binary(min_size=32, max_size=32),
       st.one_of(st.binary(min_size=16, max_size=16),
                 st.binary(min_size=12, max_size=12).map(lambda p: p + b"\xff\xff\xff\xfa"),
                 st.just(b"\xff" * 16)),
       st.binary(max_size=1100))
def test_both_ctr_paths_match_pyca(key, counter, data):
    enc = Cipher(algorithms.AES(key), modes.CTR(counter)).encryptor()
    want = enc.update(data) + enc.finalize()
    for name in ("native", "ecb"):
        previous = aes.set_ctr_backend(name)
        try:
            assert aes.AesCtr(key).xor(counter, data) == want, name
        finally:
            aes.set_ctr_backend(previous)


# ------------------------------------------ handshake with retransmissions

class RetransmittingHandshake(RuleBasedStateMachine):
    """Duplicated and retransmitted handshake messages never reinstall keys."""

    def __init__(self):
        super().__init__()
        self.board = BoardClient(PSK, BOARD_ID, 3, b"r" * 16)
        self.gw = GatewaySession(PSK, BOARD_ID)
        self.challenge = None
        self.confirm = None
        self.transcripts: set[bytes] = set()
        self.sent_b2g = 0
        self.last_seq = -1

    @rule()
    def deliver_hello(self):
        out = self.gw.handle_hello(self.board.hello(), 11, b"s" * 16, 0)
        if self.gw.state == boardlink.AWAIT_CONFIRM:
            assert out is not None
            self.challenge = self.challenge or out
            assert out == self.challenge
        else:
            assert out is None

    @precondition(lambda self: self.challenge is not None)
    @rule()
    def deliver_challenge(self):
        out = self.board.handle_challenge(self.challenge, 0)
        self.confirm = self.confirm or out
        assert out == self.confirm

    @precondition(lambda self: self.confirm is not None)
    @rule()
    def deliver_confirm(self):
        first = self.gw.state == boardlink.AWAIT_CONFIRM
        assert self.gw.handle_confirm(self.confirm, 0) is first

    @precondition(lambda self: self.board.state == boardlink.ESTABLISHED)
    @rule(payload=st.binary(max_size=40))
    def board_sends(self, payload):
        record = self.board.seal(payload, 0)
        seq = boardlink.decode_record_header(record)[1]
        assert seq == self.last_seq + 1  # counters never reset
        self.last_seq = seq
        if self.gw.state == boardlink.ESTABLISHED:
            assert self.gw.open(record, 0) == payload

    @invariant()
    def keys_installed_once(self):
        for side in (self.board, self.gw):
            if side.transcript is not None:
                self.transcripts.add(side.transcript)
        assert len(self.transcripts) <= 1


TestRetransmittingHandshake = RetransmittingHandshake.TestCase
TestRetransmittingHandshake.settings = settings(max_examples=60, stateful_step_count=25,
                                                deadline=None)


def test_vectors_are_up_to_date():
    """The committed vectors equal what the generator (cross-checked with pyca) writes."""
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_boardlink_vectors.py"),
                           "--check"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr

# Board-link wire formats, key schedule and replay window: the stateless half
# of the board link (sessions are in meshlink.boardlink, which re-exports all
# public names here). Byte tables: docs/PROTOCOL.md §6.
# Rules: pure functions, no I/O; runs unchanged on MicroPython and CPython.
# Peer input raises only DecodeError/VersionError/ReplayError; our own misuse
# (a bad value to encode) raises LocalProtocolError. Every value is
# range-checked before struct packs it (MicroPython's struct truncates
# silently). Kept apart from the sessions so each module compiles within a
# small heap.
import hashlib
import struct

from meshlink._compat import const
from meshlink.errors import DecodeError, LocalProtocolError, ReplayError, VersionError
from meshlink.hmac256 import HmacKey, hkdf

VERSION = const(1)
T_HELLO = const(0x01)
T_CHALLENGE = const(0x02)
T_CONFIRM = const(0x03)
T_RECORD = const(0x04)
T_STALE = const(0x05)  # gateway -> board: "I hold no session with this sid"

PSK_BYTES = const(32)
BOARD_ID_BYTES = const(8)
NONCE_BYTES = const(16)
TAG_BYTES = const(16)  # HMAC-SHA256 truncated to 128 bits (RFC 4868)
KEY_BYTES = const(32)
HELLO_BYTES = const(30)  # type ver board_id(8) boot_ctr(4) nonce(16)
CHALLENGE_BODY_BYTES = const(21)  # type sid(4) nonce(16)
CHALLENGE_BYTES = const(37)  # body + tag(16)
CONFIRM_BYTES = const(21)  # type sid(4) tag(16)
RECORD_HEADER_BYTES = const(13)  # type sid(4) seq(8)
RECORD_OVERHEAD_BYTES = const(29)  # header + tag
STALE_BYTES = const(5)  # type sid(4)
MAX_PLAINTEXT_BYTES = const(16384)  # per record

MAX_U32 = 0xFFFFFFFF
_WINDOW_MASK = (1 << 64) - 1
REPLAY_WINDOW = const(64)  # records; bitmap of the 64 highest seqs
REKEY_AFTER_RECORDS = const(1 << 20)  # either direction: needs_rekey() turns True
REKEY_AFTER_MS = const(86400000)  # 24 h after keys were installed
REJECT_AFTER_RECORDS = 1 << 32  # hard stop: seq never reaches 2^32
REJECT_AFTER_MS = const(172800000)  # 48 h: hard stop for seal and open

DIR_B2G = const(0x01)  # first byte of the CTR counter block
DIR_G2B = const(0x02)

AUTH_SALT = b"meshlink/1 board"
AUTH_INFO = b"meshlink/1 board auth"  # || board_id
SESSION_INFO = b"meshlink/1 board session"  # || board_id; salt is T
LABEL_G = b"G"  # tagG = HMAC(K_auth, "G" || T)[:16]
LABEL_B = b"B"  # tagB = HMAC(K_auth, "B" || T)[:16]

# Session states
AWAIT_HELLO = "await_hello"  # gateway: created, no HELLO yet
AWAIT_CHALLENGE = "await_challenge"  # board: HELLO ready to send
AWAIT_CONFIRM = "await_confirm"  # gateway: CHALLENGE sent
ESTABLISHED = "established"
EXPIRED = "expired"


# ---------------------------------------------------------------- encoding

def _need_bytes(name, value, n):
    if not isinstance(value, (bytes, bytearray)) or len(value) != n:
        raise LocalProtocolError("%s must be %d bytes" % (name, n))
    return bytes(value)


def _need_u32(name, value):
    if type(value) is not int or value < 0 or value > MAX_U32:
        raise LocalProtocolError("%s must be an integer in 0..2^32-1" % name)
    return value


def _wire(data, n_min, n_max, msg_type, what):
    """Check type and length of a peer message; return it as bytes."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError("%s must be bytes" % what)
    if len(data) < n_min or len(data) > n_max:
        raise DecodeError("%s has %d bytes, expected %d" % (what, len(data), n_min))
    if data[0] != msg_type:
        raise DecodeError("%s has type 0x%02x, expected 0x%02x" % (what, data[0], msg_type))
    return bytes(data)


def message_type(data):
    """First byte of a board-link message (T_HELLO .. T_STALE), for dispatch.

    Raises:
        DecodeError: empty, not bytes, or an unknown type.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)) or not len(data):
        raise DecodeError("empty board-link message")
    if data[0] < T_HELLO or data[0] > T_STALE:
        raise DecodeError("unknown board-link message type 0x%02x" % data[0])
    return data[0]


def encode_hello(board_id, boot_ctr, nonce):
    """HELLO bytes. Raises LocalProtocolError on a wrong-size or out-of-range field."""
    board_id = _need_bytes("board_id", board_id, BOARD_ID_BYTES)
    _need_u32("boot_ctr", boot_ctr)
    nonce = _need_bytes("nonce", nonce, NONCE_BYTES)
    return struct.pack(">BB8sI16s", T_HELLO, VERSION, board_id, boot_ctr, nonce)


def decode_hello(data):
    """HELLO bytes -> (board_id, boot_ctr, nonce).

    Raises:
        DecodeError: wrong length or type. VersionError: unknown version.
    """
    data = _wire(data, HELLO_BYTES, HELLO_BYTES, T_HELLO, "HELLO")
    _t, ver, board_id, boot_ctr, nonce = struct.unpack(">BB8sI16s", data)
    if ver != VERSION:
        raise VersionError("board-link version %d not supported" % ver)
    return board_id, boot_ctr, nonce


def encode_challenge_body(sid, nonce):
    """CHALLENGE without its tag (the part the transcript covers)."""
    _need_u32("sid", sid)
    nonce = _need_bytes("nonce", nonce, NONCE_BYTES)
    return struct.pack(">BI16s", T_CHALLENGE, sid, nonce)


def decode_challenge(data):
    """CHALLENGE bytes -> (sid, gateway nonce, tag). Raises DecodeError."""
    data = _wire(data, CHALLENGE_BYTES, CHALLENGE_BYTES, T_CHALLENGE, "CHALLENGE")
    _t, sid, nonce, tag = struct.unpack(">BI16s16s", data)
    return sid, nonce, tag


def encode_stale(sid):
    """STALE bytes: the gateway has no session with this sid (unauthenticated:
    it lost its state, so it has no key; the board only probes on it)."""
    return struct.pack(">BI", T_STALE, _need_u32("sid", sid))


def decode_stale(data):
    """STALE bytes -> sid. Raises DecodeError."""
    return struct.unpack(">BI", _wire(data, STALE_BYTES, STALE_BYTES, T_STALE, "STALE"))[1]


def encode_confirm(sid, tag):
    """CONFIRM bytes. Raises LocalProtocolError on a bad field."""
    _need_u32("sid", sid)
    tag = _need_bytes("tag", tag, TAG_BYTES)
    return struct.pack(">BI16s", T_CONFIRM, sid, tag)


def decode_confirm(data):
    """CONFIRM bytes -> (sid, tag). Raises DecodeError."""
    data = _wire(data, CONFIRM_BYTES, CONFIRM_BYTES, T_CONFIRM, "CONFIRM")
    _t, sid, tag = struct.unpack(">BI16s", data)
    return sid, tag


def decode_record_header(data):
    """Record bytes -> (sid, seq), without checking the tag (for dispatch by sid).

    Raises:
        DecodeError: wrong type, shorter than header + tag, plaintext over
            MAX_PLAINTEXT_BYTES, or seq >= 2^32.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError("record must be bytes")
    n = len(data)
    if n < RECORD_OVERHEAD_BYTES or n > RECORD_OVERHEAD_BYTES + MAX_PLAINTEXT_BYTES:
        raise DecodeError("record of %d bytes is truncated or too long" % n)
    if data[0] != T_RECORD:
        raise DecodeError("record has type 0x%02x" % data[0])
    _t, sid, seq = struct.unpack(">BIQ", bytes(data[:RECORD_HEADER_BYTES]))
    if seq >= REJECT_AFTER_RECORDS:
        raise DecodeError("record seq beyond the 2^32 limit")
    return sid, seq


# ------------------------------------------------------------ key schedule

def derive_auth_key(psk, board_id):
    """K_auth = HKDF(salt=AUTH_SALT, ikm=psk, info=AUTH_INFO || board_id, 32)."""
    psk = _need_bytes("psk", psk, PSK_BYTES)
    board_id = _need_bytes("board_id", board_id, BOARD_ID_BYTES)
    return hkdf(AUTH_SALT, psk, AUTH_INFO + board_id, KEY_BYTES)


def transcript_hash(hello, challenge_body):
    """T = SHA-256(HELLO || CHALLENGE without tag): every byte both sides sent."""
    h = hashlib.sha256(hello)
    h.update(challenge_body)
    return h.digest()


def derive_session_keys(psk, board_id, transcript):
    """-> (enc_b2g, mac_b2g, enc_g2b, mac_g2b), 32 bytes each.

    HKDF(salt=T, ikm=psk, info=SESSION_INFO || board_id, 128).
    """
    psk = _need_bytes("psk", psk, PSK_BYTES)
    board_id = _need_bytes("board_id", board_id, BOARD_ID_BYTES)
    okm = hkdf(transcript, psk, SESSION_INFO + board_id, 4 * KEY_BYTES)
    return okm[0:32], okm[32:64], okm[64:96], okm[96:128]


def handshake_tag(k_auth, label, transcript):
    """HMAC-SHA256(K_auth, label || T) truncated to 16 bytes."""
    return HmacKey(k_auth).digest(label, transcript)[:TAG_BYTES]


def counter_block(direction, seq):
    """CTR counter block: dir(1) | 0(3) | seq(8) | block number(4), first block 1."""
    return struct.pack(">IQI", direction << 24, seq, 1)


# ----------------------------------------------------------- replay window

class ReplayWindow:
    """Sliding window over the REPLAY_WINDOW highest sequence numbers.

    Bit i of the bitmap stands for seq (highest - i). check() never changes
    state; mark() is called only after a record verified.
    """

    def __init__(self):
        self.highest = -1  # no record accepted yet
        self._bitmap = 0

    def check(self, seq):
        """Raises ReplayError: seq already seen, or REPLAY_WINDOW or more below the highest."""
        if seq > self.highest:
            return
        diff = self.highest - seq
        if diff >= REPLAY_WINDOW:
            raise ReplayError("record seq %d is too old" % seq)
        if (self._bitmap >> diff) & 1:
            raise ReplayError("record seq %d already seen" % seq)

    def mark(self, seq):
        """Record seq as seen (after check() passed and the tag verified)."""
        if seq > self.highest:
            shift = seq - self.highest
            self._bitmap = ((self._bitmap << shift) | 1) if shift < REPLAY_WINDOW else 1
            self._bitmap &= _WINDOW_MASK
            self.highest = seq
        else:
            self._bitmap |= 1 << (self.highest - seq)

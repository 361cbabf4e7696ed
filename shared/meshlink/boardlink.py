# Board link: the PSK session between a board (BoardClient) and its gateway
# (GatewaySession). Byte tables, key schedule and state machines are in
# docs/PROTOCOL.md §6.
# Rules:
# - Sans-I/O: bytes, now_ms and random bytes come in as arguments; no sockets,
#   clock or tasks. Runs unchanged on MicroPython and CPython (96K heap).
# - Only meshlink.errors come out. Peer input: DecodeError (malformed or
#   truncated), VersionError, AuthError (bad tag, wrong PSK), ReplayError
#   (seen or too old seq, old sid), HandshakeError (out of order),
#   SessionExpiredError (limits). Our own misuse: LocalProtocolError.
# - Keys are installed exactly once per session object. A retransmitted HELLO
#   or CHALLENGE is answered with the cached reply; a retransmitted CONFIRM is
#   ignored. Neither reinstalls keys nor resets counters (KRACK).
# - Records are encrypt-then-MAC: AES-256-CTR, then HMAC-SHA256/128 over
#   header || ciphertext, checked in constant time BEFORE decrypting. State
#   (replay window) changes only after a record verified, so a corrupted,
#   truncated, replayed or wrong-key record leaves the session working.
# - Binary layouts use struct; every value is range-checked before packing
#   (MicroPython's struct silently truncates).
import struct

from meshlink._compat import ct_equal
from meshlink.aes import AesCtr
from meshlink.boardlink_wire import (  # noqa: F401 (re-exported: the public API)
    AUTH_INFO,
    AUTH_SALT,
    AWAIT_CHALLENGE,
    AWAIT_CONFIRM,
    AWAIT_HELLO,
    BOARD_ID_BYTES,
    CHALLENGE_BODY_BYTES,
    CHALLENGE_BYTES,
    CONFIRM_BYTES,
    DIR_B2G,
    DIR_G2B,
    ESTABLISHED,
    EXPIRED,
    HELLO_BYTES,
    KEY_BYTES,
    LABEL_B,
    LABEL_G,
    MAX_PLAINTEXT_BYTES,
    MAX_U32,
    NONCE_BYTES,
    PSK_BYTES,
    RECORD_HEADER_BYTES,
    RECORD_OVERHEAD_BYTES,
    REJECT_AFTER_MS,
    REJECT_AFTER_RECORDS,
    REKEY_AFTER_MS,
    REKEY_AFTER_RECORDS,
    REPLAY_WINDOW,
    SESSION_INFO,
    STALE_BYTES,
    T_CHALLENGE,
    T_CONFIRM,
    T_HELLO,
    T_RECORD,
    T_STALE,
    TAG_BYTES,
    VERSION,
    ReplayWindow,
    _need_bytes,
    _need_u32,
    counter_block,
    decode_challenge,
    decode_confirm,
    decode_hello,
    decode_record_header,
    decode_stale,
    derive_auth_key,
    derive_session_keys,
    encode_challenge_body,
    encode_confirm,
    encode_hello,
    encode_stale,
    handshake_tag,
    message_type,
    transcript_hash,
)
from meshlink.errors import (
    AuthError,
    HandshakeError,
    LocalProtocolError,
    ReplayError,
    SessionExpiredError,
)
from meshlink.hmac256 import HmacKey

# ---------------------------------------------------------------- sessions

def _need_now(now_ms):
    if type(now_ms) is not int or now_ms < 0:
        raise LocalProtocolError("now_ms must be a non-negative integer")


def _same(data, cached):
    """True if data is byte-identical to a message we already handled."""
    return isinstance(data, (bytes, bytearray, memoryview)) and bytes(data) == cached


class _Session:
    """Record layer shared by both sides. Subclasses set the directions."""

    _tx_dir = DIR_B2G
    _rx_dir = DIR_G2B

    def __init__(self, psk, board_id):
        self._psk = _need_bytes("psk", psk, PSK_BYTES)
        self.board_id = _need_bytes("board_id", board_id, BOARD_ID_BYTES)
        self._k_auth = derive_auth_key(self._psk, self.board_id)
        self.sid = None  # u32, known once the CHALLENGE is sent/received
        self.transcript = None  # T, set when the keys are installed
        self.established_ms = None
        self._tx = None  # (AesCtr, HmacKey) once installed
        self._rx = None
        self._tx_seq = 0
        self._window = ReplayWindow()

    def _install_keys(self, transcript, now_ms):
        """Derive and install the session keys; only ever once per object."""
        if self._tx is not None or self.state == EXPIRED:
            raise LocalProtocolError("session keys are installed only once")
        enc_b2g, mac_b2g, enc_g2b, mac_g2b = derive_session_keys(
            self._psk, self.board_id, transcript)
        b2g = (AesCtr(enc_b2g), HmacKey(mac_b2g))
        g2b = (AesCtr(enc_g2b), HmacKey(mac_g2b))
        if self._tx_dir == DIR_B2G:
            self._tx, self._rx = b2g, g2b
        else:
            self._tx, self._rx = g2b, b2g
        self.transcript = transcript
        self.established_ms = now_ms
        self._k_auth = None  # the handshake is over; keep no more secrets than needed
        self._psk = None
        self.state = ESTABLISHED

    def _expire(self, why):
        self.state = EXPIRED
        self._tx = self._rx = None
        return SessionExpiredError(why)

    def _live(self, now_ms, sending):
        """Check the session may carry a record now."""
        if self.state == EXPIRED:
            raise SessionExpiredError("session expired: start a new one")
        if self.state != ESTABLISHED:
            if sending:
                raise LocalProtocolError("no session keys yet: finish the handshake first")
            raise HandshakeError("record before the handshake finished")
        _need_now(now_ms)
        if now_ms - self.established_ms >= REJECT_AFTER_MS:
            raise self._expire("session older than REJECT_AFTER_MS")

    @property
    def records_sent(self):
        """Records sealed so far (the next record's seq)."""
        return self._tx_seq

    @property
    def highest_seq_received(self):
        """Highest seq opened so far, -1 if none."""
        return self._window.highest

    def needs_rekey(self, now_ms):
        """True once the session should be replaced: 2^20 records either way,
        24 h since keys were installed, or expired. False before the handshake ends."""
        if self.state == EXPIRED:
            return True
        if self.state != ESTABLISHED:
            return False
        _need_now(now_ms)
        used = max(self._tx_seq, self._window.highest + 1)
        return used >= REKEY_AFTER_RECORDS or now_ms - self.established_ms >= REKEY_AFTER_MS

    def seal(self, plaintext, now_ms):
        """Encrypt and MAC one record -> record bytes (plaintext + 29 bytes).

        Raises:
            LocalProtocolError: handshake not finished, or plaintext not bytes
                or over MAX_PLAINTEXT_BYTES.
            SessionExpiredError: 2^32 records sealed or REJECT_AFTER_MS passed.
        """
        self._live(now_ms, True)
        if (not isinstance(plaintext, (bytes, bytearray, memoryview))
                or len(plaintext) > MAX_PLAINTEXT_BYTES):
            raise LocalProtocolError("plaintext must be bytes of at most %d" % MAX_PLAINTEXT_BYTES)
        seq = self._tx_seq
        if seq >= REJECT_AFTER_RECORDS:
            raise self._expire("2^32 records sealed: start a new session")
        ctr, mac = self._tx
        n = len(plaintext)
        end = RECORD_HEADER_BYTES + n
        record = bytearray(end + TAG_BYTES)  # one buffer: small heaps fragment
        struct.pack_into(">BIQ", record, 0, T_RECORD, self.sid, seq)
        view = memoryview(record)
        ctr.xor_into(counter_block(self._tx_dir, seq), plaintext, view[RECORD_HEADER_BYTES:end])
        view[end:] = mac.digest(view[:end])[:TAG_BYTES]
        self._tx_seq = seq + 1
        return bytes(record)

    def open(self, record, now_ms):
        """Verify (constant time, before decrypting) and decrypt one record -> plaintext.

        A failure changes no state: the next valid record still opens.

        Raises:
            DecodeError: malformed or truncated record.
            ReplayError: seq already seen or too old, or a record of another (old) sid.
            AuthError: the tag does not verify (corrupted, or another key).
            HandshakeError: the handshake has not finished.
            SessionExpiredError: REJECT_AFTER_MS passed.
        """
        self._live(now_ms, False)
        sid, seq = decode_record_header(record)
        if sid != self.sid:
            raise ReplayError("record for session %08x, not this one (old sid)" % sid)
        self._window.check(seq)
        view = memoryview(record)  # no copies of the record on small heaps
        end = len(record) - TAG_BYTES
        ctr, mac = self._rx
        want = mac.digest(view[:end])[:TAG_BYTES]
        if not ct_equal(want, view[end:]):
            raise AuthError("record tag does not verify")
        plaintext = ctr.xor(counter_block(self._rx_dir, seq), view[RECORD_HEADER_BYTES:end])
        self._window.mark(seq)
        return plaintext


class BoardClient(_Session):
    """Board side of the board link (the initiator).

    Send hello() (again on timeout: same bytes); pass the gateway's CHALLENGE
    to handle_challenge() and send the CONFIRM it returns; then seal() and
    open() records. One object is one session: for a rekey or after a reboot,
    create a new BoardClient with a fresh nonce and the new boot counter.
    """

    _tx_dir = DIR_B2G
    _rx_dir = DIR_G2B

    def __init__(self, psk, board_id, boot_ctr, nonce):
        """psk: 32 bytes; board_id: 8 bytes; boot_ctr: u32 persisted, +1 per boot;
        nonce: 16 random bytes. Raises LocalProtocolError on a bad argument."""
        _Session.__init__(self, psk, board_id)
        self.boot_ctr = _need_u32("boot_ctr", boot_ctr)
        self._hello = encode_hello(self.board_id, boot_ctr, nonce)
        self._challenge = None
        self._confirm = None
        self.state = AWAIT_CHALLENGE

    def hello(self):
        """The HELLO to send; the same bytes on every call (retransmission)."""
        return self._hello

    def handle_challenge(self, data, now_ms):
        """Check the gateway's CHALLENGE, install keys -> CONFIRM bytes to send.

        A byte-identical CHALLENGE after the keys are installed (a
        retransmission) returns the same CONFIRM again; keys and counters are
        untouched.

        Raises:
            DecodeError: malformed CHALLENGE.
            AuthError: the tag does not verify (wrong PSK or forged); still waiting.
            HandshakeError: a different CHALLENGE after the keys are installed.
        """
        if self._challenge is not None:
            if _same(data, self._challenge):
                return self._confirm
            raise HandshakeError("session already established: a new CHALLENGE needs a new HELLO")
        _need_now(now_ms)
        sid, _gateway_nonce, tag = decode_challenge(data)
        transcript = transcript_hash(self._hello, bytes(data[:CHALLENGE_BODY_BYTES]))
        if not ct_equal(handshake_tag(self._k_auth, LABEL_G, transcript), tag):
            raise AuthError("CHALLENGE tag does not verify (wrong PSK?)")
        self._confirm = encode_confirm(sid, handshake_tag(self._k_auth, LABEL_B, transcript))
        self.sid = sid
        self._install_keys(transcript, now_ms)
        self._challenge = bytes(data)
        return self._confirm


class GatewaySession(_Session):
    """Gateway side of the board link (the responder), one per board session.

    The gateway service decodes a HELLO (decode_hello) to find the board's
    PSK, creates GatewaySession(psk, board_id), sends what handle_hello()
    returns, passes the CONFIRM to handle_confirm(), then seal()/open().
    Records and CONFIRMs are dispatched to sessions by sid
    (decode_record_header / decode_confirm).
    """

    _tx_dir = DIR_G2B
    _rx_dir = DIR_B2G

    def __init__(self, psk, board_id):
        """psk: the board's 32-byte key; board_id: 8 bytes. Raises LocalProtocolError."""
        _Session.__init__(self, psk, board_id)
        self.boot_ctr = None  # from the HELLO; the service may enforce it grows
        self.created_ms = None
        self._hello = None
        self._challenge = None
        self._pending = None  # T between CHALLENGE and CONFIRM
        self._confirm = None
        self.state = AWAIT_HELLO

    @property
    def challenge(self):
        """The CHALLENGE sent (for resending when records arrive before CONFIRM), or None."""
        return self._challenge

    def handle_hello(self, data, sid, nonce, now_ms):
        """Answer a HELLO -> CHALLENGE bytes to send, or None (ignored).

        sid: u32 session id, unique on this gateway; nonce: 16 random bytes.
        A byte-identical HELLO while waiting for CONFIRM returns the same
        CHALLENGE again; once established it is ignored (None).

        Raises:
            DecodeError, VersionError: malformed HELLO.
            HandshakeError: HELLO of another board, or a different HELLO than
                the one this session answered (that needs a new GatewaySession).
            LocalProtocolError: bad sid, nonce or now_ms.
        """
        if self._hello is not None:
            if not _same(data, self._hello):
                raise HandshakeError("a new HELLO needs a new GatewaySession")
            return self._challenge if self.state == AWAIT_CONFIRM else None
        board_id, boot_ctr, _board_nonce = decode_hello(data)
        if board_id != self.board_id:
            raise HandshakeError("HELLO from another board than this session's")
        _need_now(now_ms)
        body = encode_challenge_body(sid, nonce)
        self._pending = transcript_hash(bytes(data), body)
        self._challenge = body + handshake_tag(self._k_auth, LABEL_G, self._pending)
        self._hello = bytes(data)
        self.sid = sid
        self.boot_ctr = boot_ctr
        self.created_ms = now_ms
        self.state = AWAIT_CONFIRM
        return self._challenge

    def handle_confirm(self, data, now_ms):
        """Check the board's CONFIRM and install keys.

        Returns True when this CONFIRM installed the keys, False for a
        byte-identical retransmission (ignored: keys and counters untouched).

        Raises:
            DecodeError: malformed CONFIRM.
            HandshakeError: no HELLO yet, another sid, or a different CONFIRM
                after the keys are installed.
            AuthError: the tag does not verify (wrong PSK or forged); still waiting.
        """
        if self.state == AWAIT_HELLO:
            raise HandshakeError("CONFIRM before HELLO")
        if self._confirm is not None:
            if _same(data, self._confirm):
                return False
            raise HandshakeError("session already confirmed")
        _need_now(now_ms)
        sid, tag = decode_confirm(data)
        if sid != self.sid:
            raise HandshakeError("CONFIRM for session %08x, expected %08x" % (sid, self.sid))
        if not ct_equal(handshake_tag(self._k_auth, LABEL_B, self._pending), tag):
            raise AuthError("CONFIRM tag does not verify (wrong PSK?)")
        self._install_keys(self._pending, now_ms)
        self._pending = None
        self._confirm = bytes(data)
        return True


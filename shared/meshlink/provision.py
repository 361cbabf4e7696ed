# Provisioning: WiFi credentials to a board over a serial line, protected by
# the board's PSK (docs/PROTOCOL.md §9 "Provisioning over serial", threat model in docs/BOARDS.md).
# Rules:
# - Sans-I/O: bytes and random nonces come in as arguments. Runs on
#   MicroPython and CPython.
# - Keys are fresh per exchange: HKDF over the PSK with both nonces (the
#   board's Nb, the host's Ng) and the board ID, under a label no other part
#   of the protocol uses. A credentials message made for another board (PSK),
#   another exchange (Nb: a replay) or changed on the line fails its tag,
#   which is checked in constant time BEFORE anything is decrypted.
# - Peer input raises DecodeError (malformed) or AuthError (tag); only
#   meshlink.errors come out.
import struct

from meshlink import cjson
from meshlink._compat import ct_equal
from meshlink.aes import AesCtr
from meshlink.errors import AuthError, DecodeError, LocalProtocolError
from meshlink.hmac256 import HmacKey, hkdf

T_PROV_HELLO = 0x10  # board -> host: board_id(8) | Nb(16)
T_PROV_CREDS = 0x11  # host -> board: Ng(16) | ciphertext | tag(16)
T_PROV_DONE = 0x12  # board -> host: tag(16), proves the board took them
T_PROV_REFUSED = 0x13  # board -> host: reason(1), unauthenticated
PROV_SALT = b"meshlink/1 provision"
PROV_INFO = b"meshlink/1 provision keys"
DONE_LABEL = b"meshlink/1 provision done"
NONCE_BYTES = 16
TAG_BYTES = 16
BOARD_ID_BYTES = 8
HELLO_BYTES = 25
MAX_CREDS_PLAINTEXT = 160  # {"password":..,"ssid":..}: SSID <= 32, WPA2 password <= 63
REFUSED_TAG = 1  # the tag did not verify: another board's key, a replay, or tampered
REFUSED_MALFORMED = 2
_CTR_DIR = 3  # counter block direction byte: distinct from the board link's 1 and 2


def _bytes(name, value, n):
    if not isinstance(value, (bytes, bytearray)) or len(value) != n:
        raise LocalProtocolError("%s must be %d bytes" % (name, n))
    return bytes(value)


def _keys(psk, board_id, nb, ng):
    okm = hkdf(PROV_SALT, _bytes("psk", psk, 32),
               PROV_INFO + _bytes("board_id", board_id, BOARD_ID_BYTES)
               + _bytes("nb", nb, NONCE_BYTES) + _bytes("ng", ng, NONCE_BYTES), 64)
    return okm[:32], okm[32:]


def _counter():
    return struct.pack(">IQI", _CTR_DIR << 24, 0, 1)


def kind(data):
    """The type byte of a provisioning message, or 0 (not one)."""
    if not data or data[0] < T_PROV_HELLO or data[0] > T_PROV_REFUSED:
        return 0
    return data[0]


def encode_hello(board_id, nb):
    """PROV_HELLO: the board waits for credentials; nb: 16 fresh random bytes."""
    return bytes([T_PROV_HELLO]) + _bytes("board_id", board_id, BOARD_ID_BYTES) \
        + _bytes("nb", nb, NONCE_BYTES)


def decode_hello(data):
    """PROV_HELLO -> (board_id, nb). Raises DecodeError."""
    if len(data) != HELLO_BYTES or data[0] != T_PROV_HELLO:
        raise DecodeError("not a PROV_HELLO")
    return bytes(data[1:9]), bytes(data[9:25])


def seal_creds(psk, board_id, nb, ng, ssid, password):
    """PROV_CREDS for the board that sent nb; ng: 16 fresh random bytes.

    Raises:
        LocalProtocolError: bad key sizes, or credentials too long.
    """
    if type(ssid) is not str or not 0 < len(ssid.encode()) <= 32 \
            or type(password) is not str or len(password.encode()) > 64:
        raise LocalProtocolError("an SSID of 1..32 bytes and a password of at most 64")
    plaintext = cjson.dumps({"password": password, "ssid": ssid})
    if len(plaintext) > MAX_CREDS_PLAINTEXT:
        raise LocalProtocolError("credentials over %d bytes encoded" % MAX_CREDS_PLAINTEXT)
    enc, mac = _keys(psk, board_id, nb, ng)
    head = bytes([T_PROV_CREDS]) + ng
    body = head + AesCtr(enc).xor(_counter(), plaintext)
    return body + HmacKey(mac).digest(body)[:TAG_BYTES]


def open_creds(psk, board_id, nb, data):
    """Check and decrypt PROV_CREDS -> (ssid, password, ng).

    Raises:
        DecodeError: malformed (length, type, not the expected JSON).
        AuthError: the tag does not verify (another board's PSK, a replay of
            another exchange, or changed on the line). Nothing was decrypted.
    """
    n = len(data)
    if n < 1 + NONCE_BYTES + TAG_BYTES + 2 or n > 1 + NONCE_BYTES + TAG_BYTES \
            + MAX_CREDS_PLAINTEXT or data[0] != T_PROV_CREDS:
        raise DecodeError("not a PROV_CREDS")
    ng = bytes(data[1:1 + NONCE_BYTES])
    enc, mac = _keys(psk, board_id, nb, ng)
    end = n - TAG_BYTES
    if not ct_equal(HmacKey(mac).digest(data[:end])[:TAG_BYTES], data[end:]):
        raise AuthError("credentials tag does not verify")
    obj = cjson.loads(AesCtr(enc).xor(_counter(), data[1 + NONCE_BYTES:end]))
    if type(obj) is not dict or type(obj.get("ssid")) is not str \
            or type(obj.get("password")) is not str or not obj["ssid"]:
        raise DecodeError("credentials are not {ssid, password}")
    return obj["ssid"], obj["password"], ng


def encode_done(psk, board_id, nb, ng):
    """PROV_DONE: proves to the host that the board holding the PSK stored them."""
    _enc, mac = _keys(psk, board_id, nb, ng)
    return bytes([T_PROV_DONE]) + HmacKey(mac).digest(DONE_LABEL)[:TAG_BYTES]


def check_done(psk, board_id, nb, ng, data):
    """Raises AuthError (or DecodeError) unless data is the board's PROV_DONE."""
    if len(data) != 1 + TAG_BYTES or data[0] != T_PROV_DONE:
        raise DecodeError("not a PROV_DONE")
    if not ct_equal(encode_done(psk, board_id, nb, ng), data):
        raise AuthError("PROV_DONE tag does not verify")


def encode_refused(reason):
    return bytes([T_PROV_REFUSED, reason & 0xFF])


def decode_refused(data):
    """PROV_REFUSED -> reason. Raises DecodeError."""
    if len(data) != 2 or data[0] != T_PROV_REFUSED:
        raise DecodeError("not a PROV_REFUSED")
    return data[1]

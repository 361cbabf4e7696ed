# Serial framing for the board link: COBS around (payload || CRC-32), each
# frame between 0x00 delimiters, so a receiver resynchronises after line noise,
# boot chatter or a half-sent frame at the next 0x00.
# Rule: sans-I/O and MicroPython-safe. Line noise never raises out of feed():
# it becomes a counter plus a typed error object the caller can take().
#
# Wire layout of one frame (docs/PROTOCOL.md, "Serial framing"):
#   0x00 | COBS( payload | CRC-32 big-endian over payload ) | 0x00
# CRC-32 is the IEEE 802.3 / zlib CRC (binascii.crc32 on both interpreters).
import binascii

from meshlink._compat import const
from meshlink.errors import DecodeError, FrameTooLargeError, LocalProtocolError

DELIMITER = const(0)
CRC_BYTES = const(4)
DEFAULT_MAX_PAYLOAD_BYTES = const(2048)  # largest payload a decoder accepts
MAX_PENDING_ERRORS = const(8)  # typed errors kept until take_errors(); older are only counted


class CobsError(DecodeError):
    """A frame between delimiters is not valid COBS."""


class CrcError(DecodeError):
    """A frame decoded but its CRC-32 did not match (corrupted on the line)."""


class ShortFrameError(DecodeError):
    """A frame decoded to fewer bytes than the CRC alone needs."""


def _crc32_py(data, crc=0):
    """Bitwise CRC-32 for ports built without binascii.crc32 (slow, rare)."""
    crc = crc ^ 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


crc32 = getattr(binascii, "crc32", _crc32_py)


def max_encoded_bytes(payload_bytes):
    """Largest COBS body (without delimiters) for a payload of this size."""
    n = payload_bytes + CRC_BYTES
    return n + n // 254 + 1


def cobs_encode(data):
    """Consistent Overhead Byte Stuffing: returns bytes with no 0x00 in them.

    data is bytes or bytearray. Matches the Cheshire-Baker encoding (no final
    code byte after a trailing full 254-byte block).
    """
    out = bytearray()
    n = len(data)
    start = 0
    while True:
        z = data.find(b"\x00", start)
        end = n if z < 0 else z
        full_block = False
        while end - start >= 254:
            out.append(0xFF)
            out.extend(data[start:start + 254])
            start += 254
            full_block = True
        if z < 0 and full_block and start == n:
            break  # a trailing 0xFF block needs no final code byte
        out.append(end - start + 1)
        out.extend(data[start:end])
        if z < 0:
            break
        start = z + 1
    return bytes(out)


def cobs_decode(enc):
    """Undo cobs_encode. enc is bytes or bytearray.

    Raises:
        CobsError: empty input, a 0x00 byte, or a block running past the end.
    """
    n = len(enc)
    if n == 0:
        raise CobsError("empty COBS frame")
    if enc.find(b"\x00") >= 0:
        raise CobsError("0x00 inside a COBS frame")
    out = bytearray()
    i = 0
    while i < n:
        code = enc[i]
        if code == 0:
            raise CobsError("0x00 inside a COBS frame")
        j = i + code
        if j > n:
            raise CobsError("COBS block runs past the end of the frame")
        out.extend(enc[i + 1:j])
        i = j
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)


def encode(payload, max_payload_bytes=DEFAULT_MAX_PAYLOAD_BYTES):
    """Frame one board-link payload for the wire: 00 COBS(payload|crc32) 00.

    Raises:
        LocalProtocolError: payload longer than max_payload_bytes.
    """
    if len(payload) > max_payload_bytes:
        raise LocalProtocolError(
            "serial payload too large: %d > %d" % (len(payload), max_payload_bytes))
    crc = crc32(payload) & 0xFFFFFFFF
    body = bytes(payload) + crc.to_bytes(4, "big")
    return b"\x00" + cobs_encode(body) + b"\x00"


def decode(body):
    """Decode one frame body (the bytes between two delimiters) to its payload.

    Raises:
        CobsError, ShortFrameError, CrcError: the body is not a good frame.
    """
    raw = cobs_decode(body)
    if len(raw) < CRC_BYTES:
        raise ShortFrameError("frame of %d bytes is shorter than its CRC" % len(raw))
    payload = raw[:-CRC_BYTES]
    want = int.from_bytes(raw[-CRC_BYTES:], "big")
    if crc32(payload) & 0xFFFFFFFF != want:
        raise CrcError("CRC-32 mismatch on a %d-byte frame" % len(payload))
    return payload


class SerialDecoder:
    """Streaming decoder: feed() any split of the byte stream, get payloads.

    Memory is one preallocated buffer of max_encoded_bytes(max_payload_bytes).
    Garbage, partial and corrupted frames are skipped and counted:
    crc_errors, cobs_errors, short_frames, oversize_frames, discarded_bytes.
    Empty frames (two delimiters in a row) are idle line, not errors.
    """

    def __init__(self, max_payload_bytes=DEFAULT_MAX_PAYLOAD_BYTES):
        if max_payload_bytes < 1:
            raise LocalProtocolError("max_payload_bytes must be positive")
        self.max_payload_bytes = max_payload_bytes
        self._buf = bytearray(max_encoded_bytes(max_payload_bytes))
        self._n = 0
        self._overflow = False
        self._errors = []
        self.frames_ok = 0
        self.crc_errors = 0
        self.cobs_errors = 0
        self.short_frames = 0
        self.oversize_frames = 0
        self.discarded_bytes = 0
        self.errors_dropped = 0

    def buffered_bytes(self):
        """Bytes of the current, unfinished frame held in the buffer."""
        return self._n

    def error_count(self):
        """Total frames rejected for any reason."""
        return self.crc_errors + self.cobs_errors + self.short_frames + self.oversize_frames

    def take_errors(self):
        """Return and forget the typed errors (DecodeError subclasses) seen so far."""
        errors = self._errors
        self._errors = []
        return errors

    def feed(self, data):
        """Add bytes from the line; return the list of good payloads, in order.

        Never raises on line content.
        """
        if not isinstance(data, (bytes, bytearray)):
            data = bytes(data)
        out = []
        i = 0
        n = len(data)
        while i < n:
            z = data.find(b"\x00", i)
            end = n if z < 0 else z
            self._append(data, i, end)
            if z < 0:
                break
            self._finish(out)
            i = z + 1
        return out

    def _append(self, data, start, end):
        k = end - start
        if k == 0:
            return
        if self._overflow or self._n + k > len(self._buf):
            if not self._overflow:
                self.discarded_bytes += self._n
                self._overflow = True
            self.discarded_bytes += k
            return
        self._buf[self._n:self._n + k] = data[start:end]
        self._n += k

    def _finish(self, out):
        n = self._n
        overflow = self._overflow
        self._n = 0
        self._overflow = False
        if overflow:
            self.oversize_frames += 1
            self._record(FrameTooLargeError("serial frame over %d payload bytes skipped"
                                            % self.max_payload_bytes))
            return
        if n == 0:
            return
        try:
            payload = decode(bytes(memoryview(self._buf)[:n]))
        except CrcError as e:
            self.crc_errors += 1
            self._skip(e, n)
        except ShortFrameError as e:
            self.short_frames += 1
            self._skip(e, n)
        except CobsError as e:
            self.cobs_errors += 1
            self._skip(e, n)
        else:
            self.frames_ok += 1
            out.append(payload)

    def _skip(self, err, n):
        self.discarded_bytes += n
        self._record(err)

    def _record(self, err):
        if len(self._errors) < MAX_PENDING_ERRORS:
            self._errors.append(err)
        else:
            self.errors_dropped += 1

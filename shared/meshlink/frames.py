# Stream framing: [4-byte big-endian length][payload], as in the whitepaper.
# Rule: pure functions and a feed()-driven deframer; no I/O. A length over the
# configured maximum is refused before any buffer for it is allocated.
import struct

from meshlink._compat import const
from meshlink.errors import DecodeError, FrameTooLargeError, LocalProtocolError

HEADER_BYTES = const(4)
DEFAULT_MAX_FRAME_BYTES = const(65536)  # 64 KiB, GUIDE section 2


def encode_frame(payload, max_frame_bytes=DEFAULT_MAX_FRAME_BYTES):
    """Prefix payload with its 4-byte big-endian length.

    Raises:
        LocalProtocolError: payload longer than max_frame_bytes.
    """
    n = len(payload)
    if n > max_frame_bytes:
        raise LocalProtocolError("frame payload too large: %d > %d" % (n, max_frame_bytes))
    return struct.pack(">I", n) + payload


class Deframer:
    """Turns any split of a byte stream back into frames.

    feed() returns the list of complete payloads. After a FrameTooLargeError
    the stream position is lost, so the deframer stays failed and every
    further feed() raises again: the caller must close the stream.
    """

    def __init__(self, max_frame_bytes=DEFAULT_MAX_FRAME_BYTES):
        if max_frame_bytes < 1:
            raise LocalProtocolError("max_frame_bytes must be positive")
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()
        self._failed = None

    def buffered_bytes(self):
        """Bytes received but not yet returned as a frame."""
        return len(self._buf)

    def feed(self, data):
        """Add bytes from the stream; return the complete frames, in order.

        Raises:
            FrameTooLargeError: a length prefix exceeds max_frame_bytes.
        """
        if self._failed is not None:
            raise FrameTooLargeError(self._failed)
        buf = self._buf
        buf.extend(data)
        frames = []
        pos = 0
        end = len(buf)
        while end - pos >= HEADER_BYTES:
            n = (buf[pos] << 24) | (buf[pos + 1] << 16) | (buf[pos + 2] << 8) | buf[pos + 3]
            if n > self.max_frame_bytes:
                self._failed = "frame length %d exceeds maximum %d" % (n, self.max_frame_bytes)
                self._buf = bytearray()
                raise FrameTooLargeError(self._failed)
            if end - pos - HEADER_BYTES < n:
                break
            start = pos + HEADER_BYTES
            frames.append(bytes(buf[start:start + n]))
            pos = start + n
        if pos:
            self._buf = buf[pos:]
        return frames


def decode_datagram(datagram, max_frame_bytes=DEFAULT_MAX_FRAME_BYTES):
    """Check one UDP datagram, which carries exactly one frame payload.

    Raises:
        DecodeError: empty datagram.
        FrameTooLargeError: datagram longer than max_frame_bytes.
    """
    if not datagram:
        raise DecodeError("empty datagram")
    if len(datagram) > max_frame_bytes:
        raise FrameTooLargeError("datagram of %d bytes exceeds maximum" % len(datagram))
    return bytes(datagram)

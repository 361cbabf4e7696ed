# BLE fragmentation: one board-link frame travels as a run of GATT writes
# (gateway -> board) or notifications (board -> gateway), each at most one
# ATT payload (negotiated MTU - 3 bytes).
# Rule: sans-I/O and MicroPython-safe. A peer's bad fragment never raises out
# of Reassembler.feed(): it is counted and kept as a typed error object.
#
# Fragment layout (docs/PROTOCOL.md, "BLE fragments"):
#   byte 0   message counter, 0..255, wraps; the same for every fragment of a message
#   byte 1   bit 7: LAST (this fragment ends the message); bits 0..6: fragment index 0..127
#   2..      fragment data (1..att_payload_bytes-2 bytes; empty only for an empty message)
# Fragments of one message are sent in index order; the link (LL ACKs) keeps order.
from meshlink._compat import const
from meshlink.errors import DecodeError, FrameTooLargeError, LocalProtocolError

# One definition of the GATT layout, used by firmware/app/ble_link.py and the
# gateway's transports/ble.py.
SERVICE_UUID = "bae14300-f6dc-4960-ab8c-0574bd996cdc"  # MeshLink board-link service
RX_CHAR_UUID = "bae14301-f6dc-4960-ab8c-0574bd996cdc"  # gateway writes (write without response)
TX_CHAR_UUID = "bae14302-f6dc-4960-ab8c-0574bd996cdc"  # board notifies

HEADER_BYTES = const(2)
LAST_FLAG = const(0x80)
INDEX_MASK = const(0x7F)
MAX_FRAGMENTS = const(128)  # 7-bit index
MIN_ATT_PAYLOAD_BYTES = const(20)  # ATT_MTU 23 (the BLE minimum) - 3
DEFAULT_MAX_MESSAGE_BYTES = const(2048)  # reassembly buffer, bytes
MAX_PENDING_ERRORS = const(8)


class FragmentError(DecodeError):
    """A fragment was short, out of order, or belonged to an abandoned message."""


def max_message_bytes_for(att_payload_bytes):
    """Largest message that fits MAX_FRAGMENTS fragments of this ATT payload size."""
    return MAX_FRAGMENTS * (att_payload_bytes - HEADER_BYTES)


def fragment(message, att_payload_bytes, counter):
    """Split one message into fragments of at most att_payload_bytes each.

    Args:
        message: bytes to send (may be empty: one empty LAST fragment).
        att_payload_bytes: negotiated ATT MTU minus 3 (at least 3).
        counter: message counter 0..255.
    Raises:
        LocalProtocolError: bad counter or size, or more than MAX_FRAGMENTS needed.
    """
    if counter < 0 or counter > 255:
        raise LocalProtocolError("message counter must be 0..255")
    if att_payload_bytes < HEADER_BYTES + 1:
        raise LocalProtocolError("ATT payload of %d bytes leaves no room" % att_payload_bytes)
    step = att_payload_bytes - HEADER_BYTES
    n = len(message)
    count = (n + step - 1) // step if n else 1
    if count > MAX_FRAGMENTS:
        raise LocalProtocolError("message of %d bytes needs %d fragments (max %d)"
                                 % (n, count, MAX_FRAGMENTS))
    out = []
    for i in range(count):
        flags = i | (LAST_FLAG if i == count - 1 else 0)
        out.append(bytes((counter, flags)) + message[i * step:(i + 1) * step])
    return out


class Fragmenter:
    """Keeps the message counter for one direction of one link."""

    def __init__(self, att_payload_bytes, counter=0):
        self.att_payload_bytes = att_payload_bytes
        self._counter = counter & 0xFF

    def split(self, message):
        """Fragments for the next message (see fragment()); advances the counter."""
        frags = fragment(message, self.att_payload_bytes, self._counter)
        self._counter = (self._counter + 1) & 0xFF
        return frags


class Reassembler:
    """Rebuilds messages from in-order fragments in one preallocated buffer.

    feed() returns the whole message when its LAST fragment arrives, else
    None. A fragment that does not continue the message in progress drops
    that message, and the rest of that message's fragments are skipped
    quietly (counted in skipped_fragments); a new index-0 fragment always
    starts a new message. Error counters: short_fragments, out_of_order,
    abandoned, oversize; messages_ok counts successes.
    """

    def __init__(self, max_message_bytes=DEFAULT_MAX_MESSAGE_BYTES):
        if max_message_bytes < 1:
            raise LocalProtocolError("max_message_bytes must be positive")
        self.max_message_bytes = max_message_bytes
        self._buf = bytearray(max_message_bytes)
        self._n = 0
        self._counter = -1  # -1: no message in progress
        self._skip = -1  # counter of a dropped message whose tail we ignore
        self._next = 0
        self._errors = []
        self.messages_ok = 0
        self.short_fragments = 0
        self.out_of_order = 0
        self.abandoned = 0
        self.oversize = 0
        self.skipped_fragments = 0
        self.errors_dropped = 0

    def in_progress(self):
        """True while a message has started but not finished."""
        return self._counter >= 0

    def error_count(self):
        """Total fragments or messages rejected for any reason."""
        return self.short_fragments + self.out_of_order + self.abandoned + self.oversize

    def take_errors(self):
        """Return and forget the typed errors seen so far."""
        errors = self._errors
        self._errors = []
        return errors

    def feed(self, frag):
        """Add one fragment; return the complete message, or None. Never raises."""
        if len(frag) < HEADER_BYTES:
            self.short_fragments += 1
            self._record(FragmentError("fragment of %d bytes has no header" % len(frag)))
            return None
        counter = frag[0]
        index = frag[1] & INDEX_MASK
        if index == 0:
            self._start(counter)
        elif counter != self._counter or index != self._next:
            if self._counter < 0 and counter == self._skip:
                self.skipped_fragments += 1
            else:
                self.out_of_order += 1
                self._drop(FragmentError("fragment %d of message %d out of order"
                                         % (index, counter)))
                if self._skip < 0:  # a stray tail: ignore the rest of it
                    self._skip = counter
            return None
        return self._add(frag)

    def _start(self, counter):
        if self._counter >= 0:
            self.abandoned += 1
            self._record(FragmentError("message %d abandoned after %d fragments"
                                       % (self._counter, self._next)))
        self._counter = counter
        self._skip = -1
        self._next = 0
        self._n = 0

    def _drop(self, err):
        """Forget the message in progress; skip the rest of its fragments."""
        self._record(err)
        self._skip = self._counter
        self._counter = -1

    def _add(self, frag):
        k = len(frag) - HEADER_BYTES
        if self._n + k > self.max_message_bytes:
            self.oversize += 1
            self._drop(FrameTooLargeError("BLE message over %d bytes dropped"
                                          % self.max_message_bytes))
            return None
        self._buf[self._n:self._n + k] = frag[HEADER_BYTES:]
        self._n += k
        self._next += 1
        if not frag[1] & LAST_FLAG:
            return None
        self._counter = -1
        self.messages_ok += 1
        return bytes(memoryview(self._buf)[:self._n])

    def _record(self, err):
        if len(self._errors) < MAX_PENDING_ERRORS:
            self._errors.append(err)
        else:
            self.errors_dropped += 1

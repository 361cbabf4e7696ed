# Board side of the serial board link: meshlink.serialframe frames over a
# byte stream. The stream is machine.UART on an ESP32, or a tty path on the
# MicroPython unix port (simulation and tests).
# Rule: the framing lives in shared/meshlink/serialframe.py; this file only
# opens the stream and moves bytes. Line noise is counted by the decoder,
# never raised. Tested on the unix port against a pty; the UART path is
# UNTESTED ON HARDWARE.
import asyncio

from meshlink import serialframe
from meshlink._compat import const
from meshlink.errors import TransportError

_READ_CHUNK = const(256)
# A board's records are at most 797 bytes (link.MAX_RECORD_PLAINTEXT + overhead):
# a smaller decoder buffer than the 2 KiB default keeps heap for the app.
_MAX_PAYLOAD_BYTES = const(1024)


class SerialLink:
    """Send and receive board-link payloads over one byte stream.

    The stream needs non-blocking read(n) (returning None or b"" when idle)
    and write(bytes): machine.UART(timeout=0), or a tty opened by open_tty().
    """

    def __init__(self, stream, max_payload_bytes=serialframe.DEFAULT_MAX_PAYLOAD_BYTES):
        self._stream = stream
        self.max_payload_bytes = max_payload_bytes
        self.decoder = serialframe.SerialDecoder(max_payload_bytes)
        self._pending = []
        self._reader = None

    def send(self, payload):
        """Frame and write one payload. Raises LocalProtocolError if too large."""
        frame = serialframe.encode(payload, self.max_payload_bytes)
        view = memoryview(frame)
        sent = 0
        while sent < len(frame):  # a UART or tty may take a frame in pieces
            n = self._stream.write(view[sent:])
            sent += n if n else 0
        return sent

    def poll(self):
        """Non-blocking: return the payloads that have arrived (maybe [])."""
        data = self._stream.read(_READ_CHUNK)
        if data:
            self._pending.extend(self.decoder.feed(data))
        out = self._pending
        self._pending = []
        return out

    async def recv(self):
        """Wait for the next payload.

        Raises:
            EOFError: the stream reported end of file (tty closed).
        """
        if self._reader is None:
            self._reader = asyncio.StreamReader(self._stream)
        while not self._pending:
            data = await self._reader.read(_READ_CHUNK)
            if data is None:
                continue  # woken with nothing to read
            if not data:
                raise EOFError("serial stream closed")
            self._pending.extend(self.decoder.feed(data))
        return self._pending.pop(0)


def open_tty(path):
    """Unix port: open a tty in raw, non-blocking-read mode (VMIN=0, VTIME=0).

    MicroPython's open() cannot set termios, so stty does it.
    Raises:
        OSError: stty failed or the path cannot be opened.
    """
    import os

    if os.system("stty -F '%s' raw -echo min 0 time 0" % path) != 0:
        raise OSError("stty failed on %s" % path)
    return open(path, "r+b")


def open_uart(uart_id=1, baudrate=115200, tx=None, rx=None):
    """ESP32: a UART with timeout=0 so read() never blocks. UNTESTED ON HARDWARE."""
    from machine import UART

    if tx is None or rx is None:
        return UART(uart_id, baudrate=baudrate, timeout=0, rxbuf=1024)
    return UART(uart_id, baudrate=baudrate, tx=tx, rx=rx, timeout=0, rxbuf=1024)


class SerialTransport:
    """The board link over a serial line, as app.link.BoardLink wants a transport:
    open(), send(msg), recv(), close(); errors are TransportError.

    spec: config.json's "serial": {"port": tty path (unix port) or UART id
    (ESP32), "baudrate", optional "tx"/"rx" pins}.
    """

    def __init__(self, spec):
        self.spec = spec
        self.name = "serial:%s" % (spec["port"],)
        self._stream = None
        self._link = None

    async def open(self):
        port = self.spec["port"]
        try:
            if type(port) is int:
                self._stream = open_uart(port, self.spec["baudrate"], self.spec.get("tx"),
                                         self.spec.get("rx"))
            else:
                self._stream = open_tty(port)
        except OSError as e:
            raise TransportError("cannot open %s: %s" % (self.name, e))
        self._link = SerialLink(self._stream, _MAX_PAYLOAD_BYTES)

    async def send(self, msg):
        try:
            self._link.send(msg)
        except OSError as e:
            raise TransportError("%s send: %s" % (self.name, e))

    async def recv(self):
        """The next whole payload; line noise and partial frames are skipped."""
        try:
            return await self._link.recv()
        except (OSError, EOFError) as e:
            raise TransportError("%s recv: %s" % (self.name, e))

    async def close(self):
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass

"""Serial (USB CDC / UART) adapter: board-link frames in meshlink.serialframe.

Rule: a thin adapter. pyserial opens and configures the port with timeout=0
(non-blocking); asyncio watches the fd with add_reader / add_writer, so no
thread and no polling. Line noise is the decoder's business (counted, never
fatal); a vanished device (unplug, EIO, pty closed) is a TransportError that
ends the link, and supervise() reopens the path when it comes back.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from meshlink import serialframe
from meshlink.errors import LocalProtocolError, TransportError

from .base import FrameInbox, Transport

log = logging.getLogger("meshlink.transport.serial")

DEFAULT_BAUDRATE = 115_200
MAX_WRITE_BUFFER_BYTES = 64 * 1024  # unsent bytes before send() refuses
READ_CHUNK_BYTES = 4096


def _default_serial_factory(port: str, baudrate: int) -> Any:
    import serial  # pyserial; imported here so tests of other adapters need not load it

    return serial.Serial(port, baudrate=baudrate, timeout=0, write_timeout=0, exclusive=True)


def _consume_result(fut: asyncio.Future[None]) -> None:
    """Mark a drain future's error as seen when no sender is left to await it."""
    if not fut.cancelled():
        fut.exception()


def _vendor_errors() -> tuple[type[BaseException], ...]:
    import serial

    return (serial.SerialException, OSError, ValueError)


class SerialTransport(Transport):
    """One board on one serial port.

    Args:
        port: device path (/dev/ttyUSB0, /dev/serial/by-id/..., a pty).
        baudrate: line speed (ignored by USB CDC and ptys).
        max_payload_bytes: largest frame payload in either direction.
        serial_factory: (port, baudrate) -> pyserial-like object; for tests.
    """

    kind = "datagram"  # serialframe delimits frames; the iterator yields whole payloads

    def __init__(self, port: str, *, baudrate: int = DEFAULT_BAUDRATE,
                 max_payload_bytes: int = serialframe.DEFAULT_MAX_PAYLOAD_BYTES,
                 serial_factory: Callable[[str, int], Any] | None = None) -> None:
        self.port = port
        self.baudrate = baudrate
        self.mtu = max_payload_bytes
        self.name = f"serial:{port}"
        self._factory = serial_factory or _default_serial_factory
        self._decoder = serialframe.SerialDecoder(max_payload_bytes)
        self._inbox = FrameInbox()
        self._ser: Any = None
        self._fd = -1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._out = bytearray()
        self._drained: asyncio.Future[None] | None = None

    @property
    def decoder(self) -> serialframe.SerialDecoder:
        """The stream decoder, whose counters say how much garbage was skipped."""
        return self._decoder

    async def open(self) -> None:
        if not os.path.exists(self.port):
            raise TransportError(f"serial port {self.port} is not present")
        try:
            self._ser = self._factory(self.port, self.baudrate)
            self._fd = self._ser.fileno()
        except _vendor_errors() as e:
            self._ser = None
            raise TransportError(f"cannot open {self.port}: {e}")
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._on_readable)

    async def close(self) -> None:
        self._detach()
        self._finish_drain(TransportError("serial port closed"))
        self._fd = -1  # the number may be reused once the port is closed
        if self._ser is not None:
            try:
                self._ser.close()
            except _vendor_errors() as e:
                log.debug("event=serial_close_error port=%s error=%s", self.port, e)
            self._ser = None
        self._inbox.close()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._inbox.frames()

    async def send(self, frame: bytes) -> None:
        """Queue one frame and wait until the kernel has taken all of it.

        Raises:
            LocalProtocolError: frame longer than mtu.
            TransportError: port closed, failed, or the write buffer is full.
        """
        if len(frame) > self.mtu:
            raise LocalProtocolError(f"serial frame of {len(frame)} bytes exceeds {self.mtu}")
        if self._ser is None or self._loop is None or self._inbox.error is not None:
            raise TransportError(f"{self.name} is not open")
        if len(self._out) > MAX_WRITE_BUFFER_BYTES:
            raise TransportError(f"{self.name}: write buffer full (device not reading)")
        self._out += serialframe.encode(frame, self.mtu)
        if self._drained is None:
            self._drained = self._loop.create_future()
            self._drained.add_done_callback(_consume_result)
            self._loop.add_writer(self._fd, self._on_writable)
        await asyncio.shield(self._drained)

    def _on_readable(self) -> None:
        try:
            data = self._ser.read(self._ser.in_waiting or READ_CHUNK_BYTES)
        except _vendor_errors() as e:
            self._fail(TransportError(f"{self.port} read failed: {e}"))
            return
        for payload in self._decoder.feed(data):
            self._inbox.put(payload)
        for err in self._decoder.take_errors():
            log.debug("event=serial_garbage port=%s error=%s: %s", self.port,
                      type(err).__name__, err)

    def _on_writable(self) -> None:
        try:
            n = self._ser.write(bytes(self._out[:READ_CHUNK_BYTES]))
        except _vendor_errors() as e:
            self._fail(TransportError(f"{self.port} write failed: {e}"))
            return
        del self._out[:n or 0]
        if not self._out:
            self._finish_drain(None)

    def _finish_drain(self, error: TransportError | None) -> None:
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_writer(self._fd)
        fut, self._drained = self._drained, None
        if fut is not None and not fut.done():
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)
        if error is not None:
            self._out.clear()

    def _fail(self, error: TransportError) -> None:
        log.info("event=serial_lost port=%s reason=%s", self.port, error)
        self._detach()
        self._finish_drain(error)
        self._inbox.fail(error)

    def _detach(self) -> None:
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)

"""A fake USB board on a pty, for the serial transport tests.

The test holds the pty master; the gateway (or the MicroPython firmware)
opens the slave through a stable symlink, which unplug()/replug() remove and
recreate the way udev does for /dev/serial/by-id/... links.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import tty

from helpers import DEADLINE_S
from meshlink.serialframe import SerialDecoder, encode


class PtyBoard:
    def __init__(self, link: pathlib.Path) -> None:
        self.link = link
        self.decoder = SerialDecoder()
        self.received: asyncio.Queue[bytes] = asyncio.Queue()
        self.master = -1
        self.slave = -1
        self.replug()

    def replug(self) -> None:
        """Create a fresh pty and point the link at its slave."""
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.link.unlink(missing_ok=True)
        self.link.symlink_to(os.ttyname(self.slave))
        asyncio.get_running_loop().add_reader(self.master, self._on_readable)

    def unplug(self) -> None:
        """Remove the device: close both ends and the link."""
        asyncio.get_running_loop().remove_reader(self.master)
        self.link.unlink(missing_ok=True)
        os.close(self.master)
        os.close(self.slave)
        self.master = self.slave = -1

    def _on_readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except BlockingIOError:
            return
        except OSError:  # EIO: nobody has the slave open right now
            return
        for payload in self.decoder.feed(data):
            self.received.put_nowait(payload)

    def send(self, payload: bytes) -> None:
        self.send_raw(encode(payload))

    def send_raw(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.master, view)
            view = view[n:]

    async def recv(self, timeout_s: float = DEADLINE_S) -> bytes:
        return await asyncio.wait_for(self.received.get(), timeout_s)

    def close(self) -> None:
        if self.master >= 0:
            self.unplug()

"""A frame-level TCP proxy and raw-socket helpers for the adversarial tests
(in-process nodes and waits: tests/helpers)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from meshlink.frames import Deframer, encode_frame


async def read_frame(reader: asyncio.StreamReader, deframer: Deframer) -> bytes:
    while True:
        # one frame at a time is enough here: the tests send a frame and wait
        chunk = await reader.read(65536)
        if not chunk:
            raise EOFError
        frames = deframer.feed(chunk)
        if frames:
            return frames[0]


async def wait_closed_by_peer(reader: asyncio.StreamReader, timeout_s: float) -> bool:
    """True if the peer closes the connection within timeout_s."""
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), timeout_s)
            if not chunk:
                return True
    except TimeoutError:
        return False
    except ConnectionError:
        return True


class FrameProxy:
    """TCP proxy that forwards whole frames and lets a test tamper with them.

    tamper(direction, index, frame) returns the list of frames to forward
    instead (empty list drops, two frames replay, etc.). direction is "c2s"
    or "s2c"; index counts frames in that direction from 0.
    """

    def __init__(self, target: tuple[str, int],
                 tamper: Callable[[str, int, bytes], list[bytes]]) -> None:
        self.target = target
        self.tamper = tamper
        self.server: asyncio.AbstractServer | None = None
        self.addr: tuple[str, int] = ("127.0.0.1", 0)
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> FrameProxy:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.addr = self.server.sockets[0].getsockname()[:2]
        return self

    async def _client(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        sr, sw = await asyncio.open_connection(*self.target)
        for t in (self._pump(cr, sw, "c2s"), self._pump(sr, cw, "s2c")):
            task = asyncio.get_running_loop().create_task(t)
            self._tasks.add(task)

    async def _pump(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, direction: str):
        deframer = Deframer()
        index = 0
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                chunk = await r.read(65536)
                if not chunk:
                    break
                for frame in deframer.feed(chunk):
                    for out in self.tamper(direction, index, frame):
                        w.write(encode_frame(out))
                    index += 1
                await w.drain()
        w.close()

    async def close(self) -> None:
        if self.server:
            self.server.close()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

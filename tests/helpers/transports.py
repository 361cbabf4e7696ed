"""A transport under the one reconnect supervisor (transports.base.supervise),
with queues to await on: what the serial and BLE transport tests share."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from meshlink_gw.transports.base import supervise

from helpers import DEADLINE_S


class Supervised:
    """supervise(make) in a task; frames, ups and downs land on queues.

    attempts counts make() calls; retried is set from the third attempt on.
    """

    def __init__(self, make: Callable[[], Any], *, initial_backoff_ms: int,
                 max_backoff_ms: int) -> None:
        self.frames: asyncio.Queue[bytes] = asyncio.Queue()
        self.ups: asyncio.Queue[Any] = asyncio.Queue()
        self.downs: asyncio.Queue[str] = asyncio.Queue()
        self.stop = asyncio.Event()
        self.attempts = 0
        self.retried = asyncio.Event()

        def counted() -> Any:
            self.attempts += 1
            if self.attempts >= 3:
                self.retried.set()
            return make()

        self.task = asyncio.create_task(supervise(
            counted, self.frames.put_nowait, initial_backoff_ms=initial_backoff_ms,
            max_backoff_ms=max_backoff_ms, stop_event=self.stop, on_up=self.ups.put_nowait,
            on_down=lambda t, r: self.downs.put_nowait(r)))

    async def up(self) -> Any:
        """The next transport the supervisor opened."""
        return await asyncio.wait_for(self.ups.get(), DEADLINE_S)

    async def down(self) -> str:
        """Why the next link went down."""
        return await asyncio.wait_for(self.downs.get(), DEADLINE_S)

    async def frame(self) -> bytes:
        return await asyncio.wait_for(self.frames.get(), DEADLINE_S)

    async def shutdown(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, DEADLINE_S)


@contextlib.asynccontextmanager
async def supervised(make: Callable[[], Any], **backoff: int) -> AsyncIterator[Supervised]:
    h = Supervised(make, **backoff)
    try:
        yield h
    finally:
        await h.shutdown()

"""The one transport interface and the one reconnect supervisor.

Rule: a transport is a thin adapter. It opens, closes, sends one frame and
yields received frames; vendor exceptions (SerialException, BleakError,
OSError, paho return codes) become meshlink.errors.TransportError inside the
adapter. It never reconnects by itself: supervise() does that for every
adapter, with exponential backoff and jitter.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

from meshlink.errors import MeshLinkError, TransportError

from meshlink_gw.runtime import Backoff

log = logging.getLogger("meshlink.transport")

class Transport:
    """Base of every adapter.

    Attributes:
        mtu: largest frame payload send() accepts, in bytes.
        kind: "stream" (bytes need a deframer) or "datagram" (whole frames).
        name: short label for logs, e.g. "serial:/dev/ttyUSB0".
    """

    mtu: int = 0
    kind: str = "datagram"
    name: str = "transport"

    async def open(self) -> None:
        """Connect. Raises TransportError."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release everything; safe to call twice and after a failure."""
        raise NotImplementedError

    async def send(self, frame: bytes) -> None:
        """Send one frame payload. Raises TransportError."""
        raise NotImplementedError

    def __aiter__(self) -> AsyncIterator[bytes]:
        """Yield received frame payloads until the link ends.

        Ends quietly when closed locally; raises TransportError when it fails.
        """
        raise NotImplementedError


class FrameInbox:
    """Bounded hand-off from I/O callbacks to the frame iterator.

    put() never blocks: when full, the newest frame is dropped and counted.
    fail(err) ends iteration with err raised; close() ends it quietly.
    """

    def __init__(self, max_frames: int = 256) -> None:
        self._frames: collections.deque[bytes] = collections.deque()
        self._max = max_frames
        self._wake = asyncio.Event()
        self._error: TransportError | None = None
        self._closed = False
        self.dropped = 0

    def put(self, frame: bytes) -> None:
        if self._closed or self._error is not None:
            return
        if len(self._frames) >= self._max:
            self.dropped += 1
            return
        self._frames.append(frame)
        self._wake.set()

    def fail(self, error: TransportError) -> None:
        if self._error is None and not self._closed:
            self._error = error
        self._wake.set()

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    @property
    def error(self) -> TransportError | None:
        return self._error

    async def frames(self) -> AsyncIterator[bytes]:
        while True:
            while self._frames:
                yield self._frames.popleft()
            if self._error is not None:
                raise self._error
            if self._closed:
                return
            self._wake.clear()
            await self._wake.wait()


async def _maybe_await(value: Any) -> None:
    if inspect.isawaitable(value):
        await value


async def _pump(transport: Any, on_frame: Callable[[Any], Any]) -> str:
    """Feed every frame to on_frame; return why the link ended."""
    try:
        async for frame in transport:
            try:
                await _maybe_await(on_frame(frame))
            except MeshLinkError as e:  # a bad frame is the handler's problem, not the link's
                log.warning("event=frame_rejected transport=%s error=%s: %s",
                            transport.name, type(e).__name__, e)
    except TransportError as e:
        return f"failed: {e}"
    return "closed by peer"


async def _run_once(transport: Any, on_frame: Callable[[Any], Any],
                    stop_event: asyncio.Event, on_up: Callable[[Any], Any] | None) -> str | None:
    """Open, pump until the link or stop_event ends; None if it never opened."""
    try:
        await transport.open()
    except TransportError as e:
        log.info("event=transport_open_failed transport=%s reason=%s", transport.name, e)
        return None
    log.info("event=transport_up transport=%s mtu=%d", transport.name, transport.mtu)
    if on_up is not None:
        await _maybe_await(on_up(transport))
    pump = asyncio.ensure_future(_pump(transport, on_frame))
    stopper = asyncio.ensure_future(stop_event.wait())
    try:
        await asyncio.wait({pump, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not pump.done():
            pump.cancel()
    return pump.result() if pump.done() and not pump.cancelled() else "stopped"


async def _wait_or_stop(stop_event: asyncio.Event, delay_ms: int) -> None:
    try:
        await asyncio.wait_for(stop_event.wait(), delay_ms / 1000)
    except TimeoutError:
        pass


async def supervise(
    make_transport: Callable[[], Any],
    on_frame: Callable[[Any], Any],
    *,
    initial_backoff_ms: int = 500,
    max_backoff_ms: int = 30_000,
    stop_event: asyncio.Event,
    on_up: Callable[[Any], Any] | None = None,
    on_down: Callable[[Any, str], Any] | None = None,
    rng: Callable[[], float] = random.random,
) -> None:
    """Keep one link up until stop_event is set: the only reconnect loop.

    Each round builds a fresh transport with make_transport(), opens it,
    calls on_up(transport), feeds every received frame to on_frame(frame)
    (sync or async; a frame is bytes, or an InboundMessage for the MQTT
    session, which reuses this loop), and when the link ends calls on_down(transport, reason),
    closes it and waits an exponential backoff with jitter before the next
    round. The backoff resets after every successful open.

    Raises:
        ConfigError: bad backoff values.
    """
    backoff = Backoff(initial_backoff_ms, max_backoff_ms, rng)
    while not stop_event.is_set():
        transport = make_transport()
        try:
            reason = await _run_once(transport, on_frame, stop_event, on_up)
        finally:
            await _close_quietly(transport)
        if reason is not None:
            backoff.reset()
            if on_down is not None:
                await _maybe_await(on_down(transport, reason))
        if stop_event.is_set():
            break
        delay_ms = backoff.next_ms()
        log.warning("event=transport_down transport=%s reason=%s retry_ms=%d",
                    transport.name, reason or "open failed", delay_ms)
        await _wait_or_stop(stop_event, delay_ms)


async def _close_quietly(transport: Any) -> None:
    try:
        await transport.close()
    except TransportError as e:
        log.debug("event=transport_close_error transport=%s error=%s", transport.name, e)

"""Boards wired to the gateway: [[serial]] and [[ble]] entries.

Rule: one supervised transport per entry (transports.base.supervise: the only
reconnect loop). Every frame payload is one board-link message, handed to
BoardSessions.handle exactly like a UDP datagram or a TCP frame; a
LinkPeer answers on the same transport. A link's session ends when its
transport goes down; the board then handshakes again on the next one.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Any

from meshlink.errors import MeshLinkError

from meshlink_gw.config import BleLinkConfig, SerialLinkConfig
from meshlink_gw.transports.base import supervise

log = logging.getLogger("meshlink.gateway")

MAX_QUEUED_FRAMES = 64  # frames waiting for a slow link; more are dropped (counted)


class LinkPeer:
    """The board at the far end of one transport, for BoardSessions.

    Sends go through one writer task, so frames leave whole and in order
    even when a transport's send awaits (BLE writes a frame as fragments).
    """

    roams = False

    def __init__(self, transport: Any, kind: str, board: str) -> None:
        self.transport = transport
        self.kind = kind
        self.board = board  # the only board accepted on this link
        self.link = None
        self.dropped = 0
        self._out: collections.deque[bytes] = collections.deque()
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._writer(),
                                                            name=f"{kind}-writer")

    def send(self, data: bytes) -> None:
        if len(self._out) >= MAX_QUEUED_FRAMES:
            self.dropped += 1
            return
        self._out.append(data)
        self._wake.set()

    async def _writer(self) -> None:
        while True:
            while self._out:
                try:
                    await self.transport.send(self._out.popleft())
                except MeshLinkError as e:  # the pump sees the link fail and reconnects
                    log.info("event=link_send_failed link=%s error=%s", self.describe(), e)
            self._wake.clear()
            await self._wake.wait()

    def close(self) -> None:
        self._task.cancel()

    def same(self, other: Any) -> bool:
        return other is self

    def describe(self) -> str:
        return str(self.transport.name)

    def attach(self, link: Any) -> None:
        self.link = link

    def session_ended(self, why: str) -> None:
        pass  # the port stays open: the board handshakes again on it


class BoardLinkRunner:
    """Keeps one [[serial]] or [[ble]] entry connected and feeds its frames in.

    Args:
        kind: "serial" or "ble"; name: for logs and status.
        board: the registered board expected on it.
        make_transport: builds a fresh transport per connection attempt.
        handle: BoardSessions.handle; close_link: BoardSessions.close_link.
    """

    def __init__(self, kind: str, name: str, board: str, make_transport: Callable[[], Any],
                 handle: Callable[[bytes, Any], None],
                 close_link: Callable[[Any, str], None], *, initial_backoff_ms: int,
                 max_backoff_ms: int) -> None:
        self.kind = kind
        self.name = name
        self.board = board
        self.make_transport = make_transport
        self.handle = handle
        self.close_link = close_link
        self.initial_backoff_ms = initial_backoff_ms
        self.max_backoff_ms = max_backoff_ms
        self.peer: LinkPeer | None = None
        self.ups = 0
        self.transport: Any = None
        self._stop = asyncio.Event()

    async def run(self) -> None:
        """Supervise the link until stop()."""
        await supervise(self.make_transport, self._on_frame,
                        initial_backoff_ms=self.initial_backoff_ms,
                        max_backoff_ms=self.max_backoff_ms, stop_event=self._stop,
                        on_up=self._on_up, on_down=self._on_down)

    def stop(self) -> None:
        self._stop.set()

    def _on_up(self, transport: Any) -> None:
        self.ups += 1
        self.transport = transport
        self.peer = LinkPeer(transport, self.kind, self.board)
        log.info("event=board_link_up link=%s board=%s", self.name, self.board)

    def _on_frame(self, frame: bytes) -> None:
        if self.peer is not None:
            self.handle(frame, self.peer)

    def _on_down(self, transport: Any, reason: str) -> None:
        peer, self.peer = self.peer, None
        if peer is None:
            return
        peer.close()
        if peer.link is not None and not peer.link.closed:
            self.close_link(peer.link, f"{self.kind} link down ({reason})")

    def status(self) -> dict[str, Any]:
        """For `meshlink status`: up?, connections, and skipped garbage (serial)."""
        decoder = getattr(self.transport, "decoder", None)
        return {"link": self.name, "board": self.board, "up": self.peer is not None,
                "connections": self.ups,
                "garbage": decoder.error_count() if decoder is not None else None,
                "dropped_out": self.peer.dropped if self.peer is not None else 0}


def serial_runner(entry: SerialLinkConfig, handle, close_link,
                  serial_factory: Callable[[str, int], Any] | None = None) -> BoardLinkRunner:
    """A runner for one [[serial]] entry."""
    from meshlink_gw.transports.serial import SerialTransport

    def make() -> Any:
        return SerialTransport(entry.port, baudrate=entry.baudrate,
                               serial_factory=serial_factory)

    return BoardLinkRunner("serial", f"serial:{entry.port}", entry.board, make, handle,
                           close_link, initial_backoff_ms=entry.reconnect_initial_ms,
                           max_backoff_ms=entry.reconnect_max_ms)


def ble_runner(entry: BleLinkConfig, handle, close_link, scanner_cls: Any = None,
               client_cls: Any = None) -> BoardLinkRunner:
    """A runner for one [[ble]] entry (scanner_cls/client_cls: bleak or a fake)."""
    from meshlink_gw.transports.ble import BleTransport

    def make() -> Any:
        return BleTransport(address=entry.address, board_name=entry.name,
                            scan_timeout_s=entry.scan_timeout_s,
                            connect_timeout_s=entry.connect_timeout_s,
                            scanner_cls=scanner_cls, client_cls=client_cls)

    return BoardLinkRunner("ble", f"ble:{entry.address or entry.name}", entry.board, make,
                           handle, close_link, initial_backoff_ms=entry.reconnect_initial_ms,
                           max_backoff_ms=entry.reconnect_max_ms)

"""Boards over TCP: one connection per board, [4-byte length][message] frames.

Rule: a thin listener. A session belongs to its connection: it ends when the
connection does, and the connection is closed when its session ends (except
when the board replaced it by a new session on the same connection).
Connections without a session are dropped after handshake_timeout_ms, idle
ones after offline_after_ms; at most max_tcp_connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from meshlink.errors import ConfigError, DecodeError
from meshlink.frames import Deframer, encode_frame

from meshlink_gw.boards.sessions import REPLACED_HERE
from meshlink_gw.config import GatewayConfig

log = logging.getLogger("meshlink.gateway")

TCP_WRITE_BUFFER_MAX_BYTES = 256 * 1024  # a board that reads nothing is cut off
READ_CHUNK_BYTES = 65536


class TcpPeer:
    """One board TCP connection."""

    kind = "tcp"
    roams = False
    board = None  # any registered board may connect

    def __init__(self, writer: asyncio.StreamWriter, max_frame_bytes: int) -> None:
        self.writer = writer
        self.max_frame_bytes = max_frame_bytes
        peer = writer.get_extra_info("peername") or ("?", 0)
        self.addr = (peer[0], peer[1])
        self.closed = False
        self.link = None

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        if self.writer.transport.get_write_buffer_size() > TCP_WRITE_BUFFER_MAX_BYTES:
            log.warning("board connection %s reads nothing; closing it", self.describe())
            self.close()
            return
        self.writer.write(encode_frame(data, self.max_frame_bytes))

    def same(self, other) -> bool:
        return other is self

    def attach(self, link) -> None:
        self.link = link

    def session_ended(self, why: str) -> None:
        if why != REPLACED_HERE:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()

    def describe(self) -> str:
        return "tcp:%s:%d" % self.addr


class TcpListener:
    """Accepts board connections and feeds their frames to handle(frame, peer).

    close_link(link, why) ends the session of a connection that went away;
    refuse is RefusalLog.refuse.
    """

    def __init__(self, cfg: GatewayConfig, max_frame_bytes: int,
                 handle: Callable[[bytes, TcpPeer], None],
                 close_link: Callable[[Any, str], None],
                 refuse: Callable[..., None]) -> None:
        self.cfg = cfg
        self.max_frame_bytes = max_frame_bytes
        self.handle = handle
        self.close_link = close_link
        self.refuse = refuse
        self.peers: set[TcpPeer] = set()
        self.addr: tuple[str, int] | None = None
        self._server: asyncio.AbstractServer | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen; returns the bound address. Raises ConfigError."""
        try:
            self._server = await asyncio.start_server(self._client, host, port,
                                                      reuse_address=True)
        except OSError as e:
            raise ConfigError(f"cannot listen for boards on tcp {host}:{port}: {e.strerror}")
        self.addr = self._server.sockets[0].getsockname()[:2]
        return self.addr

    async def _client(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        peer = TcpPeer(writer, self.max_frame_bytes)
        if len(self.peers) >= self.cfg.max_tcp_connections:
            self.refuse("connection_cap", "too many board connections", peer=peer)
            peer.close()
            return
        self.peers.add(peer)
        try:
            await self._read_frames(reader, peer)
        except DecodeError as e:
            self.refuse("malformed", str(e), peer=peer)
        except (TimeoutError, ConnectionError, OSError):
            pass
        finally:
            self.peers.discard(peer)
            if peer.link is not None and not peer.link.closed:
                self.close_link(peer.link, "connection closed")
            peer.close()

    async def _read_frames(self, reader: asyncio.StreamReader, peer: TcpPeer) -> None:
        deframer = Deframer(self.max_frame_bytes)
        while not peer.closed:
            established = peer.link is not None and not peer.link.closed
            timeout = (self.cfg.offline_after_ms if established
                       else self.cfg.handshake_timeout_ms) / 1000
            chunk = await asyncio.wait_for(reader.read(READ_CHUNK_BYTES), timeout)
            if not chunk:
                return
            for frame in deframer.feed(chunk):
                self.handle(frame, peer)
                if peer.closed:
                    return

    def close(self) -> None:
        """Stop accepting and close every connection."""
        if self._server is not None:
            self._server.close()
        for peer in list(self.peers):
            peer.close()

    async def wait_closed(self) -> None:
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

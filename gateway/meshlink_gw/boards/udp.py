"""Boards over UDP (one datagram = one board-link message), and the GatewayBeacon.

Rule: a thin listener. Datagrams go to the session handler as they are; the
only check here is the size cap, before anything else looks at them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable

from meshlink import messages
from meshlink.errors import ConfigError

log = logging.getLogger("meshlink.gateway")

RCVBUF_BYTES = 4 << 20  # a big buffer absorbs bursts from many boards


class UdpPeer:
    """Where a datagram came from, and how to answer it."""

    kind = "udp"
    roams = True  # a board that changes address keeps its session
    board = None  # any registered board may use UDP
    __slots__ = ("transport", "addr")

    def __init__(self, transport: asyncio.DatagramTransport, addr) -> None:
        self.transport = transport
        self.addr = addr

    def send(self, data: bytes) -> None:
        self.transport.sendto(data, self.addr)

    def same(self, other) -> bool:
        return other.kind == "udp"

    def describe(self) -> str:
        return "udp:%s:%d" % (self.addr[0], self.addr[1])

    def attach(self, link) -> None:
        pass

    def session_ended(self, why: str) -> None:
        pass


class UdpProtocol(asyncio.DatagramProtocol):
    """Hands each datagram (at most max_bytes) to handle(data, peer)."""

    def __init__(self, handle: Callable[[bytes, UdpPeer], None], max_bytes: int,
                 refuse: Callable[..., None]) -> None:
        self.handle = handle
        self.max_bytes = max_bytes
        self.refuse = refuse
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        if len(data) > self.max_bytes:
            self.refuse("malformed", "datagram of %d bytes" % len(data))
            return
        if self.transport is not None:
            self.handle(data, UdpPeer(self.transport, addr))

    def error_received(self, exc: Exception) -> None:
        log.debug("board udp socket: %s", exc)


def _udp_socket(addr: tuple[str, int]) -> socket.socket:
    family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)  # no SO_REUSEADDR: one owner
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen for boards on udp {addr[0]}:{addr[1]}: "
                          f"{e.strerror}")
    sock.setblocking(False)
    return sock


async def open_udp(addr: tuple[str, int], protocol: UdpProtocol
                   ) -> tuple[asyncio.DatagramTransport, tuple[str, int]]:
    """Listen for boards on UDP addr -> (transport, bound address).

    Raises:
        ConfigError: the address cannot be bound.
    """
    sock = _udp_socket(addr)
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: protocol, sock=sock)
    return transport, sock.getsockname()[:2]


async def beacon_loop(node_id: str, udp_port: int, tcp_port: int, broadcast: str,
                      port: int, interval_ms: int, opened: Callable[[socket.socket], None]
                      ) -> None:
    """Broadcast a GatewayBeacon every interval_ms, forever (cancel to stop).

    opened(sock) gets the socket so the caller can close it.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.setblocking(False)
    opened(sock)
    beacon = messages.GatewayBeacon(node_id=node_id, udp_port=udp_port,
                                    tcp_port=tcp_port).encode()
    warned = False
    while True:
        try:
            sock.sendto(beacon, (broadcast, port))
        except OSError as e:
            if not warned:
                log.warning("gateway beacon to %s:%d failed: %s", broadcast, port, e.strerror)
                warned = True
        await asyncio.sleep(interval_ms / 1000)

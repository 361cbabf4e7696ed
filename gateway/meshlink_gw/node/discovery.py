"""LAN discovery (the whitepaper's DiscoveryManager): UDP broadcast beacons.

Rule: a beacon only suggests an address. The node dials it with the beacon's
node ID as the expected identity, and the handshake decides whether to trust
it; the set of suggested addresses being dialed is bounded and decays
(PeerTable.dial_suggested), so forged beacons cost a few refused dials.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import OrderedDict
from collections.abc import Callable

from meshlink import messages
from meshlink.errors import MeshLinkError

log = logging.getLogger("meshlink.discovery")

MAX_SEEN = 256  # node IDs remembered from beacons


class _BeaconProtocol(asyncio.DatagramProtocol):
    def __init__(self, on_beacon: Callable[[messages.Beacon, tuple[str, int]], None]) -> None:
        self.on_beacon = on_beacon
        self.bad = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            msg = messages.decode(data)
        except MeshLinkError as e:
            self.bad += 1
            log.debug("ignoring datagram from %s: %s", addr, e)
            return
        if msg.TYPE == "beacon":
            self.on_beacon(msg, addr)


class Discovery:
    """Sends our beacon periodically and reports others' beacons."""

    def __init__(self, node_id: str, tcp_port: int, *, port: int, broadcast_addr: str,
                 interval_ms: int, on_peer: Callable[[str, tuple[str, int]], None],
                 bind_host: str = "0.0.0.0") -> None:
        self.node_id = node_id
        self.tcp_port = tcp_port
        self.port = port
        self.broadcast_addr = broadcast_addr
        self.interval_ms = interval_ms
        self.on_peer = on_peer
        self.bind_host = bind_host
        self._transport: asyncio.DatagramTransport | None = None
        # the last address of each node ID, newest last; bounded (beacons are forgeable)
        self.seen: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self.heard = 0  # beacons of other nodes received

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.bind((self.bind_host, self.port))
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _BeaconProtocol(self._on_beacon), sock=sock)
        log.info("discovery on udp/%d, beacons to %s", self.port, self.broadcast_addr)

    def _on_beacon(self, msg: messages.Beacon, addr: tuple[str, int]) -> None:
        if msg.node_id == self.node_id:
            return
        self.heard += 1
        tcp_addr = (addr[0], msg.port)
        if self.seen.get(msg.node_id) != tcp_addr:
            # at INFO only while the table has room: forged beacons must not flood the log
            level = logging.INFO if len(self.seen) < MAX_SEEN else logging.DEBUG
            log.log(level, "beacon: %s at %s:%d", msg.node_id, *tcp_addr)
        self.seen[msg.node_id] = tcp_addr
        self.seen.move_to_end(msg.node_id)
        while len(self.seen) > MAX_SEEN:
            self.seen.popitem(last=False)
        self.on_peer(msg.node_id, tcp_addr)

    async def run(self) -> None:
        beacon = messages.Beacon(node_id=self.node_id, port=self.tcp_port).encode()
        while True:
            if self._transport is not None:
                try:
                    self._transport.sendto(beacon, (self.broadcast_addr, self.port))
                except OSError as e:
                    log.warning("beacon send failed: %s", e)
            await asyncio.sleep(self.interval_ms / 1000)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

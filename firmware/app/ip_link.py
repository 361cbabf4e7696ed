# The board link over WiFi: gateway discovery (GatewayBeacon), UDP and TCP
# transports. Only UDP and TCP boards import this module (app.link, on the
# first connect): a serial or BLE board keeps its ~4 KB of heap.
# Rules: as app.link: socket errors become TransportError; every socket
# opened here is closed by close() (a board has 10 in total). UDP: one
# datagram = one message, a non-blocking socket polled with asyncio.sleep_ms
# (MicroPython has no asyncio UDP API). TCP: asyncio streams + meshlink.frames.
import asyncio
import errno
import gc
import select
import socket

from meshlink import PROTOCOL_VERSION, cjson
from meshlink._compat import const
from meshlink.boardlink import RECORD_OVERHEAD_BYTES
from meshlink.errors import DecodeError, TransportError
from meshlink.nodeid import is_id

from app import platform
from app.link import MAX_RECORD_PLAINTEXT

_POLL_MS = const(10)  # UDP receive polling period: the added latency bound
_DISCOVERY_POLL_MS = const(50)
_TCP_READ_BYTES = const(256)
_UDP_MAX_BYTES = const(797)  # MAX_RECORD_PLAINTEXT + RECORD_OVERHEAD_BYTES


def _addr(host, port, kind):
    """getaddrinfo (blocks the loop briefly; the unix port needs its address
    objects) -> address. Raises TransportError."""
    try:
        return socket.getaddrinfo(host, port, 0, kind)[0][-1]
    except (OSError, IndexError) as e:
        raise TransportError("cannot resolve %s:%d (%s)" % (host, port, e))


def _would_block(e):
    return e.errno == errno.EAGAIN or e.errno == errno.ETIMEDOUT


class UdpTransport:
    """One connected, non-blocking UDP socket: send(msg), await recv()."""

    name = "udp"

    def __init__(self):
        self.sock = None
        self._poller = None
        self._reserve = None

    async def open(self, host, port):
        addr = _addr(host, port, socket.SOCK_DGRAM)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.setblocking(False)
            s.connect(addr)  # the kernel then drops datagrams from anyone else
        except OSError as e:
            s.close()
            raise TransportError("udp connect %s:%d: %s" % (host, port, e))
        self.sock = s
        # recv() needs _UDP_MAX_BYTES in one piece for every datagram (readinto()
        # would merge datagrams): a block kept from the start, while the heap is
        # whole, and given up when a fragmented heap has no such piece left
        self._reserve = bytearray(_UDP_MAX_BYTES)
        self._poller = select.poll()
        self._poller.register(s, select.POLLIN)

    async def send(self, msg):
        try:
            self.sock.send(msg)
        except OSError as e:
            raise TransportError("udp send: %s" % e)

    async def recv(self):
        """Wait for the next datagram (polling). Raises TransportError.

        recv() allocates its whole buffer even when nothing is there, so
        ipoll(0) (no allocation) checks first: an idle link makes no garbage.
        """
        while True:
            for _ in self._poller.ipoll(0):  # type: ignore[attr-defined]
                try:
                    data = self._recv()
                except OSError as e:
                    if not _would_block(e):  # e.g. ECONNREFUSED: nobody on that port
                        raise TransportError("udp recv: %s" % e)
                    break
                if data:
                    return data
            await asyncio.sleep_ms(_POLL_MS)

    def _recv(self):
        """sock.recv of one datagram; it stays queued if recv's buffer cannot be
        allocated, so then the reserve goes and recv runs again in its place."""
        try:
            return self.sock.recv(_UDP_MAX_BYTES)
        except MemoryError:
            if self._reserve is None:
                raise
            self._reserve = None
            gc.collect()
            data = self.sock.recv(_UDP_MAX_BYTES)
            try:
                self._reserve = bytearray(_UDP_MAX_BYTES)  # where recv's buffer just was
            except MemoryError:
                pass
            return data

    async def close(self):
        self._reserve = None
        if self.sock is not None:
            self._poller.unregister(self.sock)
            self.sock.close()
            self.sock = None


class TcpTransport:
    """asyncio streams, each message framed [4-byte length][message]."""

    name = "tcp"

    def __init__(self):
        from meshlink import frames  # only TCP boards pay for it

        self.reader = None
        self.writer = None
        self._encode = frames.encode_frame
        self._deframer = frames.Deframer(MAX_RECORD_PLAINTEXT + RECORD_OVERHEAD_BYTES)
        self._frames = []

    async def open(self, host, port):
        _addr(host, port, socket.SOCK_STREAM)  # a readable error for a bad name
        try:
            self.reader, self.writer = await asyncio.open_connection(host, port)
        except OSError as e:
            raise TransportError("tcp connect %s:%d: %s" % (host, port, e))

    async def send(self, msg):
        try:
            self.writer.write(self._encode(msg))
            await self.writer.drain()
        except OSError as e:
            raise TransportError("tcp send: %s" % e)

    async def recv(self):
        """Wait for the next framed message. Raises TransportError (closed,
        socket error) or FrameTooLargeError (a DecodeError: drop the link)."""
        while not self._frames:
            try:
                data = await self.reader.read(_TCP_READ_BYTES)
            except OSError as e:
                raise TransportError("tcp recv: %s" % e)
            if not data:
                raise TransportError("tcp: the gateway closed the connection")
            self._frames.extend(self._deframer.feed(data))
        return self._frames.pop(0)

    async def close(self):
        if self.writer is not None:
            writer = self.writer
            self.writer = None
            try:
                writer.close()
                await writer.wait_closed()  # close() alone keeps the socket
            except OSError:
                pass


def parse_beacon(data):
    """A GatewayBeacon datagram -> (node_id, udp_port, tcp_port), or None if it
    is anything else. Checks exactly what messages.GatewayBeacon checks (the
    exact field set, version, UUID, ports); meshlink.messages itself costs a
    board ~13 KB of heap, so it is not imported here (tests compare both)."""
    try:
        obj = cjson.loads(data)
    except DecodeError:
        return None
    if (type(obj) is not dict or len(obj) != 5 or obj.get("type") != "gw_beacon"
            or obj.get("v") != PROTOCOL_VERSION or not is_id(obj.get("node_id"))):
        return None
    ports = (obj.get("udp_port"), obj.get("tcp_port"))
    for port in ports:
        if type(port) is not int or port < 0 or port > 65535:
            return None
    return obj["node_id"], ports[0], ports[1]


async def discover(port, timeout_ms, clock):
    """Listen for a GatewayBeacon on UDP port -> (host, node_id, udp_port, tcp_port).

    Raises:
        TransportError: no valid beacon within timeout_ms, or the port is busy.
    """
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(_addr("0.0.0.0", port, socket.SOCK_DGRAM))
        s.setblocking(False)
        deadline = clock.now_ms() + timeout_ms
        while clock.now_ms() < deadline:
            try:
                data, source = s.recvfrom(512)
            except OSError as e:
                if not _would_block(e):
                    raise
                await asyncio.sleep_ms(_DISCOVERY_POLL_MS)
                continue
            beacon = parse_beacon(data)
            if beacon is not None:
                return (platform.peer_host(source),) + beacon
    except OSError as e:
        raise TransportError("discovery on UDP port %d: %s" % (port, e))
    finally:
        s.close()
    raise TransportError("no GatewayBeacon on UDP port %d in %d ms" % (port, timeout_ms))

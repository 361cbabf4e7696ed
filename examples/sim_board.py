"""CPython stand-in boards: the board link (meshlink.boardlink.BoardClient)
over UDP, TCP or any message link (serial, BLE fakes), without the firmware.
Used by the board benchmark (thousands of boards in one process) and by
tests that need a misbehaving board (a flooder, a forger); the real firmware
runs on the MicroPython unix port.

Rule: test and benchmark tooling; waits are bounded by timeouts.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable

from meshlink import boardlink, cjson
from meshlink._compat import b64decode
from meshlink.errors import MeshLinkError, TransportError
from meshlink.frames import Deframer, encode_frame
from meshlink_gw.runtime import now_ms


class SimBoard:
    """One board: handshake, then seal/send records and receive decoded ones.

    Over UDP several SimBoards may share one SharedUdp socket (the gateway
    tells sessions apart by sid, not by address); over TCP each has its own
    connection.
    """

    def __init__(self, psk: bytes, board_id: bytes, boot_ctr: int = 1,
                 node_id: str | None = None) -> None:
        self.psk = psk
        self.board_id = board_id
        self.boot_ctr = boot_ctr
        self.node_id = node_id
        self.client: boardlink.BoardClient | None = None
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.raw_out: list[bytes] = []  # every datagram/frame sent (for replay tests)
        self.confirmed: list[tuple] = []  # (seq, to) of each "got" from the gateway
        self.stale = 0  # STALE replies received
        self._send_raw: Callable[[bytes], None] | None = None
        self._challenge: asyncio.Future | None = None
        self._tcp: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._reader_task: asyncio.Task | None = None

    # -- transports ----------------------------------------------------------------
    async def connect_udp(self, shared: SharedUdp, gateway: tuple[str, int],
                          timeout_s: float = 5.0) -> None:
        def send(data: bytes) -> None:
            shared.sock.sendto(data, gateway)
        self._send_raw = send
        await self._handshake(lambda: shared.pending.__setitem__(id(self), self),
                              lambda: shared.pending.pop(id(self), None), shared, timeout_s)

    async def connect_tcp(self, gateway: tuple[str, int], timeout_s: float = 5.0) -> None:
        reader, writer = await asyncio.open_connection(*gateway)
        self._tcp = (reader, writer)

        def send(data: bytes) -> None:
            writer.write(encode_frame(data))
        self._send_raw = send
        self._reader_task = asyncio.get_running_loop().create_task(self._tcp_reader(reader))
        await self._handshake(None, None, None, timeout_s)

    async def connect_link(self, send: Callable[[bytes], None],
                           timeout_s: float = 5.0) -> None:
        """Handshake over any message link: send(message) carries one board-link
        message; the caller passes every message that arrives to on_message()."""
        self._send_raw = send
        await self._handshake(None, None, None, timeout_s)

    async def _tcp_reader(self, reader: asyncio.StreamReader) -> None:
        deframer = Deframer(boardlink.MAX_PLAINTEXT_BYTES + 64)
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                self.inbox.put_nowait(None)
                return
            for frame in deframer.feed(chunk):
                self.on_message(frame)

    async def _handshake(self, register, unregister, shared, timeout_s: float) -> None:
        self.client = boardlink.BoardClient(self.psk, self.board_id, self.boot_ctr,
                                            os.urandom(16))
        loop = asyncio.get_running_loop()
        self._challenge = loop.create_future()
        if register:
            register()
        try:
            deadline = loop.time() + timeout_s
            while True:
                self.send_raw(self.client.hello())
                left = deadline - loop.time()
                if left <= 0:
                    raise TransportError("no CHALLENGE from the gateway")
                try:
                    challenge = await asyncio.wait_for(asyncio.shield(self._challenge),
                                                       min(1.0, left))
                    break
                except TimeoutError:
                    continue
        finally:
            if unregister:
                unregister()
        confirm = self.client.handle_challenge(challenge, now_ms())
        if shared is not None:
            shared.sessions[self.client.sid] = self
        self.send_raw(confirm)

    def send_raw(self, data: bytes) -> None:
        self.raw_out.append(data)
        if len(self.raw_out) > 64:
            del self.raw_out[:32]
        if self._send_raw is None:
            raise TransportError("not connected")
        self._send_raw(data)

    # -- records -------------------------------------------------------------------
    def send(self, obj: dict) -> bytes:
        """Seal obj (canonical JSON) and send it; returns the record bytes."""
        if self.client is None:
            raise TransportError("not connected")
        record = self.client.seal(cjson.dumps(obj), now_ms())
        self.send_raw(record)
        return record

    def on_message(self, data: bytes) -> None:
        t = data[0] if data else 0
        if t == boardlink.T_CHALLENGE:
            if self._challenge is not None and not self._challenge.done():
                self._challenge.set_result(data)
            elif self.client is not None and self.client.state == boardlink.ESTABLISHED:
                try:
                    self.send_raw(self.client.handle_challenge(data, now_ms()))
                except MeshLinkError:
                    pass
            return
        if t == boardlink.T_STALE:
            self.stale += 1  # the gateway lost our session (a real board re-handshakes)
            return
        if t != boardlink.T_RECORD or self.client is None:
            return
        try:
            obj = cjson.loads(self.client.open(data, now_ms()))
        except MeshLinkError:
            return
        if obj.get("t") == "got":  # a reading confirmed: kept apart from the inbox
            self.confirmed.append((obj.get("seq"), obj.get("to")))
            return
        self.inbox.put_nowait(obj)

    async def recv(self, timeout_s: float = 5.0) -> dict:
        obj = await asyncio.wait_for(self.inbox.get(), timeout_s)
        if obj is None:
            raise TransportError("the gateway closed the connection")
        return obj

    async def recv_msg(self, timeout_s: float = 5.0, ack: bool = True) -> dict:
        """The next {"t":"msg"} (acked unless ack=False), with data decoded."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            obj = await self.recv(max(0.01, deadline - loop.time()))
            if obj.get("t") == "msg":
                if ack and obj.get("to") is not None:
                    self.send({"t": "ack", "id": obj["id"]})
                obj["data"] = b64decode(obj["data"])
                return obj

    def reading(self, sensor: str, value_milli: int, seq: int, to=None, unit: str = "C"
                ) -> bytes:
        return self.send({"t": "reading", "sensor": sensor, "value_milli": value_milli,
                          "unit": unit, "seq": seq, "to": to})

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
        if self._tcp is not None:
            self._tcp[1].close()


class SharedUdp:
    """One UDP socket shared by many SimBoards; replies are routed by sid."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.sessions: dict[int, SimBoard] = {}
        self.pending: dict[int, SimBoard] = {}  # boards waiting for a CHALLENGE
        self.received = 0

    def start(self) -> None:
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._readable)

    def _readable(self) -> None:
        for _ in range(256):
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self.received += 1
            self._dispatch(data)

    def _dispatch(self, data: bytes) -> None:
        t = data[0] if data else 0
        if t in (boardlink.T_RECORD, boardlink.T_CHALLENGE, boardlink.T_STALE):
            try:
                sid = int.from_bytes(data[1:5], "big")
            except (IndexError, ValueError):
                return
            board = self.sessions.get(sid)
            if board is not None:
                board.on_message(data)
                return
            if t == boardlink.T_CHALLENGE:
                for b in list(self.pending.values()):  # whose HELLO does it answer?
                    if _challenge_for(b, data):
                        b.on_message(data)
                        return

    def close(self) -> None:
        try:
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
        except RuntimeError:
            pass
        self.sock.close()


def _challenge_for(board: SimBoard, challenge: bytes) -> bool:
    """True if challenge answers board's HELLO (its tag verifies under board's key)."""
    client = board.client
    if client is None or client.state != boardlink.AWAIT_CHALLENGE:
        return False
    body = bytes(challenge[:boardlink.CHALLENGE_BODY_BYTES])
    t = boardlink.transcript_hash(client.hello(), body)
    k_auth = boardlink.derive_auth_key(board.psk, board.board_id)
    tag = boardlink.handshake_tag(k_auth, boardlink.LABEL_G, t)
    return bytes(challenge[boardlink.CHALLENGE_BODY_BYTES:]) == tag

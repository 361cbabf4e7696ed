"""One TCP link to a peer: handshake, encrypted session, framed messages.

Rule: this module moves bytes and enforces per-link limits (handshake
deadline, frame size, idle time, bad-record budget). It knows nothing of its
owner: what a message means is decided by the on_message callback that
read_loop() is given; the crypto is meshlink_gw.crypto's.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from meshlink import messages
from meshlink.errors import MeshLinkError, ProtocolError, SessionExpiredError, TransportError
from meshlink.frames import Deframer, encode_frame
from meshlink.liveness import Liveness

from meshlink_gw.crypto.handshake import CookieRequired, Initiator, Responder
from meshlink_gw.crypto.session import REJECT_AFTER_MS, REKEY_AFTER_MS, Session
from meshlink_gw.runtime import now_ms

log = logging.getLogger("meshlink.conn")

READ_CHUNK_BYTES = 65536
MAX_BAD_RECORDS = 8  # consecutive records that fail to open before we give up on the link
FLUSH_AT_BYTES = 64 * 1024  # write out early once this much is queued in one iteration


@dataclass(frozen=True)
class LinkParams:
    """What every link of one node needs to run its handshake and framing."""

    identity: Any  # meshlink_gw.crypto.identity.Identity
    listen_port: int  # announced in the handshake, so the peer can dial us back
    network_key: bytes | None
    max_frame_bytes: int
    handshake_timeout_ms: int
    # an operator may shorten a session's life (never lengthen it): PROTOCOL.md §5.4
    rekey_after_ms: int = REKEY_AFTER_MS
    reject_after_ms: int = REJECT_AFTER_MS
    # TCP_USER_TIMEOUT (Linux): unacknowledged data fails the socket after this; 0: off
    tcp_user_timeout_ms: int = 0
    # node.admission.LoadGate: under load an M1 needs a cookie (PROTOCOL.md §5.3.1)
    load_gate: Any = None
    # runtime.LogLimiter for dropped records (a flood of them must not fill the log)
    refusal_log: Any = None


class PeerConnection:
    """An established (or establishing) session with one neighbour."""

    def __init__(self, params: LinkParams, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, *, outbound: bool,
                 dial_addr: tuple[str, int] | None = None,
                 expected_node_id: str | None = None, cookie: bytes | None = None) -> None:
        self.params = params
        self.reader = reader
        self.writer = writer
        self.outbound = outbound
        self.dial_addr = dial_addr
        self.expected_node_id = expected_node_id
        peer = writer.get_extra_info("peername")
        self.remote_addr: tuple[str, int] = (peer[0], peer[1]) if peer else ("?", 0)
        self.peer_node_id: str | None = None
        self.peer_listen_port: int | None = None
        self.session: Session | None = None
        self.established_ms = 0
        self.last_rx_ms = now_ms()
        self.closed = False
        self.bad_records = 0
        self.records_rejected = 0
        # cookies (§5.3.1): ours for a dial, the one a loaded responder sent us,
        # whether we answered with one, whether we answered with M2 (KEM work)
        self.cookie = cookie
        self.cookie_received: bytes | None = None
        self.cookie_sent = False
        self.m2_sent = False
        self._deframer = Deframer(params.max_frame_bytes)
        self._pending: deque[bytes] = deque()
        self._out: list[bytes] = []
        self._out_bytes = 0
        # liveness (set by the peer table once the link is up): every frame in
        # and out is reported; on_suspect() runs when the link starts owing us
        # an answer, so the table can wake for the probe
        self.liveness: Liveness | None = None
        self.on_suspect: Callable[[], None] | None = None
        self.bytes_sent = 0  # frames written, framing included (control and data)
        self.bytes_received = 0
        set_user_timeout(writer, params.tcp_user_timeout_ms)

    # -- framing ---------------------------------------------------------
    async def _read_frame(self) -> bytes:
        while not self._pending:
            chunk = await self.reader.read(READ_CHUNK_BYTES)
            if not chunk:
                raise TransportError("connection closed by peer")
            self.bytes_received += len(chunk)
            self._pending.extend(self._deframer.feed(chunk))
        return self._pending.popleft()

    def _write_frame(self, payload: bytes) -> None:
        """Queue a frame; all frames queued in one loop iteration go out in one write.

        One write (one syscall) per batch instead of per message is most of
        what lets a relay keep up under load.
        """
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        frame = encode_frame(payload, self.params.max_frame_bytes)
        self._out.append(frame)
        self._out_bytes += len(frame)
        if self._out_bytes >= FLUSH_AT_BYTES:  # a caller that never yields still writes
            self._flush()

    def _flush(self) -> None:
        out, self._out = self._out, []
        self._out_bytes = 0
        if out and not self.writer.is_closing():
            data = b"".join(out)
            self.bytes_sent += len(data)
            self.writer.write(data)

    # -- handshake -------------------------------------------------------
    async def handshake(self) -> None:
        """Run the hybrid handshake within the deadline. It ends without a
        session (session None) when a cookie was sent (cookie_sent: we are
        under load) or received (cookie_received: dial again with it).

        Raises:
            ProtocolError subclasses: the peer failed the handshake.
            TransportError: the socket failed or closed.
            asyncio.TimeoutError: the deadline passed (slowloris, dead peer).
        """
        timeout_s = self.params.handshake_timeout_ms / 1000
        await asyncio.wait_for(self._handshake(), timeout_s)
        if self.session is not None:
            self.established_ms = now_ms()

    async def _handshake(self) -> None:
        prm = self.params
        if self.outbound:
            init = Initiator(prm.identity, listen_port=prm.listen_port,
                             network_psk=prm.network_key,
                             expected_node_id=self.expected_node_id, cookie=self.cookie)
            self._write_frame(init.start())
            self._flush()
            try:
                m3 = init.receive(await self._read_frame(), now_ms=now_ms())
            except CookieRequired as e:
                self.cookie_received = e.cookie
                return
            self._write_frame(m3)
            self._flush()
            hs: Initiator | Responder = init
        else:
            resp = Responder(prm.identity, listen_port=prm.listen_port,
                             network_psk=prm.network_key)
            m1 = await self._read_frame()
            now = now_ms()
            jar = prm.load_gate.jar(now) if prm.load_gate is not None else None
            self._write_frame(resp.receive_hello(m1, cookies=jar, source=self.remote_addr[0],
                                                 now_ms=now))
            self._flush()
            if resp.cookie_sent:
                self.cookie_sent = True  # stateless: the connection ends here
                return
            self.m2_sent = True
            resp.receive_finish(await self._read_frame(), now_ms=now_ms())
            hs = resp
        session = hs.session
        session.shorten_lifetime(prm.rekey_after_ms, prm.reject_after_ms)
        self.session = session
        self.peer_node_id = hs.peer_node_id
        self.peer_listen_port = hs.peer_listen_port

    # -- session ---------------------------------------------------------
    def send(self, msg: messages.Message) -> None:
        """Encrypt and queue one message (non-blocking; see backpressure in node)."""
        self.send_encoded(msg.encode())

    def send_encoded(self, payload: bytes, awaits_answer: bool = False) -> None:
        """Like send() for an already encoded message (relays re-use bytes).

        awaits_answer: the peer should send something back (a directed
        message: its Ack, or traffic it causes); if nothing comes, the link
        is probed quickly (meshlink.liveness)."""
        if self.closed or self.session is None:
            return
        lv = self.liveness
        if lv is not None and lv.sent(now_ms(), awaits_answer) and self.on_suspect is not None:
            self.on_suspect()
        try:
            record = self.session.seal(payload, now_ms())
        except SessionExpiredError:
            # The rekey did not happen in time: never exceed the key's budget.
            log.warning("session with %s expired before rekey: closing", self.peer_node_id)
            self.abort()
            return
        self._write_frame(record)

    def write_buffer_bytes(self) -> int:
        """Bytes queued for this peer: not yet flushed plus in the transport."""
        transport = self.writer.transport
        queued = transport.get_write_buffer_size() if transport is not None else 0
        return queued + self._out_bytes

    async def read_loop(self, on_message: Callable[[PeerConnection, messages.Message], None],
                        on_idle: Callable[[], Awaitable[None]]) -> None:
        """Open and decode records and hand each message to on_message until
        the link ends; await on_idle() (backpressure) whenever the read
        buffer is empty."""
        while not self.closed:
            payload = await self._read_frame()
            self.last_rx_ms = now_ms()
            if self.liveness is not None:  # any frame proves the peer alive, even one
                self.liveness.received(self.last_rx_ms)  # that fails to open
            msg = self._open(payload)
            if msg is not None:
                on_message(self, msg)
            if not self._pending:
                await on_idle()

    def _open(self, record: bytes) -> messages.Message | None:
        assert self.session is not None
        try:
            msg = messages.decode(self.session.open(record, now_ms()))
        except SessionExpiredError as e:
            # The key is past its limits: nothing more opens under it, the link ends
            # and a dialer redials with a fresh handshake.
            raise TransportError(f"session expired: {e}")
        except ProtocolError as e:
            self.records_rejected += 1
            self.bad_records += 1
            if self.params.refusal_log is not None:
                self.params.refusal_log.warning(
                    "bad_record " + type(e).__name__, "peer=%s dropped record: %s: %s",
                    self.peer_node_id, type(e).__name__, e)
            else:
                log.warning("peer=%s dropped record: %s: %s", self.peer_node_id,
                            type(e).__name__, e)
            if self.bad_records >= MAX_BAD_RECORDS:
                raise TransportError(f"{self.bad_records} bad records in a row")
            return None
        self.bad_records = 0
        return msg

    def closed_by_peer(self) -> None:
        """The peer said Close: stop reading and drop the socket, no reply."""
        self.closed = True
        self.writer.close()

    def abort(self) -> None:
        """Drop the socket at once, unsent data included (a peer that stopped reading)."""
        self.closed = True
        self.writer.transport.abort()

    async def close(self, reason: str = "") -> None:
        if self.closed:
            return
        if self.session is not None and reason:
            try:
                self.send(messages.Close(reason=reason[:200]))
                self._flush()
            except MeshLinkError:
                pass
        self.closed = True
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)
        except (TimeoutError, OSError):
            pass


def set_user_timeout(writer: asyncio.StreamWriter, timeout_ms: int) -> bool:
    """Set TCP_USER_TIMEOUT on writer's socket (Linux): data the peer's kernel
    has not acknowledged for timeout_ms fails the socket (a peer that lost
    power). False where the option or the socket is missing, or timeout_ms is 0."""
    opt = getattr(socket, "TCP_USER_TIMEOUT", None)
    sock = writer.get_extra_info("socket")
    if not timeout_ms or opt is None or sock is None:
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, opt, int(timeout_ms))
    except OSError as e:
        log.debug("TCP_USER_TIMEOUT not set: %s", e)
        return False
    return True

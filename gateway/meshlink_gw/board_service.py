"""The gateway's board service: boards on UDP/TCP, each a citizen of the mesh.

Rule: this is the only place where board sockets, board-link sessions and the
mesh node meet. A board's bad input (unknown board ID, wrong PSK, revoked,
replayed or corrupted record, flood) is refused with a logged reason and
costs at most that board's session; other boards keep being served.

What it does (docs/BOARDS.md):
- terminates the board link (meshlink.boardlink.GatewaySession) on UDP (one
  datagram = one message) and TCP ([4-byte length][message] frames);
- acts for every registered board in the mesh under the board's own node ID
  (node.serve_id, served_router): board readings enter the mesh from that ID,
  and messages for it are queued durably (board_registry) and delivered in
  order when the board is online, acknowledged end to end only once the board
  confirmed them;
- announces each board's node ID to the mesh when it comes online;
- rate-limits each board with a token bucket and caps half-open handshakes;
- broadcasts a GatewayBeacon so boards without a configured address find it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import sqlite3
import time
from collections import Counter, OrderedDict
from typing import Any

from meshlink import boardlink, cjson, messages
from meshlink._compat import b64decode, b64encode
from meshlink.errors import (
    AuthError,
    ConfigError,
    DecodeError,
    HandshakeError,
    LocalProtocolError,
    MeshLinkError,
    ReplayError,
    SessionExpiredError,
    VersionError,
)
from meshlink.frames import Deframer, encode_frame
from meshlink.nodeid import is_id, new_message_id

from meshlink_gw import served_router
from meshlink_gw.board_registry import BoardRecord, BoardRegistry, Queued, unix_ms
from meshlink_gw.config import parse_hostport

log = logging.getLogger("meshlink.gateway")

DEFAULT_BOARD_UDP_PORT = 7410
DEFAULT_BOARD_TCP_PORT = 7411
DEFAULT_BEACON_PORT = 7399
TICK_MS = 50
MAX_BOARD_FRAME_BYTES = boardlink.MAX_PLAINTEXT_BYTES + boardlink.RECORD_OVERHEAD_BYTES
TCP_WRITE_BUFFER_MAX_BYTES = 256 * 1024  # a board that reads nothing is cut off
MAX_HALF_OPEN_PER_BOARD = 4
DEAD_SIDS_KEPT = 4096
SEEN_FLUSH_MS = 30_000  # last-seen times are written to boards.db this often (and at stop)


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


# -- configuration -------------------------------------------------------------------
@dataclasses.dataclass
class GatewayConfig:
    """The board service's settings ([gateway] and [boards] in the TOML file).

    Times are milliseconds, sizes bytes. A listen address of None disables it.
    """

    # [gateway]: where boards reach us
    board_udp: tuple[str, int] | None = ("0.0.0.0", DEFAULT_BOARD_UDP_PORT)
    board_tcp: tuple[str, int] | None = ("0.0.0.0", DEFAULT_BOARD_TCP_PORT)
    beacon: bool = True  # broadcast a GatewayBeacon for boards without an address
    beacon_port: int = DEFAULT_BEACON_PORT
    beacon_broadcast: str = "255.255.255.255"
    beacon_interval_ms: int = 2000
    # [boards]: per-board policy
    max_half_open: int = 64  # handshakes waiting for CONFIRM, all boards together
    handshake_timeout_ms: int = 10_000  # a half-open handshake is dropped after this
    offline_after_ms: int = 60_000  # no record for this long: the board is offline
    session_idle_drop_ms: int = 3_600_000  # forget an idle session after this long
    retry_ms: int = 1000  # resend the unacknowledged head message after this
    rate_records_per_s: int = 20  # token bucket refill, per board
    rate_burst: int = 40  # token bucket size, per board
    queue_max_age_ms: int = 86_400_000  # queued messages older than this are dropped
    queue_max_messages: int = 1000  # per board; when full new messages are refused
    queue_max_bytes: int = 1 << 20  # per board
    announce_interval_ms: int = 600_000  # re-announce every board this often
    forward_broadcasts: bool = True  # pass mesh broadcasts to online boards
    max_record_bytes: int = 768  # largest record plaintext boards accept (docs/FIRMWARE.md)
    strict_boot_counter: bool = False  # refuse a HELLO whose boot counter went back
    max_tcp_connections: int = 1024
    refusal_log_interval_ms: int = 1000  # per board and reason, at most one log line
    registry_poll_ms: int = 5000  # pick up boards added or revoked by the CLI

    def addresses(self) -> dict[str, str | None]:
        def fmt(a):
            return None if a is None else f"{a[0]}:{a[1]}"
        return {"board_udp": fmt(self.board_udp), "board_tcp": fmt(self.board_tcp)}


_GW_TABLE = ("board_udp", "board_tcp", "beacon", "beacon_port", "beacon_broadcast",
             "beacon_interval_ms")
_BOOL_KEYS = ("beacon", "forward_broadcasts", "strict_boot_counter")


def _set_gateway(cfg: GatewayConfig, key: str, value: Any, where: str) -> None:
    if key in ("board_udp", "board_tcp"):
        if value is None or value is False or value == "" or value == "off":
            setattr(cfg, key, None)
        else:
            setattr(cfg, key, parse_hostport(value, what=where + key))
    elif key in _BOOL_KEYS:
        if type(value) is not bool:
            raise ConfigError(f"{where}{key}: expected true or false, got {value!r}")
        setattr(cfg, key, value)
    elif key == "beacon_broadcast":
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}{key}: expected a non-empty string")
        cfg.beacon_broadcast = value
    elif key in {f.name for f in dataclasses.fields(GatewayConfig)}:
        if type(value) is not int or value < 0:
            raise ConfigError(f"{where}{key}: expected a non-negative integer, got {value!r}")
        setattr(cfg, key, value)
    else:
        raise ConfigError(f"{where}{key}: unknown setting")


def build_gateway_config(file_values: dict[str, Any], overrides: dict[str, Any]
                         ) -> GatewayConfig:
    """Validate the [gateway] and [boards] tables, then apply CLI overrides.

    Raises:
        ConfigError: unknown key, wrong type or out-of-range value.
    """
    cfg = GatewayConfig()
    for table in ("gateway", "boards"):
        values = file_values.get(table, {})
        if not isinstance(values, dict):
            raise ConfigError(f"[{table}] must be a table")
        for key, value in values.items():
            in_gw = key in _GW_TABLE
            if (table == "gateway") != in_gw:
                other = "gateway" if in_gw else "boards"
                raise ConfigError(f"{table}.{key}: belongs in the [{other}] table")
            _set_gateway(cfg, key, value, table + ".")
    for key, value in overrides.items():
        if value is not None:
            _set_gateway(cfg, key, value, "--")
    if cfg.rate_records_per_s < 1 or cfg.rate_burst < 1:
        raise ConfigError("rate_records_per_s and rate_burst must be at least 1")
    if cfg.max_half_open < 1 or cfg.retry_ms < 10 or cfg.beacon_interval_ms < 100:
        raise ConfigError("max_half_open >= 1, retry_ms >= 10, beacon_interval_ms >= 100")
    if cfg.queue_max_messages < 1 or cfg.queue_max_bytes < 1024:
        raise ConfigError("queue_max_messages >= 1 and queue_max_bytes >= 1024")
    if cfg.max_record_bytes < 256 or cfg.max_record_bytes > boardlink.MAX_PLAINTEXT_BYTES:
        raise ConfigError("max_record_bytes must be in 256..%d" % boardlink.MAX_PLAINTEXT_BYTES)
    if cfg.offline_after_ms < 100 or cfg.handshake_timeout_ms < 100:
        raise ConfigError("offline_after_ms and handshake_timeout_ms must be >= 100")
    return cfg


# -- small parts ---------------------------------------------------------------------
class TokenBucket:
    """rate_per_s tokens per second, at most burst; take() spends one.

    Integer milli-tokens: elapsed_ms * rate_per_s is exact, so the long-run
    rate is exact too.
    """

    __slots__ = ("rate_per_s", "cap_milli", "milli", "t_ms")

    def __init__(self, rate_per_s: int, burst: int, now_ms: int) -> None:
        self.rate_per_s = rate_per_s
        self.cap_milli = burst * 1000
        self.milli = self.cap_milli
        self.t_ms = now_ms

    def take(self, now_ms: int) -> bool:
        if now_ms > self.t_ms:
            self.milli = min(self.cap_milli, self.milli + (now_ms - self.t_ms) * self.rate_per_s)
            self.t_ms = now_ms
        if self.milli >= 1000:
            self.milli -= 1000
            return True
        return False


class UdpPeer:
    """Where a datagram came from, and how to answer it."""

    kind = "udp"
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


class TcpPeer:
    """One board TCP connection."""

    kind = "tcp"

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        peer = writer.get_extra_info("peername") or ("?", 0)
        self.addr = (peer[0], peer[1])
        self.closed = False
        self.link: BoardLink | None = None

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        if self.writer.transport.get_write_buffer_size() > TCP_WRITE_BUFFER_MAX_BYTES:
            log.warning("board connection %s reads nothing; closing it", self.describe())
            self.close()
            return
        self.writer.write(encode_frame(data, MAX_BOARD_FRAME_BYTES + 64))

    def same(self, other) -> bool:
        return other is self

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()

    def describe(self) -> str:
        return "tcp:%s:%d" % self.addr


@dataclasses.dataclass
class _HalfOpen:
    session: boardlink.GatewaySession
    board: BoardRecord
    peer: Any
    hello: bytes
    created_ms: int
    resent_ms: int = 0


class BoardLink:
    """An established board-link session and its delivery state."""

    def __init__(self, board: BoardRecord, session: boardlink.GatewaySession, peer,
                 hello: bytes, now: int, cfg: GatewayConfig) -> None:
        self.board = board
        self.session = session
        self.peer = peer
        self.hello = hello
        self.established_ms = now
        self.last_seen_ms = now
        self.bucket = TokenBucket(cfg.rate_records_per_s, cfg.rate_burst, now)
        self.inflight: Queued | None = None
        self.next_send_ms = 0
        self.attempts = 0
        self.records_in = 0
        self.rate_limited = 0
        self.closed = False

    def online(self, now: int, offline_after_ms: int) -> bool:
        return not self.closed and now - self.last_seen_ms < offline_after_ms


# -- the service -----------------------------------------------------------------------
class BoardService:
    """Serves every registered board of one gateway node."""

    def __init__(self, node, config: GatewayConfig, registry: BoardRegistry) -> None:
        self.node = node
        self.cfg = config
        self.reg = registry
        self.boards: dict[str, BoardRecord] = {}
        self.by_board_id: dict[bytes, BoardRecord] = {}
        self.by_node_id: dict[str, BoardRecord] = {}
        self.links: dict[str, BoardLink] = {}  # established, by board name
        self.by_sid: dict[int, BoardLink] = {}
        self.half_open: dict[int, _HalfOpen] = {}
        self.half_open_by_hello: dict[bytes, int] = {}
        self.dead_sids: OrderedDict[int, tuple[str, str]] = OrderedDict()
        self.refusals: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()
        self.udp_addr: tuple[str, int] | None = None
        self.tcp_addr: tuple[str, int] | None = None
        self.tcp_peers: set[TcpPeer] = set()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp_server: asyncio.AbstractServer | None = None
        self._beacon_sock: socket.socket | None = None
        self._tasks: set[asyncio.Task] = set()
        self._dirty: set[str] = set()  # boards whose queue may have a new head
        self._seen_dirty: dict[str, tuple[int, int | None]] = {}
        self._refusal_logged: dict[tuple[str, str], list[int]] = {}
        self._announce_q: list[str] = []
        self._peer_count = 0
        self._local_waiters: dict[tuple[str, str], asyncio.Future] = {}
        self._unknown_ids: dict[bytes, int] = {}  # negative lookup cache
        self._reg_version = -1
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Load the registry, serve every board's node ID, open the board listeners."""
        served_router.install(self.node)
        self.node.deliver_hooks.append(self._on_mesh_delivered)
        self._reg_version = self.reg.data_version()
        self.reload()
        loop = asyncio.get_running_loop()
        if self.cfg.board_udp is not None:
            sock = self._udp_socket(self.cfg.board_udp)
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), sock=sock)
            self.udp_addr = sock.getsockname()[:2]
        if self.cfg.board_tcp is not None:
            host, port = self.cfg.board_tcp
            try:
                self._tcp_server = await asyncio.start_server(self._tcp_client, host, port,
                                                              reuse_address=True)
            except OSError as e:
                if self._udp is not None:
                    self._udp.close()
                raise ConfigError(f"cannot listen for boards on tcp {host}:{port}: "
                                  f"{e.strerror}")
            self.tcp_addr = self._tcp_server.sockets[0].getsockname()[:2]
        log.info("board service: %d board(s) registered; udp %s tcp %s",
                 len(self.boards), self.udp_addr, self.tcp_addr)
        self._spawn(self._tick_loop(), "boards-tick")
        if self.cfg.beacon:
            self._spawn(self._beacon_loop(), "boards-beacon")

    @staticmethod
    def _udp_socket(addr: tuple[str, int]) -> socket.socket:
        family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)  # no SO_REUSEADDR: one owner
        with contextlib.suppress(OSError):  # a big buffer absorbs bursts from many boards
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        try:
            sock.bind(addr)
        except OSError as e:
            sock.close()
            raise ConfigError(f"cannot listen for boards on udp {addr[0]}:{addr[1]}: "
                              f"{e.strerror}")
        sock.setblocking(False)
        return sock

    async def stop(self) -> None:
        """Close listeners and sessions, store last-seen times; idempotent."""
        if self._stopping:
            return
        self._stopping = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._tcp_server is not None:
            self._tcp_server.close()
        for peer in list(self.tcp_peers):
            peer.close()
        if self._udp is not None:
            self._udp.close()
        if self._beacon_sock is not None:
            self._beacon_sock.close()
        if self._tcp_server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp_server.wait_closed(), 2)
        for fut in self._local_waiters.values():
            if not fut.done():
                fut.cancel()
        self._flush_seen()
        with contextlib.suppress(ValueError):
            self.node.deliver_hooks.remove(self._on_mesh_delivered)

    def _spawn(self, coro, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed: %r", task.get_name(), task.exception())

    # -- registry ----------------------------------------------------------------------
    def reload(self) -> None:
        """Sync boards with the registry: serve new ones, cut newly revoked ones."""
        for rec in self.reg.all():
            old = self.boards.get(rec.name)
            if old is None:
                if rec.revoked:
                    self.boards[rec.name] = rec
                    self.by_board_id[rec.board_id] = rec
                else:
                    self._add_board(rec)
            elif rec.revoked and not old.revoked:
                self._cut(rec.name, "revoked")
                self._forget(old)
                self.boards[rec.name] = rec
                self.by_board_id[rec.board_id] = rec

    def _add_board(self, rec: BoardRecord) -> None:
        self.boards[rec.name] = rec
        self.by_board_id[rec.board_id] = rec
        self.by_node_id[rec.node_id] = rec
        self._unknown_ids.pop(rec.board_id, None)
        name = rec.name
        self.node.serve_id(rec.node_id, lambda msg, hops: self._from_mesh(name, msg, hops))
        self._dirty.add(name)
        if self.node.peers.links:
            self._announce_q.append(name)

    def _forget(self, rec: BoardRecord) -> None:
        self.node.unserve_id(rec.node_id)
        self.by_node_id.pop(rec.node_id, None)

    def _lookup(self, board_id: bytes, now: int) -> BoardRecord | None:
        rec = self.by_board_id.get(board_id)
        if rec is not None:
            return rec
        seen = self._unknown_ids.get(board_id)
        if seen is not None and now - seen < 2000:
            return None
        rec = self.reg.by_board_id(board_id)  # added by `meshlink board add` just now?
        if rec is None:
            if len(self._unknown_ids) > 4096:
                self._unknown_ids.clear()
            self._unknown_ids[board_id] = now
            return None
        self.reload()
        return self.boards.get(rec.name)

    def revoke(self, name: str) -> dict:
        """Revoke a board now: mark it in the registry, cut its session, drop its queue."""
        rec = self.reg.revoke(name)
        self._cut(name, "revoked")
        self._forget(rec)
        self.boards[name] = rec
        self.by_board_id[rec.board_id] = rec
        dropped = self.reg.drop_queue(name)
        log.warning("board %s revoked: session cut, %d queued message(s) dropped, "
                    "new sessions refused", name, dropped)
        return {"name": name, "revoked": True, "queued_dropped": dropped}

    def _cut(self, name: str, why: str) -> None:
        """End a board's live session and half-open handshakes."""
        link = self.links.pop(name, None)
        if link is not None:
            self._close_link(link, why)
        for sid, ho in list(self.half_open.items()):
            if ho.board.name == name:
                self._drop_half_open(sid)

    def _close_link(self, link: BoardLink, why: str) -> None:
        link.closed = True
        sid = link.session.sid
        if self.by_sid.get(sid) is link:
            del self.by_sid[sid]
        self.dead_sids[sid] = (link.board.name, why)
        while len(self.dead_sids) > DEAD_SIDS_KEPT:
            self.dead_sids.popitem(last=False)
        if self.links.get(link.board.name) is link:
            del self.links[link.board.name]
        if link.peer.kind == "tcp" and why != "replaced by a new session on this connection":
            link.peer.close()
        log.info("board %s session %08x ended: %s", link.board.name, sid, why)

    def _drop_half_open(self, sid: int) -> None:
        ho = self.half_open.pop(sid, None)
        if ho is not None and self.half_open_by_hello.get(ho.hello) == sid:
            del self.half_open_by_hello[ho.hello]

    # -- refusals ----------------------------------------------------------------------
    def refuse(self, reason: str, detail: str, board: str | None = None, peer=None) -> None:
        """Count and log (throttled per board and reason) a refused board message."""
        self.refusals[reason] += 1
        key = (board or (peer.describe() if peer is not None else "?"), reason)
        now = _now_ms()
        slot = self._refusal_logged.get(key)
        if slot is not None and now - slot[0] < self.cfg.refusal_log_interval_ms:
            slot[1] += 1
            return
        suppressed = slot[1] if slot else 0
        if len(self._refusal_logged) > 10_000:
            self._refusal_logged.clear()
        self._refusal_logged[key] = [now, 0]
        log.warning("refused board=%s from=%s reason=%s: %s%s", board or "?",
                    peer.describe() if peer is not None else "?", reason, detail,
                    f" ({suppressed} more since the last report)" if suppressed else "")

    # -- board input -------------------------------------------------------------------
    def handle(self, data: bytes, peer) -> None:
        """One board-link message from peer (a datagram or a TCP frame)."""
        self.stats["messages_in"] += 1
        try:
            t = boardlink.message_type(data)
        except DecodeError as e:
            self.refuse("malformed", str(e), peer=peer)
            return
        now = _now_ms()
        try:
            if t == boardlink.T_RECORD:
                self._on_record(data, peer, now)
            elif t == boardlink.T_HELLO:
                self._on_hello(data, peer, now)
            elif t == boardlink.T_CONFIRM:
                self._on_confirm(data, peer, now)
            else:
                self.refuse("malformed", "unexpected message type %d" % t, peer=peer)
        except VersionError as e:
            self.refuse("version", str(e), peer=peer)
        except DecodeError as e:
            self.refuse("malformed", str(e), peer=peer)
        except MeshLinkError as e:  # a board's problem never reaches the loop
            self.refuse("error", f"{type(e).__name__}: {e}", peer=peer)
        except sqlite3.Error as e:  # boards.db failed (disk full?): this message is lost
            log.error("board registry error while handling a board message: %s", e)
            self.stats["storage_errors"] += 1

    def _on_hello(self, data: bytes, peer, now: int) -> None:
        board_id, boot_ctr, _nonce = boardlink.decode_hello(data)
        rec = self._lookup(board_id, now)
        if rec is None:
            self.refuse("unknown_board", f"unknown board ID {board_id.hex()}", peer=peer)
            return
        if rec.revoked:
            self.refuse("revoked", "HELLO from a revoked board", rec.name, peer)
            return
        link = self.links.get(rec.name)
        if link is not None and link.hello == data:
            return  # a retransmitted HELLO after the session was established: ignore
        sid = self.half_open_by_hello.get(data)
        if sid is not None:  # retransmitted HELLO: the same CHALLENGE again
            ho = self.half_open[sid]
            ho.peer = peer
            peer.send(ho.session.challenge)
            return
        if rec.last_boot_ctr is not None and boot_ctr < rec.last_boot_ctr:
            if self.cfg.strict_boot_counter:
                self.refuse("boot_counter", f"boot counter {boot_ctr} < last {rec.last_boot_ctr}",
                            rec.name, peer)
                return
            log.warning("board %s boot counter went back from %d to %d (reflashed?)",
                        rec.name, rec.last_boot_ctr, boot_ctr)
        self._expire_half_open(now)
        mine = [s for s, ho in self.half_open.items() if ho.board.name == rec.name]
        if len(mine) >= MAX_HALF_OPEN_PER_BOARD:
            self._drop_half_open(min(mine, key=lambda s: self.half_open[s].created_ms))
        if len(self.half_open) >= self.cfg.max_half_open:
            self.refuse("half_open_cap", "too many handshakes in progress", rec.name, peer)
            return
        sid = self._new_sid()
        session = boardlink.GatewaySession(rec.psk, rec.board_id)
        challenge = session.handle_hello(data, sid, os.urandom(boardlink.NONCE_BYTES), now)
        self.half_open[sid] = _HalfOpen(session, rec, peer, bytes(data), now)
        self.half_open_by_hello[bytes(data)] = sid
        self.stats["hellos"] += 1
        peer.send(challenge)

    def _new_sid(self) -> int:
        while True:
            sid = int.from_bytes(os.urandom(4), "big")
            if sid and sid not in self.by_sid and sid not in self.half_open \
                    and sid not in self.dead_sids:
                return sid

    def _expire_half_open(self, now: int) -> None:
        for sid, ho in list(self.half_open.items()):
            if now - ho.created_ms >= self.cfg.handshake_timeout_ms:
                self._drop_half_open(sid)
                self.refuse("handshake_timeout", "no valid CONFIRM in time (wrong PSK on the "
                            "board, or messages lost)", ho.board.name, ho.peer)

    def _on_confirm(self, data: bytes, peer, now: int) -> None:
        sid, _tag = boardlink.decode_confirm(data)
        ho = self.half_open.get(sid)
        if ho is None:
            link = self.by_sid.get(sid)
            if link is not None:
                try:
                    link.session.handle_confirm(data, now)  # a retransmission: ignored
                except HandshakeError as e:
                    self.refuse("handshake", str(e), link.board.name, peer)
                return
            self.refuse("unknown_session", "CONFIRM for session %08x, which is not "
                        "waiting" % sid, peer=peer)
            return
        try:
            ho.session.handle_confirm(data, now)
        except AuthError:
            self.refuse("wrong_psk", "CONFIRM tag does not verify (wrong PSK or forged)",
                        ho.board.name, peer)
            return
        except HandshakeError as e:
            self.refuse("handshake", str(e), ho.board.name, peer)
            return
        self._drop_half_open(sid)
        self._establish(ho, peer, now)

    def _establish(self, ho: _HalfOpen, peer, now: int) -> None:
        rec = ho.board
        old = self.links.get(rec.name)
        if old is not None:
            same_conn = old.peer.kind == "tcp" and old.peer is peer
            self._close_link(old, "replaced by a new session on this connection" if same_conn
                             else "replaced by a new session")
        link = BoardLink(rec, ho.session, peer, ho.hello, now, self.cfg)
        self.links[rec.name] = link
        self.by_sid[ho.session.sid] = link
        if peer.kind == "tcp":
            peer.link = link
        self.stats["sessions"] += 1
        rec.last_boot_ctr = ho.session.boot_ctr
        self._seen_dirty[rec.name] = (unix_ms(), ho.session.boot_ctr)
        log.info("board %s online via %s: session %08x, boot counter %d", rec.name,
                 peer.describe(), ho.session.sid, ho.session.boot_ctr)
        self._announce(rec)
        self._dirty.add(rec.name)
        self._pump(link, now)

    def _on_record(self, data: bytes, peer, now: int) -> None:
        sid, _seq = boardlink.decode_record_header(data)
        link = self.by_sid.get(sid)
        if link is None:
            ho = self.half_open.get(sid)
            if ho is not None:
                # the CONFIRM was lost: resend the CHALLENGE so the board resends it
                if now - ho.resent_ms >= 200:
                    ho.resent_ms = now
                    peer.send(ho.session.challenge)
                return
            dead = self.dead_sids.get(sid)
            if dead is not None:
                reason = "revoked" if dead[1] == "revoked" else "old_session"
                self.refuse(reason, "record for session %08x, which ended (%s)" % (sid, dead[1]),
                            dead[0], peer)
            else:
                self.refuse("unknown_session", "record for unknown session %08x (gateway "
                            "restarted?)" % sid, peer=peer)
            return
        if not link.peer.same(peer):
            self.refuse("wrong_transport", "record for a session of another connection",
                        link.board.name, peer)
            return
        if not link.bucket.take(now):
            link.rate_limited += 1
            self.refuse("rate_limited", "over %d records/s (burst %d)" % (
                self.cfg.rate_records_per_s, self.cfg.rate_burst), link.board.name, peer)
            return
        name = link.board.name
        try:
            plaintext = link.session.open(data, now)
        except ReplayError as e:
            self.refuse("replay", str(e), name, peer)
            return
        except AuthError:
            self.refuse("bad_tag", "record tag does not verify (bit flip or forgery)", name,
                        peer)
            return
        except SessionExpiredError as e:
            self._close_link(link, "expired")
            self.refuse("expired", str(e), name, peer)
            return
        link.last_seen_ms = now
        link.records_in += 1
        if peer.kind == "udp":
            link.peer = peer  # roaming: answer where the last authentic record came from
        self._seen_dirty[name] = (unix_ms(), None)
        self.stats["records_in"] += 1
        try:
            obj = cjson.loads(plaintext)
            if type(obj) is not dict or type(obj.get("t")) is not str:
                raise DecodeError("record plaintext is not an object with a 't'")
            self._on_board_record(link, obj, now)
        except (DecodeError, LocalProtocolError, KeyError, TypeError, ValueError) as e:
            self.refuse("bad_payload", f"{type(e).__name__}: {e}", name, peer)

    # -- board records -----------------------------------------------------------------
    def _on_board_record(self, link: BoardLink, obj: dict, now: int) -> None:
        t = obj["t"]
        if t == "reading":
            self._on_reading(link, obj)
        elif t == "ack":
            self._on_board_ack(link, obj.get("id"), now)
        elif t == "ping":
            seq = obj.get("seq")
            if type(seq) is not int:
                raise DecodeError("ping needs an integer seq")
            self.send_to_board(link, {"t": "pong", "seq": seq}, now)
        elif t == "send":  # raw data; here "to": null means broadcast (docs/FIRMWARE.md)
            data = b64decode(obj["data"])
            to = obj.get("to")
            self._from_board(link, "broadcast" if to is None else self._target(to), data,
                             "message")
        else:
            log.debug("board %s sent unknown record type %r; ignored", link.board.name, t)

    @staticmethod
    def _target(to) -> str | None:
        if to is None or to == "gateway":
            return None
        if to == "broadcast" or is_id(to):
            return to
        raise DecodeError("'to' must be null, \"gateway\", \"broadcast\" or a node ID")

    def _on_reading(self, link: BoardLink, obj: dict) -> None:
        sensor, value, unit, seq = obj["sensor"], obj["value_milli"], obj.get("unit", ""), \
            obj.get("seq", 0)
        if type(sensor) is not str or type(value) is not int or type(unit) is not str \
                or type(seq) is not int:
            raise DecodeError("reading needs sensor (str), value_milli (int), unit (str), "
                              "seq (int)")
        rec = link.board
        data = cjson.dumps({"kind": "reading", "board": rec.name, "node_id": rec.node_id,
                             "sensor": sensor, "value_milli": value, "unit": unit, "seq": seq})
        self.stats["readings"] += 1
        self._from_board(link, self._target(obj.get("to")), data,
                         "reading %s=%d%s seq %d" % (sensor, value, unit and " m" + unit, seq))

    def _from_board(self, link: BoardLink, to: str | None, data: bytes, what: str) -> None:
        """Put something a board sent into the mesh, from the board's node ID."""
        src = link.board.node_id
        node = self.node
        if to is None or to == node.node_id:
            node.originate(node.node_id, data, src=src)  # the gateway's own inbox
            log.debug("board %s: %s -> gateway", link.board.name, what)
            return
        if to == "broadcast":
            node.originate(None, data, src=src)
            self._fanout_local(src, data, exclude=link.board.name)
            log.info("board %s: %s -> broadcast", link.board.name, what)
            return
        local = self.by_node_id.get(to)
        if local is not None:
            status = self._enqueue(local.name, src, to, new_message_id(os.urandom(16)), None,
                                   data, 1)
            log.info("board %s: %s -> board %s on this gateway (%s)", link.board.name, what,
                     local.name, status)
            return
        msg, fut = node.originate(to, data, src=src)
        log.info("board %s: %s -> %s id=%s", link.board.name, what, to, msg.message_id)
        if fut is not None:
            fut.add_done_callback(lambda f, n=link.board.name, m=msg.message_id:
                                  self._sent(n, m, f))

    def _sent(self, name: str, mid: str, fut: asyncio.Future) -> None:
        if fut.cancelled():
            return
        res = fut.result()
        if res.delivered:
            self.stats["board_sends_acked"] += 1
            log.info("board %s: message %s acknowledged end to end after %s ms", name, mid,
                     res.rtt_ms)
        else:
            self.stats["board_sends_failed"] += 1
            log.warning("board %s: message %s not acknowledged: %s", name, mid, res.reason)

    def _fanout_local(self, src: str, data: bytes, exclude: str | None = None,
                      origin_id: str | None = None, hops: int = 1) -> None:
        """A broadcast to every online board of this gateway (live only, not queued)."""
        if not self.cfg.forward_broadcasts:
            return
        now = _now_ms()
        record = None
        for name, link in list(self.links.items()):
            if name == exclude or not link.online(now, self.cfg.offline_after_ms):
                continue
            if record is None:
                record = self._msg_record(origin_id or new_message_id(os.urandom(16)), src,
                                          None, data, hops)
                if not self._fits(record):
                    self.stats["broadcasts_too_large"] += 1
                    return
            self.send_to_board(link, record, now)

    def _on_mesh_delivered(self, rec) -> None:
        """deliver hook: a broadcast (or a message for the gateway itself) arrived."""
        if rec.dst is not None or rec.src in self.by_node_id or not self.links:
            return
        try:
            kind = cjson.loads(rec.data).get("kind")
        except (DecodeError, AttributeError):
            kind = None
        if kind == "announce":
            return
        self._fanout_local(rec.src, rec.data, origin_id=rec.origin_id, hops=rec.hops)

    # -- mesh -> board -----------------------------------------------------------------
    def _from_mesh(self, name: str, msg: Any, hops: int) -> bool:
        """served-ID handler: queue a directed message for board name.

        Returns True only when the board already has it (ack again now);
        otherwise the Ack is sent once the board confirms it.
        """
        rec = self.boards.get(name)
        if rec is None or rec.revoked:
            return False
        try:
            status = self._enqueue(name, msg.src, msg.dst, msg.origin_id, msg.message_id,
                                   msg.data, hops)
        except sqlite3.Error as e:  # not stored, so not acked: the sender retries
            log.error("cannot queue message %s for board %s: %s", msg.origin_id, name, e)
            self.stats["storage_errors"] += 1
            return False
        log.info("mesh message %s from %s for board %s, %d hop(s): %s", msg.origin_id,
                 msg.src, name, hops, status)
        return status == "delivered"

    def _msg_record(self, origin_id: str, src: str, dst: str | None, data: bytes,
                    hops: int) -> dict:
        return {"t": "msg", "id": origin_id, "from": src, "to": dst, "data": b64encode(data),
                "hops": hops}

    def _fits(self, record: dict) -> bool:
        """True if a record's plaintext is within what boards accept (max_record_bytes)."""
        return len(cjson.dumps(record)) <= self.cfg.max_record_bytes

    def _enqueue(self, name: str, src: str, dst: str | None, origin_id: str,
                 ack_id: str | None, data: bytes, hops: int) -> str:
        if not self._fits(self._msg_record(origin_id, src, dst, data, hops)):
            self.refuse("too_large", "a %d-byte message does not fit the board's %d-byte "
                        "records" % (len(data), self.cfg.max_record_bytes), name)
            return "too_large"
        status = self.reg.enqueue(name, src, dst, origin_id, ack_id, data, hops,
                                  max_messages=self.cfg.queue_max_messages,
                                  max_bytes=self.cfg.queue_max_bytes)
        if status == "full":
            self.refuse("queue_full", "queue for board is full (%d messages / %d bytes)" % (
                self.cfg.queue_max_messages, self.cfg.queue_max_bytes), name)
        elif status == "queued":
            self.stats["queued"] += 1
            self._dirty.add(name)
            link = self.links.get(name)
            if link is not None:
                self._pump(link, _now_ms())
        return status

    def _pump(self, link: BoardLink, now: int) -> None:
        """Send the board its oldest unacknowledged message (stop and wait: in order)."""
        name = link.board.name
        if not link.online(now, self.cfg.offline_after_ms):
            return
        if link.inflight is None:
            if name not in self._dirty:
                return
            item = self.reg.head(name)
            if item is None:
                self._dirty.discard(name)
                return
            link.inflight = item
            link.attempts = 0
            link.next_send_ms = now
        if now < link.next_send_ms:
            return
        item = link.inflight
        self.send_to_board(link, self._msg_record(item.origin_id, item.src, item.dst,
                                                  item.data, item.hops), now)
        link.attempts += 1
        self.stats["msg_sends"] += 1
        link.next_send_ms = now + self.cfg.retry_ms

    def _on_board_ack(self, link: BoardLink, mid, now: int) -> None:
        item = link.inflight
        if item is None or mid != item.origin_id:
            return  # a duplicate ack, or the ack of a broadcast: nothing owed
        self.reg.mark_delivered(item)
        link.inflight = None
        self._dirty.add(link.board.name)
        self.stats["delivered_to_boards"] += 1
        log.info("board %s confirmed message %s (%d attempt(s))", link.board.name,
                 item.origin_id, link.attempts)
        if item.ack_id is not None:
            self.node.send_ack_for(messages.MeshMessage(
                src=item.src, dst=item.dst, data=b"", message_id=item.ack_id,
                ttl=1, path=[]))
        fut = self._local_waiters.pop((link.board.name, item.origin_id), None)
        if fut is not None and not fut.done():
            fut.set_result(True)
        self._pump(link, now)

    def send_to_board(self, link: BoardLink, obj: dict, now: int) -> None:
        try:
            record = link.session.seal(cjson.dumps(obj), now)
        except SessionExpiredError:
            self._close_link(link, "expired")
            return
        link.peer.send(record)
        self.stats["records_out"] += 1

    async def send_local(self, name: str, data: bytes, timeout_s: float) -> dict:
        """Queue data from the gateway itself for board name and wait for its ack."""
        origin = new_message_id(os.urandom(16))
        fut = asyncio.get_running_loop().create_future()
        self._local_waiters[(name, origin)] = fut
        t0 = time.monotonic()
        status = self._enqueue(name, self.node.node_id, self.boards[name].node_id, origin,
                               None, data, 1)
        if status != "queued":
            self._local_waiters.pop((name, origin), None)
            return {"message_id": origin, "delivered": False, "rtt_ms": None, "attempts": 1,
                    "reason": f"not queued: {status}"}
        try:
            await asyncio.wait_for(fut, timeout_s)
        except (TimeoutError, asyncio.CancelledError):
            self._local_waiters.pop((name, origin), None)
            return {"message_id": origin, "delivered": False, "rtt_ms": None, "attempts": 1,
                    "reason": "queued for the board; not confirmed yet"}
        return {"message_id": origin, "delivered": True,
                "rtt_ms": int((time.monotonic() - t0) * 1000), "attempts": 1, "reason": ""}

    # -- announcements -----------------------------------------------------------------
    def _announce(self, rec: BoardRecord) -> None:
        if rec.revoked or not self.node.peers.links:
            return
        data = cjson.dumps({"kind": "announce", "gateway": self.node.node_id,
                             "board": rec.name, "node_id": rec.node_id})
        try:
            self.node.originate(None, data, src=rec.node_id)
            self.stats["announces"] += 1
        except MeshLinkError as e:
            log.warning("announce of board %s failed: %s", rec.name, e)

    # -- timers ------------------------------------------------------------------------
    async def _tick_loop(self) -> None:
        last_poll = last_flush = last_expire = last_announce = _now_ms()
        while True:
            await asyncio.sleep(TICK_MS / 1000)
            now = _now_ms()
            try:
                self._tick(now)
                peers = len(self.node.peers.links)
                if peers > self._peer_count or now - last_announce >= \
                        self.cfg.announce_interval_ms:
                    last_announce = now
                    self._announce_q = [n for n, r in self.boards.items() if not r.revoked]
                self._peer_count = peers
                for name in self._announce_q[:100]:  # paced: 100 boards per tick
                    rec = self.boards.get(name)
                    if rec is not None:
                        self._announce(rec)
                del self._announce_q[:100]
                if now - last_flush >= SEEN_FLUSH_MS:
                    last_flush = now
                    self._flush_seen()
                if now - last_poll >= self.cfg.registry_poll_ms:
                    last_poll = now
                    version = self.reg.data_version()
                    if version != self._reg_version:  # another process wrote boards.db
                        self._reg_version = version
                        self.reload()
                if now - last_expire >= 10_000:
                    last_expire = now
                    for item in self.reg.expire(self.cfg.queue_max_age_ms):
                        log.warning("dropped message %s for board %s: older than %d ms",
                                    item.origin_id, item.board, self.cfg.queue_max_age_ms)
                        self.stats["expired"] += 1
                        for link in self.links.values():
                            if link.inflight is not None and link.inflight.seq == item.seq:
                                link.inflight = None
                                self._dirty.add(link.board.name)
            except (MeshLinkError, sqlite3.Error) as e:  # keep ticking: retry next time
                log.error("board service tick failed: %s", e)

    def _tick(self, now: int) -> None:
        self._expire_half_open(now)
        for link in list(self.links.values()):
            idle = now - link.last_seen_ms
            if idle >= self.cfg.session_idle_drop_ms:
                self._close_link(link, "idle")
            elif link.inflight is not None or link.board.name in self._dirty:
                self._pump(link, now)

    def _flush_seen(self) -> None:
        if self._seen_dirty:
            seen, self._seen_dirty = self._seen_dirty, {}
            self.reg.touch(seen)

    async def _beacon_loop(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setblocking(False)
        self._beacon_sock = sock
        beacon = messages.GatewayBeacon(
            node_id=self.node.node_id, udp_port=self.udp_addr[1] if self.udp_addr else 0,
            tcp_port=self.tcp_addr[1] if self.tcp_addr else 0).encode()
        warned = False
        while True:
            try:
                sock.sendto(beacon, (self.cfg.beacon_broadcast, self.cfg.beacon_port))
            except OSError as e:
                if not warned:
                    log.warning("gateway beacon to %s:%d failed: %s", self.cfg.beacon_broadcast,
                                self.cfg.beacon_port, e.strerror)
                    warned = True
            await asyncio.sleep(self.cfg.beacon_interval_ms / 1000)

    # -- TCP ---------------------------------------------------------------------------
    async def _tcp_client(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        peer = TcpPeer(writer)
        if len(self.tcp_peers) >= self.cfg.max_tcp_connections:
            self.refuse("connection_cap", "too many board connections", peer=peer)
            peer.close()
            return
        self.tcp_peers.add(peer)
        deframer = Deframer(MAX_BOARD_FRAME_BYTES + 64)
        try:
            while not peer.closed:
                established = peer.link is not None and not peer.link.closed
                timeout = (self.cfg.offline_after_ms if established
                           else self.cfg.handshake_timeout_ms) / 1000
                chunk = await asyncio.wait_for(reader.read(65536), timeout)
                if not chunk:
                    break
                for frame in deframer.feed(chunk):
                    self.handle(frame, peer)
                    if peer.closed:
                        break
        except DecodeError as e:
            self.refuse("malformed", str(e), peer=peer)
        except (TimeoutError, ConnectionError, OSError):
            pass
        finally:
            self.tcp_peers.discard(peer)
            if peer.link is not None and not peer.link.closed:
                self._close_link(peer.link, "connection closed")
            peer.close()

    # -- control and status ------------------------------------------------------------
    def board_rows(self) -> list[dict]:
        now = _now_ms()
        counts = self.reg.queue_counts()
        self._flush_seen()
        rows = []
        for rec in self.reg.all():
            link = self.links.get(rec.name)
            row = rec.public()
            row.update({"online": bool(link and link.online(now, self.cfg.offline_after_ms)),
                        "queued": counts.get(rec.name, 0),
                        "session": None if link is None else {
                            "sid": "%08x" % link.session.sid, "via": link.peer.describe(),
                            "records_in": link.records_in, "rate_limited": link.rate_limited,
                            "boot_ctr": link.session.boot_ctr}})
            rows.append(row)
        return rows

    def status(self) -> dict:
        now = _now_ms()
        return {
            **self.cfg.addresses(),
            "udp": None if self.udp_addr is None else "%s:%d" % self.udp_addr,
            "tcp": None if self.tcp_addr is None else "%s:%d" % self.tcp_addr,
            "boards": sum(1 for r in self.boards.values() if not r.revoked),
            "online": sum(1 for link in self.links.values()
                          if link.online(now, self.cfg.offline_after_ms)),
            "half_open": len(self.half_open),
            "queued": sum(self.reg.queue_counts().values()),
            "refusals": dict(self.refusals),
            "stats": dict(self.stats),
        }

    def attach_control(self, server) -> None:
        """Add board commands to a ControlServer and make status/send board-aware."""
        node_status = server.handlers.get("status")
        node_send = server.handlers.get("send")

        async def status(req, w):
            out = await node_status(req, w) if node_status else self.node.status()
            out["gateway"] = self.status()
            return out

        async def send(req, w):
            dst = req.get("to")
            rec = self.by_node_id.get(dst) if isinstance(dst, str) else None
            if rec is None:
                return await node_send(req, w)
            data = bytes.fromhex(req["data_hex"]) if "data_hex" in req else \
                str(req.get("text", "")).encode()
            return await self.send_local(rec.name, data,
                                         self.node.config.delivery_timeout_ms / 1000)

        async def board_list(req, w):
            return self.board_rows()

        async def board_revoke(req, w):
            name = req.get("name")
            if not isinstance(name, str) or self.reg.get(name) is None:
                raise ConfigError(f"no board named {name!r}")
            return self.revoke(name)

        async def board_reload(req, w):
            self.reload()
            return {"boards": len(self.boards)}

        server.register("status", status)
        if node_send is not None:
            server.register("send", send)
        server.register("board_list", board_list)
        server.register("board_revoke", board_revoke)
        server.register("board_reload", board_reload)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, service: BoardService) -> None:
        self.service = service
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        if len(data) > MAX_BOARD_FRAME_BYTES:
            self.service.refuse("malformed", "datagram of %d bytes" % len(data))
            return
        if self.transport is not None:
            self.service.handle(data, UdpPeer(self.transport, addr))

    def error_received(self, exc: Exception) -> None:
        log.debug("board udp socket: %s", exc)


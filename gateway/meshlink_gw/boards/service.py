"""The gateway's board service: boards on UDP/TCP/serial/BLE, each a citizen of
the mesh.

Rule: this is the only place where board listeners, board-link sessions and
the mesh node meet; the parts do one thing each (docs/BOARDS.md):

- sessions.py terminates the board link (handshakes, records, rate limits)
  for every transport; udp.py and tcp.py are thin listeners feeding it, and
  links.py one supervised transport per [[serial]] / [[ble]] entry;
- queue.py stores messages for a board durably (registry.py) and delivers
  them in order, acknowledging them end to end only once the board has;
- records.py is the record plaintext contract;
- this module acts for every registered board in the mesh under the board's
  own node ID (node.serve_id: the router's served IDs): board readings enter
  the mesh from that ID, each board is announced when it comes online
  (events.py), readings and online changes go to hooks (the MQTT bridge),
  and the registry is kept in sync.

A board's bad input (unknown board ID, wrong PSK, revoked, replayed or
corrupted record, flood) is refused with a logged reason and costs at most
that board's session; other boards keep being served.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import sqlite3
import time
from collections import Counter
from typing import Any

from meshlink import boardlink
from meshlink.errors import MeshLinkError
from meshlink.nodeid import new_message_id

from meshlink_gw.boards import bundle, control, records
from meshlink_gw.boards.events import Announcer, BoardEvents
from meshlink_gw.boards.links import BoardLinkRunner, ble_runner, serial_runner
from meshlink_gw.boards.queue import BoardQueue
from meshlink_gw.boards.refusals import RefusalLog
from meshlink_gw.boards.registry import BoardRecord, BoardRegistry, unix_ms
from meshlink_gw.boards.sessions import BoardLink, BoardSessions
from meshlink_gw.boards.tcp import TcpListener
from meshlink_gw.boards.udp import UdpProtocol, beacon_loop, open_udp
from meshlink_gw.config import GatewayConfig
from meshlink_gw.crypto.identity import Identity
from meshlink_gw.runtime import now_ms
from meshlink_gw.tasks import TaskSet

log = logging.getLogger("meshlink.gateway")

TICK_MS = 50
MAX_BOARD_FRAME_BYTES = boardlink.MAX_PLAINTEXT_BYTES + boardlink.RECORD_OVERHEAD_BYTES
SEEN_FLUSH_MS = 30_000  # last-seen times are written to boards.db this often (and at stop)
EXPIRE_EVERY_MS = 10_000  # queue age limit checked this often
UNKNOWN_ID_CACHE_MS = 2000  # an unknown board ID is looked up in boards.db at most this often
UNKNOWN_IDS_KEPT = 4096



class BoardService:
    """Serves every registered board of one gateway node.

    serial_factory and ble_classes ((BleakScanner, BleakClient) or fakes)
    replace pyserial and bleak for tests.
    """

    def __init__(self, node, config: GatewayConfig, registry: BoardRegistry, *,
                 serial_factory: Any = None, ble_classes: tuple[Any, Any] | None = None
                 ) -> None:
        self.node = node
        self.cfg = config
        self.reg = registry
        self.boards: dict[str, BoardRecord] = {}
        self.by_board_id: dict[bytes, BoardRecord] = {}
        self.by_node_id: dict[str, BoardRecord] = {}
        self.stats: Counter[str] = Counter()
        self.refusal_log = RefusalLog(lambda: self.cfg.refusal_log_interval_ms)
        self.refusals = self.refusal_log.counts
        self.refuse = self.refusal_log.refuse
        self.sessions = BoardSessions(config, self.refuse, self.stats, self._lookup,
                                      self._on_established, self._on_record,
                                      self._on_closed)
        self.links = self.sessions.links  # established sessions, by board name
        # each board's last authenticated host, across restarts (HELLO floods: BOARDS.md §4)
        self.sessions.trusted_source.update(self.reg.sources())
        self.sessions.on_trusted_source = self.reg.set_source
        self.half_open = self.sessions.half_open
        self.queue = BoardQueue(node, config, registry, self.sessions, self.refuse,
                                self.stats, now_ms)
        self.tcp = TcpListener(config, MAX_BOARD_FRAME_BYTES + 64, self.sessions.handle,
                               self.sessions.close_link, self.refuse)
        self.events = BoardEvents()
        self.latest: dict[str, dict[str, dict]] = {}  # board -> sensor -> its last reading
        self.announcer = Announcer(node, self.boards, lambda: self.cfg.announce_interval_ms,
                                   self.stats, now_ms())
        self.runners: list[BoardLinkRunner] = []
        self._runner_tasks: list[asyncio.Task] = []
        self.status_extras: dict[str, Any] = {}  # name -> callable() for `status`
        self._serial_factory = serial_factory
        self._ble_classes = ble_classes or (None, None)
        self.udp_addr: tuple[str, int] | None = None
        self.tcp_addr: tuple[str, int] | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._beacon_sock: socket.socket | None = None
        self._tasks = TaskSet()
        self._seen_dirty: dict[str, tuple[int, int | None]] = {}
        self._unknown_ids: dict[bytes, int] = {}  # negative lookup cache
        self.recent_readings = records.RecentReadings()
        self._reg_version = -1
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Load the registry, serve every board's node ID, open the board listeners."""
        self.node.add_deliver_hook(self._on_mesh_delivered)
        self._reg_version = self.reg.data_version()
        self.reload()
        if self.cfg.board_udp is not None:
            protocol = UdpProtocol(self.sessions.handle, MAX_BOARD_FRAME_BYTES, self.refuse)
            self._udp, self.udp_addr = await open_udp(self.cfg.board_udp, protocol)
        if self.cfg.board_tcp is not None:
            try:
                self.tcp_addr = await self.tcp.start(*self.cfg.board_tcp)
            except MeshLinkError:
                if self._udp is not None:
                    self._udp.close()
                raise
        self._start_links()
        log.info("board service: %d board(s) registered; udp %s tcp %s; %d wired link(s)",
                 len(self.boards), self.udp_addr, self.tcp_addr, len(self.runners))
        self._spawn(self._tick_loop(), "boards-tick")
        if self.cfg.beacon:
            self._spawn(beacon_loop(
                self.node.node_id, self.udp_addr[1] if self.udp_addr else 0,
                self.tcp_addr[1] if self.tcp_addr else 0, self.cfg.beacon_broadcast,
                self.cfg.beacon_port, self.cfg.beacon_interval_ms, self._set_beacon_sock),
                "boards-beacon")

    def _set_beacon_sock(self, sock: socket.socket) -> None:
        self._beacon_sock = sock

    def _start_links(self) -> None:
        """One supervised transport per [[serial]] and [[ble]] entry."""
        handle, close = self.sessions.handle, self.sessions.close_link
        for entry in self.cfg.serial:
            self.runners.append(serial_runner(entry, handle, close, self._serial_factory))
        for ble in self.cfg.ble:
            self.runners.append(ble_runner(ble, handle, close, *self._ble_classes))
        for runner in self.runners:
            if runner.board not in self.boards:
                log.warning("%s: no board named %s is registered (yet)", runner.name,
                            runner.board)
            self._runner_tasks.append(self._spawn(runner.run(), runner.name))

    async def stop(self) -> None:
        """Close listeners and sessions, store last-seen times; idempotent."""
        if self._stopping:
            return
        self._stopping = True
        for runner in self.runners:  # closes each transport, ends its session
            runner.stop()
        if self._runner_tasks:
            await asyncio.wait(self._runner_tasks, timeout=3)
        await self._tasks.close()
        self.tcp.close()
        if self._udp is not None:
            self._udp.close()
        if self._beacon_sock is not None:
            self._beacon_sock.close()
        await self.tcp.wait_closed()
        self._flush_seen()
        self.node.remove_deliver_hook(self._on_mesh_delivered)

    def _spawn(self, coro, name: str) -> asyncio.Task:
        return self._tasks.spawn(coro, name)

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
                self.sessions.cut(rec.name, "revoked")
                self._forget(old)
                self.boards[rec.name] = rec
                self.by_board_id[rec.board_id] = rec

    def _add_board(self, rec: BoardRecord) -> None:
        self.boards[rec.name] = rec
        self.by_board_id[rec.board_id] = rec
        self.by_node_id[rec.node_id] = rec
        self._unknown_ids.pop(rec.board_id, None)
        name = rec.name
        # we hold the board's identity: we sign its messages and delivery proofs
        self.node.serve_id(rec.node_id, lambda msg, hops: self._from_mesh(name, msg, hops),
                           Identity.from_pem(rec.identity_pem))
        self.queue.dirty.add(name)
        self.announcer.later(name)

    def _forget(self, rec: BoardRecord) -> None:
        """A revoked board: no longer served, and observers are told."""
        self.node.unserve_id(rec.node_id)
        self.by_node_id.pop(rec.node_id, None)
        self.recent_readings.forget(rec.name)
        self.events.revoked(rec)

    def board_io(self, rec: BoardRecord) -> tuple[list[str], list[str]]:
        """(sensor names, outputs) of a board, from its bundle."""
        return bundle.board_io(self.reg.path.parent, rec.name, rec.board_type)

    def _lookup(self, board_id: bytes, now: int) -> BoardRecord | None:
        rec = self.by_board_id.get(board_id)
        if rec is not None:
            return rec
        seen = self._unknown_ids.get(board_id)
        if seen is not None and now - seen < UNKNOWN_ID_CACHE_MS:
            return None
        rec = self.reg.by_board_id(board_id)  # added by `meshlink board add` just now?
        if rec is None:
            if len(self._unknown_ids) > UNKNOWN_IDS_KEPT:
                self._unknown_ids.clear()
            self._unknown_ids[board_id] = now
            return None
        self.reload()
        return self.boards.get(rec.name)

    def revoke(self, name: str) -> dict:
        """Revoke a board now: mark it in the registry, cut its session, drop its queue."""
        rec = self.reg.revoke(name)
        self.sessions.cut(name, "revoked")
        self._forget(rec)
        self.boards[name] = rec
        self.by_board_id[rec.board_id] = rec
        dropped = self.reg.drop_queue(name)
        log.warning("board %s revoked: session cut, %d queued message(s) dropped, "
                    "new sessions refused", name, dropped)
        return {"name": name, "revoked": True, "queued_dropped": dropped}

    # -- sessions ----------------------------------------------------------------------
    def _on_established(self, link: BoardLink, now: int) -> None:
        rec = link.board
        self._seen_dirty[rec.name] = (unix_ms(), link.session.boot_ctr)
        self.events.seen(rec)
        self.announcer.announce(rec)
        self.queue.dirty.add(rec.name)
        self.queue.pump(link, now)

    def _on_closed(self, link: BoardLink) -> None:
        # Offline now, not at the next tick: a board that reconnected within one
        # tick would otherwise never be reported offline, nor online again.
        if link.board.name not in self.links and not self._stopping:
            self.events.offline(link.board)

    def _on_record(self, link: BoardLink, plaintext: bytes, now: int) -> None:
        self._seen_dirty[link.board.name] = (unix_ms(), None)
        self.events.seen(link.board)
        obj = records.decode_record(plaintext)
        t = obj["t"]
        if t == "reading":
            self._on_reading(link, obj, now)
        elif t == "ack":
            self.queue.on_board_ack(link, obj.get("id"), now)
            self._grant_sleep(link, now)
        elif t == "sleep":
            link.wants_sleep_ms = records.sleep_ms(obj, self.cfg.max_sleep_ms)
            self._grant_sleep(link, now)
        elif t == "ping":
            self.sessions.send(link, {"t": "pong", "seq": records.ping_seq(obj)}, now)
        elif t == "send":  # raw data; here "to": null means broadcast (docs/FIRMWARE.md)
            data = records.send_data(obj)
            self._from_board(link, records.send_target(obj.get("to")), data, "message")
        else:
            log.debug("board %s sent unknown record type %r; ignored", link.board.name, t)

    def _grant_sleep(self, link: BoardLink, now: int) -> None:
        """A board that asked to sleep may, once nothing is queued for it: it
        gets sleep_ok, shows asleep, and its messages are held until it wakes
        (PROTOCOL.md §8, "Sleeping boards")."""
        ms = link.wants_sleep_ms
        if ms is None or link.inflight is not None or self.reg.head(link.board.name) is not None:
            return
        link.wants_sleep_ms = None
        self.sessions.send(link, {"t": "sleep_ok", "ms": ms}, now)
        link.asleep_until_ms = now + ms + self.cfg.sleep_grace_ms
        self.stats["board_sleeps"] += 1
        self.events.sleeping(link.board, link.asleep_until_ms)
        log.info("board %s asleep for %d ms", link.board.name, ms)

    def _on_reading(self, link: BoardLink, obj: dict, now: int) -> None:
        """Put a reading into the mesh once, then confirm it to the board
        ("got"): the board keeps it until then and sends it again after a
        loss or a gateway restart. A reading that could not be taken (an
        exception) is not confirmed."""
        sensor, value, unit, seq = records.reading_fields(obj)
        rec = link.board
        to = obj.get("to")
        key = (link.session.boot_ctr, seq, to)
        if not self.recent_readings.seen(rec.name, key):
            data = records.reading_data(rec.name, rec.node_id, sensor, value, unit, seq)
            self._from_board(link, records.target(to), data,
                             "reading %s=%d%s seq %d" % (sensor, value, unit and " m" + unit, seq))
            self.recent_readings.remember(rec.name, key)
            self.stats["readings"] += 1
            reading = {"sensor": sensor, "value_milli": value, "unit": unit, "seq": seq}
            stamped = dict(reading, unix_ms=int(time.time() * 1000))
            self.latest.setdefault(rec.name, {})[sensor] = stamped
            self.events.reading(rec, reading)
        else:
            self.stats["readings_repeated"] += 1
        self.sessions.send(link, {"t": "got", "seq": seq, "to": to}, now)

    # -- board -> mesh -----------------------------------------------------------------
    def _from_board(self, link: BoardLink, to: str | None, data: bytes, what: str) -> None:
        """Put something a board sent into the mesh, from the board's node ID."""
        src = link.board.node_id
        name = link.board.name
        node = self.node
        if to is None or to == node.node_id:
            node.originate(node.node_id, data, src=src)  # the gateway's own inbox
            log.debug("board %s: %s -> gateway", name, what)
            return
        if to == records.BROADCAST:
            node.originate(None, data, src=src)
            self._fanout_local(src, data, exclude=name)
            log.info("board %s: %s -> broadcast", name, what)
            return
        msg, fut = node.originate(to, data, src=src)  # a board of ours: its queue
        log.info("board %s: %s -> %s id=%s", name, what, to, msg.message_id)
        if fut is not None:
            fut.add_done_callback(lambda f, m=msg.message_id: self._sent(name, m, f))

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

    # -- mesh -> boards ----------------------------------------------------------------
    def _fanout_local(self, src: str, data: bytes, exclude: str | None = None,
                      origin_id: str | None = None, hops: int = 1) -> None:
        """A broadcast to every online board of this gateway (live only, not queued)."""
        if not self.cfg.forward_broadcasts:
            return
        now = now_ms()
        record = None
        for name, link in list(self.links.items()):
            if name == exclude or not link.online(now, self.cfg.offline_after_ms):
                continue
            if record is None:
                record = records.msg_record(origin_id or new_message_id(os.urandom(16)), src,
                                            None, data, hops)
                if not records.fits(record, self.cfg.max_record_bytes):
                    self.stats["broadcasts_too_large"] += 1
                    return
            self.sessions.send(link, record, now)

    def _on_mesh_delivered(self, rec) -> None:
        """deliver hook: a broadcast (or a message for the gateway itself) arrived."""
        if rec.dst is not None or rec.src in self.by_node_id or not self.links:
            return  # (announcements never get here: the node does not store them)
        self._fanout_local(rec.src, rec.data, origin_id=rec.origin_id, hops=rec.hops)

    def _from_mesh(self, name: str, msg: Any, hops: int) -> bool:
        """served-ID handler: queue a directed message for board name (see BoardQueue)."""
        rec = self.boards.get(name)
        if rec is None or rec.revoked:
            return False
        return self.queue.from_mesh(name, msg, hops)

    def broadcast_from_gateway(self, data: bytes) -> str:
        """A broadcast from the gateway itself: to the mesh and to every online
        board of this gateway. Returns its message ID. Raises LocalProtocolError."""
        msg, _ = self.node.originate(None, data)
        self._fanout_local(self.node.node_id, data, origin_id=msg.message_id)
        return msg.message_id

    # -- timers ------------------------------------------------------------------------
    async def _tick_loop(self) -> None:
        last_poll = last_flush = last_expire = now_ms()
        while True:
            await asyncio.sleep(TICK_MS / 1000)
            now = now_ms()
            try:
                self.sessions.expire_half_open(now)
                self.sessions.drop_idle(now)
                self.queue.tick(now)
                self.announcer.tick(now)
                self.events.check(functools.partial(self._online, now=now))
                self.events.check_asleep(now)
                if now - last_flush >= SEEN_FLUSH_MS:
                    last_flush = now
                    self._flush_seen()
                if now - last_poll >= self.cfg.registry_poll_ms:
                    last_poll = now
                    self._poll_registry()
                if now - last_expire >= EXPIRE_EVERY_MS:
                    last_expire = now
                    self.queue.expire()
            except (MeshLinkError, sqlite3.Error) as e:  # keep ticking: retry next time
                log.error("board service tick failed: %s", e)

    def _online(self, name: str, now: int) -> bool:
        link = self.links.get(name)
        return link is not None and link.online(now, self.cfg.offline_after_ms)

    def _poll_registry(self) -> None:
        version = self.reg.data_version()
        if version != self._reg_version:  # another process wrote boards.db
            self._reg_version = version
            self.reload()

    def _flush_seen(self) -> None:
        if self._seen_dirty:
            seen, self._seen_dirty = self._seen_dirty, {}
            self.reg.touch(seen)

    # -- control and status ------------------------------------------------------------
    def board_rows(self) -> list[dict]:
        """One row per registered board, with its live session (for `board list`)."""
        self._flush_seen()
        return control.board_rows(self, now_ms())

    def status(self) -> dict:
        """The service's part of `meshlink status`."""
        return control.status(self, now_ms())

    def attach_control(self, server) -> None:
        """Add board commands to a ControlServer and make status/send board-aware."""
        control.attach(self, server)

"""The full mesh node: one asyncio loop driving the shared core.

Rule: this is the only place where sockets, clocks and the router meet. It
owns the listener, the dialers (with backoff), the peer table (the
whitepaper's PeerManager), heartbeats, end-to-end delivery with retries and
the inbox. Bad input from a peer ends at most that peer's link, never the
process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from meshlink import messages
from meshlink.errors import LocalProtocolError, MeshLinkError, ProtocolError, TransportError
from meshlink.nodeid import new_message_id
from meshlink.router import Router

from meshlink_gw.announce import is_announce
from meshlink_gw.config import NodeConfig
from meshlink_gw.connection import PeerConnection, now_ms
from meshlink_gw.discovery import Discovery
from meshlink_gw.peers import PeerTable
from meshlink_gw.routing_log import RoutingLog
from meshlink_gw.store import Inbox, Received
from meshlink_gw.tasks import TaskSet

log = logging.getLogger("meshlink.node")

TICK_MS = 50  # resolution of retry and heartbeat timers


def hops_travelled(msg) -> int:
    """Links a routed message crossed: its path lists the origin and every relay."""
    return max(1, len(msg.path))


def _new_id() -> str:
    return new_message_id(os.urandom(16))


@dataclass
class SendResult:
    """Outcome of a directed send."""

    message_id: str
    delivered: bool
    rtt_ms: int | None = None
    attempts: int = 1
    reason: str = ""


@dataclass
class _Pending:
    msg: messages.MeshMessage
    future: asyncio.Future
    started_ms: int
    next_retry_ms: int
    expires_ms: int
    attempts: int = 1
    attempt_ids: list[str] = field(default_factory=list)


class Node:
    """A MeshLink full node. Use `async with Node(...)` or start()/stop()."""

    def __init__(self, config: NodeConfig, identity) -> None:
        self.config = config
        self.identity = identity
        self.node_id: str = identity.node_id
        self.local_ids: set[str] = {self.node_id}
        self.routing_log = RoutingLog(config.routing_log) if config.routing_log else None
        # wall-clock seconds start the announcement sequence numbers, so a
        # restarted node's announcements outrank those it made before
        options = {"announce_seq0": int(time.time())} if config.router == "meshlink" else None
        self.router = Router(self.node_id, config.router, rng=random.Random(),
                             default_ttl=config.default_ttl, options=options,
                             log=self.routing_log.write if self.routing_log else None)
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.inbox = Inbox(config.data_dir / "meshlink.db", config.inbox_max_messages)
        self.peers = PeerTable(self)
        self.pending: dict[str, _Pending] = {}
        self.attempt_origin: dict[str, str] = {}
        self.inbox_changed = asyncio.Event()
        self.deliver_hooks: list[Callable[[Received], None]] = []
        self.served: dict[str, Callable[[messages.MeshMessage, int], bool]] = {}
        self.stats = {"relayed": 0, "delivered": 0, "records_rejected": 0,
                      "handshakes_failed": 0, "duplicates": 0, "announces": 0}
        self._server: asyncio.AbstractServer | None = None
        self.tasks = TaskSet()
        self.listen_addr: tuple[str, int] = config.listen
        self.stopping = False
        self.discovery: Discovery | None = None

    # -- lifecycle -------------------------------------------------------
    async def start(self) -> None:
        """Listen, dial static peers, start timers."""
        host, port = self.config.listen
        self._server = await asyncio.start_server(self.peers.accept, host, port,
                                                  limit=1 << 20, reuse_address=True)
        sock = self._server.sockets[0].getsockname()
        self.listen_addr = (sock[0], sock[1])
        self.config.listen = self.listen_addr
        log.info("node %s listening on %s:%d router=%s", self.node_id, *self.listen_addr,
                 self.config.router)
        for addr in self.config.peers:
            self.peers.dial_forever(addr)
        self.spawn(self._tick_loop(), "tick")
        self.spawn(self.peers.heartbeat_loop(), "heartbeat")
        if self.config.discovery:
            await self._start_discovery()

    async def _start_discovery(self) -> None:
        cfg = self.config

        def on_peer(node_id: str, addr: tuple[str, int]) -> None:
            if node_id not in self.peers.links and node_id not in self.local_ids:
                self.peers.dial_forever(addr, node_id)

        self.discovery = Discovery(self.node_id, self.listen_addr[1], port=cfg.discovery_port,
                                   broadcast_addr=cfg.discovery_broadcast,
                                   interval_ms=cfg.beacon_interval_ms, on_peer=on_peer)
        await self.discovery.start()
        self.spawn(self.discovery.run(), "discovery")

    async def stop(self) -> None:
        """Close every link and task; idempotent."""
        if self.stopping:
            return
        self.stopping = True
        if self._server is not None:
            self._server.close()
        if self.discovery is not None:
            self.discovery.close()
        await self.peers.close_all("shutdown")
        await self.tasks.close()
        for p in self.pending.values():
            if not p.future.done():
                p.future.set_result(SendResult(p.msg.origin_id, False, reason="node stopped"))
        if self._server is not None:
            await self._server.wait_closed()
        if self.routing_log:
            self.routing_log.close()
        self.inbox.close()

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def spawn(self, coro, name: str) -> asyncio.Task:
        """Run coro as one of this node's tasks (cancelled by stop())."""
        return self.tasks.spawn(coro, name)

    # -- messages from peers ---------------------------------------------
    def on_message(self, conn: PeerConnection, msg: messages.Message) -> None:
        """Dispatch one authenticated message from a neighbour."""
        t = msg.TYPE
        if t == "mesh" or t == "ack":
            self._on_routed(conn, msg)
        elif t == "ihave" or t == "graft" or t == "prune" or t == "routes":
            self.dispatch(self.router.receive(msg, conn.peer_node_id, now_ms()).forward)
        elif t == "ping":
            conn.send(messages.Pong(seq=msg.seq, sent_ms=msg.sent_ms))
        elif t == "pong":
            self.peers.on_pong(conn, msg)
        elif t == "data":
            self._deliver(conn.peer_node_id or "", self.node_id, _new_id(), None, msg.data, 1)
        elif t == "close":
            log.info("peer=%s closed: %s", conn.peer_node_id, msg.reason)
            conn.closed = True
            conn.writer.close()
        elif t == "error":
            self.peers.on_error(conn, msg)
        else:
            log.warning("peer=%s sent %s after the handshake; ignored", conn.peer_node_id, t)

    def _on_routed(self, conn: PeerConnection, msg) -> None:
        now = now_ms()
        d = self.router.receive(msg, conn.peer_node_id, now)
        if d.forward:
            self.stats["relayed"] += 1
            self.dispatch(d.forward)
        if not d.deliver:
            return
        if msg.TYPE == "ack":
            if msg.dst in self.local_ids:
                self._on_ack(msg, now)
            return
        if msg.dst in self.served:
            self._to_served(msg, hops_travelled(msg))
            return
        if msg.dst is None and is_announce(msg.src, None, msg.data):
            self.stats["announces"] += 1  # routed and relayed; not a user message
            return
        if msg.dst is None or msg.dst == self.node_id:
            self._deliver(msg.src, msg.dst, msg.message_id, msg.origin_id, msg.data,
                          hops_travelled(msg))
            if msg.dst is not None:
                self.send_ack_for(msg)

    def dispatch(self, forward: list) -> None:
        """Send each (peer_id, message) of a routing decision; encode each message once."""
        encoded: dict[int, bytes] = {}
        for peer_id, out in forward:
            conn = self.peers.get(peer_id)
            if conn is None:
                continue
            payload = encoded.get(id(out))
            if payload is None:
                # Built by Node.originate (validated there) or derived by the
                # router from a validated message: skip re-validation.
                payload = encoded[id(out)] = out.encode(check=False)
            conn.send_encoded(payload)

    async def relieve_backpressure(self) -> None:
        """Pause the calling reader while any link's send buffer is over the limit."""
        await self.peers.drain_congested(self.config.write_buffer_high_bytes)

    # -- delivery --------------------------------------------------------
    def _deliver(self, src: str, dst: str | None, message_id: str, origin_id: str | None,
                 data: bytes, hops: int) -> None:
        rec = self.inbox.add(src, dst, message_id, origin_id or message_id, data, hops)
        if rec is None:
            self.stats["duplicates"] += 1
            return
        self.stats["delivered"] += 1
        log.info("received from=%s to=%s id=%s hops=%d bytes=%d", src, dst or "*",
                 rec.origin_id, hops, len(data))
        self.inbox_changed.set()
        self.inbox_changed = asyncio.Event()
        for hook in self.deliver_hooks:
            try:
                hook(rec)
            except MeshLinkError as e:
                log.warning("deliver hook failed: %s", e)

    def serve_id(self, node_id: str,
                 handler: Callable[[messages.MeshMessage, int], bool]) -> None:
        """Act for another node ID (a board): its directed messages go to handler,
        from the mesh or from this node (originate), and originate() may send
        from it (the router's served IDs).

        handler(msg, hops) returns True if the message is delivered (ack now);
        False means the caller acks later with send_ack_for() once it is.

        Raises:
            LocalProtocolError: our own node ID, or the router's max_served reached.
        """
        self.router.serve(node_id)
        self.local_ids.add(node_id)
        self.served[node_id] = handler

    def unserve_id(self, node_id: str) -> None:
        if node_id == self.node_id:
            return
        self.router.unserve(node_id)
        self.served.pop(node_id, None)
        self.local_ids.discard(node_id)

    def _to_served(self, msg: messages.MeshMessage, hops: int) -> None:
        """Hand a directed message to its served ID's handler (it acks when delivered)."""
        handler = self.served.get(msg.dst or "")
        if handler is not None and handler(msg, hops):
            self.send_ack_for(msg)

    def send_ack_for(self, msg: messages.MeshMessage) -> None:
        """Send the end-to-end Ack for a directed message delivered here (to its
        sender here when the sender is this node or a served ID)."""
        now = now_ms()
        ack = messages.Ack(src=msg.dst, dst=msg.src, ack_for=msg.message_id,
                           message_id=_new_id(), ttl=self.config.default_ttl, path=[])
        if ack.dst in self.local_ids:
            self._on_ack(ack, now)
            return
        self.dispatch(self.router.originate(ack, now).forward)

    def _on_ack(self, ack: messages.Ack, now: int) -> None:
        self.router.on_ack(ack, now)
        origin = self.attempt_origin.pop(ack.ack_for, None)
        p = self.pending.pop(origin, None) if origin else None
        if p is None or origin is None:
            return
        for mid in p.attempt_ids:
            self.attempt_origin.pop(mid, None)
        if not p.future.done():
            p.future.set_result(SendResult(origin, True, now - p.started_ms, p.attempts))

    def originate(self, dst: str | None, data: bytes, src: str | None = None
                  ) -> tuple[messages.MeshMessage, asyncio.Future | None]:
        """Start sending data; directed sends get a future of SendResult.

        Raises:
            LocalProtocolError: invalid destination or payload too large.
        """
        now = now_ms()
        mid = _new_id()
        msg = messages.MeshMessage(src=src or self.node_id, dst=dst, data=data, message_id=mid,
                                   ttl=self.config.default_ttl, path=[])
        msg.encode()  # validate before anything is queued
        if dst is not None and len(self.pending) >= self.config.max_pending_sends:
            raise LocalProtocolError("too many directed messages awaiting acknowledgement")
        if dst == self.node_id:
            self._deliver(msg.src, dst, mid, mid, data, 0)
            fut = asyncio.get_running_loop().create_future()
            fut.set_result(SendResult(mid, True, 0))
            return msg, fut
        if dst is None:
            self.dispatch(self.router.originate(msg, now).forward)
            return msg, None
        fut = self._track(msg, now)
        if dst in self.served:  # a board of ours: its handler acks once it has it
            self._to_served(msg, hops_travelled(msg))
        else:
            self.dispatch(self.router.originate(msg, now).forward)
        return msg, fut

    def _track(self, msg: messages.MeshMessage, now: int) -> asyncio.Future:
        """Await msg's end-to-end Ack: retries and expiry run in the tick loop."""
        fut = asyncio.get_running_loop().create_future()
        cfg = self.config
        mid = msg.message_id
        self.pending[mid] = _Pending(msg, fut, now, now + cfg.retry_interval_ms,
                                     now + cfg.delivery_timeout_ms, attempt_ids=[mid])
        self.attempt_origin[mid] = mid
        return fut

    async def send(self, dst: str | None, data: bytes) -> SendResult:
        """Send and, for a directed message, wait for its end-to-end Ack or expiry."""
        msg, fut = self.originate(dst, data)
        await self.relieve_backpressure()
        if fut is None:
            return SendResult(msg.message_id, True, None, 1, "broadcast (no ack)")
        return await fut

    def _retry_due(self, now: int) -> None:
        for origin, p in list(self.pending.items()):
            if now >= p.expires_ms:
                self.router.on_delivery_failed(p.attempt_ids[-1], now)
                del self.pending[origin]
                for mid in p.attempt_ids:
                    self.attempt_origin.pop(mid, None)
                if not p.future.done():
                    p.future.set_result(SendResult(origin, False, None, p.attempts,
                                                   "no acknowledgement before expiry"))
            elif now >= p.next_retry_ms:
                self._retry(p, now)

    def _retry(self, p: _Pending, now: int) -> None:
        self.router.on_delivery_failed(p.attempt_ids[-1], now)
        mid = _new_id()
        m = p.msg
        again = messages.MeshMessage(src=m.src, dst=m.dst, data=m.data, message_id=mid,
                                     origin_id=m.origin_id, ttl=m.ttl, path=[])
        p.attempts += 1
        p.attempt_ids.append(mid)
        self.attempt_origin[mid] = m.origin_id
        p.next_retry_ms = now + self.config.retry_interval_ms * min(p.attempts, 4)
        if again.dst in self.served:
            self._to_served(again, hops_travelled(again))
        else:
            self.dispatch(self.router.originate(again, now).forward)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_MS / 1000)
            now = now_ms()
            self._retry_due(now)
            deadline = self.router.next_deadline()
            if deadline is not None and now >= deadline:
                self.dispatch(self.router.handle_timer(now))

    # -- status ----------------------------------------------------------
    def status(self) -> dict:
        scores = {p["peer_id"]: p for p in self.router.peers()}
        return {
            "node_id": self.node_id,
            "listen": f"{self.listen_addr[0]}:{self.listen_addr[1]}",
            "router": self.config.router,
            "routing": self.router.status(),
            "peers": self.peers.describe(scores),
            "pending": len(self.pending),
            "stats": dict(self.stats),
            "time_unix": time.time(),
        }


__all__ = ["Node", "SendResult", "ProtocolError", "TransportError"]

"""The full mesh node: one asyncio loop driving the shared core.

Rule: this is the only place where sockets, clocks and the sans-I/O cores
(meshlink.router, meshlink.delivery) meet. The node owns the listener, the
peer table (the whitepaper's PeerManager: links, dialers, heartbeats) and
the inbox; it feeds the cores now_ms and what its links receive, sends what
they return and sleeps until their next deadline. Bad input from a peer ends
at most that peer's link, never the process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from meshlink import messages
from meshlink.delivery import Delivered, Delivery, Expired, Retry
from meshlink.errors import MeshLinkError, ProtocolError, StoreError, TransportError
from meshlink.nodeid import new_message_id
from meshlink.router import Router

from meshlink_gw.announce import is_announce
from meshlink_gw.config import NodeConfig
from meshlink_gw.node.discovery import Discovery
from meshlink_gw.node.link import LinkParams
from meshlink_gw.node.peers import LinkEvents, PeerTable
from meshlink_gw.node.store import Inbox, Received
from meshlink_gw.routing_log import RoutingLog
from meshlink_gw.runtime import now_ms
from meshlink_gw.tasks import TaskSet

log = logging.getLogger("meshlink.node")

STORE_LOG_INTERVAL_MS = 10_000  # a full disk is logged at most this often


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
        self.delivery = Delivery(_new_id, retry_interval_ms=config.retry_interval_ms,
                                 delivery_timeout_ms=config.delivery_timeout_ms,
                                 max_pending=config.max_pending_sends,
                                 default_ttl=config.default_ttl)
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.inbox = Inbox(config.data_dir / "meshlink.db", config.inbox_max_messages)
        params = LinkParams(identity, config.listen[1], config.network_key,
                            config.max_frame_bytes, config.handshake_timeout_ms)
        events = LinkEvents(on_message=self.on_message,
                            on_peer_up=self._after(self.router.peer_up),
                            on_peer_down=self._after(self.router.peer_down),
                            on_rtt=self._after(self.router.record_rtt),
                            on_ping_lost=self._after(self.router.record_ping_lost))
        self.peers = PeerTable(config, self.node_id, params, events,
                               is_local=self.local_ids.__contains__)
        self._futures: dict[str, asyncio.Future] = {}  # origin_id -> SendResult future
        self.inbox_changed = asyncio.Event()
        self.deliver_hooks: list[Callable[[Received], None]] = []
        self.served: dict[str, Callable[[messages.MeshMessage, int], bool]] = {}
        self.counters = {"relayed": 0, "delivered": 0, "duplicates": 0, "announces": 0,
                         "store_refused": 0}
        self._refused_logged_ms = -STORE_LOG_INTERVAL_MS  # the first refusal is logged
        self._refused_since_log = 0
        self._server: asyncio.AbstractServer | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due: int | None = None
        self.tasks = TaskSet()
        self.listen_addr: tuple[str, int] = config.listen
        self.stopping = False
        self.discovery: Discovery | None = None

    # -- lifecycle -------------------------------------------------------
    async def start(self) -> None:
        """Listen, dial static peers, start timers."""
        host, port = self.config.listen
        # bound first, serving once the real port is known: inbound
        # handshakes announce it
        self._server = await asyncio.start_server(self.peers.accept, host, port,
                                                  limit=1 << 20, reuse_address=True,
                                                  start_serving=False)
        sock = self._server.sockets[0].getsockname()
        self.listen_addr = (sock[0], sock[1])
        self.peers.set_listen_port(self.listen_addr[1])
        await self._server.start_serving()
        log.info("node %s listening on %s:%d router=%s", self.node_id, *self.listen_addr,
                 self.config.router)
        for addr in self.config.peers:
            self.peers.dial_forever(addr)
        self.peers.dial_known()  # neighbours from the last run: heal at once
        self.peers.start()
        self._arm_timer()
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
        if self._timer is not None:
            self._timer.cancel()
        await self.peers.close_all("shutdown")
        await self.tasks.close()
        for gone in self.delivery.abandon():
            self._resolve(gone.origin_id, SendResult(gone.origin_id, False, None, gone.attempts,
                                                     "node stopped"))
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
    def on_message(self, peer_id: str, msg: messages.Message) -> None:
        """Dispatch one authenticated message from neighbour peer_id (link-level
        messages were answered by the peer table)."""
        t = msg.TYPE
        if t == "mesh" or t == "ack":
            self._on_routed(peer_id, msg)
        elif t == "ihave" or t == "graft" or t == "prune" or t == "routes":
            self.dispatch(self.router.receive(msg, peer_id, now_ms()).forward)
        elif t == "data":
            mid = _new_id()
            self._deliver(peer_id, self.node_id, mid, mid, msg.data, 1)
        else:
            log.warning("peer=%s sent %s after the handshake; ignored", peer_id, t)
        self._arm_timer()

    def _on_routed(self, peer_id: str, msg) -> None:
        now = now_ms()
        d = self.router.receive(msg, peer_id, now)
        if d.forward:
            self.counters["relayed"] += 1
            self.dispatch(d.forward)
        if not d.deliver:
            return
        if msg.TYPE == "ack":
            if msg.dst in self.local_ids:
                self._on_ack(msg, now)
            return
        if msg.dst in self.served:
            # every arrival: the board queue deduplicates durably and re-acks
            self._to_served(msg, hops_travelled(msg))
            return
        if msg.dst is None and is_announce(msg.src, None, msg.data):
            self.counters["announces"] += 1  # routed and relayed; not a user message
            return
        if msg.dst is None or msg.dst == self.node_id:
            if self.delivery.first_arrival(msg, now):
                if not self._deliver(msg.src, msg.dst, msg.message_id, msg.origin_id,
                                     msg.data, hops_travelled(msg)):
                    self.delivery.forget_arrival(msg)  # not kept: no Ack, the sender retries
                    return
            else:
                self.counters["duplicates"] += 1
            if msg.dst is not None:
                self.send_ack_for(msg)  # every arrival: our earlier Ack may be lost

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
        """Pause the caller while any link's send buffer is over the limit."""
        await self.peers.drain_congested(self.config.write_buffer_high_bytes)

    # -- delivery --------------------------------------------------------
    def _deliver(self, src: str, dst: str | None, message_id: str, origin_id: str | None,
                 data: bytes, hops: int) -> bool:
        """Store a message for this node's application; False if the store
        refused it (a full disk: logged once per interval, nothing acked)."""
        try:
            rec = self.inbox.add(src, dst, message_id, origin_id or message_id, data, hops)
        except sqlite3.Error as e:
            self._store_refused(e)
            return False
        if rec is None:  # the inbox remembers across restarts what delivery forgot
            self.counters["duplicates"] += 1
            return True
        self.counters["delivered"] += 1
        log.info("received from=%s to=%s id=%s hops=%d bytes=%d", src, dst or "*",
                 rec.origin_id, hops, len(data))
        self.inbox_changed.set()
        self.inbox_changed = asyncio.Event()
        for hook in self.deliver_hooks:
            try:
                hook(rec)
            except MeshLinkError as e:
                log.warning("deliver hook failed: %s", e)
        return True

    def _store_refused(self, e: sqlite3.Error) -> None:
        """Count a message the inbox could not keep; one log line per interval."""
        self.counters["store_refused"] += 1
        self._refused_since_log += 1
        now = now_ms()
        if now - self._refused_logged_ms >= STORE_LOG_INTERVAL_MS:
            log.error("inbox %s refused %d message(s) (%s); not acknowledged, so their "
                      "senders retry; links and relaying go on", self.inbox.path,
                      self._refused_since_log, e)
            self._refused_logged_ms = now
            self._refused_since_log = 0

    def add_deliver_hook(self, hook: Callable[[Received], None]) -> None:
        """Call hook(record) for every message stored in this node's inbox."""
        self.deliver_hooks.append(hook)

    def remove_deliver_hook(self, hook: Callable[[Received], None]) -> None:
        if hook in self.deliver_hooks:
            self.deliver_hooks.remove(hook)

    def peer_count(self) -> int:
        """Neighbours with a live link."""
        return len(self.peers.links)

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
        ack = self.delivery.ack_for(msg)
        if ack.dst in self.local_ids:
            self._on_ack(ack, now)
            return
        self.dispatch(self.router.originate(ack, now).forward)
        self._arm_timer()

    def _on_ack(self, ack: messages.Ack, now: int) -> None:
        self.router.on_ack(ack, now)
        done = self.delivery.on_ack(ack, now)
        if done is not None:
            self._resolve(done.origin_id, SendResult(done.origin_id, True, done.rtt_ms,
                                                     done.attempts))

    def _resolve(self, origin_id: str, result: SendResult) -> None:
        fut = self._futures.pop(origin_id, None)
        if fut is not None and not fut.done():
            fut.set_result(result)

    def originate(self, dst: str | None, data: bytes, src: str | None = None
                  ) -> tuple[messages.MeshMessage, asyncio.Future | None]:
        """Start sending data; directed sends get a future of SendResult.

        Raises:
            LocalProtocolError: invalid destination, payload too large, or too
                many directed messages awaiting acknowledgement.
            StoreError: a message to this node itself that the inbox refused.
        """
        now = now_ms()
        msg = self.delivery.message(src or self.node_id, dst, data)
        mid = msg.message_id
        if dst == self.node_id:
            if not self._deliver(msg.src, dst, mid, mid, data, 0):
                raise StoreError(f"inbox {self.inbox.path} refused the message (disk full?)")
            fut = asyncio.get_running_loop().create_future()
            fut.set_result(SendResult(mid, True, 0))
            return msg, fut
        if dst is None:
            self.dispatch(self.router.originate(msg, now).forward)
            self._arm_timer()
            return msg, None
        self.delivery.track(msg, now)
        fut = self._futures[mid] = asyncio.get_running_loop().create_future()
        self._send_attempt(msg, now)
        return msg, fut

    def _send_attempt(self, msg: messages.MeshMessage, now: int) -> None:
        if msg.dst in self.served:  # a board of ours: its handler acks once it has it
            self._to_served(msg, hops_travelled(msg))
        else:
            self.dispatch(self.router.originate(msg, now).forward)
        self._arm_timer()

    async def send(self, dst: str | None, data: bytes) -> SendResult:
        """Send and, for a directed message, wait for its end-to-end Ack or expiry."""
        msg, fut = self.originate(dst, data)
        await self.relieve_backpressure()
        if fut is None:
            return SendResult(msg.message_id, True, None, 1, "broadcast (no ack)")
        return await fut

    # -- timers: sleep until the router's or delivery's next deadline ----
    def _after(self, router_call: Callable[..., object]) -> Callable[..., None]:
        """router_call, then re-arm the timer (a link event may move a deadline)."""
        def call(*args) -> None:
            router_call(*args)
            self._arm_timer()
        return call

    def _arm_timer(self) -> None:
        """Wake at the earliest deadline of the router and of delivery."""
        if self.stopping:
            return
        a = self.router.next_deadline()
        b = self.delivery.next_deadline()
        due = a if b is None else (b if a is None or b < a else a)
        if due is None or (self._timer_due is not None and self._timer_due <= due):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_due = due
        delay_s = max(0, due - now_ms()) / 1000
        self._timer = asyncio.get_running_loop().call_later(delay_s, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_due = None
        now = now_ms()
        due = self.router.next_deadline()
        if due is not None and now >= due:
            self.dispatch(self.router.handle_timer(now))
        for ev in self.delivery.handle_timer(now):
            self._on_delivery_event(ev, now)
        self._arm_timer()

    def _on_delivery_event(self, ev: Retry | Expired | Delivered, now: int) -> None:
        if isinstance(ev, Retry):
            self.router.on_delivery_failed(ev.failed_id, now)
            self._send_attempt(ev.msg, now)
        elif isinstance(ev, Expired):
            self.router.on_delivery_failed(ev.failed_id, now)
            self._resolve(ev.origin_id, SendResult(ev.origin_id, False, None, ev.attempts,
                                                   "no acknowledgement before expiry"))

    # -- status ------------------------------------------------------------
    @property
    def stats(self) -> dict[str, int]:
        """A snapshot of the node's and its links' counters."""
        return dict(self.counters, handshakes_failed=self.peers.stats["handshakes_failed"],
                    records_rejected=self.peers.records_rejected())

    def status(self) -> dict:
        scores = {p["peer_id"]: p for p in self.router.peers()}
        return {
            "node_id": self.node_id,
            "listen": f"{self.listen_addr[0]}:{self.listen_addr[1]}",
            "router": self.config.router,
            "routing": self.router.status(),
            "peers": self.peers.describe(scores),
            "pending": self.delivery.pending_count(),
            "stats": self.stats,
            "time_unix": time.time(),
        }


__all__ = ["Node", "SendResult", "ProtocolError", "TransportError"]

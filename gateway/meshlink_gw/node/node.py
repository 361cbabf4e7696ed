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
import collections
import logging
import os
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from meshlink import messages
from meshlink.auth import Auth
from meshlink.delivery import Delivered, Delivery, Expired, Retry
from meshlink.errors import (
    AuthError,
    DecodeError,
    LocalProtocolError,
    MeshLinkError,
    ProtocolError,
    StoreError,
    TransportError,
)
from meshlink.nodeid import is_id, new_message_id
from meshlink.router import CONTROL_TYPES, Router

from meshlink_gw.announce import node_announce_data, parse_board_announce, parse_node_announce
from meshlink_gw.config import NodeConfig
from meshlink_gw.crypto.identity import verify
from meshlink_gw.node import view
from meshlink_gw.node.datadir import secure_data_dir
from meshlink_gw.node.directory import Directory
from meshlink_gw.node.discovery import Discovery
from meshlink_gw.node.e2e import (
    KEYS_REPLY,
    KEYS_REQUEST,
    ROTATE_AFTER_S,
    EndToEnd,
    is_sealed,
    keys_record,
)
from meshlink_gw.node.link import LinkParams
from meshlink_gw.node.peers import LinkEvents, PeerTable
from meshlink_gw.node.pins import PinStore
from meshlink_gw.node.store import Inbox, Received
from meshlink_gw.probes import parse_probe, parse_trace, probe_data, trace_data
from meshlink_gw.routing_log import RoutingLog
from meshlink_gw.runtime import LogLimiter, now_ms
from meshlink_gw.tasks import TaskSet

log = logging.getLogger("meshlink.node")

STORE_LOG_INTERVAL_MS = 10_000  # a full disk is logged at most this often
RECENT_MESSAGES = 50  # routed messages kept for the dashboard's message flow
PROBE_TIMEOUT_S = 5.0  # how long a node ID nobody knows gets to answer before "unknown"


def hops_travelled(msg) -> int:
    """Links a routed message crossed: its path lists the origin and every relay."""
    return max(1, len(msg.path))


def _control(data: bytes) -> bool:
    # keys exchange, probes and traces carry no user payload and are never sealed
    return (data == KEYS_REQUEST or data.startswith(KEYS_REPLY)
            or parse_probe(data) is not None or parse_trace(data) is not None)


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
        # end-to-end proofs (docs/PROTOCOL.md §11): we sign as ourselves and
        # as our served IDs; destinations, origins and announcement receivers
        # verify, relays do not
        self.auth = Auth(verify)
        self.auth.add_signer(self.node_id, identity.public_bytes, identity.sign)
        # end-to-end sealing (docs/PROTOCOL.md §13): directed payloads are
        # opened only here, at their destination; relays never hold the keys
        self.e2e = EndToEnd()
        self.e2e.add_identity(self.node_id, identity.public_bytes, identity.sign,
                              int(time.time()))
        self._plain: dict[str, list] = {}  # origin_id -> [src, dst, plaintext, sid]
        self._held: dict[str, list[messages.MeshMessage]] = {}  # dst -> awaiting its record
        self._keys_asked_ms: dict[str, int] = {}  # dst -> when we last asked for its record
        self.routing_log = RoutingLog(config.routing_log) if config.routing_log else None
        # wall-clock seconds start the announcement sequence numbers, so a
        # restarted node's announcements outrank those it made before
        options = ({"announce_seq0": int(time.time()), "announce_auth": self.auth}
                   if config.router == "meshlink" else None)
        self.router = Router(self.node_id, config.router, rng=random.Random(),
                             default_ttl=config.default_ttl, options=options,
                             log=self.routing_log.write if self.routing_log else None)
        self.delivery = Delivery(_new_id, retry_interval_ms=config.retry_interval_ms,
                                 delivery_timeout_ms=config.delivery_timeout_ms,
                                 max_pending=config.max_pending_sends,
                                 default_ttl=config.default_ttl, auth=self.auth)
        config.data_dir.mkdir(parents=True, exist_ok=True)
        # the inbox is plaintext: owner-only, whatever the directory held before
        secure_data_dir(config.data_dir)
        db = config.data_dir / "meshlink.db"
        os.close(os.open(db, os.O_CREAT | os.O_WRONLY, 0o600))
        self.inbox = Inbox(db, config.inbox_max_messages,
                           broadcast_max_bytes=config.inbox_broadcast_max_bytes,
                           broadcast_max_bytes_per_source=(
                               config.inbox_broadcast_max_bytes_per_source))
        secure_data_dir(config.data_dir)  # the WAL files it just created
        params = LinkParams(identity, config.listen[1], config.network_key,
                            config.max_frame_bytes, config.handshake_timeout_ms,
                            rekey_after_ms=config.session_rekey_after_ms,
                            reject_after_ms=config.session_reject_after_ms,
                            tcp_user_timeout_ms=config.tcp_user_timeout_ms)
        events = LinkEvents(on_message=self.on_message,
                            on_peer_up=self._after(self._peer_up),
                            on_peer_down=self._after(self.router.peer_down),
                            on_rtt=self._after(self.router.record_rtt),
                            on_ping_lost=self._after(self.router.record_ping_lost))
        self.peers = PeerTable(config, self.node_id, params, events,
                               is_local=self.local_ids.__contains__,
                               pins=PinStore(config.data_dir))
        self._futures: dict[str, asyncio.Future] = {}  # origin_id -> SendResult future
        # refused input is logged once per interval per kind: a flood must not fill the log
        self.log_limit = LogLimiter(log, config.refusal_log_interval_ms)
        self.inbox_changed = asyncio.Event()
        self.deliver_hooks: list[Callable[[Received], None]] = []
        self.served: dict[str, Callable[[messages.MeshMessage, int], bool]] = {}
        self.counters = {"relayed": 0, "delivered": 0, "duplicates": 0, "announces": 0,
                         "probes_answered": 0, "forged_messages": 0, "store_refused": 0,
                         "unsealed_dropped": 0}
        self._refused_logged_ms = -STORE_LOG_INTERVAL_MS  # the first refusal is logged
        self._refused_since_log = 0
        self.role = "node"  # what our name announcement says we are (a gateway sets it)
        self.directory = Directory()
        self.recent: collections.deque[dict] = collections.deque(maxlen=RECENT_MESSAGES)
        self._traces: dict[str, asyncio.Future] = {}  # probe nonce -> trace reply path
        self._name_due: asyncio.TimerHandle | None = None
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
            self.peers.dial_forever(addr, getattr(addr, "node_id", None))
        self.peers.dial_known()  # neighbours from the last run: heal at once
        self.peers.start()
        self._arm_timer()
        if self.config.discovery:
            await self._start_discovery()
        if self.config.name:
            self.spawn(self._name_loop(), "name announcements")
        self.spawn(self._rotate_loop(), "end-to-end record rotation")

    async def _start_discovery(self) -> None:
        cfg = self.config

        def on_peer(node_id: str, addr: tuple[str, int]) -> None:
            if node_id not in self.peers.links and node_id not in self.local_ids:
                self.peers.dial_suggested(addr, node_id)

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
        if self._name_due is not None:
            self._name_due.cancel()
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
        elif t in CONTROL_TYPES:
            self.dispatch(self.router.receive(msg, peer_id, now_ms()).forward)
        elif t == "data":
            mid = _new_id()
            self._deliver(peer_id, self.node_id, mid, mid, msg.data, 1)
        else:
            self.log_limit.warning("after_handshake", "peer=%s sent %s after the handshake; "
                                   "ignored", peer_id, t)
        self._arm_timer()

    def _on_routed(self, peer_id: str, msg) -> None:
        now = now_ms()
        d = self.router.receive(msg, peer_id, now)
        if msg.TYPE == "mesh" and msg.dst is None and (d.forward or d.deliver) \
                and not self._authentic(peer_id, msg):
            return  # a forged broadcast goes no further (every receiver checks it anyway)
        if d.forward:
            self.counters["relayed"] += 1
            self.dispatch(d.forward)
        path = tuple(msg.path) + (self.node_id,)
        self.directory.heard(msg.src, hops_travelled(msg), now, path)
        self.recent.append({"unix_ms": int(time.time() * 1000), "type": msg.TYPE,
                            "src": msg.src, "dst": msg.dst, "path": list(path),
                            "relayed": bool(d.forward), "delivered": bool(d.deliver)})
        if not d.deliver:
            return
        if msg.TYPE == "ack":
            if msg.dst in self.local_ids:
                self._on_ack(msg, now)
            return
        if msg.dst is not None and not self._authentic(peer_id, msg):
            return  # checked here, at its destination, never by relays
        if msg.dst is not None and not self._unseal(peer_id, msg, now):
            return  # a keys exchange (answered), or a payload that did not open
        if msg.dst is not None and msg.dst in self.local_ids and self._answer_probe(msg):
            return
        if msg.dst in self.served:
            # every arrival: the board queue deduplicates durably and re-acks
            self._to_served(msg, hops_travelled(msg))
            return
        if msg.dst is None and self._on_announce(msg):
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

    def _on_announce(self, msg: messages.MeshMessage) -> bool:
        """Record a node or board announcement; False if msg is neither."""
        node = parse_node_announce(msg.src, msg.dst, msg.data)
        if node is not None:
            known = self.directory.known.get(msg.src)
            if known is None or not known.name:
                self._name_soon()  # a newcomer learns our name without waiting a period
            self.directory.named(msg.src, node["name"], node["role"])
            return True
        board = parse_board_announce(msg.src, msg.dst, msg.data)
        if board is not None:
            self.directory.board(msg.src, board["name"], board["gateway"])
            return True
        return False

    def _answer_probe(self, msg: messages.MeshMessage) -> bool:
        """Ack a probe (and answer a trace) for us or a served ID without
        storing it; a trace reply resolves its waiting probe. False: neither."""
        probe = parse_probe(msg.data)
        if probe is not None:
            self.counters["probes_answered"] += 1
            self.send_ack_for(msg)
            if probe["trace"] and msg.dst is not None:
                path = list(msg.path) + [msg.dst]
                self.originate(msg.src, trace_data(probe["nonce"], path), src=msg.dst)
            return True
        reply = parse_trace(msg.data)
        if reply is None:
            return False
        self.send_ack_for(msg)
        fut = self._traces.get(reply["nonce"])
        if fut is not None and not fut.done():
            fut.set_result(reply["path"])
        return True

    def _unseal(self, peer_id: str, msg: messages.MeshMessage, now: int) -> bool:
        """Replace a sealed payload by its plaintext (True); answer a keys
        exchange; drop (count, log once) what does not open or is unsealed
        user data. True also for a probe or trace, which are never sealed."""
        data = msg.data
        if is_sealed(data):
            try:
                msg.data = self.e2e.open(msg.src, msg.dst or "", data, now)
                return True
            except (DecodeError, AuthError) as e:
                self.log_limit.warning(
                    "sealed_not_open", "dropped a sealed message that did not open: from=%s "
                    "to=%s id=%s via peer=%s: %s", msg.src, msg.dst, msg.message_id, peer_id, e)
                self._send_record(msg.dst or "", msg.src, now)  # it may hold an old record
                return False
        if data == KEYS_REQUEST:
            self.send_ack_for(msg)
            self._send_record(msg.dst or "", msg.src, None)
            return False
        raw = keys_record(data)
        if raw is not None:
            self._on_record(peer_id, msg, raw, now)
            return False
        if parse_probe(data) is not None or parse_trace(data) is not None:
            return True
        self.counters["unsealed_dropped"] += 1
        self.log_limit.warning("unsealed", "dropped an unsealed directed message: from=%s "
                               "to=%s id=%s via peer=%s", msg.src, msg.dst, msg.message_id,
                               peer_id)
        return False

    def _send_record(self, us: str, to: str, now: int | None) -> None:
        """Send our (or a served ID's) key record to `to`; as a hint after a
        failed open at most once per retry interval per origin."""
        if now is not None:
            last = self._keys_asked_ms.get("hint " + to)
            if last is not None and now - last < self.config.retry_interval_ms:
                return
            self._keys_asked_ms["hint " + to] = now
        rec = self.e2e.record_of(us)
        if rec is not None:
            self.originate(to, KEYS_REPLY + rec, src=us)

    def _on_record(self, peer_id: str, msg: messages.MeshMessage, raw: bytes, now: int) -> None:
        before = self.e2e.records.get(msg.src)
        if not self.e2e.learn(msg.src, raw):
            self.log_limit.warning("foreign_record", "refused a key record that is not its "
                                   "sender's: from=%s via peer=%s", msg.src, peer_id)
            return
        self.send_ack_for(msg)
        if before is not None and self.e2e.records.get(msg.src) is not before:
            # a new record (the destination restarted): every attempt sealed
            # before is lost or held; resend them all now, in the order they
            # were sent, so that later sends cannot overtake them
            self._held.pop(msg.src, None)
            self._retry_pending(now, msg.src)
            return
        # the first record (or the same one again): the held attempts go out as
        # they are (not retries), in the order their messages were sent
        held = self._held.pop(msg.src, [])
        held.sort(key=lambda m: self.delivery.tracking_order(m.origin_id))
        for m in held:
            if m.origin_id in self._plain:
                self._send_attempt(m, now)

    def _seal(self, msg: messages.MeshMessage, now: int) -> bool:
        """Seal (and sign) msg's payload for its destination; False (and ask
        for the destination's record) if we have none yet."""
        p = self._plain[msg.origin_id]
        out = self.e2e.seal(p[0], p[1], p[2], now)
        if out is None:
            held = self._held.setdefault(p[1], [])  # one (the latest) attempt per message
            held[:] = [m for m in held if m.origin_id != msg.origin_id] + [msg]
            last = self._keys_asked_ms.get(p[1])
            if last is None or now - last >= self.config.retry_interval_ms:
                self._keys_asked_ms[p[1]] = now
                self.originate(p[1], KEYS_REQUEST, src=p[0])
            return False
        msg.data, p[3] = out
        self.auth.sign_mesh(msg)
        return True

    def _authentic(self, peer_id: str, msg: messages.MeshMessage) -> bool:
        """True if msg's origin signed it; else count it and log one line."""
        if self.delivery.authentic(msg):
            return True
        self.counters["forged_messages"] += 1
        self.log_limit.warning("forged_message", "dropped a mesh message not signed by its "
                               "origin: from=%s to=%s id=%s via peer=%s", msg.src,
                               msg.dst or "*", msg.message_id, peer_id)
        return False

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
            # a directed message should draw its Ack (or some traffic) back over
            # this link: if nothing comes, the peer table probes it (PROTOCOL.md §4)
            conn.send_encoded(payload, out.TYPE == "mesh" and out.dst is not None)

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

    def serve_id(self, node_id: str, handler: Callable[[messages.MeshMessage, int], bool],
                 identity=None) -> None:
        """Act for another node ID (a board): its directed messages go to handler,
        from the mesh or from this node (originate), and originate() may send
        from it (the router's served IDs).

        handler(msg, hops) returns True if the message is delivered (ack now);
        False means the caller acks later with send_ack_for() once it is.
        identity (the served ID's, held by us) signs its messages, Acks and
        announcements; without it nothing can be sent as node_id.

        Raises:
            LocalProtocolError: our own node ID, the router's max_served
                reached, or an identity that is not node_id's.
        """
        if identity is not None:
            self.auth.add_signer(node_id, identity.public_bytes, identity.sign)
            self.e2e.add_identity(node_id, identity.public_bytes, identity.sign,
                                  int(time.time()))
        self.router.serve(node_id)
        self.local_ids.add(node_id)
        self.served[node_id] = handler

    def unserve_id(self, node_id: str) -> None:
        if node_id == self.node_id:
            return
        self.router.unserve(node_id)
        self.auth.remove_signer(node_id)
        self.e2e.remove_identity(node_id)
        self.served.pop(node_id, None)
        self.local_ids.discard(node_id)

    def _to_served(self, msg: messages.MeshMessage, hops: int) -> None:
        """Hand a directed message to its served ID's handler (it acks when delivered)."""
        if self._answer_probe(msg):  # the gateway answers probes for its boards
            return
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
        forged = self.delivery.forged_acks
        done = self.delivery.on_ack(ack, now)
        if self.delivery.forged_acks != forged:
            self.log_limit.warning("forged_ack", "dropped an ack that is no delivery proof: "
                                   "from=%s for=%s", ack.src, ack.ack_for)
            return  # credits no route: a next hop that yields no proofs is dropped
        self.router.on_ack(ack, now)
        if done is not None:
            p = self._plain.pop(done.origin_id, None)
            if p is not None and p[3] is not None:
                self.e2e.confirmed(p[0], p[1], p[3])
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
        # to our own inbox (a board's reading, say) nothing leaves: no signature
        src = src or self.node_id
        sealed = dst is not None and dst not in self.local_ids and not _control(data)
        msg = self.delivery.message(src, dst, data, sign=dst != self.node_id and not sealed)
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
        if sealed:  # sealed (and signed) per attempt, from this plaintext (§13.4)
            self._plain[mid] = [src, dst, data, None]
        fut = self._futures[mid] = asyncio.get_running_loop().create_future()
        self._send_attempt(msg, now)
        return msg, fut

    def _send_attempt(self, msg: messages.MeshMessage, now: int) -> None:
        if msg.dst in self.served:  # a board of ours: its handler acks once it has it
            self._to_served(msg, hops_travelled(msg))
        elif msg.origin_id in self._plain and not self._seal(msg, now):
            pass  # held until the destination's key record arrives
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

    async def probe(self, dst: str, trace: bool = False, timeout_s: float = 5.0) -> dict:
        """Send one probe to dst and wait for its Ack (and, with trace, the path).

        Returns {"ok", "rtt_ms", "attempts", "path", "reason"}; a probe that gets
        no answer within timeout_s is no longer retried.
        Raises:
            LocalProtocolError: invalid destination, too many pending sends.
        """
        if dst in self.local_ids:
            return {"ok": True, "rtt_ms": 0, "attempts": 1, "path": [dst], "reason": ""}
        nonce = os.urandom(8).hex()
        loop = asyncio.get_running_loop()
        tfut: asyncio.Future | None = None
        if trace:
            tfut = self._traces[nonce] = loop.create_future()
        msg, fut = self.originate(dst, probe_data(nonce, trace))
        assert fut is not None  # directed
        deadline = loop.time() + timeout_s
        try:
            res = await asyncio.wait_for(asyncio.shield(fut), timeout_s)
            path = None
            if tfut is not None:
                path = await asyncio.wait_for(tfut, max(0.0, deadline - loop.time()))
        except TimeoutError:
            self.delivery.cancel(msg.origin_id)
            self._futures.pop(msg.origin_id, None)
            return {"ok": False, "rtt_ms": None, "attempts": None, "path": None,
                    "reason": f"no answer within {timeout_s:g} s"}
        finally:
            self._traces.pop(nonce, None)
        if res.delivered:
            self.directory.probed(dst, res.rtt_ms)
        return {"ok": res.delivered, "rtt_ms": res.rtt_ms, "attempts": res.attempts,
                "path": path, "reason": res.reason}

    # -- names -------------------------------------------------------------
    def _peer_up(self, peer_id: str, now: int) -> None:
        self.router.peer_up(peer_id, now)
        # attempts made while a neighbour was gone may be lost: resend every
        # pending message now, oldest first, so none is overtaken by a later one
        # sent over the new link (order across a gateway restart, issue 15)
        self._retry_pending(now)
        self._name_soon()

    def _retry_pending(self, now: int, dst: str | None = None) -> None:
        """A new attempt of every pending directed message (to dst), in the
        order they were sent (Delivery.retry_now)."""
        for ev in self.delivery.retry_now(now, dst):
            self._send_attempt(ev.msg, now)

    def _name_soon(self) -> None:
        """Announce our name in half a second (batches a burst of new peers and
        newcomers into one announcement; a newcomer answering a newcomer ends
        there, as each already knows the other's name)."""
        if self.config.name and self._name_due is None and not self.stopping:
            self._name_due = asyncio.get_running_loop().call_later(0.5, self.announce_name)

    def announce_name(self) -> None:
        """Broadcast our name announcement (docs/PROTOCOL.md §12)."""
        self._name_due = None
        if not self.config.name or self.stopping or not self.peers.links:
            return
        data = node_announce_data(self.config.name, self.role, self.node_id)
        self.dispatch(self.router.originate(self.delivery.message(self.node_id, None, data),
                                            now_ms()).forward)
        self._arm_timer()

    async def _rotate_loop(self) -> None:
        """Publish new end-to-end records every ROTATE_AFTER_S (§13.7)."""
        while not self.stopping:
            await asyncio.sleep(ROTATE_AFTER_S)
            self.e2e.rotate(int(time.time()))

    async def _name_loop(self) -> None:
        while not self.stopping:
            await asyncio.sleep(self.config.name_interval_ms / 1000)
            self.announce_name()

    def nodes(self) -> list[dict]:
        """Every node we know of (`meshlink nodes`): see node/view.py."""
        return view.nodes(self)

    def links_view(self) -> list[dict]:
        """The mesh's links as this node sees them (the dashboard): node/view.py."""
        return view.links(self)

    def resolve(self, text: str) -> str:
        """The node ID that text (an ID, a name or a unique ID prefix) names.

        Raises:
            LocalProtocolError: unknown or ambiguous.
        """
        return self.directory.resolve(text, {n["node_id"]: n["name"] for n in self.nodes()})

    async def resolve_reachable(self, text: str, probe_timeout_s: float = PROBE_TIMEOUT_S
                                ) -> str:
        """resolve(text); a well-formed node ID we know nothing of yet (no route,
        never heard from: routing may not have converged, or the strategy has no
        announcements) is probed once instead, so that an unknown node fails in
        probe_timeout_s with a clear message rather than after delivery_timeout_ms.

        Raises:
            LocalProtocolError: unknown (and, for an ID, unanswered) or ambiguous.
        """
        try:
            return self.resolve(text)
        except LocalProtocolError:
            if not is_id(text.strip()):
                raise
        node_id = text.strip()
        if (await self.probe(node_id, False, probe_timeout_s))["ok"]:
            return node_id
        raise LocalProtocolError(f"unknown node {node_id}: no route to it, never heard from, "
                                 f"and no answer to a probe within {probe_timeout_s:g} s (is it "
                                 "running and connected? see `meshlink nodes`)")

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
            p = self._plain.pop(ev.origin_id, None)
            if p is not None:  # no proof: its record may be stale, fetch it afresh
                self.e2e.forget(p[1])
                held = self._held.get(p[1], [])
                held[:] = [m for m in held if m.origin_id != ev.origin_id]
            self._resolve(ev.origin_id, SendResult(ev.origin_id, False, None, ev.attempts,
                                                   "no acknowledgement before expiry"))

    # -- status ------------------------------------------------------------
    @property
    def stats(self) -> dict[str, int]:
        """A snapshot of the node's and its links' counters."""
        dv = getattr(self.router.strategy, "dv", None)
        pre_auth = {k: self.peers.stats[k] for k in (
            "connections_refused", "links_established", "links_evicted", "handshakes_answered",
            "cookie_replies", "cookies_received", "flaps")}
        return dict(self.counters, handshakes_failed=self.peers.stats["handshakes_failed"],
                    links_silent=self.peers.stats["links_silent"],
                    probes=self.peers.stats["probes"],
                    **pre_auth,
                    records_rejected=self.peers.records_rejected(),
                    forged_acks=self.delivery.forged_acks, **self.e2e.counters,
                    forged_routes=dv.forged if dv is not None else 0,
                    announce_unproven=dv.unproven if dv is not None else 0)

    def status(self) -> dict:
        scores = {p["peer_id"]: p for p in self.router.peers()}
        return {
            "node_id": self.node_id,
            "name": self.config.name,
            "listen": f"{self.listen_addr[0]}:{self.listen_addr[1]}",
            "router": self.config.router,
            "routing": self.router.status(),
            "peers": self.peers.describe(scores),
            "pending": self.delivery.pending_count(),
            "stats": self.stats,
            "admission": self.peers.admission_status(self.discovery),
            "time_unix": time.time(),
        }


__all__ = ["Node", "SendResult", "ProtocolError", "TransportError"]

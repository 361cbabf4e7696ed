"""The durable per-board queue: mesh messages for a board, delivered in order.

Rule: a message for a board is stored in boards.db before anything else
happens to it; then it is delivered stop and wait (the oldest first, resent
every retry_ms until the board acks its id), and only then is the mesh
end-to-end Ack sent (docs/BOARDS.md, "Delivery and the queue").
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from meshlink import messages

from meshlink_gw.boards import records
from meshlink_gw.boards.registry import BoardRegistry
from meshlink_gw.boards.sessions import BoardLink, BoardSessions
from meshlink_gw.config import GatewayConfig

log = logging.getLogger("meshlink.gateway")

# of a board's queue (messages and bytes), kept for the gateway's own messages
# (the operator's commands): mesh senders cannot fill it
QUEUE_RESERVE_PCT = 10


class BoardQueue:
    """Queues (boards.db) and in-flight delivery state of every board.

    Args:
        node: the gateway's mesh node (send_ack_for).
        cfg, reg, sessions, refuse, stats: the service's parts.
        now_ms: the monotonic clock in milliseconds.
    """

    def __init__(self, node, cfg: GatewayConfig, reg: BoardRegistry, sessions: BoardSessions,
                 refuse: Callable[..., None], stats, now_ms: Callable[[], int]) -> None:
        self.node = node
        self.cfg = cfg
        self.reg = reg
        self.sessions = sessions
        self.refuse = refuse
        self.stats = stats
        self.now_ms = now_ms
        self.dirty: set[str] = set()  # boards whose queue may have a new head

    def enqueue(self, name: str, src: str, dst: str | None, origin_id: str,
                ack_id: str | None, data: bytes, hops: int) -> str:
        """Store a message for board name -> "queued", "full", "source_full", "too_large" or the
        registry's status for a retry ("duplicate", "delivered")."""
        record = records.msg_record(origin_id, src, dst, data, hops)
        if not records.fits(record, self.cfg.max_record_bytes):
            self.refuse("too_large", "a %d-byte message does not fit the board's %d-byte "
                        "records" % (len(data), self.cfg.max_record_bytes), name)
            return "too_large"
        cfg = self.cfg
        if src == self.node.node_id:  # the operator's own: may use the reserve
            limits: dict = {"max_messages": cfg.queue_max_messages,
                            "max_bytes": cfg.queue_max_bytes}
        else:  # anyone in the mesh: a share per sender, and never the reserve
            limits = {"max_messages": cfg.queue_max_messages * (100 - QUEUE_RESERVE_PCT) // 100,
                      "max_bytes": cfg.queue_max_bytes * (100 - QUEUE_RESERVE_PCT) // 100,
                      "max_per_source": cfg.queue_max_per_source}
        status = self.reg.enqueue(name, src, dst, origin_id, ack_id, data, hops, **limits)
        if status == "full":
            self.refuse("queue_full", "queue for board is full (%d messages / %d bytes)" % (
                limits["max_messages"], limits["max_bytes"]), name)
        elif status == "source_full":
            self.refuse("queue_full", "sender %s already has %d messages queued for the "
                        "board" % (src, cfg.queue_max_per_source), name)
        elif status == "queued":
            self.stats["queued"] += 1
            self.dirty.add(name)
            link = self.sessions.links.get(name)
            if link is not None:
                self.pump(link, self.now_ms())
        return status

    def from_mesh(self, name: str, msg: Any, hops: int) -> bool:
        """A directed mesh message for board name: queue it.

        Returns True only when the board already has it (ack again now);
        otherwise the Ack is sent once the board confirms it.
        """
        try:
            status = self.enqueue(name, msg.src, msg.dst, msg.origin_id, msg.message_id,
                                  msg.data, hops)
        except sqlite3.Error as e:  # not stored, so not acked: the sender retries
            log.error("cannot queue message %s for board %s: %s", msg.origin_id, name, e)
            self.stats["storage_errors"] += 1
            return False
        if status not in ("full", "source_full", "too_large"):  # (refusals: throttled above)
            log.info("mesh message %s from %s for board %s, %d hop(s): %s", msg.origin_id,
                     msg.src, name, hops, status)
        return status == "delivered"

    def pump(self, link: BoardLink, now: int) -> None:
        """Send the board its oldest unacknowledged message (stop and wait: in order)."""
        name = link.board.name
        if not link.online(now, self.cfg.offline_after_ms):
            return
        if link.inflight is None:
            if name not in self.dirty:
                return
            item = self.reg.head(name)
            if item is None:
                self.dirty.discard(name)
                return
            link.inflight = item
            link.attempts = 0
            link.next_send_ms = now
        if now < link.next_send_ms:
            return
        item = link.inflight
        self.sessions.send(link, records.msg_record(item.origin_id, item.src, item.dst,
                                                    item.data, item.hops), now)
        link.attempts += 1
        self.stats["msg_sends"] += 1
        link.next_send_ms = now + self.cfg.retry_ms

    def on_board_ack(self, link: BoardLink, mid: Any, now: int) -> None:
        """The board acked message mid: dequeue it, send the mesh Ack, send the next."""
        item = link.inflight
        if item is None or mid != item.origin_id:
            return  # a duplicate ack, or the ack of a broadcast: nothing owed
        self.reg.mark_delivered(item)
        link.inflight = None
        self.dirty.add(link.board.name)
        self.stats["delivered_to_boards"] += 1
        log.info("board %s confirmed message %s (%d attempt(s))", link.board.name,
                 item.origin_id, link.attempts)
        if item.ack_id is not None:
            self.node.send_ack_for(messages.MeshMessage(
                src=item.src, dst=item.dst, data=b"", message_id=item.ack_id,
                ttl=1, path=[]))
        self.pump(link, now)

    def tick(self, now: int) -> None:
        """Resend or start delivery on every session that has something owed."""
        for link in list(self.sessions.links.values()):
            if link.inflight is not None or link.board.name in self.dirty:
                self.pump(link, now)

    def expire(self) -> None:
        """Drop messages older than queue_max_age_ms (logged, never acked)."""
        self.stats["expiry_sweeps"] += 1
        for item in self.reg.expire(self.cfg.queue_max_age_ms):
            log.warning("dropped message %s for board %s: older than %d ms",
                        item.origin_id, item.board, self.cfg.queue_max_age_ms)
            self.stats["expired"] += 1
            for link in self.sessions.links.values():
                if link.inflight is not None and link.inflight.seq == item.seq:
                    link.inflight = None
                    self.dirty.add(link.board.name)

"""Routing for node IDs a gateway serves (its boards), around the shared router.

Rule: no I/O; wraps a meshlink.router.Router and delegates everything else.

The shared router knows one local node ID: it delivers only messages for it,
and originate() accepts only messages from it. A gateway also acts for each
of its boards, so this adapter adds the two missing cases:

- A message or Ack for a served ID is delivered here (loop and duplicate
  checks, route learning from its path, no forwarding).
- A message or Ack from a served ID (a board reading, the Ack for a message
  the board confirmed) enters the mesh as if the board were a neighbour one
  hop behind the gateway: its path starts [board], and the router handles it
  like a message received from that neighbour. Every node it reaches learns
  "board is reached via this gateway" from the path [board, gateway, ...],
  which is the reverse path that later directed messages take.

When the shared router grows first-class served IDs this file goes away.
"""

from __future__ import annotations

from collections.abc import Container

from meshlink.messages import Ack, MeshMessage
from meshlink.router_core import Decision, relay_copy


class ServedRouter:
    """A Router plus the node IDs this gateway acts for (served, a live set)."""

    def __init__(self, inner, served: Container[str], default_ttl: int) -> None:
        self._inner = inner
        self._served = served
        self._ttl = default_ttl
        self.served_delivered = 0
        self.served_originated = 0

    def __getattr__(self, name):
        return getattr(self._inner, name)

    @property
    def inner(self):
        return self._inner

    def receive(self, msg, from_peer, now_ms):
        t = type(msg)
        if (t is MeshMessage or t is Ack) and msg.dst in self._served:
            r = self._inner
            if r.node_id in msg.path:
                return Decision(drop_reason="loop")
            learn = getattr(r.strategy, "learn", None)
            if learn is not None:
                learn(msg.path, from_peer, now_ms)
            if r.dedup.check_and_add(msg.message_id, now_ms):
                return Decision(drop_reason="duplicate")
            r.counters["received"] += 1
            r.counters["delivered"] += 1
            self.served_delivered += 1
            return Decision(deliver=True, mode="served")
        return self._inner.receive(msg, from_peer, now_ms)

    def originate(self, msg, now_ms):
        src = msg.src
        if src != self._inner.node_id and src in self._served:
            self.served_originated += 1
            first = relay_copy(msg, self._ttl, [src])
            d = self._inner.receive(first, src, now_ms)
            d.deliver = False  # it came from the board: nothing to deliver here
            return d
        return self._inner.originate(msg, now_ms)


def install(node) -> ServedRouter:
    """Wrap node.router (idempotent) so node.local_ids other than its own are served."""
    if isinstance(node.router, ServedRouter):
        return node.router
    served = node.local_ids  # the live set: serve_id/unserve_id update it
    wrapper = ServedRouter(node.router, _OthersView(served, node.node_id),
                           node.config.default_ttl)
    node.router = wrapper
    return wrapper


class _OthersView:
    """`x in view` is True for the IDs in ids except own (a live view, no copy)."""

    __slots__ = ("_ids", "_own")

    def __init__(self, ids: set[str], own: str) -> None:
        self._ids = ids
        self._own = own

    def __contains__(self, x) -> bool:
        return x != self._own and x in self._ids

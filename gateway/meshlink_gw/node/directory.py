"""Every node this node knows of, not only its neighbours: names and roles from
node announcements, boards and their gateways from board announcements, last
heard from any routed message; hops and next hop come from the router.

Rule: no I/O; bounded (max_entries, the longest unheard evicted first).
Resolution of what a user typed (a name or an ID prefix) lives here too, so
every command resolves the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshlink.errors import LocalProtocolError
from meshlink.nodeid import is_id

MAX_ENTRIES = 4096


@dataclass
class Known:
    """What we know about one node ID."""

    name: str = ""
    role: str = "node"  # node, gateway or board
    gateway: str | None = None  # a board's gateway
    last_heard_ms: int | None = None
    hops: int | None = None  # links its last message crossed
    path: tuple[str, ...] = ()  # that message's path (origin, relays), then us
    rtt_ms: int | None = None  # end to end, from the last answered probe (ping, trace)


class Directory:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self.known: dict[str, Known] = {}

    def _entry(self, node_id: str) -> Known:
        k = self.known.get(node_id)
        if k is None:
            if len(self.known) >= self.max_entries:
                self._evict()
            k = self.known[node_id] = Known()
        return k

    def _evict(self) -> None:
        oldest = min(self.known, key=lambda n: self.known[n].last_heard_ms or 0)
        del self.known[oldest]

    def heard(self, node_id: str, hops: int, now_ms: int, path: tuple[str, ...] = ()) -> None:
        """A routed message from node_id arrived having crossed hops links along
        path (origin and relays, then this node)."""
        k = self._entry(node_id)
        k.last_heard_ms = now_ms
        k.hops = hops
        k.path = path

    def edges(self) -> set[tuple[str, str]]:
        """Links seen in the paths of the last message from each node (a, b sorted)."""
        out = set()
        for k in self.known.values():
            for a, b in zip(k.path, k.path[1:], strict=False):
                if a != b:
                    out.add((a, b) if a < b else (b, a))
        return out

    def probed(self, node_id: str, rtt_ms: int | None) -> None:
        """A probe to node_id was answered after rtt_ms."""
        self._entry(node_id).rtt_ms = rtt_ms

    def named(self, node_id: str, name: str, role: str) -> None:
        k = self._entry(node_id)
        k.name, k.role = name, role

    def board(self, node_id: str, name: str, gateway: str) -> None:
        k = self._entry(node_id)
        k.name, k.role, k.gateway = name, "board", gateway

    def forget(self, node_id: str) -> None:
        self.known.pop(node_id, None)

    def resolve(self, text: str, candidates: dict[str, str]) -> str:
        """The one node ID that text names: an exact ID, an exact name, or a
        unique ID prefix (with or without dashes), among candidates
        {node_id: name}.

        Raises:
            LocalProtocolError: nothing or more than one node matches.
        """
        text = text.strip()
        if not text:
            raise LocalProtocolError("empty node name or ID")
        if text in candidates:
            return text
        by_name = [n for n, name in candidates.items() if name == text]
        if len(by_name) == 1:
            return by_name[0]
        if len(by_name) > 1:
            raise LocalProtocolError(f"{len(by_name)} nodes are named {text!r}; give an ID "
                                     "prefix instead (see `meshlink nodes`)")
        if is_id(text):
            raise LocalProtocolError(f"unknown node {text}: no route to it and never heard "
                                     "from (see `meshlink nodes`)")
        low = text.lower().replace("-", "")
        hits = [n for n in candidates if n.replace("-", "").startswith(low)]
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise LocalProtocolError(f"{text!r} matches {len(hits)} nodes; give more of the "
                                     "ID (see `meshlink nodes`)")
        raise LocalProtocolError(f"no known node is named {text!r} or has an ID starting with "
                                 "it (see `meshlink nodes`)")

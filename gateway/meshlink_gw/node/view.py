"""What a node shows its operator: every node it knows of (`meshlink nodes`, the
dashboard's node list) and the links it has seen (the dashboard's topology).

Rule: read-only views over a Node's public state (router, peer table,
directory, served IDs); no I/O, nothing changes.
"""

from __future__ import annotations

from typing import Any

from meshlink_gw.node.directory import Known
from meshlink_gw.runtime import now_ms


def nodes(node: Any) -> list[dict]:
    """One row per node: ourselves, our neighbours, every destination with a
    route and everyone heard from. `reachable` means a live link or a route
    (a node whose route was withdrawn stays listed, unreachable); `rtt_ms` is
    the link's for a neighbour, else the last answered ping's or trace's."""
    now = now_ms()
    routes = node.router.destinations()
    links = {p["node_id"]: p for p in node.peers.describe({})}
    ids = set(routes) | set(links) | set(node.directory.known) | node.local_ids
    return [_row(node, nid, routes, links, now) for nid in sorted(ids)]


def _row(node: Any, nid: str, routes: dict, links: dict, now: int) -> dict:
    k = node.directory.known.get(nid)
    link = links.get(nid)
    local = nid in node.local_ids
    via, hops = routes.get(nid, (None, None))
    if link is not None:
        via, hops = nid, 1
    elif local:
        hops = 0
    elif hops is None and k is not None:
        hops = k.hops
    heard = None if k is None or k.last_heard_ms is None else (now - k.last_heard_ms)
    return {
        "node_id": nid, "name": _name(node, nid, k), "role": _role(node, nid, k),
        "hops": hops, "next_hop": via,
        "last_heard_s": 0.0 if link or local else
        (None if heard is None else round(heard / 1000, 1)),
        "rtt_ms": link["rtt_ms"] if link else (k.rtt_ms if k else None),
        "gateway": k.gateway if k else (node.node_id if nid in node.served else None),
        "reachable": local or link is not None or nid in routes,
        "self": nid == node.node_id}


def _name(node: Any, nid: str, k: Known | None) -> str:
    if nid == node.node_id:
        return str(node.config.name)
    return k.name if k is not None else ""


def _role(node: Any, nid: str, k: Known | None) -> str:
    if nid == node.node_id:
        return str(node.role)
    if nid in node.served:
        return "board"
    return k.role if k is not None else "node"


def links(node: Any) -> list[dict]:
    """Links as this node sees them: its own (with RTT and score), its served
    boards', and those in the paths of the last message from each node
    (direct False: seen, not measured)."""
    scores = {p["peer_id"]: p for p in node.router.peers()}
    out: dict[tuple[str, str], dict] = {}
    for p in node.peers.describe(scores):
        a, b = sorted((node.node_id, p["node_id"]))
        out[(a, b)] = _link(a, b, True, p["rtt_ms"], p["score"])
    for sid in node.served:
        a, b = sorted((node.node_id, sid))
        out.setdefault((a, b), _link(a, b, True))
    for a, b in node.directory.edges():
        out.setdefault((a, b), _link(a, b, False))
    return list(out.values())


def _link(a: str, b: str, direct: bool, rtt_ms: float | None = None,
          score: float | None = None) -> dict:
    return {"a": a, "b": b, "rtt_ms": rtt_ms, "score": score, "direct": direct}

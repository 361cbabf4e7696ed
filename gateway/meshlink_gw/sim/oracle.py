"""The `oracle` strategy (simulator only): global knowledge of the live graph.

Directed messages follow the shortest path by expected transmissions (ETX =
1 / (1 - loss) per link, the same ARQ the other strategies get); broadcasts
follow the source's shortest-path tree, so each live node gets one copy. It
learns failures instantly, so it is the upper bound the others are measured
against. Registered by importing this module.
"""

from __future__ import annotations

import heapq
from typing import Any

from meshlink.router import Strategy, register_strategy
from meshlink.router_core import Decision

INF = float("inf")


class World:
    """Shortest-path views of a simulation's live graph, cached per version."""

    def __init__(self, sim):
        self.sim = sim
        self.version = 0
        self._cache: dict = {}
        self._etx_key = None  # (id, size) of the cut the ETX table was built for
        self._etx: list = []

    def changed(self):
        self.version += 1
        self._cache = {}

    def etx_table(self):
        """u -> {v: etx(u, v)} for the current cut (only a partition changes
        it; liveness is checked by the Dijkstra): one dict lookup per edge
        instead of a call."""
        cut = self.sim.cut
        key = (id(cut), len(cut))
        if self._etx_key != key:
            self._etx_key = key
            adj = self.sim.topo.adj
            self._etx = [{v: self.etx(u, v) for v in adj[u]} for u in range(self.sim.n)]
        return self._etx

    def etx(self, u, v, cut=None):
        sim = self.sim
        if (u, v) in (sim.cut if cut is None else cut):
            return INF
        p = sim.topo.loss[u][v]
        if sim.burst and p < 1.0:
            p = 0.01 * 10 / 11 + 0.5 * 1 / 11  # Gilbert-Elliott stationary loss
        return INF if p >= 1.0 else 1.0 / (1.0 - p)

    def _dijkstra(self, root, weight, reverse, alive=None):
        """Shortest paths from root (to root if reverse) over live nodes.

        Returns (dist list, parent list); unreachable nodes have dist INF."""
        sim = self.sim
        if alive is None:
            alive = sim.alive
        adj = sim.topo.adj
        n = sim.n
        dist = [INF] * n
        parent = [-1] * n
        done = bytearray(n)
        dist[root] = 0.0
        h = [(0.0, root)]
        pop = heapq.heappop
        push = heapq.heappush
        # the cached ETX table, or None: weight() per link
        table: Any = self.etx_table() if weight == self.etx else None
        while h:
            d, u = pop(h)
            if done[u]:
                continue
            done[u] = 1
            wu = None if table is None else table[u]
            for v in adj[u]:
                if done[v] or not alive[v]:
                    continue
                if wu is not None:
                    w = table[v][u] if reverse else wu[v]
                else:
                    w = weight(v, u) if reverse else weight(u, v)
                nd = d + w
                if nd < dist[v]:
                    dist[v] = nd
                    parent[v] = u
                    push(h, (nd, v))
        return dist, parent

    def next_hops_to(self, dst):
        """node -> next hop on its ETX-shortest path to dst (live graph)."""
        key = ("to", dst)
        r = self._cache.get(key)
        if r is None:
            r = self._cache[key] = self._dijkstra(dst, self.etx, True)[1]
        return r  # list: node -> next hop (-1: none)

    def tree_children(self, src):
        """node -> children in src's ETX shortest-path tree."""
        key = ("tree", src)
        r = self._cache.get(key)
        if r is None:
            parent = self._dijkstra(src, self.etx, False)[1]
            r = {}
            for v, u in enumerate(parent):
                if u >= 0:
                    r.setdefault(u, []).append(v)
            self._cache[key] = r
        return r

    def snapshot(self):
        """The live-graph state now, for distances computed later (metrics)."""
        key = ("state",)
        r = self._cache.get(key)
        if r is None:
            r = self._cache[key] = (list(self.sim.alive), frozenset(self.sim.cut))
        return r

    def optimum(self, state, src, dst):
        """(fastest path latency src->dst, ETX there + ETX of the Ack's path back)
        in a saved live-graph state."""
        alive, cut = state
        sim = self.sim
        lat = sim.topo.lat
        loss = sim.topo.loss
        tx = sim.p["tx_ms"]

        def wlat(u, v):
            return INF if (u, v) in cut or loss[u][v] >= 1.0 else lat[u][v] + tx

        def wetx(u, v):
            return self.etx(u, v, cut)
        best = self._dijkstra(src, wlat, False, alive)[0][dst]
        there = self._dijkstra(src, wetx, False, alive)[0][dst]
        back = self._dijkstra(dst, wetx, False, alive)[0][src]
        return best, there + (back if back < INF else 0.0)


class OracleStrategy(Strategy):
    name = "oracle"
    truncate_path = True
    world: World = None  # type: ignore[assignment]  # set by the simulator
    me = None

    def originate(self, msg, now_ms):
        return self._route(self.r.stamp(msg, 255), msg)

    def receive(self, msg, from_peer, now_ms):
        r = self.r
        if r.dedup.check_and_add(msg.message_id, now_ms):
            return Decision(drop_reason="duplicate")
        if msg.dst == r.node_id:
            return Decision(deliver=True, mode="oracle")
        if msg.ttl < 1:
            return Decision(deliver=msg.dst is None, drop_reason="ttl")
        d = self._route(r.relay(msg), msg)
        d.deliver = msg.dst is None
        return d

    def _route(self, out, msg):
        sim = self.world.sim
        me = self.me
        if msg.dst is None:
            kids = self.world.tree_children(sim.idx[msg.src]).get(me, ())
            return Decision(forward=[(sim.ids[v], out) for v in kids if v != me],
                            mode="oracle")
        nh = self.world.next_hops_to(sim.idx[msg.dst])[me]
        if nh < 0:
            return Decision(drop_reason="no_route", mode="oracle")
        if sim.ids[nh] in out.path[:-1]:
            return Decision(drop_reason="loop", mode="oracle")
        return Decision(forward=[(sim.ids[nh], out)], mode="oracle")


register_strategy("oracle", OracleStrategy)

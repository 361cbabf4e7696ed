"""The `oracle` strategy (simulator only): global knowledge of the live graph.

Directed messages follow the shortest path by expected transmissions (ETX =
1 / (1 - loss) per link, the same ARQ the other strategies get); broadcasts
follow the source's shortest-path tree, so each live node gets one copy. It
learns failures instantly, so it is the upper bound the others are measured
against. Registered by importing this module.
"""

from __future__ import annotations

import heapq

from meshlink.router import Strategy, register_strategy
from meshlink.router_core import Decision

INF = float("inf")


class World:
    """Shortest-path views of a simulation's live graph, cached per version."""

    def __init__(self, sim):
        self.sim = sim
        self.version = 0
        self._cache: dict = {}

    def changed(self):
        self.version += 1
        self._cache = {}

    def etx(self, u, v):
        sim = self.sim
        if (u, v) in sim.cut:
            return INF
        p = sim.topo.loss[u][v]
        if sim.burst and p < 1.0:
            p = 0.01 * 10 / 11 + 0.5 * 1 / 11  # Gilbert-Elliott stationary loss
        return INF if p >= 1.0 else 1.0 / (1.0 - p)

    def _dijkstra(self, root, weight, reverse):
        sim = self.sim
        alive = sim.alive
        adj = sim.topo.adj
        dist = {root: 0.0}
        parent = {root: None}
        h = [(0.0, root)]
        done = set()
        while h:
            d, u = heapq.heappop(h)
            if u in done:
                continue
            done.add(u)
            for v in adj[u]:
                if not alive[v] or v in done:
                    continue
                w = weight(v, u) if reverse else weight(u, v)
                if w == INF:
                    continue
                nd = d + w
                if nd < dist.get(v, INF):
                    dist[v] = nd
                    parent[v] = u
                    heapq.heappush(h, (nd, v))
        return dist, parent

    def next_hops_to(self, dst):
        """node -> next hop on its ETX-shortest path to dst (live graph)."""
        key = ("to", dst)
        r = self._cache.get(key)
        if r is None:
            r = self._cache[key] = self._dijkstra(dst, self.etx, True)[1]
        return r

    def tree_children(self, src):
        """node -> children in src's ETX shortest-path tree."""
        key = ("tree", src)
        r = self._cache.get(key)
        if r is None:
            parent = self._dijkstra(src, self.etx, False)[1]
            r = {}
            for v, u in parent.items():
                if u is not None:
                    r.setdefault(u, []).append(v)
            self._cache[key] = r
        return r

    def etx_dist(self, src):
        key = ("etx", src)
        r = self._cache.get(key)
        if r is None:
            r = self._cache[key] = self._dijkstra(src, self.etx, False)[0]
        return r

    def lat_dist(self, src):
        key = ("lat", src)
        r = self._cache.get(key)
        if r is None:
            sim = self.sim
            lat = sim.topo.lat
            tx = sim.p["tx_ms"]

            def w(u, v):
                return INF if (u, v) in sim.cut or sim.topo.loss[u][v] >= 1.0 \
                    else lat[u][v] + tx
            r = self._cache[key] = self._dijkstra(src, w, False)[0]
        return r


class OracleStrategy(Strategy):
    name = "oracle"
    truncate_path = True
    world = None  # set by the simulator
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
        nh = self.world.next_hops_to(sim.idx[msg.dst]).get(me)
        if nh is None:
            return Decision(drop_reason="no_route", mode="oracle")
        if sim.ids[nh] in out.path[:-1]:
            return Decision(drop_reason="loop", mode="oracle")
        return Decision(forward=[(sim.ids[nh], out)], mode="oracle")


register_strategy("oracle", OracleStrategy)

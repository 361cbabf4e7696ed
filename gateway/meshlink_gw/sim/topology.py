"""Seeded topology generators for the simulator (pure CPython, no networkx).

Every generator returns a Topology: node positions (for plots, partitions and
geometric latency), undirected adjacency, and per-direction link latency and
loss. Links are undirected for connections; one-way links are modelled as
loss 1.0 in one direction (the connection exists, nothing gets through that
way).
"""

from __future__ import annotations

import math
import random
from collections import deque

from meshlink.errors import ConfigError

KINDS = ("rgg", "grid", "line", "star", "regular", "ba")


class Topology:
    """n nodes, adj[i] = sorted neighbour list, lat[i][j] / loss[i][j] per direction."""

    def __init__(self, kind: str, n: int, pos: list, edges: set):
        self.kind = kind
        self.n = n
        self.pos = pos
        adj: list[set] = [set() for _ in range(n)]
        for a, b in edges:
            adj[a].add(b)
            adj[b].add(a)
        self.adj = [sorted(s) for s in adj]
        self.lat: list[dict] = [{} for _ in range(n)]
        self.loss: list[dict] = [{} for _ in range(n)]
        self.oneway = 0
        self.radius: float | None = None  # rgg: the connection radius

    def edges(self):
        for a in range(self.n):
            for b in self.adj[a]:
                if a < b:
                    yield a, b

    def n_edges(self) -> int:
        return sum(len(a) for a in self.adj) // 2

    def mean_degree(self) -> float:
        return 2 * self.n_edges() / self.n if self.n else 0.0

    def is_connected(self) -> bool:
        return len(bfs_dist(self.adj, 0)) == self.n if self.n else True

    def diameter_estimate(self, rng: random.Random, samples: int = 8) -> int:
        """Max eccentricity over a few BFS sweeps (exact on trees and lines)."""
        best = 0
        start = 0
        for _ in range(samples):
            d = bfs_dist(self.adj, start)
            far = max(d, key=lambda v: d[v])
            best = max(best, d[far])
            start = far if _ % 2 == 0 else rng.randrange(self.n)
        return best


def bfs_dist(adj, src, alive=None) -> dict:
    """Hop distances from src over adj (optionally only through alive nodes)."""
    dist = {src: 0}
    q = deque([src])
    while q:
        u = q.popleft()
        du = dist[u] + 1
        for v in adj[u]:
            if v not in dist and (alive is None or alive[v]):
                dist[v] = du
                q.append(v)
    return dist


def _components(n, edges):
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[ra] = rb
    comps: dict = {}
    for i in range(n):
        comps.setdefault(find(i), []).append(i)
    return list(comps.values())


def _connect(n, pos, edges):
    """Join components by their closest node pair (a longer radio link)."""
    comps = _components(n, edges)
    while len(comps) > 1:
        comps.sort(key=len)
        small = comps[0]
        others = [i for c in comps[1:] for i in c]
        best: tuple[float, int, int] | None = None
        for a in small:
            ax, ay = pos[a]
            for b in others:
                d = (pos[b][0] - ax) ** 2 + (pos[b][1] - ay) ** 2
                if best is None or d < best[0]:
                    best = (d, a, b)
        assert best is not None  # small and others are non-empty while comps > 1
        edges.add((min(best[1], best[2]), max(best[1], best[2])))
        comps = _components(n, edges)
    return edges


def _rgg_edges(pos, r):
    cell: dict[tuple[int, int], list[int]] = {}
    for i, (x, y) in enumerate(pos):
        cell.setdefault((int(x / r), int(y / r)), []).append(i)
    r2 = r * r
    edges = set()
    for (cx, cy), members in cell.items():
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                other = cell.get((cx + dx, cy + dy))
                if not other:
                    continue
                for a in members:
                    ax, ay = pos[a]
                    for b in other:
                        if b > a and (pos[b][0] - ax) ** 2 + (pos[b][1] - ay) ** 2 <= r2:
                            edges.add((a, b))
    return edges


def rgg(n, degree, rng):
    """Random geometric graph in the unit square; radius tuned to the mean degree."""
    pos = [(rng.random(), rng.random()) for _ in range(n)]
    r0 = math.sqrt(degree / (math.pi * max(n - 1, 1)))
    lo, hi = 0.5 * r0, 2.0 * r0
    r = r0
    edges = set()
    for _ in range(30):  # bisection on the radius: boundary effects lower the degree
        edges = _rgg_edges(pos, r)
        deg = 2 * len(edges) / n
        if abs(deg - degree) < 0.01 * degree:
            break
        if deg < degree:
            lo = r
        else:
            hi = r
        r = (lo + hi) / 2
    edges = _connect(n, pos, edges)
    t = Topology("rgg", n, pos, edges)
    t.radius = r
    return t


def grid(n, degree, rng):
    side = max(2, round(math.sqrt(n)))
    pos = [((i % side) / (side - 1), (i // side) / (side - 1)) for i in range(side * side)]
    edges = set()
    for i in range(side * side):
        x, y = i % side, i // side
        if x + 1 < side:
            edges.add((i, i + 1))
        if y + 1 < side:
            edges.add((i, i + side))
    return Topology("grid", side * side, pos, edges)


def line(n, degree, rng):
    pos = [(i / max(n - 1, 1), 0.5) for i in range(n)]
    return Topology("line", n, pos, {(i, i + 1) for i in range(n - 1)})


def star(n, degree, rng):
    pos = [(0.5, 0.5)] + [(0.5 + 0.4 * math.cos(2 * math.pi * i / (n - 1)),
                          0.5 + 0.4 * math.sin(2 * math.pi * i / (n - 1))) for i in range(n - 1)]
    return Topology("star", n, pos, {(0, i) for i in range(1, n)})


def regular(n, degree, rng):
    """Random d-regular overlay (pairing model with restarts)."""
    d = int(degree)
    if (n * d) % 2:
        d += 1
    edges: set = set()
    for _ in range(50):
        stubs = [i for i in range(n) for _ in range(d)]
        rng.shuffle(stubs)
        edges = set()
        ok = True
        for k in range(0, len(stubs), 2):
            a = stubs[k]
            for _try in range(100):  # swap a random later stub in until the pair is new
                b = stubs[k + 1]
                if a != b and (min(a, b), max(a, b)) not in edges:
                    break
                if k + 2 >= len(stubs):
                    ok = False
                    break
                j = rng.randrange(k + 1, len(stubs))
                stubs[k + 1], stubs[j] = stubs[j], stubs[k + 1]
            else:
                ok = False
            if not ok:
                break
            edges.add((min(a, b), max(a, b)))
        if ok and len(_components(n, edges)) == 1:
            break
    else:
        raise ConfigError(f"--topology regular: could not build a connected {d}-regular "
                          f"graph on {n} nodes (try a lower --degree or more --nodes)")
    pos = [(rng.random(), rng.random()) for _ in range(n)]
    return Topology("regular", n, pos, edges)


def ba(n, degree, rng):
    """Barabasi-Albert preferential attachment, m = degree / 2 edges per new node."""
    m = max(1, int(round(degree / 2)))
    edges = set()
    targets = list(range(m))
    repeated: list = []
    for v in range(m, n):
        chosen: set[int] = set()
        while len(chosen) < m:
            chosen.add(rng.choice(repeated) if repeated else rng.choice(targets))
        for u in chosen:
            edges.add((min(u, v), max(u, v)))
            repeated.extend((u, v))
    edges = _connect(n, [(rng.random(), rng.random()) for _ in range(n)], edges)
    pos = [(rng.random(), rng.random()) for _ in range(n)]
    return Topology("ba", n, pos, edges)


GENERATORS = {"rgg": rgg, "grid": grid, "line": line, "star": star, "regular": regular,
              "ba": ba}


def build(kind, n, degree, rng, *, loss=0.05, loss_model="uniform", latency_ms=20.0,
          latency_sigma=0.5, oneway=0.0):
    """A topology with per-direction latency (lognormal around latency_ms, fixed per
    link, symmetric) and loss (uniform p, or distance-based 2 %..2p for rgg), and
    a fraction oneway of links made one-way (loss 1.0 in a random direction)."""
    if kind not in GENERATORS:
        raise ConfigError(f"--topology {kind!r}: expected one of {', '.join(KINDS)}")
    if type(n) is not int or n < 2:
        raise ConfigError(f"--nodes {n!r}: must be an integer, at least 2")
    if not isinstance(degree, (int, float)) or not degree > 0:
        raise ConfigError(f"--degree {degree!r}: must be more than 0")
    t = GENERATORS[kind](n, degree, rng)
    _link_attrs(t, rng, loss, loss_model, latency_ms, latency_sigma, oneway)
    return t


def from_graph(graph, rng, *, loss=0.05, loss_model="uniform", latency_ms=20.0,
               latency_sigma=0.5, oneway=0.0):
    """A topology from a checked --topology-file graph ({"nodes": names, "edges":
    [[i, j]]}); positions are random (they only place plots and partitions)."""
    n = len(graph["nodes"])
    pos = [(rng.random(), rng.random()) for _ in range(n)]
    t = Topology("file", n, pos, {(a, b) for a, b in graph["edges"]})
    _link_attrs(t, rng, loss, loss_model, latency_ms, latency_sigma, oneway)
    return t


def _link_attrs(t, rng, loss, loss_model, latency_ms, latency_sigma, oneway):
    rad = t.radius
    for a, b in list(t.edges()):
        lat = latency_ms * math.exp(latency_sigma * rng.gauss(0.0, 1.0)) if latency_sigma \
            else latency_ms
        t.lat[a][b] = t.lat[b][a] = lat
        if loss_model == "distance" and rad:
            (ax, ay), (bx, by) = t.pos[a], t.pos[b]
            frac = min(1.0, ((ax - bx) ** 2 + (ay - by) ** 2) / (rad * rad))
            p = 0.02 + (2 * loss - 0.02) * frac
        else:
            p = loss
        t.loss[a][b] = t.loss[b][a] = p
    if oneway > 0:
        es = list(t.edges())
        rng.shuffle(es)
        for a, b in es[:int(round(oneway * len(es)))]:
            if rng.random() < 0.5:
                a, b = b, a
            t.loss[a][b] = 1.0
            t.oneway += 1

"""Traffic schedules, seeded per run seed (identical for every strategy).

A record is (t0_ms, src, dst or None, payload_bytes, flow): Poisson
arrivals at `rate` messages/s network-wide from uniformly chosen sources, a
share `bcast_frac` broadcast, directed destinations drawn from a Zipf(`zipf`)
popularity over a random ranking of the nodes ("popular destinations"), plus
`flows` fixed (src, dst) pairs sending every `flow_ms` from half-way through
the warm-up (for recovery measurements; with flow_mode "central" half of them
cross the most central node).
"""

from __future__ import annotations

import bisect
import itertools
import random

from .topology import bfs_dist


def _zipf_sampler(n, s, rng):
    order = list(range(n))
    rng.shuffle(order)
    weights = [1.0 / (r + 1) ** s for r in range(n)]
    cum = list(itertools.accumulate(weights))
    total = cum[-1]

    def draw():
        return order[min(n - 1, bisect.bisect_left(cum, rng.random() * total))]
    return draw


def flow_pairs(topo, count, rng, central=None):
    n = topo.n
    pairs: list[tuple[int, int]] = []
    through = count // 2 if central is not None else 0
    if through:
        dc = bfs_dist(topo.adj, central)
        tries = 0
        while len(pairs) < through and tries < 50 * through:
            tries += 1
            s = rng.randrange(n)
            if dc.get(s, 0) < 2:
                continue
            ds = bfs_dist(topo.adj, s)
            cands = [d for d in range(n) if d != s and dc.get(d, 0) >= 2
                     and ds.get(d) == ds[central] + dc[d]]
            if cands:
                pairs.append((s, rng.choice(cands)))
    while len(pairs) < count:
        s, d = rng.sample(range(n), 2)
        pairs.append((s, d))
    return pairs


def make_traffic(p, topo, seed, warm_ms, end_ms, central=None):
    rng = random.Random(f"{seed}:traffic")
    n = topo.n
    # (t_ms, src, dst or None: broadcast, bytes, flow or None)
    out: list[tuple[float, int, int | None, int, int | None]] = []
    rate = p["rate"]
    if rate > 0 and n > 1:
        draw = _zipf_sampler(n, p["zipf"], rng)
        t = rng.expovariate(rate) * 1000.0
        while t < end_ms:
            src = rng.randrange(n)
            size = rng.randint(40, 200)
            if rng.random() < p["bcast_frac"]:
                out.append((t, src, None, size, None))
            else:
                dst = draw()
                while dst == src:
                    dst = draw()
                out.append((t, src, dst, size, None))
            t += rng.expovariate(rate) * 1000.0
    if p["flows"] > 0 and n > 1:
        pairs = flow_pairs(topo, p["flows"], rng,
                           central if p["flow_mode"] == "central" else None)
        for f, (s, d) in enumerate(pairs):
            t = warm_ms / 2 + rng.random() * p["flow_ms"]
            while t < end_ms:
                out.append((t, s, d, 64, f))
                t += p["flow_ms"]
    out.sort(key=lambda r: r[0])
    return out

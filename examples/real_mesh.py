"""A mesh of real `meshlink node` processes on loopback, failures injected
with signals, and directed traffic counted at the sender's Ack (issue 16).

Used by `python -m bench.routing_real` (the 30-node scenario, figures) and
by tests/integration/test_real_failures.py (smaller meshes, behaviour).

- `random_graph(n, mean_degree, seed)`: a connected random graph (a random
  spanning tree plus random extra edges), in the simulator's topology-file
  format {"nodes": [names], "edges": [[a, b], ...]};
- `betweenness(graph)`: Brandes' exact betweenness (unweighted);
- `RealMesh`: one process per node, each node dialing its neighbours of
  higher index (`--peer`), every port fixed up front; freeze (SIGSTOP),
  thaw (SIGCONT), kill (SIGKILL) and restart a node;
- `Traffic`: sends through each node's control socket (`meshlink send` without
  a process per message), each send awaiting its end-to-end Ack or expiry.

Rule: every process started here is killed by close() (or the context
manager); every wait is bounded.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import random
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshlink.errors import MeshLinkError
from meshlink_gw.node import control

from examples.node_proc import NodeProcess


# -- graphs ---------------------------------------------------------------------------
def random_graph(n: int, mean_degree: float, seed: int) -> dict[str, Any]:
    """A connected graph of n nodes named n00.. with about n * mean_degree / 2 edges."""
    rng = random.Random(seed)
    names = [f"n{i:02d}" for i in range(n)]
    edges: set[tuple[int, int]] = set()
    order = list(range(n))
    rng.shuffle(order)
    for k in range(1, n):  # a random tree: connected
        a, b = order[k], order[rng.randrange(k)]
        edges.add((min(a, b), max(a, b)))
    want = max(n - 1, round(n * mean_degree / 2))
    while len(edges) < want:
        a, b = rng.sample(range(n), 2)
        edges.add((min(a, b), max(a, b)))
    return {"nodes": names, "edges": [[names[a], names[b]] for a, b in sorted(edges)]}


def geometric_graph(n: int, mean_degree: float, seed: int) -> dict[str, Any]:
    """The simulator's default topology (a random geometric graph in the unit
    square, radius tuned to the mean degree, components joined by their
    closest pair), as a graph of nodes named n00.."""
    from meshlink_gw.sim.topology import rgg

    t = rgg(n, mean_degree, random.Random(seed))
    names = [f"n{i:02d}" for i in range(n)]
    return {"nodes": names, "edges": [[names[a], names[b]] for a, b in sorted(t.edges())]}


GRAPHS = {"rgg": geometric_graph, "random": random_graph}


def adjacency(graph: dict[str, Any], without: frozenset[str] = frozenset()
              ) -> dict[str, set[str]]:
    adj: dict[str, set[str]] = {v: set() for v in graph["nodes"] if v not in without}
    for a, b in graph["edges"]:
        if a in adj and b in adj:
            adj[a].add(b)
            adj[b].add(a)
    return adj


def betweenness(graph: dict[str, Any]) -> dict[str, float]:
    """Brandes' betweenness centrality (unweighted, unnormalised)."""
    adj = adjacency(graph)
    bc = dict.fromkeys(adj, 0.0)
    for s in adj:
        stack: list[str] = []
        preds: dict[str, list[str]] = {v: [] for v in adj}
        sigma = dict.fromkeys(adj, 0)
        sigma[s] = 1
        dist = dict.fromkeys(adj, -1)
        dist[s] = 0
        queue = collections.deque([s])
        while queue:
            v = queue.popleft()
            stack.append(v)
            for w in adj[v]:
                if dist[w] < 0:
                    dist[w] = dist[v] + 1
                    queue.append(w)
                if dist[w] == dist[v] + 1:
                    sigma[w] += sigma[v]
                    preds[w].append(v)
        delta = dict.fromkeys(adj, 0.0)
        while stack:
            w = stack.pop()
            for v in preds[w]:
                delta[v] += sigma[v] / sigma[w] * (1 + delta[w])
            if w != s:
                bc[w] += delta[w]
    return {v: b / 2 for v, b in bc.items()}


def most_central(graph: dict[str, Any], k: int) -> list[str]:
    bc = betweenness(graph)
    return sorted(bc, key=lambda v: (-bc[v], v))[:k]


def component_of(graph: dict[str, Any], without: frozenset[str]) -> dict[str, int]:
    """Each node outside `without` -> the index of its connected component."""
    adj = adjacency(graph, without)
    comp: dict[str, int] = {}
    for s in adj:
        if s in comp:
            continue
        comp[s] = len(set(comp.values()))
        todo = [s]
        while todo:
            v = todo.pop()
            for w in adj[v]:
                if w not in comp:
                    comp[w] = comp[s]
                    todo.append(w)
    return comp


def diameter(graph: dict[str, Any], without: frozenset[str] = frozenset()) -> int:
    adj = adjacency(graph, without)
    best = 0
    for s in adj:
        dist = {s: 0}
        queue = collections.deque([s])
        while queue:
            v = queue.popleft()
            for w in adj[v]:
                if w not in dist:
                    dist[w] = dist[v] + 1
                    queue.append(w)
        best = max(best, max(dist.values()))
    return best


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):  # all held at once: n distinct ports
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# -- processes -------------------------------------------------------------------------
class RealMesh:
    """One `meshlink node` process per node of graph, linked as its edges say.

    Args:
        root: data directories go to root/<name>.
        graph: {"nodes": [...], "edges": [[a, b], ...]}.
        node_toml: extra [node] settings for every node (TOML lines).
    """

    def __init__(self, root: Path, graph: dict[str, Any], node_toml: str = "") -> None:
        self.root = Path(root)
        self.graph = graph
        self.names: list[str] = list(graph["nodes"])
        self.ports = dict(zip(self.names, _free_ports(len(self.names)), strict=True))
        self.root.mkdir(parents=True, exist_ok=True)
        self.config = self.root / "node.toml"
        self.config.write_text("[node]\n" + node_toml)
        index = {v: i for i, v in enumerate(self.names)}
        self.dials: dict[str, list[str]] = {v: [] for v in self.names}
        for a, b in graph["edges"]:  # the lower index dials
            lo, hi = (a, b) if index[a] < index[b] else (b, a)
            self.dials[lo].append(hi)
        self.procs: dict[str, NodeProcess] = {}
        self.ids: dict[str, str] = {}
        self.frozen: set[str] = set()

    def _proc(self, name: str) -> NodeProcess:
        peers = tuple(f"127.0.0.1:{self.ports[p]}" for p in self.dials[name])
        return NodeProcess(self.root / name, listen=f"127.0.0.1:{self.ports[name]}",
                           peers=peers, extra=("--config", str(self.config)))

    def start(self, timeout_s: float) -> None:
        """Launch every node, then wait for each to have started."""
        for name in self.names:
            self.procs[name] = self._proc(name).launch()
        for name in self.names:
            self.ids[name] = self.procs[name].wait_started(timeout_s).node_id

    def sock(self, name: str) -> Path:
        return self.root / name / "control.sock"

    async def status(self, name: str, timeout_s: float = 10.0) -> dict[str, Any]:
        return await control.request(self.sock(name), {"cmd": "status"}, timeout_s)

    async def wait_converged(self, timeout_s: float, names: list[str] | None = None) -> float:
        """Wait until every node has a link per edge and an announced route to
        every other node; the seconds it took. Raises TimeoutError."""
        names = names or self.names
        degree = {v: len(n) for v, n in adjacency(self.graph).items()}
        t0 = time.monotonic()
        pending = set(names)
        while pending:
            if time.monotonic() - t0 > timeout_s:
                raise TimeoutError(f"not converged after {timeout_s:g} s: {sorted(pending)}")
            for v in list(pending):
                try:
                    st = await self.status(v)
                except (MeshLinkError, OSError, TimeoutError):
                    continue
                if len(st["peers"]) >= degree[v] and \
                        st["routing"].get("announced", 0) >= len(self.names) - 1:
                    pending.discard(v)
            await asyncio.sleep(0.5)
        return time.monotonic() - t0

    def freeze(self, name: str) -> None:
        self.procs[name].proc.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
        self.frozen.add(name)

    def thaw(self, name: str) -> None:
        self.procs[name].proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
        self.frozen.discard(name)

    def kill(self, name: str) -> None:
        self.procs[name].kill()

    def restart(self, name: str, timeout_s: float) -> None:
        """Start a killed node again (same data directory, port and peers)."""
        self.procs[name] = self._proc(name).start(timeout_s)

    def close(self) -> None:
        for name in list(self.frozen):
            self.thaw(name)
        for p in self.procs.values():
            p.kill()

    def __enter__(self) -> RealMesh:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- traffic ---------------------------------------------------------------------------
@dataclass
class Sent:
    src: str
    dst: str
    sent_s: float  # since the traffic's start
    done_s: float | None = None
    delivered: bool = False
    attempts: int = 0
    reason: str = ""


@dataclass
class Traffic:
    """Directed messages between random pairs of `flows`, at rate_per_s, each
    through its source's control socket; every result recorded."""

    mesh: RealMesh
    flows: list[tuple[str, str]]
    rate_per_s: float
    seed: int = 1
    reply_timeout_s: float = 120.0
    sent: list[Sent] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.t0 = time.monotonic()
        self._tasks: set[asyncio.Task] = set()

    def now_s(self) -> float:
        return time.monotonic() - self.t0

    async def _one(self, rec: Sent) -> None:
        req = {"cmd": "send", "to": self.mesh.ids[rec.dst], "text": f"m{len(self.sent)}"}
        try:
            res = await control.request(self.mesh.sock(rec.src), req, self.reply_timeout_s)
            rec.delivered, rec.attempts = bool(res["delivered"]), int(res["attempts"])
            rec.reason = res.get("reason", "")
        except (MeshLinkError, OSError, TimeoutError) as e:
            rec.reason = f"{type(e).__name__}: {e}"
        rec.done_s = self.now_s()

    def send_one(self, src: str, dst: str) -> Sent:
        rec = Sent(src, dst, self.now_s())
        self.sent.append(rec)
        task = asyncio.get_running_loop().create_task(self._one(rec))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return rec

    async def run_for(self, seconds: float) -> None:
        """Send at rate_per_s for seconds (a random flow each time)."""
        end = self.now_s() + seconds
        gap = 1.0 / self.rate_per_s
        nxt = self.now_s()
        while self.now_s() < end:
            self.send_one(*self.rng.choice(self.flows))
            nxt += gap
            await asyncio.sleep(max(0.0, nxt - self.now_s()))

    async def drain(self, timeout_s: float) -> int:
        """Wait for every send's result; the count still open after timeout_s."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)
        return len(self._tasks)


def summarize(sent: list[Sent], start_s: float, end_s: float) -> dict[str, Any]:
    """Counts for the messages sent in [start_s, end_s)."""
    window = [s for s in sent if start_s <= s.sent_s < end_s]
    acked = [s for s in window if s.delivered]
    waits = sorted((s.done_s or 0.0) - s.sent_s for s in acked)
    return {"sent": len(window), "acked": len(acked),
            "acked_pct": round(100.0 * len(acked) / len(window), 2) if window else None,
            "retried": sum(1 for s in window if s.attempts > 1),
            "ack_wait_s": {"p50": _pct(waits, 0.5), "p99": _pct(waits, 0.99),
                           "max": round(waits[-1], 2) if waits else None},
            "failed": [(s.src, s.dst, round(s.sent_s, 2), s.reason)
                       for s in window if not s.delivered][:10],
            "slowest": [(s.src, s.dst, round(s.sent_s, 2), round((s.done_s or 0) - s.sent_s, 2),
                         s.attempts)
                        for s in sorted(acked, key=lambda s: s.sent_s - (s.done_s or 0))[:8]]}


def acked_while_down(sent: list[Sent], fail_s: float, back_s: float, margin_s: float
                     ) -> dict[str, Any]:
    """Of the messages sent in [fail_s, back_s - margin_s), those acknowledged
    before back_s: delivery while the failed nodes were still down (a message
    acked only once they came back does not count)."""
    window = [s for s in sent if fail_s <= s.sent_s < back_s - margin_s]
    ok = [s for s in window if s.delivered and s.done_s is not None and s.done_s < back_s]
    return {"sent": len(window), "acked": len(ok),
            "acked_pct": round(100.0 * len(ok) / len(window), 2) if window else None}


def _pct(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return round(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))], 3)


def recovery_s(sent: list[Sent], fail_s: float, end_s: float) -> float | None:
    """Seconds from fail_s until every message sent from then on (up to end_s)
    was acknowledged at its first attempt; None if none was sent after it."""
    window = sorted((s for s in sent if fail_s <= s.sent_s < end_s), key=lambda s: s.sent_s)
    if not window:
        return None
    last_bad = None
    for s in window:
        if not (s.delivered and s.attempts == 1):
            last_bad = s.sent_s
    if last_bad is None:
        return 0.0
    later = [s.sent_s for s in window if s.sent_s > last_bad]
    return (later[0] if later else end_s) - fail_s


def recovery_like_sim(sent: list[Sent], fail_s: float, end_s: float) -> dict[str, Any]:
    """The simulator's recovery measure (meshlink_gw.sim.metrics) on real sends:
    the level is the first-attempt share in the PRE_WINDOW_MS before the
    failure (less GUARD_MS); recovery is the first offset, in 0.25 s steps,
    whose RECOVERY_WINDOW_MS window is back within TOLERANCE of that level.
    Also the per-second first-attempt series from the failure on."""
    from meshlink_gw.sim import metrics

    GUARD_MS, PRE_WINDOW_MS, TOLERANCE = metrics.GUARD_MS, metrics.PRE_WINDOW_MS, \
        metrics.TOLERANCE
    RECOVERY_WINDOW_MS = getattr(metrics, "RECOVERY_WINDOW_MS", 2000.0)

    pts = [(s.sent_s, bool(s.delivered and s.attempts == 1)) for s in sent if s.sent_s < end_s]
    guard, pre_s = GUARD_MS / 1000, PRE_WINDOW_MS / 1000
    pre = [ok for t, ok in pts if fail_s - guard - pre_s <= t < fail_s - guard]
    level = sum(pre) / len(pre) if pre else 1.0
    win = RECOVERY_WINDOW_MS / 1000
    tau, rec = 0.0, None
    while fail_s + tau + win <= end_s:
        w = [ok for t, ok in pts if fail_s + tau <= t < fail_s + tau + win]
        if w and sum(w) / len(w) >= level - TOLERANCE:
            rec = tau
            break
        tau += 0.25
    series = []
    t = fail_s
    while t < end_s:
        w = [ok for tt, ok in pts if t <= tt < t + 1.0]
        series.append(round(sum(w) / len(w), 4) if w else None)
        t += 1.0
    return {"recovery_s": rec, "pre_level": level, "series": series}


def failure_schedule(nodes: list[str], at_ms: int, until_ms: int | None, mode: str
                     ) -> dict[str, Any]:
    """The simulator's failure-file format."""
    return {"failures": [{"node": v, "at_ms": at_ms, "until_ms": until_ms, "mode": mode}
                         for v in nodes]}


def dump_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1) + "\n")


# -- the issue-16 scenario ---------------------------------------------------------------
@dataclass
class Scenario:
    """A random mesh, its k most central nodes failing (SIGSTOP "silent" or
    SIGKILL "kill") for during_s while traffic flows between live nodes."""

    nodes: int = 30
    mean_degree: float = 5.0
    # 5: the first seed whose 30-node, degree-5 rgg stays connected without its 3
    # most central nodes (diameter 6 -> 12), like the mesh issue 16 reports on
    seed: int = 5
    graph: str = "rgg"  # GRAPHS: rgg (the simulator's default) or random (tree + edges)
    failed: int = 3
    mode: str = "silent"  # or "kill"
    flows: int = 60
    rate_per_s: float = 10.0
    before_s: float = 10.0
    during_s: float = 20.0
    after_s: float = 10.0
    node_toml: str = ""
    idle_measure_s: float = 0.0  # > 0: bytes per idle link per second, measured this long
    restore: bool = True  # thaw (or restart) the failed nodes after during_s
    ack_margin_s: float = 8.0  # acked while down: sent this long before the failure ended
    start_timeout_s: float = 120.0
    converge_timeout_s: float = 180.0


async def idle_link_rate(mesh: RealMesh, seconds: float) -> float:
    """Bytes per second per link, both directions, framing and encryption
    included, over `seconds` without traffic (the nodes' own link counters)."""
    async def total() -> int:
        n = 0
        for v in mesh.names:
            for p in (await mesh.status(v))["peers"]:
                n += p["bytes_sent"]  # each byte counted once: at its sender
        return n
    t0, b0 = time.monotonic(), await total()
    await asyncio.sleep(seconds)
    b1, t1 = await total(), time.monotonic()
    return round((b1 - b0) / (t1 - t0) / len(mesh.graph["edges"]), 1)


def pick_flows(graph: dict[str, Any], failed: list[str], count: int, seed: int
               ) -> list[tuple[str, str]]:
    """count distinct ordered pairs of nodes that stay connected without `failed`."""
    comp = component_of(graph, frozenset(failed))
    live = sorted(comp)
    pairs = [(a, b) for a in live for b in live if a != b and comp[a] == comp[b]]
    rng = random.Random(seed)
    return rng.sample(pairs, min(count, len(pairs)))


async def run_scenario(root: Path, sc: Scenario, progress=print) -> dict[str, Any]:
    """Run sc with real processes under root; the figures as a dict (also the
    graph and failure schedule in the simulator's formats, written to root)."""
    graph = GRAPHS[sc.graph](sc.nodes, sc.mean_degree, sc.seed)
    failed = most_central(graph, sc.failed)
    flows = pick_flows(graph, failed, sc.flows, sc.seed)
    at_ms = int(sc.before_s * 1000)
    until_ms = int((sc.before_s + sc.during_s) * 1000) if sc.restore else None
    root.mkdir(parents=True, exist_ok=True)
    dump_json(root / "graph.json", graph)
    dump_json(root / "failures.json", failure_schedule(
        failed, at_ms, until_ms, "silent" if sc.mode == "silent" else "clean"))
    out: dict[str, Any] = {
        "nodes": sc.nodes, "edges": len(graph["edges"]),
        "mean_degree": round(2 * len(graph["edges"]) / sc.nodes, 2),
        "diameter": diameter(graph), "diameter_after": diameter(graph, frozenset(failed)),
        "failed": failed, "mode": sc.mode, "flows": len(flows), "graph": sc.graph,
        "cut_off": sc.nodes - sc.failed - max(collections.Counter(
            component_of(graph, frozenset(failed)).values()).values())}
    with RealMesh(root / "nodes", graph, sc.node_toml) as mesh:
        t = time.monotonic()
        await asyncio.to_thread(mesh.start, sc.start_timeout_s)
        progress(f"  {sc.nodes} nodes started in {time.monotonic() - t:.1f} s")
        out["converged_s"] = round(await mesh.wait_converged(sc.converge_timeout_s), 1)
        progress(f"  converged in {out['converged_s']} s; failing {failed} ({sc.mode})")
        if sc.idle_measure_s > 0:
            out["idle_link_bytes_per_s"] = await idle_link_rate(mesh, sc.idle_measure_s)
            progress(f"  idle: {out['idle_link_bytes_per_s']} B/s per link (both directions)")
        warm = Traffic(mesh, flows, sc.rate_per_s, seed=sc.seed)
        for a, b in flows:  # end-to-end records fetched before the measurement
            warm.send_one(a, b)
        await warm.drain(sc.converge_timeout_s)
        out["warmup"] = summarize(warm.sent, 0, 1e9)
        traffic = Traffic(mesh, flows, sc.rate_per_s, seed=sc.seed + 1)
        await traffic.run_for(sc.before_s)
        fail_s = traffic.now_s()
        for v in failed:
            mesh.freeze(v) if sc.mode == "silent" else mesh.kill(v)
        progress(f"  failed at {fail_s:.1f} s")
        await traffic.run_for(sc.during_s)
        back_s = traffic.now_s()
        for v in failed if sc.restore else ():
            if sc.mode == "silent":
                mesh.thaw(v)
            else:
                await asyncio.to_thread(mesh.restart, v, sc.start_timeout_s)
        if sc.restore:
            progress(f"  back at {back_s:.1f} s")
        await traffic.run_for(sc.after_s)
        end_s = traffic.now_s()
        still_open = await traffic.drain(180.0)
        out.update(
            before=summarize(traffic.sent, 0, fail_s),
            during=summarize(traffic.sent, fail_s, back_s),
            after=summarize(traffic.sent, back_s, end_s),
            during_acked_while_down=acked_while_down(traffic.sent, fail_s, back_s,
                                                     sc.ack_margin_s),
            recovery_s=recovery_s(traffic.sent, fail_s, back_s),
            sim_measure=recovery_like_sim(traffic.sent, fail_s, end_s),
            unresolved=still_open,
            links_silent=0)
        for v in mesh.names:
            if v in failed:
                continue
            try:
                st = await mesh.status(v)
            except (MeshLinkError, OSError, TimeoutError):
                continue
            out["links_silent"] += st["stats"].get("links_silent", 0)
    dump_json(root / "result.json", out)
    dump_json(root / "sent.json", {"fail_s": fail_s, "back_s": back_s, "sent": [
        dataclasses.asdict(s) for s in traffic.sent]})  # per-message timeline (--keep)
    return out

"""Neighbour failure detection and heartbeat cost on real `meshlink node`
processes (part of `make bench`; issue 16, docs/PROTOCOL.md §4).

- detection time of a frozen neighbour (SIGSTOP: its kernel still
  acknowledges TCP, so only the heartbeat can tell): a line a - b - c, a
  sending to c every 100 ms (the a-b link owes answers) or idle; from the
  SIGSTOP to b leaving a's peer list (a's control socket polled every
  20 ms), median of RUNS;
- steady-state bytes per second on one idle link (both directions, framing
  and encryption included: pings, pongs, routing announcements), counted
  by a TCP relay between two nodes, so the figure does not depend on the
  node's own counters (the same bench measures older code), median of
  WINDOWS windows.

`python -m bench.node_liveness` prints the table; the environment variable
MESHLINK_BENCH_RUNS changes RUNS.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import statistics
import tempfile
import time
from pathlib import Path

from meshlink_gw.node import control

from examples.node_proc import NodeProcess

RUNS = int(os.environ.get("MESHLINK_BENCH_RUNS", "5"))
WINDOWS = 3
WINDOW_S = 20.0
SETTLE_S = 10.0  # after the link is up: first announcements and names pass
DEADLINE_S = 120.0  # any single wait (a broken node fails the bench, never hangs it)


async def _status(node: NodeProcess) -> dict:
    return await control.request(node.data_dir / "control.sock", {"cmd": "status"}, 10.0)


async def _peer_ids(node: NodeProcess) -> set[str]:
    return {p["node_id"] for p in (await _status(node))["peers"]}


async def _until(pred, what: str, interval_s: float = 0.02) -> float:
    """Await pred() (async) until true; the monotonic time it became true."""
    deadline = time.monotonic() + DEADLINE_S
    while not await pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {DEADLINE_S:g} s")
        await asyncio.sleep(interval_s)
    return time.monotonic()


async def _sender(a: NodeProcess, c: NodeProcess, stop: asyncio.Event) -> None:
    sock = a.data_dir / "control.sock"
    pending: set[asyncio.Task] = set()
    while not stop.is_set():
        t = asyncio.create_task(control.request(sock, {"cmd": "send", "to": c.node_id,
                                                      "text": "x"}, 60.0))
        pending.add(t)
        t.add_done_callback(pending.discard)
        await asyncio.sleep(0.1)
    for t in list(pending):
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


async def _detection(root: Path, with_traffic: bool, runs: int) -> list[float]:
    c = NodeProcess(root / "c").start()
    b = NodeProcess(root / "b", peers=(c.listen,)).start()
    a = NodeProcess(root / "a", peers=(b.listen,)).start()
    samples = []
    rng = random.Random(16)
    try:
        for _ in range(runs):
            await _until(lambda: _has(a, b), "a linked to b")
            await _until(lambda: _routes(a, 2), "a has routes")
            stop = asyncio.Event()
            sender = asyncio.create_task(_sender(a, c, stop)) if with_traffic else None
            # a frozen idle peer is caught after the next idle ping: freeze at a
            # random phase of it (seeded), as a failure would
            await asyncio.sleep(1.0 if with_traffic else rng.uniform(0.0, 5.0))
            b.proc.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
            t0 = time.monotonic()
            try:
                t1 = await _until(lambda: _gone(a, b), "a noticed b frozen")
            finally:
                b.proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
                stop.set()
                if sender is not None:
                    await sender
            samples.append((t1 - t0) * 1000)
    finally:
        for n in (a, b, c):
            n.kill()
    return samples


async def _has(a: NodeProcess, b: NodeProcess) -> bool:
    return b.node_id in await _peer_ids(a)


async def _gone(a: NodeProcess, b: NodeProcess) -> bool:
    return b.node_id not in await _peer_ids(a)


async def _routes(a: NodeProcess, count: int) -> bool:
    return (await _status(a))["routing"].get("announced", count) >= count


class _CountingRelay:
    """A TCP relay that counts the bytes it forwards."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.bytes = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            tr, tw = await asyncio.open_connection(*self.target)
        except OSError:
            w.close()
            return
        try:
            await asyncio.gather(self._pipe(r, tw), self._pipe(tr, w), return_exceptions=True)
        except asyncio.CancelledError:
            pass  # the bench is over (3.11 would log a cancelled stream handler)

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while chunk := await r.read(65536):
                self.bytes += len(chunk)
                w.write(chunk)
                await w.drain()
        finally:
            w.close()

    def close(self) -> None:
        self.server.close()


async def _idle_link_rate(root: Path) -> tuple[list[float], list[float]]:
    """Bytes/s on one idle link: by the relay, and by the node's own counters
    (None where the node has none)."""
    b = NodeProcess(root / "b").start()
    host, port = b.listen.rsplit(":", 1)
    relay = _CountingRelay((host, int(port)))
    relay_port = await relay.start()
    a = NodeProcess(root / "a", peers=(f"127.0.0.1:{relay_port}",)).start()
    relayed, counted = [], []
    try:
        await _until(lambda: _has(a, b), "a linked to b")
        await asyncio.sleep(SETTLE_S)
        for _ in range(WINDOWS):
            before, own0, t0 = relay.bytes, await _own_bytes(a), time.monotonic()
            await asyncio.sleep(WINDOW_S)
            dt = time.monotonic() - t0
            relayed.append((relay.bytes - before) / dt)
            own1 = await _own_bytes(a)
            if own0 is not None and own1 is not None:
                counted.append((own1 - own0) / dt)
    finally:
        a.kill()
        b.kill()
        relay.close()
    return relayed, counted


async def _own_bytes(a: NodeProcess) -> int | None:
    peers = (await _status(a))["peers"]
    if not peers or "bytes_sent" not in peers[0]:
        return None
    return sum(p["bytes_sent"] + p["bytes_received"] for p in peers)


async def _benches(root: Path) -> list[tuple[str, float, str]]:
    rows: list[tuple[str, float, str]] = []
    busy = await _detection(root / "busy", True, RUNS)
    rows += [("frozen neighbour detected, link carrying traffic: median", statistics.median(busy),
              "ms"),
             ("frozen neighbour detected, link carrying traffic: max", max(busy), "ms")]
    idle = await _detection(root / "idle", False, RUNS)
    rows += [("frozen neighbour detected, idle link: median", statistics.median(idle), "ms"),
             ("frozen neighbour detected, idle link: max", max(idle), "ms")]
    relayed, counted = await _idle_link_rate(root / "rate")
    rows.append(("one idle link, both directions (TCP relay count): median",
                 statistics.median(relayed), "B/s"))
    if counted:
        rows.append(("one idle link, both directions (node's counters): median",
                     statistics.median(counted), "B/s"))
    return rows


def run(keep_dir: str | None = None) -> list[tuple[str, float, str]]:
    if keep_dir:
        return asyncio.run(_benches(Path(keep_dir)))
    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(_benches(Path(tmp)))


if __name__ == "__main__":
    import sys

    for name, value, unit in run(sys.argv[1] if len(sys.argv) > 1 else None):
        print(f"{name:<60} {value:>12,.1f} {unit}")

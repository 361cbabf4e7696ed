"""`make soak` (python -m bench.soak --minutes N): a long run under steady load.

Rule: real processes on loopback, every one stopped at the end; bounded by
--minutes plus a drain of at most DRAIN_S. Not part of `make test`.

What runs: a gateway with BOARDS simulated boards (examples/sim_board.py,
CPython BoardClients on shared UDP sockets; one reading every READING_S each,
every TO_MESH-th one addressed to the far node), an MQTT bridge to a local
mosquitto (if installed), and a 3-node mesh gateway - n1 - n2. Every SAMPLE_S
it samples RSS and open files of the three processes and the readings stored.

It fails (exit 1) on: a reading sent and confirmed by the gateway but never
stored, or stored twice; a reading for n2 that never arrived; a stall (no new
reading stored for STALL_S); RSS growth over RSS_GROWTH_BOUND (from the first
sample after warm-up to the mean of the last three); open files growing by
more than FD_GROWTH_BOUND. Figures are printed for docs/MEASUREMENTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from meshlink_gw.boards.registry import BoardRegistry
from meshlink_gw.crypto.identity import Identity

from examples.gateway_proc import GatewayProcess
from examples.localbroker import LocalMosquitto, find_mosquitto
from examples.node_proc import NodeProcess
from examples.sim_board import SharedUdp, SimBoard

BOARDS = 200
READING_S = 5.0
TO_MESH = 10  # every 10th reading goes to n2 through the mesh
SOCKETS = 8
SAMPLE_S = 10.0
STALL_S = 30.0
WARMUP_S = 60.0
DRAIN_S = 60.0
RSS_GROWTH_BOUND = 0.25  # +25 % (and at least RSS_GROWTH_MIN_KB) over the run
RSS_GROWTH_MIN_KB = 8192
FD_GROWTH_BOUND = 8

GATEWAY_TOML = """
[boards]
rate_records_per_s = 20
rate_burst = 40
offline_after_ms = 60000
max_half_open = 256
"""
MQTT_TOML = """
[mqtt]
host = "127.0.0.1"
port = {port}
"""


def _proc_figures(pid: int) -> tuple[int, int]:
    """(RSS in kB, open files) of a live process, from /proc."""
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def _stored(db: Path) -> list[tuple[str, int]]:
    """(board, seq) of every soak reading in a node's inbox."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = con.execute("SELECT data FROM inbox").fetchall()
    finally:
        con.close()
    out = []
    for (data,) in rows:
        try:
            body = json.loads(bytes(data))
        except ValueError:
            continue
        if body.get("kind") == "reading" and body.get("sensor") == "soak":
            out.append((body["board"], body["seq"]))
    return out


class Fleet:
    def __init__(self, creds: list[tuple[str, bytes, bytes]], gateway: tuple[str, int]) -> None:
        self.creds = creds
        self.gateway = gateway
        self.sockets = [SharedUdp() for _ in range(SOCKETS)]
        self.boards: list[tuple[str, SimBoard]] = []
        self.sent: dict[str, int] = {}

    async def connect(self) -> None:
        for s in self.sockets:
            s.start()
        for i, (name, psk, board_id) in enumerate(self.creds):
            b = SimBoard(psk, board_id)
            await b.connect_udp(self.sockets[i % SOCKETS], self.gateway, timeout_s=30)
            self.boards.append((name, b))
            self.sent[name] = 0

    def tick(self, n2: str) -> None:
        """Unconfirmed readings again (as the firmware does), then one new
        reading from every board."""
        self.resend(n2)
        for name, b in self.boards:
            self.sent[name] += 1
            seq = self.sent[name]
            b.reading("soak", seq, seq, to=n2 if seq % TO_MESH == 0 else None)

    def resend(self, n2: str) -> None:
        for name, b in self.boards:
            confirmed = {seq for seq, _to in b.confirmed}
            for seq in range(1, self.sent[name] + 1):
                if seq not in confirmed:
                    b.reading("soak", seq, seq, to=n2 if seq % TO_MESH == 0 else None)

    def close(self) -> None:
        for s in self.sockets:
            s.close()


async def _run(root: Path, minutes: float) -> int:
    procs: list = []
    broker = None
    toml = GATEWAY_TOML
    if find_mosquitto() is not None:
        broker = LocalMosquitto(root / "broker").start()
        toml += MQTT_TOML.format(port=broker.port)
    else:
        print("soak: mosquitto not installed: running without the MQTT bridge", flush=True)
    (root / "gw.toml").write_text(toml)
    reg = BoardRegistry(root / "gw")
    creds = [(f"soak{i:03d}", os.urandom(32), os.urandom(8)) for i in range(BOARDS)]
    reg.add_many([(n, bid, psk, Identity.generate()) for n, psk, bid in creds])
    reg.close()
    n2 = NodeProcess(root / "n2").start(60)
    procs.append(n2)
    n1 = NodeProcess(root / "n1", peers=(n2.listen,)).start(60)
    procs.append(n1)
    gw = GatewayProcess(root / "gw", peers=(n1.listen,), config=root / "gw.toml").start(60)
    procs.append(gw)
    host, port = gw.board_udp.rsplit(":", 1)
    fleet = Fleet(creds, (host, int(port)))
    failures: list[str] = []
    samples: list[dict] = []
    try:
        await fleet.connect()
        print(f"soak: {BOARDS} boards linked; running {minutes:g} min", flush=True)
        t0 = time.monotonic()
        next_tick = next_sample = t0
        last_count, last_change = 0, t0
        while time.monotonic() - t0 < minutes * 60:
            now = time.monotonic()
            if now >= next_tick:
                fleet.tick(n2.node_id)
                next_tick += READING_S
            if now >= next_sample:
                next_sample += SAMPLE_S
                stored = len(_stored(gw.data_dir / "meshlink.db"))
                if stored != last_count:
                    last_count, last_change = stored, now
                elif now - last_change > STALL_S:
                    failures.append(f"stall: no reading stored for {now - last_change:.0f} s")
                    break
                s = {"t_s": round(now - t0), "stored_at_gw": stored}
                for name, p in (("gw", gw), ("n1", n1), ("n2", n2)):
                    s[name + "_rss_kb"], s[name + "_fds"] = _proc_figures(p.proc.pid)
                samples.append(s)
                print("soak: " + json.dumps(s), flush=True)
            await asyncio.sleep(0.05)
        await _drain_and_count(fleet, gw, n2, failures)
        _check_growth(samples, failures)
        if broker is not None:
            mqtt = gw.status().get("gateway", {}).get("mqtt") or gw.status().get("mqtt")
            print(f"soak: mqtt {json.dumps(mqtt)}", flush=True)
    finally:
        fleet.close()
        for p in reversed(procs):
            p.stop()
        if broker is not None:
            broker.stop()
    for f in failures:
        print("soak: FAIL " + f, flush=True)
    print("soak: " + ("FAILED" if failures else "passed"), flush=True)
    return 1 if failures else 0


async def _drain_and_count(fleet: Fleet, gw, n2, failures: list[str]) -> None:
    """Wait (bounded) until every reading is confirmed, then count what arrived."""
    deadline = time.monotonic() + DRAIN_S
    while time.monotonic() < deadline:
        missing = sum(fleet.sent[n] - len({s for s, _t in b.confirmed}) for n, b in fleet.boards)
        if missing == 0:
            break
        fleet.resend(n2.node_id)
        await asyncio.sleep(1.0)
    sent = sum(fleet.sent.values())
    at_gw = _stored(gw.data_dir / "meshlink.db")
    to_n2 = sum(1 for n in fleet.sent for s in range(1, fleet.sent[n] + 1) if s % TO_MESH == 0)
    await asyncio.sleep(5.0)  # end-to-end retries through the mesh
    at_n2 = _stored(n2.data_dir / "meshlink.db")
    for where, got, want in (("gateway", at_gw, sent - to_n2), ("n2", at_n2, to_n2)):
        dup = len(got) - len(set(got))
        print(f"soak: {where}: expected {want}, stored {len(set(got))}, duplicates {dup}",
              flush=True)
        if len(set(got)) != want:
            failures.append(f"{where}: {want - len(set(got))} reading(s) lost")
        if dup:
            failures.append(f"{where}: {dup} reading(s) stored twice")


def _check_growth(samples: list[dict], failures: list[str]) -> None:
    warm = [s for s in samples if s["t_s"] >= WARMUP_S]
    if len(warm) < 4:
        print("soak: run too short for a growth check (needs warm-up + 4 samples)",
              flush=True)
        return
    first, last3 = warm[0], warm[-3:]
    for name in ("gw", "n1", "n2"):
        rss0 = first[name + "_rss_kb"]
        rss1 = sum(s[name + "_rss_kb"] for s in last3) / 3
        fd0, fd1 = first[name + "_fds"], max(s[name + "_fds"] for s in last3)
        print(f"soak: {name}: RSS {rss0} -> {rss1:.0f} kB, open files {fd0} -> {fd1}",
              flush=True)
        if rss1 - rss0 > max(RSS_GROWTH_MIN_KB, rss0 * RSS_GROWTH_BOUND):
            failures.append(f"{name}: RSS grew from {rss0} to {rss1:.0f} kB")
        if fd1 - fd0 > FD_GROWTH_BOUND:
            failures.append(f"{name}: open files grew from {fd0} to {fd1}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="meshlink-soak-") as d:
        return asyncio.run(_run(Path(d), args.minutes))


if __name__ == "__main__":
    sys.exit(main())

"""Fault recovery figures (part of `make bench`; issue 15).

Healing after a relay restart: three real `meshlink node` processes in a
line a -> r <- c over loopback; a and c dial r with the default reconnect
backoff (250 ms doubling to 30 s). r is SIGKILLed for OUTAGE_S (default 25 s:
the neighbours' redial delays grow meanwhile), then started again. Measured
from the log timestamps (one clock, millisecond resolution): from r's
"listening" line to the later of a's and c's "peer up r" lines, and to the
first message from a delivered to c through r (sent once both links are up,
so that figure adds one end-to-end delivery).

Two ways back, RUNS each, median and worst:
- "known peers": r dials its neighbours from peers.json at once (what a
  node does);
- "backoff only": r's peers.json moved aside, so only a's and c's own
  redials re-link it (what a node did before peers.json, the issue's
  figure).

Environment: MESHLINK_BENCH_HEAL_OUTAGE_S, MESHLINK_BENCH_HEAL_RUNS.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from examples.node_proc import NodeProcess, meshlink_cmd

OUTAGE_S = float(os.environ.get("MESHLINK_BENCH_HEAL_OUTAGE_S", "25"))
RUNS = int(os.environ.get("MESHLINK_BENCH_HEAL_RUNS", "3"))
DEADLINE_S = 120.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_ms(path: Path, needle: str) -> float | None:
    """Unix ms of the last log line containing needle (the log's local time)."""
    found = None
    for line in path.read_text(errors="replace").splitlines():
        if needle in line:
            found = line[:23]
    if found is None:
        return None
    t = datetime.datetime.strptime(found, "%Y-%m-%d %H:%M:%S,%f")
    return t.timestamp() * 1000


def _wait(pred, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {DEADLINE_S:.0f} s")
        time.sleep(0.05)


def _send(frm: NodeProcess, to: NodeProcess, text: str) -> None:
    out = subprocess.run(meshlink_cmd() + ["send", "--data-dir", str(frm.data_dir), "--json",
                                           "--to", to.node_id, text],
                         capture_output=True, text=True, timeout=DEADLINE_S)
    if not out.stdout.strip() or not json.loads(out.stdout)["delivered"]:
        raise RuntimeError(f"send {text!r} not delivered: {out.stdout or out.stderr}")


def _one(tmp: Path, known_peers: bool) -> tuple[float, float]:
    """(ms to both links, ms to the first delivery) after r listens again."""
    r_addr = f"127.0.0.1:{_free_port()}"
    r = NodeProcess(tmp / "r", listen=r_addr).start()
    a = NodeProcess(tmp / "a", peers=(r_addr,)).start()
    c = NodeProcess(tmp / "c", peers=(r_addr,)).start()
    procs = [r, a, c]
    try:
        r.wait_peers(2, DEADLINE_S)
        _send(a, c, "before")
        r.kill()
        time.sleep(OUTAGE_S)  # the outage being measured
        if not known_peers:
            (tmp / "r" / "peers.json").rename(tmp / "r-peers.json")
        for p in (a, c):  # only lines written after the restart count
            p.log_path.write_text("")
        r2 = NodeProcess(tmp / "r", listen=r_addr, log_path=tmp / "r2.log")
        procs.append(r2)
        r2.start(DEADLINE_S)
        _wait(lambda: all(_log_ms(p.log_path, f"peer up {r.node_id}") for p in (a, c)),
              "neighbours linked")
        _send(a, c, "after")
        listening = _log_ms(r2.log_path, "listening on")
        linked = max(_log_ms(p.log_path, f"peer up {r.node_id}") for p in (a, c))
        delivered = _log_ms(c.log_path, f"received from={a.node_id}")
        assert listening is not None and delivered is not None
        return linked - listening, delivered - listening
    finally:
        for p in procs:
            p.kill()


def run() -> list[tuple[str, float, str]]:
    rows = []
    for label, known in (("known peers", True), ("backoff only", False)):
        linked, delivered = [], []
        for i in range(RUNS):
            with tempfile.TemporaryDirectory(prefix="meshlink-bench-heal-") as d:
                lk, dl = _one(Path(d), known)
            linked.append(lk)
            delivered.append(dl)
            print(f"   heal ({label}) run {i + 1}/{RUNS}: linked {lk:.0f} ms, "
                  f"delivered {dl:.0f} ms", flush=True)
        rows += [
            (f"heal after {OUTAGE_S:.0f} s, {label}: linked (median)",
             statistics.median(linked), "ms"),
            (f"heal after {OUTAGE_S:.0f} s, {label}: linked (worst)", max(linked), "ms"),
            (f"heal after {OUTAGE_S:.0f} s, {label}: delivered (median)",
             statistics.median(delivered), "ms"),
        ]
    return rows

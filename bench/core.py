"""Benchmarks of the shared protocol core: frames and board-link records.

Figures (each the median of 5 short runs, measured now on this machine):
  CPython: frames encoded+decoded/s and board-link records sealed+opened/s
  (256-byte payloads), the same records with the ECB-built CTR path, and the
  board-link session setup time (both sides of the handshake).
  MicroPython: the same figures from bench/core_mpy.py, run on the
  unix port under a 96K heap (a PC, not an ESP32: expect a board to be
  tens of times slower).

run() -> [(name, value, unit)] is what `make bench` (python -m bench) calls.
Whole section: about 5 s.
"""

import os
import pathlib
import statistics
import subprocess
import time
from collections.abc import Callable

from meshlink import aes, boardlink, frames
from meshlink_gw.boards.bundle import find_micropython

ROOT = pathlib.Path(__file__).resolve().parents[1]
MPY_SCRIPT = ROOT / "bench" / "core_mpy.py"
PAYLOAD_BYTES = 256
RUNS = 5
RUN_SECONDS = 0.1
MPY_TIMEOUT_S = 60


def rate(op: Callable[[], object], runs: int = RUNS, run_seconds: float = RUN_SECONDS) -> float:
    """Median over runs of op() calls per second, each run about run_seconds long."""
    results = []
    for _ in range(runs):
        n = 0
        t0 = time.perf_counter()
        deadline = t0 + run_seconds
        now = t0
        while now < deadline:
            for _ in range(50):
                op()
            n += 50
            now = time.perf_counter()
        results.append(n / (now - t0))
    return statistics.median(results)


def frames_per_second() -> float:
    """Frames of PAYLOAD_BYTES encoded and decoded (stream deframer) per second."""
    payload = bytes(PAYLOAD_BYTES)
    deframer = frames.Deframer()

    def op() -> None:
        (frame,) = deframer.feed(frames.encode_frame(payload))
        assert len(frame) == PAYLOAD_BYTES

    return rate(op)


def handshake(now_ms: int = 0) -> tuple[boardlink.BoardClient, boardlink.GatewaySession]:
    """One complete board-link handshake, both sides in this process."""
    psk = b"k" * 32
    board = boardlink.BoardClient(psk, b"benchbrd", 1, b"n" * 16)
    gw = boardlink.GatewaySession(psk, b"benchbrd")
    challenge = gw.handle_hello(board.hello(), 9, b"g" * 16, now_ms)
    gw.handle_confirm(board.handle_challenge(challenge, now_ms), now_ms)
    return board, gw


def records_per_second(ctr_backend: str = "auto") -> float:
    """Records of PAYLOAD_BYTES sealed by the board and opened by the gateway, per second."""
    previous = aes.set_ctr_backend(ctr_backend)
    try:
        board, gw = handshake()
    finally:
        aes.set_ctr_backend(previous)
    payload = bytes(PAYLOAD_BYTES)

    def op() -> None:
        assert len(gw.open(board.seal(payload, 0), 0)) == PAYLOAD_BYTES

    return rate(op)


def session_setup_ms() -> float:
    """Milliseconds for a full board-link handshake (both sides, no network)."""
    return 1000.0 / rate(handshake)


def micropython_figures(heap: str = "96K") -> list[tuple[str, float, str]]:
    """Run bench/core_mpy.py on the MicroPython unix port; [] if it is not installed.

    Raises RuntimeError if the script fails.
    """
    mpy = find_micropython()
    if mpy is None:
        return []
    env = dict(os.environ, MICROPYPATH=str(ROOT / "shared"))
    proc = subprocess.run([mpy, "-X", f"heapsize={heap}", str(MPY_SCRIPT)], env=env,
                          capture_output=True, text=True, timeout=MPY_TIMEOUT_S)
    if proc.returncode != 0:
        raise RuntimeError("bench/core_mpy.py failed: " + (proc.stdout + proc.stderr)[-500:])
    rows = []
    for line in proc.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[0] == "bench" and parts[1] != "interpreter":
            rows.append((f"MicroPython {heap}: {parts[1]}", float(parts[2]), parts[3]))
    return rows


def run() -> list[tuple[str, float, str]]:
    """All core figures as (name, value, unit) rows, CPython first."""
    rows = [
        ("CPython: frames encode+decode (256 B)", frames_per_second(), "frames/s"),
        (f"CPython: board-link records seal+open (256 B, {aes.ctr_backend()})",
         records_per_second(), "records/s"),
        ("CPython: board-link records seal+open (256 B, ECB-built)",
         records_per_second("ecb"), "records/s"),
        ("CPython: board-link session setup, both sides", session_setup_ms(), "ms"),
    ]
    rows.extend(micropython_figures())
    return rows


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name:<64} {value:>14,.3f} {unit}")

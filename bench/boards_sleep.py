"""`make bench`, section "sleeping boards": an energy proxy.

Rule: measured now, on this machine: a real `meshlink gateway` on loopback
and the REAL firmware on the MicroPython unix port (112K heap), run by
`meshlink board run` (which restarts the process after each simulated deep
sleep). Every process started here is stopped; bounded time (< 60 s).

Radio-on milliseconds per wake cycle: from the firmware's first link attempt
(where an ESP32 switches the radio on) to its deep sleep, as the firmware
prints it (SLEEP ... radio_on_ms=N): with the session resumed on wake
(PROTOCOL.md §6.7) and with a full handshake on every wake (sleep_resume=0).
Each cycle sends one reading, waits for its "got", asks to sleep and waits
for sleep_ok. The first cycle (a cold boot: a handshake in both modes) is
left out. What this does not include: WiFi association on an ESP32 (the
unix port uses the host's network), and the ESP32's own crypto speed.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from examples.gateway_proc import BoardProcess, GatewayProcess
from examples.node_proc import meshlink_cmd

CYCLES = 9  # per mode; the first (cold) one is not counted
SLEEP_MS = 300
TIME_BUDGET_S = 25.0  # per mode
GATEWAY_TOML = """
[boards]
offline_after_ms = 60000
"""
SENSOR = {"name": "temp", "type": "sim", "interval_ms": 60000, "unit": "C", "base": 20}


def _board(gw: GatewayProcess, name: str, resume: int) -> None:
    args = ["board", "add", name, "--board", "unix", "--transport", "udp", "--json",
            "--data-dir", str(gw.data_dir), "--gateway", gw.board_udp,
            "--sensor", json.dumps(SENSOR)]
    for kv in (f"sleep_ms={SLEEP_MS}", f"sleep_resume={resume}", "heap_report_ms=0",
               "ping_interval_ms=500", "hello_timeout_ms=300", "backoff_min_ms=100"):
        args += ["--set", kv]
    out = subprocess.run(meshlink_cmd() + args, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"board add failed: {out.stderr}")


def _radio_on_ms(gw: GatewayProcess, name: str, resume: int) -> tuple[list[int], int]:
    """radio-on ms of each warm cycle, and how many of them resumed their session."""
    _board(gw, name, resume)
    board = BoardProcess(gw.data_dir, name, cpython=False)
    try:
        deadline = time.monotonic() + TIME_BUDGET_S
        while time.monotonic() < deadline:
            if len(re.findall(r"SLEEP ms=", board.output())) >= CYCLES:
                break
            if board.proc.poll() is not None:
                raise RuntimeError("board exited:\n" + board.output()[-2000:])
            time.sleep(0.1)
    finally:
        board.stop()
    out = board.output()
    values = [int(v) for v in re.findall(r"SLEEP ms=\d+ radio_on_ms=(\d+) granted=1", out)]
    resumed = len(re.findall(r"LINK up .* resumed=1", out))
    if len(values) < 3:
        raise RuntimeError("too few wake cycles:\n" + out[-2000:])
    return values[1:], resumed


def run() -> list[tuple[str, float, str]]:
    root = Path(tempfile.mkdtemp(prefix="meshlink-bench-sleep-"))
    conf = root / "gw.toml"
    conf.write_text(GATEWAY_TOML)
    (root / "gw").mkdir()
    gw = GatewayProcess(root / "gw", config=conf)
    try:
        gw.start()
        warm_resume, resumed = _radio_on_ms(gw, "resume", 1)
        warm_full, _ = _radio_on_ms(gw, "full", 0)
    finally:
        gw.stop()
        shutil.rmtree(root, ignore_errors=True)
    med_resume = statistics.median(warm_resume)
    med_full = statistics.median(warm_full)
    return [
        (f"radio-on per wake, session resumed (median of {len(warm_resume)})", med_resume, "ms"),
        (f"radio-on per wake, handshake each wake (median of {len(warm_full)})", med_full,
         "ms"),
        ("radio-on saved by resumption", med_full / max(med_resume, 1), "x"),
        ("warm wakes that resumed their session", resumed, "count"),
    ]


if __name__ == "__main__":
    for row_name, value, unit in run():
        print(f"{row_name:<72} {value:>12,.3f} {unit}")
    sys.exit(0)

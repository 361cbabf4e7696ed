"""`make bench`: every benchmark of the project, printed as one table.

Run from the repository root: `python -m bench [SECTION ...]`, where a
SECTION picks the modules whose name contains it (`python -m bench crypto`).

Rule: figures are medians of several runs measured now, on this machine;
ratios compare against a baseline measured in the same run. Each section is
one module of bench/, named after the part of the tree it measures, and
exposes run() -> [(name, value, unit)]. Nothing under bench/ is installed.
"""

from __future__ import annotations

import importlib
import sys
import time

SECTIONS = [
    ("core (frames, board link)", "bench.core"),
    ("hybrid handshake and session crypto", "bench.crypto"),
    ("full node over loopback", "bench.node"),
    ("node failure detection and heartbeat cost", "bench.node_liveness"),
    ("gateway and boards", "bench.boards"),
    ("sleeping boards: energy proxy", "bench.boards_sleep"),
    ("routing simulator", "bench.sim"),
    ("routing under failures, real processes", "bench.routing_real"),
    ("MQTT bridge", "bench.bridges"),
    ("fault recovery", "bench.faults"),
]


def main(argv: list[str]) -> int:
    only = set(argv)
    failed = 0
    for title, module_name in SECTIONS:
        if only and not any(o in module_name for o in only):
            continue
        print(f"\n== {title} ({module_name}) ==", flush=True)
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            print(f"   not available: {e}")
            continue
        t0 = time.monotonic()
        try:
            rows = module.run()
        except Exception as e:  # a broken bench must not hide the others' figures
            failed += 1
            print(f"   FAILED: {type(e).__name__}: {e}")
            continue
        for name, value, unit in rows:
            print(f"   {name:<58} {value:>14,.3f} {unit}")
        print(f"   ({time.monotonic() - t0:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

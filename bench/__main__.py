"""`make bench`: every benchmark of the project, printed as one table.

Rule: figures are medians of several runs measured now, on this machine;
ratios compare against a baseline measured in the same run. Each section
lives next to the code it measures and exposes run() -> [(name, value, unit)].
"""

from __future__ import annotations

import importlib
import sys
import time

SECTIONS = [
    ("core (frames, board link)", "meshlink_gw.bench_core"),
    ("hybrid handshake and session crypto", "meshlink_gw.crypto.bench"),
    ("full node over loopback", "meshlink_gw.bench_node"),
    ("gateway and boards", "meshlink_gw.bench_boards"),
    ("routing simulator", "meshlink_gw.sim.bench"),
    ("MQTT bridge", "meshlink_gw.bridges.bench"),
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

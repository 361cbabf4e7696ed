"""`make bench` section for the routing simulator: events per second of the
event loop driving the shared router, per strategy and overall, and the wall
time of a 1000-node run (one seed, all four strategies, one after another)."""

from __future__ import annotations

import time

from .runner import run_one
from .scenarios import TARGET, scenario

STRATEGIES = ("meshlink", "seed", "flood", "oracle")


def bench_scenario():
    """The 1000-node target configuration (10 % session churn), shortened."""
    return scenario("bench-1000", **dict(TARGET, seeds=1),
                    churn="sessions", churn_frac=0.1, session_down_s=60.0)


def bench() -> list:
    """[(name, value, unit)]: events/s per strategy and overall, 1000-node wall time."""
    p = bench_scenario()
    rows = []
    events = 0
    loop_s = 0.0
    t0 = time.perf_counter()
    for strat in STRATEGIES:
        s = run_one(p, strat, 1)["summary"]
        events += s["events"]
        loop_s += s["wall_s"]
        rows.append((f"sim events/s, 1000-node RGG, {strat}", s["events_per_s"], "events/s"))
    total = time.perf_counter() - t0
    rows.append(("sim events/s, 1000-node RGG, all four strategies", events / loop_s,
                 "events/s"))
    rows.append(("sim 1000-node target run, 1 seed, 4 strategies (wall)", total, "s"))
    return rows


run = bench

if __name__ == "__main__":
    for name, value, unit in bench():
        print(f"{name:<58} {value:>14,.1f} {unit}")

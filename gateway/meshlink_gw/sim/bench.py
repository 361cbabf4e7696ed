"""`make bench` section for the routing simulator: events per second of the
event loop driving the shared router, per strategy and overall, and the wall
time of a 1000-node run (all four strategies, one after another). Each figure
is the median over RUNS seeds of the same 1000-node configuration."""

from __future__ import annotations

import statistics
import time

from .runner import run_one
from .scenarios import TARGET, scenario

STRATEGIES = ("meshlink", "seed", "flood", "oracle")
RUNS = 3


def bench_scenario():
    """The 1000-node target configuration (10 % session churn), shortened."""
    return scenario("bench-1000", **dict(TARGET, seeds=1),
                    churn="sessions", churn_frac=0.1, session_down_s=60.0)


def bench(runs: int = RUNS) -> list:
    """[(name, value, unit)]: median events/s per strategy and overall, and the
    median wall time of one seed run with all four strategies."""
    p = bench_scenario()
    rates: dict[str, list[float]] = {s: [] for s in STRATEGIES}
    overall = []
    walls = []
    for seed in range(1, runs + 1):
        events = 0
        loop_s = 0.0
        t0 = time.perf_counter()
        for strat in STRATEGIES:
            s = run_one(p, strat, seed)["summary"]
            events += s["events"]
            loop_s += s["wall_s"]
            rates[strat].append(s["events_per_s"])
        walls.append(time.perf_counter() - t0)
        overall.append(events / loop_s)
    rows = [(f"sim events/s, 1000-node RGG, {s} (median of {runs})",
             statistics.median(rates[s]), "events/s") for s in STRATEGIES]
    rows.append((f"sim events/s, 1000-node RGG, all four (median of {runs})",
                 statistics.median(overall), "events/s"))
    rows.append(("sim 1000-node target run, 1 seed, 4 strategies (wall, median)",
                 statistics.median(walls), "s"))
    return rows


run = bench

if __name__ == "__main__":
    for name, value, unit in bench():
        print(f"{name:<58} {value:>14,.1f} {unit}")

"""`make bench` section for the routing simulator: events per second of the
event loop driving the shared router, per strategy and for all four together,
on two workloads, and the wall time of a 1000-node run (all four strategies,
one after another). Each figure is the median over RUNS seeds, one process.

The workloads: the scenario `meshlink sim` runs with no options (a 200-node
random geometric graph) and the 1000-node target configuration with session
churn. Events are router calls (arrivals, timers, probe rounds, originations),
so the rate falls with the work a router does per event: at 1000 nodes a
meshlink Routes message carries ~26 table entries (docs/ROUTING.md §7.4)."""

from __future__ import annotations

import statistics
import time

from meshlink_gw.sim.runner import run_one
from meshlink_gw.sim.scenarios import STRATEGY_ORDER as STRATEGIES
from meshlink_gw.sim.scenarios import TARGET, scenario

RUNS = 3


def default_scenario():
    """What `meshlink sim` runs without options."""
    return scenario("bench-default", seeds=1)


def bench_scenario():
    """The 1000-node target configuration (10 % session churn), shortened."""
    return scenario("bench-1000", **dict(TARGET, seeds=1),
                    churn="sessions", churn_frac=0.1, session_down_s=60.0)


def _rows(label, p, runs):
    """Median events/s rows per strategy and for all four on scenario p, and
    the wall time of each seed's four runs."""
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
    rows = [(f"sim events/s, {label}, {s} (median of {runs})",
             statistics.median(rates[s]), "events/s") for s in STRATEGIES]
    rows.append((f"sim events/s, {label}, all four (median of {runs})",
                 statistics.median(overall), "events/s"))
    return rows, walls


def bench(runs: int = RUNS) -> list:
    """[(name, value, unit)]: median events/s per strategy and overall on both
    workloads, and the median wall time of one 1000-node seed, four strategies."""
    rows, _ = _rows("200-node RGG (default)", default_scenario(), runs)
    big, walls = _rows("1000-node RGG, churn", bench_scenario(), runs)
    rows += big
    rows.append(("sim 1000-node target run, 1 seed, 4 strategies (wall, median)",
                 statistics.median(walls), "s"))
    return rows


run = bench

if __name__ == "__main__":
    for name, value, unit in bench():
        print(f"{name:<58} {value:>14,.1f} {unit}")

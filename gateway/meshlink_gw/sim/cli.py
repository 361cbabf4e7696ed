"""`meshlink sim`: run the routing simulator and write the report.

    python -m meshlink_gw.sim --preset report --out sim-results   # make sim
    python -m meshlink_gw.sim --topology grid --nodes 100 --seeds 3
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time

from .scenarios import DEFAULTS, KNOBS, PRESETS, STRATEGY_ORDER, preset, scenario

DESCRIPTION = """Discrete-event simulation of MeshLink routing strategies (the shared
router code itself, in virtual time). Runs a preset, or one scenario built from
the knobs below, for each strategy and seed; writes results.json, report.md and
PNG plots to --out. Definitions of every metric: docs/ROUTING.md."""

EPILOG = """presets:
""" + "\n".join(f"  {k:<8} {v[0]}" for k, v in PRESETS.items()) + """

A transmission is one link-layer attempt of one unicast send to one
neighbour (the real node's per-peer TCP send), counted the same way for
every strategy and the optimum. Metrics ignore the warm-up and count a
message only if the live graph could deliver it.
"""


def _knob_type(default):
    if isinstance(default, bool):
        return lambda s: s.lower() in ("1", "true", "yes")
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    return str


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the `sim` subcommand to an argparse subparsers object."""
    p = subparsers.add_parser("sim", help="run the routing simulator",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    configure(p)
    p.set_defaults(func=run)
    return p


def configure(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--preset", choices=sorted(PRESETS),
                   help="run a named set of scenarios (knobs below then only override "
                        "--seeds/--strategies)")
    g.add_argument("--name", default="custom", help="scenario name when no preset is given")
    g.add_argument("--strategies", default=",".join(STRATEGY_ORDER),
                   help="comma-separated routing strategies (default: %(default)s)")
    g.add_argument("--workers", type=int, default=2,
                   help="worker processes, one run per worker (default: %(default)s)")
    g.add_argument("--out", default="sim-results",
                   help="output directory for results.json, report.md, *.png")
    g.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    g.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    g.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="meshlink strategy option, repeatable; meaning of each in "
                        "docs/PROTOCOL.md §7.4; CPython defaults: " + _option_defaults())
    g.add_argument("--decision-log", metavar="FILE",
                   help="append every routing decision as JSONL to FILE (forces --workers 1; "
                        "meant for small runs)")
    k = p.add_argument_group("scenario knobs (a single custom scenario)")
    for name, (default, help_text) in KNOBS.items():
        k.add_argument("--" + name.replace("_", "-"), dest=name, type=_knob_type(default),
                       default=None, help=f"{help_text} (default: {default})")


def _option_defaults():
    from meshlink.router_opts import DEFAULTS as ROUTER_DEFAULTS
    return ", ".join(f"{k}={v}" for k, v in ROUTER_DEFAULTS.items()).replace("%", "%%")


def _options(pairs):
    out = {}
    for item in pairs:
        key, sep, val = item.partition("=")
        if not sep:
            raise SystemExit(f"--option needs KEY=VALUE, got {item!r}")
        try:
            out[key] = ast.literal_eval(val)
        except (ValueError, SyntaxError):
            out[key] = val
    return out


def build_scenarios(args) -> list:
    knobs = {k: getattr(args, k) for k in KNOBS if getattr(args, k, None) is not None}
    if args.preset:
        scens = preset(args.preset)
        if "seeds" in knobs:
            for s in scens:
                s["seeds"] = knobs["seeds"]
    else:
        scens = [scenario(args.name, **knobs)]
    opts = _options(args.option)
    if opts:
        for s in scens:
            s["meshlink_options"] = dict(opts)
    return scens


def run(args) -> int:
    """Run the simulations args describe; write the outputs. Returns an exit code."""
    from .metrics import aggregate
    from .report import meta_info, write
    from .runner import run_jobs

    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    from meshlink.router import load_strategy

    from . import oracle  # noqa: F401
    for s in strategies:
        if load_strategy(s) is None:
            print(f"meshlink sim: unknown strategy {s!r}", file=sys.stderr)
            return 2
    try:
        scens = build_scenarios(args)
    except KeyError as e:
        print(f"meshlink sim: {e.args[0]}", file=sys.stderr)
        return 2
    workers = 1 if args.decision_log else max(1, args.workers)
    jobs = [(s, strat, seed, args.decision_log) for s in scens for strat in strategies
            for seed in range(1, int(s["seeds"]) + 1)]
    t0 = time.perf_counter()
    runs = run_jobs(jobs, workers=workers, progress=not args.no_progress)
    wall = time.perf_counter() - t0
    agg = aggregate(runs)
    cmd = "meshlink sim " + " ".join(sys.argv[1:]) if sys.argv else "meshlink sim"
    meta = meta_info(cmd, runs, wall, workers)
    results = write(args.out, scens, runs, agg, meta, make_plots=not args.no_plots)
    print(f"{len(runs)} runs, {meta['events']:,} events, {wall:.0f} s "
          f"({meta['events_per_s']:,.0f} events/s per worker); wrote "
          f"{os.path.join(args.out, 'report.md')}", file=sys.stderr)
    for t in results["targets"]:
        state = {True: "holds", False: "FAILS", None: "n/a"}[t["holds"]]
        m = t["values"].get("meshlink") or {}
        print(f"  target {t['target']} {t['threshold']}: meshlink "
              f"{m.get('mean')} -> {state}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="meshlink sim", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    configure(p)
    return run(p.parse_args(argv))


__all__ = ["add_parser", "run", "main", "DEFAULTS"]

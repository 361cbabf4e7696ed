"""`meshlink sim` (also `python -m meshlink_gw.sim`): run the routing simulator
and write the report.

    meshlink sim --preset report --out sim-results   # make sim
    meshlink sim --topology grid --nodes 100 --seeds 3

Rule: argument parsing and human output only; the simulator is meshlink_gw.sim.
Bad input raises ConfigError naming the option (cli/app.py: exit 2) before
any run starts.
"""

from __future__ import annotations

import argparse
import ast
import os
import shlex
import sys
import time
from collections.abc import Callable
from typing import Any

from meshlink.errors import ConfigError
from meshlink.router import STRATEGIES, load_strategy
from meshlink.router_opts import DEFAULTS as ROUTER_DEFAULTS
from meshlink.router_opts import parse_options

from meshlink_gw.sim import oracle  # noqa: F401  (registers the oracle strategy)
from meshlink_gw.sim.files import load_failures, load_topology
from meshlink_gw.sim.scenarios import (
    KNOBS,
    PRESETS,
    STRATEGY_ORDER,
    check,
    flag,
    preset,
    scenario,
)

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


def _bool(text: str) -> bool:
    low = text.lower()
    if low in ("1", "true", "yes"):
        return True
    if low in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _knob_type(default: Any) -> Callable[[str], Any]:
    if isinstance(default, bool):
        return _bool
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    return str


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
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
                   help="run a named set of scenarios (of the knobs below, only --seeds "
                        "applies to a preset)")
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
    g.add_argument("--topology-file", metavar="FILE",
                   help='the graph as JSON: {"nodes": ["a", ...], "edges": [["a", "b"], ...]} '
                        "(replaces --topology and --nodes)")
    g.add_argument("--failures-file", metavar="FILE",
                   help='a failure schedule as JSON: {"failures": [{"node": "a", "at_ms": '
                        '20000, "until_ms": 50000, "mode": "silent"}]}; until_ms optional '
                        "(never back), mode silent (default) or clean; times from the run's "
                        "start, warm-up included; node names from --topology-file, else "
                        "indices 0..n-1 (replaces --churn)")
    g.add_argument("--decision-log", metavar="FILE",
                   help="append every routing decision as JSONL to FILE (forces --workers 1; "
                        "meant for small runs)")
    k = p.add_argument_group("scenario knobs (a single custom scenario)")
    for name, (default, help_text) in KNOBS.items():
        k.add_argument(flag(name), dest=name, type=_knob_type(default),
                       default=None, help=f"{help_text} (default: {default})")


def _option_defaults() -> str:
    return ", ".join(f"{k}={v}" for k, v in ROUTER_DEFAULTS.items()).replace("%", "%%")


def _options(pairs: list[str]) -> dict[str, Any]:
    """--option KEY=VALUE pairs -> meshlink strategy options. Raises ConfigError."""
    out: dict[str, Any] = {}
    for item in pairs:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option {item!r}: expected KEY=VALUE")
        try:
            out[key] = ast.literal_eval(val)
        except (ValueError, SyntaxError):
            out[key] = val
    try:
        parse_options(out)  # unknown keys
    except ConfigError as e:
        raise ConfigError(f"--option: {e} (known: {', '.join(ROUTER_DEFAULTS)})")
    for key, val in out.items():
        default = ROUTER_DEFAULTS[key]
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            ok = isinstance(val, (int, float)) and not isinstance(val, bool)
            if isinstance(default, int) and not isinstance(default, bool):
                ok = ok and isinstance(val, int)
        else:
            ok = isinstance(val, type(default))
        if not ok:
            raise ConfigError(f"--option {key}={val!r}: expected {type(default).__name__} "
                              f"(default {default!r})")
    return out


def _strategies(text: str) -> list[str]:
    """--strategies a,b -> [a, b], each a known strategy. Raises ConfigError."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise ConfigError("--strategies: give at least one routing strategy")
    for s in names:
        if load_strategy(s) is None:
            raise ConfigError(f"--strategies: unknown routing strategy {s!r} "
                              f"(known: {', '.join(sorted(STRATEGIES))})")
    return names


def build_scenarios(args: argparse.Namespace) -> list[dict]:
    """The checked scenarios args describe. Raises ConfigError."""
    knobs = {k: getattr(args, k) for k in KNOBS if getattr(args, k, None) is not None}
    topo_file = getattr(args, "topology_file", None)
    fail_file = getattr(args, "failures_file", None)
    if args.preset and (topo_file or fail_file):
        raise ConfigError(f"--preset {args.preset}: --topology-file and --failures-file "
                          "make a custom scenario, not a preset")
    extra: dict[str, Any] = {}
    if topo_file:
        for k in ("topology", "nodes"):
            if k in knobs:
                raise ConfigError(f"{flag(k)}: the --topology-file sets it")
        graph = load_topology(topo_file)
        knobs.update(topology="file", nodes=len(graph["nodes"]))
        extra["graph"] = graph
    if fail_file:
        if knobs.get("churn", "none") != "none":
            raise ConfigError(f"--churn {knobs['churn']}: give either --churn or a "
                              "--failures-file, not both")
        names = extra["graph"]["nodes"] if topo_file else \
            [str(i) for i in range(knobs.get("nodes", KNOBS["nodes"][0]))]
        extra["failures"] = load_failures(fail_file, names)
    if args.preset:
        ignored = [flag(k) for k in knobs if k != "seeds"]
        if ignored:
            raise ConfigError(f"--preset {args.preset}: only --seeds applies to a preset, "
                              f"not {', '.join(ignored)}")
        scens = preset(args.preset)
        if "seeds" in knobs:
            for s in scens:
                s["seeds"] = knobs["seeds"]
    else:
        scens = [scenario(args.name, **knobs, **extra)]
    opts = _options(args.option)
    if opts:
        for s in scens:
            s["meshlink_options"] = dict(opts)
    return scens


def _check_writable(args: argparse.Namespace) -> None:
    """Fail on --out and --decision-log before the runs, not after them."""
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"--out {args.out}: cannot create the directory ({e.strerror})")
    if args.decision_log:
        try:
            with open(args.decision_log, "a", encoding="utf-8"):
                pass
        except OSError as e:
            raise ConfigError(f"--decision-log {args.decision_log}: cannot write ({e.strerror})")


def run(args: argparse.Namespace) -> int:
    """Run the simulations args describe; write the outputs. Returns an exit code.

    Raises:
        ConfigError: a bad option, knob or strategy (checked before any run).
    """
    from meshlink_gw.sim.metrics import aggregate
    from meshlink_gw.sim.report import meta_info, write
    from meshlink_gw.sim.runner import run_jobs

    strategies = _strategies(args.strategies)
    scens = build_scenarios(args)
    for s in scens:
        check(s)  # a preset's scenarios with --seeds applied
    if args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: must be at least 1")
    workers = 1 if args.decision_log else args.workers
    _check_writable(args)
    jobs = [(s, strat, seed, args.decision_log) for s in scens for strat in strategies
            for seed in range(1, int(s["seeds"]) + 1)]
    t0 = time.perf_counter()
    runs = run_jobs(jobs, workers=workers, progress=not args.no_progress)
    wall = time.perf_counter() - t0
    agg = aggregate(runs)
    argv = getattr(args, "argv", None)
    cmd = "meshlink " + shlex.join(argv) if argv is not None else \
        "meshlink sim " + shlex.join(sys.argv[1:])
    meta = meta_info(cmd, runs, wall, workers)
    results = write(args.out, scens, runs, agg, meta, make_plots=not args.no_plots)
    print(f"{len(runs)} runs, {meta['events']:,} events, {wall:.0f} s "
          f"({meta['events_per_s']:,.0f} events/s per worker); wrote "
          f"{os.path.join(args.out, 'report.md')}", file=sys.stderr)
    for t in results["targets"]:
        state = {True: "PASS", False: "FAIL", None: "n/a"}[t["holds"]]
        m = t["values"].get("meshlink") or {}
        print(f"  target {t['target']} {t['threshold']}: meshlink "
              f"{m.get('mean')} -> {state}", file=sys.stderr)
    return 0

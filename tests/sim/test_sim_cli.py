"""`meshlink sim` / `python -m meshlink_gw.sim`: help, a tiny run, its outputs."""

import argparse
import json
import subprocess
import sys

from meshlink_gw.sim import cli
from meshlink_gw.sim.scenarios import KNOBS, PRESETS


def test_help_documents_every_knob_and_preset():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers()
    p = cli.add_parser(sub)
    text = p.format_help()
    for knob in KNOBS:
        assert "--" + knob.replace("_", "-") in text, knob
    for name in PRESETS:
        assert name in text
    for opt in ("--preset", "--strategies", "--workers", "--out", "--option", "--decision-log"):
        assert opt in text


def test_module_entry_point_help():
    out = subprocess.run([sys.executable, "-m", "meshlink_gw.sim", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--loss-model" in out.stdout


def test_small_run_writes_json_markdown_and_log(tmp_path):
    log = tmp_path / "decisions.jsonl"
    rc = cli.main(["--topology", "grid", "--nodes", "16", "--degree", "4", "--seeds", "1",
                   "--warmup-s", "5", "--duration-s", "10", "--rate", "2",
                   "--strategies", "meshlink,oracle", "--out", str(tmp_path), "--no-progress",
                   "--decision-log", str(log), "--option", "explore=0.0"])
    assert rc == 0
    res = json.loads((tmp_path / "results.json").read_text())
    agg = res["aggregate"]["custom"]
    assert set(agg) == {"meshlink", "oracle"}
    assert agg["meshlink"]["directed_tx_vs_oracle"]["mean"] > 0
    assert res["scenarios"]["custom"]["meshlink_options"] == {"explore": 0.0}
    md = (tmp_path / "report.md").read_text()
    assert "| meshlink |" in md and "## custom" in md
    recs = [json.loads(x) for x in log.read_text().splitlines()]
    kinds = {r["event"] for r in recs}
    assert {"receive", "originate", "outcome"} <= kinds or {"receive", "originate"} <= kinds
    assert all("features" in r for r in recs if r["event"] != "outcome")


def test_unknown_strategy_is_refused(tmp_path):
    assert cli.main(["--strategies", "nope", "--out", str(tmp_path), "--no-progress"]) == 2


def test_plots_from_an_aggregate(tmp_path):
    import pytest
    pytest.importorskip("matplotlib")
    from meshlink_gw.sim.report import plots

    def m(v):
        return {"mean": v, "ci95": 0.01, "n": 3}
    agg = {}
    for name, n in (("size-50", 50), ("size-200", 200), ("loss-0", 0), ("loss-10", 10)):
        agg[name] = {s: {"directed_delivery": m(0.99), "broadcast_coverage": m(0.98),
                         "directed_tx_per_delivered": m(10.0 + n),
                         "directed_delivery_first": m(0.9),
                         "broadcast_tx_per_node": m(1.1), "control_msgs_per_node_s": m(2.0)}
                     for s in ("meshlink", "flood")}
    made = plots({"aggregate": agg, "scenarios": {}}, str(tmp_path))
    assert set(made) == {"delivery_vs_size.png", "overhead_vs_size.png",
                         "delivery_vs_loss.png", "overhead_vs_loss.png"}
    for f in made:
        assert (tmp_path / f).stat().st_size > 1000


def test_bench_default_workload_is_what_sim_runs_without_options():
    """`make bench` labels its first workload "the default": keep that true."""
    from bench import sim as bench

    ap = argparse.ArgumentParser()
    cli.configure(ap)
    args = ap.parse_args([])
    (p,) = cli.build_scenarios(args)
    want = bench.default_scenario()
    per_seed = ("name", "seeds")  # the bench runs seeds 1..RUNS one at a time
    assert {k: v for k, v in p.items() if k not in per_seed} == \
        {k: v for k, v in want.items() if k not in per_seed}
    assert p["seeds"] == bench.RUNS
    assert [s.strip() for s in args.strategies.split(",")] == list(bench.STRATEGIES)


def test_bench_rows_report_every_strategy_and_all_four():
    """The make-bench section on a tiny grid (no timing asserts)."""
    from meshlink_gw.sim.scenarios import scenario

    from bench import sim as bench

    tiny = scenario("tiny", topology="grid", nodes=16, degree=4, warmup_s=2.0,
                    duration_s=4.0, seeds=1)
    rows, walls = bench._rows("tiny", tiny, 2)
    assert [name for name, _v, _u in rows] == \
        [f"sim events/s, tiny, {s} (median of 2)" for s in bench.STRATEGIES] + \
        ["sim events/s, tiny, all four (median of 2)"]
    assert all(v > 0 and unit == "events/s" for _n, v, unit in rows)
    assert len(walls) == 2 and all(w > 0 for w in walls)

"""`meshlink sim` / `python -m meshlink_gw.sim`: help, a tiny run, its outputs, and
a one-line typed error (exit 2) for every kind of bad input."""

import argparse
import json
import subprocess
import sys

import pytest
from meshlink.errors import ConfigError
from meshlink_gw.cli import main
from meshlink_gw.cli import sim as cli
from meshlink_gw.sim import run_one
from meshlink_gw.sim.scenarios import KNOBS, PRESETS, RANGES, check, preset, scenario
from meshlink_gw.sim.topology import build


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
    rc = main(["sim", "--topology", "grid", "--nodes", "16", "--degree", "4", "--seeds", "1",
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


def test_unknown_strategy_is_refused(tmp_path, capsys):
    assert main(["sim", "--strategies", "nope", "--out", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == "meshlink: error: --strategies: unknown routing strategy 'nope' " \
        "(known: flood, meshlink, oracle, seed)\n"
    assert not (tmp_path / "results.json").exists()


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


# -- bad input: one line on stderr naming the option, exit 2, no run started -------
BAD = [
    (["--topology", "nope"], "--topology 'nope': expected one of rgg, grid, line, star, "
                             "regular, ba"),
    (["--nodes", "-3"], "--nodes -3: must be at least 2"),
    (["--nodes", "1"], "--nodes 1: must be at least 2"),
    (["--degree", "0"], "--degree 0.0: must be more than 0"),
    (["--loss", "1.5"], "--loss 1.5: must be at most 1"),
    (["--duration-s", "nan"], "--duration-s nan: expected a finite number"),
    (["--loss-model", "fog"], "--loss-model 'fog': expected one of uniform, distance, burst"),
    (["--churn", "sometimes"], "--churn 'sometimes': expected one of none, central, mass, "
                               "partition, sessions"),
    (["--churn", "sessions", "--churn-frac", "0"], "--churn-frac 0.0: --churn sessions needs "
                                                   "a share strictly between 0 and 1"),
    (["--churn", "partition", "--churn-at-s", "50", "--heal-at-s", "40"],
     "--heal-at-s 40.0: the partition must heal after it is cut (--churn-at-s 50.0)"),
    (["--topology", "regular", "--nodes", "5", "--degree", "8"],
     "--topology regular: needs a --degree of at least 1 and more --nodes than the degree 8 "
     "(got --nodes 5, --degree 8.0)"),
    (["--ttl", "0"], "--ttl 0: must be at least 1"),
    (["--seeds", "0"], "--seeds 0: must be at least 1"),
    (["--preset", "quick", "--seeds", "0"], "--seeds 0: must be at least 1"),
    (["--preset", "quick", "--nodes", "5"], "--preset quick: only --seeds applies to a "
                                            "preset, not --nodes"),
    (["--option", "foo"], "--option 'foo': expected KEY=VALUE"),
    (["--option", "=1"], "--option '=1': expected KEY=VALUE"),
    (["--option", "nope=1"], "--option: unknown meshlink option 'nope' (known: "),
    (["--option", "explore=abc"], "--option explore='abc': expected float (default 0.02)"),
    (["--option", "candidates=2.5"], "--option candidates=2.5: expected int (default 3)"),
    (["--strategies", "meshlink,nope"], "--strategies: unknown routing strategy 'nope' "
                                        "(known: flood, meshlink, oracle, seed)"),
    (["--strategies", " , "], "--strategies: give at least one routing strategy"),
    (["--workers", "0"], "--workers 0: must be at least 1"),
]


@pytest.mark.parametrize("argv,message", BAD, ids=[" ".join(a) for a, _m in BAD])
def test_bad_input_is_one_typed_line_and_exit_2(argv, message, tmp_path, capsys):
    rc = main(["sim", *argv, "--out", str(tmp_path / "out"), "--no-progress", "--no-plots"])
    out, err = capsys.readouterr()
    assert rc == 2
    assert err.startswith("meshlink: error: " + message), err
    assert err.count("\n") == 1 and "Traceback" not in err and out == ""
    assert not (tmp_path / "out").exists()  # refused before any run


@pytest.mark.parametrize("argv", [["--topology", "nope"], ["--nodes", "-3"],
                                  ["--option", "foo"], ["--strategies", "nope"]])
def test_bad_input_through_the_installed_entry_points(argv, tmp_path):
    """`python -m meshlink_gw.sim` (make sim) and `python -m meshlink_gw.cli sim` alike."""
    for entry in (["-m", "meshlink_gw.sim"], ["-m", "meshlink_gw.cli", "sim"]):
        out = subprocess.run([sys.executable, *entry, *argv, "--out", str(tmp_path),
                              "--no-progress"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 2, out.stderr
        assert out.stderr.startswith("meshlink: error: --") and \
            out.stderr.count("\n") == 1, out.stderr


def test_unwritable_outputs_are_refused_before_the_runs(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    rc = main(["sim", "--out", str(blocker / "out"), "--no-progress"])
    assert rc == 2 and capsys.readouterr().err.startswith(
        f"meshlink: error: --out {blocker / 'out'}: cannot create the directory (")
    rc = main(["sim", "--out", str(tmp_path / "o"), "--decision-log", str(blocker / "log"),
               "--no-progress"])
    assert rc == 2 and capsys.readouterr().err.startswith(
        f"meshlink: error: --decision-log {blocker / 'log'}: cannot write (")


def test_a_bad_knob_value_type_is_an_argparse_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["sim", "--nodes", "abc"])
    assert e.value.code == 2
    assert "argument --nodes: invalid int value: 'abc'" in capsys.readouterr().err


def test_every_numeric_knob_has_a_range_and_every_preset_passes_the_checks():
    numeric = {k for k, (d, _h) in KNOBS.items()
               if isinstance(d, (int, float)) and not isinstance(d, bool)}
    assert numeric == set(RANGES)
    for name in PRESETS:
        for p in preset(name):
            check(p)


def test_library_calls_raise_config_error_too():
    with pytest.raises(ConfigError, match="unknown scenario knob 'nodez'"):
        scenario("x", nodez=3)
    with pytest.raises(ConfigError, match="--nodes -3"):
        scenario("x", nodes=-3)
    with pytest.raises(ConfigError, match="--nodes 2.5: expected int"):
        scenario("x", nodes=2.5)
    with pytest.raises(ConfigError, match="--preset 'nope'"):
        preset("nope")
    with pytest.raises(ConfigError, match="--topology 'nope'"):
        build("nope", 10, 4.0, None)
    with pytest.raises(ConfigError, match="--nodes 0"):
        build("line", 0, 2.0, None)
    p = scenario("x", topology="line", nodes=4, degree=2.0)
    with pytest.raises(ConfigError, match="--nodes -1"):
        run_one(dict(p, nodes=-1), "meshlink", 1)  # Sim.__init__ checks dicts built by hand
    with pytest.raises(ConfigError, match="unknown routing strategy 'nope'"):
        run_one(p, "nope", 1)
    with pytest.raises(ConfigError, match="has no ttl knob"):
        run_one({k: v for k, v in p.items() if k != "ttl"}, "meshlink", 1)


def _children(pid: int) -> list[str]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return f.read().split()


def _ignores_sigint(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            ign = next(line for line in f if line.startswith("SigIgn:"))
    except (OSError, StopIteration):
        return False
    return bool(int(ign.split()[1], 16) & (1 << (2 - 1)))  # bit of signal 2, SIGINT


def test_ctrl_c_stops_the_pool_quietly_with_exit_130(tmp_path):
    """SIGINT to the process group (a terminal's Ctrl-C) while workers run."""
    import os
    import signal
    import time

    try:
        _children(os.getpid())
    except OSError:
        pytest.skip("needs /proc/<pid>/task/<pid>/children (Linux)")
    proc = subprocess.Popen([sys.executable, "-m", "meshlink_gw.cli", "sim", "--nodes", "300",
                             "--seeds", "4", "--workers", "2", "--no-progress", "--no-plots",
                             "--out", str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None:  # until both workers run (and ignore SIGINT)
            kids = _children(proc.pid)
            if len(kids) >= 2 and all(_ignores_sigint(k) for k in kids):
                break
            assert time.monotonic() < deadline, "the worker pool never started"
            time.sleep(0.05)
        assert proc.poll() is None, "the runs ended before the test could interrupt them"
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert err == b"" and out == b""

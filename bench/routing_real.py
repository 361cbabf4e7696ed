"""Routing under failures on real `meshlink node` processes (issue 16).

The Done-when scenario: a 30-node random geometric mesh of mean degree 5
(the simulator's default generator, seed 5: it stays connected without its
3 most central nodes; diameter 6 -> 12) on loopback, one `meshlink node`
per node, static links per the graph. Directed messages flow between random
pairs of live nodes (60 flows, 10 messages/s, each awaiting its end-to-end
Ack through the sender's control socket); after 10 s the 3 nodes of highest
betweenness are frozen (SIGSTOP: "silent") or killed (SIGKILL, restarted
after: "kill") for 20 s; 10 s more after they are back.

Figures per mode:
- acked %: of the messages sent in each phase, those acknowledged (within
  the node's delivery timeout, retries included);
- acked while down %: of the messages sent during the failure (but at least
  ack_margin_s before its end), those acknowledged *before* the failed
  nodes came back: delivery that did not wait for them;
- recovery s: from the failure until every message sent from then on was
  acknowledged at its first attempt.

The graph and the failure schedule are written in the simulator's formats
(graph.json, failures.json; times from the start of the measured traffic).

`python -m bench.routing_real [--nodes N] [--mode silent|kill|both] [--keep DIR]`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

from examples.real_mesh import Scenario, run_scenario

SIM_WARMUP_S = 20.0
SIM_SEEDS = 3
# Real processes and the simulator agree if their figures over the measured
# window differ by at most this many percentage points (the simulator picks
# its own 60 flows on the same graph, and counts "proof" as the sender's Ack)
AGREE_PP = 5.0


def real_figures(res: dict) -> dict:
    """Proof (Ack) and first-attempt delivery over the whole measured window."""
    sent = sum(res[p]["sent"] for p in ("before", "during", "after"))
    acked = sum(res[p]["acked"] for p in ("before", "during", "after"))
    first = sum(res[p]["sent"] - res[p]["retried"] for p in ("before", "during", "after"))
    d = res["during"]
    return {"proof_pct": round(100.0 * acked / sent, 2),
            "first_pct": round(100.0 * first / sent, 2),
            "first_during_pct": round(100.0 * (d["sent"] - d["retried"]) / d["sent"], 2),
            "recovery_s": res["sim_measure"]["recovery_s"]}


def sim_figures(root: Path, res: dict, sc: Scenario) -> dict:
    """The same graph and failure schedule in `meshlink sim` (meshlink strategy,
    SIM_SEEDS seeds, no loss, 1 ms links, 60 flows at the real rate); the mean
    proof and first-attempt delivery of its runs."""
    import subprocess
    import sys

    fails = json.loads((root / "failures.json").read_text())
    for f in fails["failures"]:  # the simulator counts from its start, warm-up included
        f["at_ms"] += int(SIM_WARMUP_S * 1000)
        if f["until_ms"] is not None:
            f["until_ms"] += int(SIM_WARMUP_S * 1000)
    (root / "failures_sim.json").write_text(json.dumps(fails))
    flows = res["flows"]
    cmd = [sys.executable, "-m", "meshlink_gw.cli", "sim",
           "--topology-file", str(root / "graph.json"),
           "--failures-file", str(root / "failures_sim.json"),
           "--strategies", "meshlink", "--seeds", str(SIM_SEEDS), "--workers", "1",
           "--rate", "0", "--flows", str(flows),
           "--flow-ms", str(int(1000 * flows / sc.rate_per_s)),
           "--warmup-s", str(SIM_WARMUP_S),
           "--duration-s", str(sc.before_s + sc.during_s + sc.after_s),
           "--loss", "0", "--latency-ms", "1", "--latency-sigma", "0",
           "--no-plots", "--no-progress", "--out", str(root / "sim")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:  # e.g. a simulator without --topology-file
        lines = (done.stderr or done.stdout).strip().splitlines()
        return {"error": lines[-1] if lines else f"exit status {done.returncode}"}
    runs = json.loads((root / "sim" / "results.json").read_text())["runs"]
    summ = [r["summary"] for r in runs]

    def mean(key: str, scale: float = 100.0) -> float | None:
        vals = [s[key] for s in summ if s.get(key) is not None]
        return round(scale * sum(vals) / len(vals), 2) if vals else None

    # first-attempt share while the nodes were down: the per-second series
    # (from recovery_series_start_s, simulated time) over the failure window
    at_s = fails["failures"][0]["at_ms"] / 1000
    during = []
    for s in summ:
        start = s.get("recovery_series_start_s")
        for i, v in enumerate(s.get("recovery_series") or ()):
            if v is not None and start is not None \
                    and at_s <= start + i < at_s + sc.during_s:
                during.append(v)
    return {"proof_pct": mean("directed_delivery_proof"),
            "first_pct": mean("directed_delivery_first"),
            "first_during_pct": round(100.0 * sum(during) / len(during), 2) if during else None,
            "recovery_s": mean("recovery_s", 1.0)}


def rows_for(res: dict) -> list[tuple[str, float, str]]:
    m = f"[{res['nodes']} nodes, {res['mode']}]"
    rows = []
    if "idle_link_bytes_per_s" in res:
        rows.append((f"{m} idle link, both directions", res["idle_link_bytes_per_s"], "B/s"))
    for phase in ("before", "during", "after"):
        if res[phase]["acked_pct"] is not None:
            rows.append((f"{m} acked, sent {phase} the failure", res[phase]["acked_pct"], "%"))
    down = res["during_acked_while_down"]
    if down["acked_pct"] is not None:
        rows.append((f"{m} acked while the failed nodes were down", down["acked_pct"], "%"))
    rows.append((f"{m} sends retried during the failure", res["during"]["retried"], "msgs"))
    if res["recovery_s"] is not None:
        rows.append((f"{m} recovery (all first-attempt acked after)", res["recovery_s"], "s"))
    if "sim" in res and "error" in res["sim"]:
        print(f"{m} simulator comparison not run: {res['sim']['error']}")
    elif "sim" in res:
        for key, what, unit in (("proof_pct", "acked (proof), whole window", "%"),
                                ("first_pct", "first attempt, whole window", "%"),
                                ("first_during_pct", "first attempt, during failure", "%"),
                                ("recovery_s", "recovery (the simulator's measure)", "s")):
            for side in ("real", "sim"):
                if res[side].get(key) is not None:
                    rows.append((f"{m} {side}: {what}", res[side][key], unit))
        agree = all(res["real"][k] is not None and res["sim"][k] is not None
                    and abs(res["real"][k] - res["sim"][k]) <= AGREE_PP
                    for k in ("proof_pct", "first_pct"))
        rows.append((f"{m} sim and real delivery agree within {AGREE_PP:g} points",
                     float(agree), "(1 = yes)"))
    return rows


async def _run(root: Path, nodes: int, modes: list[str], sim: bool = False) -> list[dict]:
    out = []
    for mode in modes:
        print(f"-- {nodes} nodes, {mode}", flush=True)
        sc = Scenario(nodes=nodes, mode=mode, idle_measure_s=20.0)
        res = await run_scenario(root / mode, sc)
        if sim:
            res["real"] = real_figures(res)
            res["sim"] = await asyncio.to_thread(sim_figures, root / mode, res, sc)
        out.append(res)
    return out


def run(keep_dir: str | None = None, nodes: int = 30, modes: tuple[str, ...] = ("silent", "kill")
        ) -> list[tuple[str, float, str]]:
    """`make bench` section: both modes at 30 nodes, each also in the simulator."""
    def go(root: Path) -> list[tuple[str, float, str]]:
        results = asyncio.run(_run(root, nodes, list(modes), sim=True))
        return [row for res in results for row in rows_for(res)]
    if keep_dir:
        return go(Path(keep_dir))
    with tempfile.TemporaryDirectory() as tmp:
        return go(Path(tmp))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=30)
    ap.add_argument("--mode", choices=("silent", "kill", "both"), default="both")
    ap.add_argument("--keep", metavar="DIR", help="keep data directories, logs, graph.json, "
                    "failures.json and result.json under DIR")
    ap.add_argument("--json", action="store_true", help="print every figure as JSON")
    ap.add_argument("--sim", action="store_true", help="also run the same graph and failure "
                    "schedule in `meshlink sim` and compare")
    args = ap.parse_args()
    modes = ["silent", "kill"] if args.mode == "both" else [args.mode]

    def go(root: Path) -> None:
        results = asyncio.run(_run(root, args.nodes, modes, args.sim))
        for res in results:
            if args.json:
                print(json.dumps(res))
            for name, value, unit in rows_for(res):
                print(f"{name:<62} {value:>10,.2f} {unit}")
    if args.keep:
        go(Path(args.keep))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            go(Path(tmp))


if __name__ == "__main__":
    main()

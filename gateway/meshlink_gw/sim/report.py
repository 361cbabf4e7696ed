"""Simulator outputs: results.json, report.md and PNG plots."""

from __future__ import annotations

import json
import os
import platform
import time

from .metrics import mean_ci
from .scenarios import STRATEGY_ORDER

# (label, scenario, metric, comparison, threshold, note): the headline
# targets (issue 16), at 1000 nodes for mean degree 12 and 6
TARGETS = []
for _d in (12, 6):
    TARGETS += [
        (f"directed delivery at the sender's proof (Ack), degree {_d}", f"target-churn-d{_d}",
         "directed_delivery_proof", ">=", 0.99, "of messages whose destination is reachable"),
        (f"directed transmissions (data + Acks + discovery) / oracle, degree {_d}",
         f"target-churn-d{_d}", "directed_all_tx_vs_oracle", "<=", 1.5,
         "every directed message, to destinations down too"),
        (f"control KB per node per s, degree {_d}", f"target-churn-d{_d}",
         "control_kb_per_node_s", "<=", 1.5,
         "lazy-push control + announcements + hop acks + probes"),
        (f"recovery after the most central node fails silently (s), degree {_d}",
         f"target-recovery-d{_d}", "recovery_s", "<=", 3.0,
         "every seed must recover, each within the threshold"),
    ]

# Columns of the per-scenario tables: (metric, header, format)
COLUMNS = [
    ("directed_delivery", "directed delivery (arrival)", "pct"),
    ("directed_delivery_proof", "(proof)", "pct"),
    ("directed_delivery_first", "1st attempt", "pct"),
    ("directed_all_tx_vs_oracle", "all directed tx x oracle", "num"),
    ("directed_unreachable_tx_per_msg", "tx per msg to unreachable", "num"),
    ("directed_tx_per_delivered", "tx / delivered", "num"),
    ("directed_tx_vs_oracle", "x oracle", "num"),
    ("directed_routed_tx_vs_oracle", "routed x oracle", "num"),
    ("latency_stretch_first", "latency stretch", "num"),
    ("broadcast_coverage", "bcast coverage", "pct"),
    ("broadcast_tx_per_node", "bcast tx/node", "num"),
    ("broadcast_ctrl_per_node", "bcast ctrl/node", "num"),
    ("directed_discovery_share", "needed discovery", "pct"),
    ("control_msgs_per_node_s", "ctrl msg/node/s", "num"),
    ("announce_msgs_per_node_s", "of which announce", "num"),
    ("control_bytes_per_node_s", "ctrl B/node/s", "num"),
    ("control_bytes_vs_oracle", "ctrl bytes x oracle", "num"),
    ("all_bytes_vs_oracle", "all bytes x oracle", "num"),
    ("never_chosen", "never chosen", "pct"),
    ("recovery_s", "recovery (s)", "num"),
    ("air_wifi_busy_max", "WiFi-like airtime, busiest (ctrl)", "num"),
    ("air_lora_busy_p50", "LoRa-like airtime, median node", "num"),
    ("silent_detect_s", "silent failure detected (s)", "num"),
    ("medium_collision_share", "shared medium: attempts collided", "pct"),
    ("medium_defer_ms", "shared medium: wait for the channel (ms)", "num"),
]

# the traffic-by-kind table of each scenario: (kind, label)
KIND_LABELS = [("data", "routed data"), ("ack", "routed Acks"), ("disc", "discovery"),
               ("bcast", "broadcast payload"), ("ctrl", "lazy-push control"),
               ("announce", "announcements"), ("hopack", "hop acks"), ("probe", "probes")]


def _fmt(m, kind):
    if not m or m.get("mean") is None:
        return "–"
    v, ci = m["mean"], m.get("ci95")
    if kind == "pct":
        s = f"{100 * v:.2f} %"
        return s + (f" ±{100 * ci:.2f}" if ci else "")
    if abs(v) >= 100:
        s = f"{v:.0f}"
        return s + (f" ±{ci:.0f}" if ci else "")
    s = f"{v:.3g}"
    return s + (f" ±{ci:.2g}" if ci else "")


def _strategies(agg_s):
    return [s for s in STRATEGY_ORDER if s in agg_s] + sorted(
        s for s in agg_s if s not in STRATEGY_ORDER)


def verdicts(agg: dict) -> list:
    """One row per target: label, measured mean/ci per strategy, holds (meshlink)."""
    rows = []
    for label, scen, metric, cmp, thr, note in TARGETS:
        a = agg.get(scen)
        if not a:
            continue
        ml = a.get("meshlink", {}).get(metric)
        holds = None
        if ml and ml.get("mean") is not None:
            v = ml["mean"]
            holds = v >= thr if cmp == ">=" else v <= thr
            if metric in ("recovery_probe_intervals", "recovery_s"):
                # every seed must recover, each within the threshold
                rec = a["meshlink"].get("recovered")
                holds = rec is not None and rec["mean"] == 1.0 and ml.get("max", v) <= thr
        elif metric in ("recovery_probe_intervals", "recovery_s"):
            rec = a.get("meshlink", {}).get("recovered")
            if rec is not None and rec.get("mean") is not None:
                holds = False  # measured, and no seed recovered
        rows.append({"target": label, "scenario": scen, "metric": metric,
                     "threshold": f"{cmp} {thr}", "note": note, "holds": holds,
                     "values": {s: a[s].get(metric) for s in _strategies(a)}})
    return rows


def markdown(results: dict) -> str:
    agg = results["aggregate"]
    meta = results["meta"]
    out = ["# MeshLink routing simulation report", "",
           f"Generated by `{meta['command']}` on {meta['date']} ({meta['machine']}); "
           f"{meta['runs']} runs, {meta['events']:,} events in {meta['wall_s']:.0f} s of "
           f"run time ({meta['events_per_s']:,.0f} events/s per worker on average; "
           f"{meta['workers']} workers; by strategy: " + ", ".join(
               f"{k} {v:,.0f}" for k, v in sorted(meta.get("events_per_s_by_strategy", {}).items()))
           + ").", "",
           "Definitions, model and how to read this: docs/ROUTING.md. Values are means over "
           "seeds with the 95 % interval (±). A transmission is one link-layer attempt of one "
           "unicast send to one neighbour, for every strategy and for the optimum.", ""]
    v = verdicts(agg)
    if v:
        out += ["## Targets (meshlink; seed, flood and oracle on the same runs)", "",
                "| target | threshold | meshlink | seed | flood | oracle | verdict |",
                "|---|---|---|---|---|---|---|"]
        for r in v:
            kind = "pct" if r["metric"] in ("directed_delivery", "directed_delivery_proof",
                                            "broadcast_coverage") else "num"
            cells = [_fmt(r["values"].get(s), kind) for s in STRATEGY_ORDER]
            holds = {True: "**PASS**", False: "**FAIL**", None: "n/a"}[r["holds"]]
            note = f" ({r['note']})" if r["note"] else ""
            out.append(f"| {r['target']}{note} | {r['threshold']} | " + " | ".join(cells)
                       + f" | {holds} |")
        out.append("")
    for scen in results["scenario_order"]:
        a = agg.get(scen)
        if not a:
            continue
        cfg = results["scenarios"][scen]
        out += [f"## {scen}", "", _describe(cfg), ""]
        cols = [c for c in COLUMNS if any(a[s].get(c[0]) for s in a)]
        out.append("| strategy | " + " | ".join(h for _m, h, _k in cols) + " |")
        out.append("|---" * (len(cols) + 1) + "|")
        for s in _strategies(a):
            out.append(f"| {s} | " + " | ".join(_fmt(a[s].get(m), k) for m, _h, k in cols)
                       + " |")
        out.append("")
        out += _kinds_table(a)
    if results.get("plots"):
        out += ["## Plots", ""]
        for p in results["plots"]:
            out.append(f"![{p}]({p})")
        out.append("")
    return "\n".join(out)


def _kinds_table(a) -> list:
    """Transmissions and bytes of meshlink by kind, per node per second and
    against the oracle of the same seeds."""
    m = a.get("meshlink")
    if not m or "oracle" not in a:
        return []
    out = ["| meshlink traffic by kind | tx | x oracle | KB/node/s | bytes x oracle |",
           "|---|---|---|---|---|"]
    for kind, label in KIND_LABELS:
        out.append(f"| {label} | {_fmt(m.get('tx_' + kind), 'num')} | "
                   f"{_fmt(m.get(f'tx_{kind}_vs_oracle'), 'num')} | "
                   f"{_fmt(m.get('kb_per_node_s_' + kind), 'num')} | "
                   f"{_fmt(m.get(f'bytes_{kind}_vs_oracle'), 'num')} |")
    out.append(f"| all | – | {_fmt(m.get('all_tx_vs_oracle'), 'num')} | – | "
               f"{_fmt(m.get('all_bytes_vs_oracle'), 'num')} |")
    return out + [""]


def _describe(c):
    churn = c["churn"]
    if churn == "sessions":
        churn = f"sessions ({100 * c['churn_frac']:.0f} % down, mean {c['session_down_s']:.0f} s)"
    elif churn == "mass":
        churn = f"{100 * c['churn_frac']:.0f} % fail at {c['churn_at_s']:.0f} s"
    elif churn == "central":
        churn = f"most central node fails at {c['churn_at_s']:.0f} s"
    elif churn == "partition":
        churn = f"cut in half at {c['churn_at_s']:.0f} s, healed at {c['heal_at_s']:.0f} s"
    loss = c["loss_model"] if c["loss_model"] == "burst" else \
        f"{100 * c['loss']:.0f} % {c['loss_model']}"
    extra = f", {c['flows']} flows" if c["flows"] else ""
    ow = f", {100 * c['oneway']:.0f} % one-way links" if c["oneway"] else ""
    return (f"{c['topology']}, {c['nodes']} nodes, degree {c['degree']:g}{ow}; loss {loss}; "
            f"churn {churn}; {c['rate']:g} msg/s ({100 * c['bcast_frac']:.0f} % broadcast, "
            f"Zipf {c['zipf']:g}){extra}; {c['warmup_s']:.0f} s warm-up + "
            f"{c['duration_s']:.0f} s measured; {c['seeds']} seeds; TTL {c['ttl']}.")


# -- plots -------------------------------------------------------------------
def plots(results: dict, out_dir: str) -> list:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    agg = results["aggregate"]
    made = []

    def series(names, xs, metric):
        lines = {}
        for s in STRATEGY_ORDER:
            pts = []
            for name, x in zip(names, xs, strict=True):
                m = agg.get(name, {}).get(s, {}).get(metric)
                if m and m.get("mean") is not None:
                    pts.append((x, m["mean"], m.get("ci95") or 0.0))
            if pts:
                lines[s] = pts
        return lines

    def fig(fname, title, xlabel, panels, xs_log=False):
        f, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4))
        if len(panels) == 1:
            axes = [axes]
        drew = False
        for ax, (ylabel, lines, ylog) in zip(axes, panels, strict=True):
            for s, pts in lines.items():
                ax.errorbar([p[0] for p in pts], [p[1] for p in pts],
                            yerr=[p[2] for p in pts], marker="o", capsize=3, label=s)
                drew = True
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            if xs_log:
                ax.set_xscale("log")
            if ylog:
                ax.set_yscale("log")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
        f.suptitle(title)
        f.tight_layout()
        if drew:
            f.savefig(os.path.join(out_dir, fname), dpi=110)
            made.append(fname)
        plt.close(f)

    sizes = [n for n in (50, 200, 1000) if f"size-{n}" in agg]
    if sizes:
        names = [f"size-{n}" for n in sizes]
        fig("delivery_vs_size.png", "Delivery against network size (RGG, degree 12, 5 % loss)",
            "nodes", [("directed delivery", series(names, sizes, "directed_delivery"), False),
                      ("broadcast coverage", series(names, sizes, "broadcast_coverage"), False)],
            xs_log=True)
        fig("overhead_vs_size.png", "Overhead against network size",
            "nodes", [("tx per delivered directed message",
                       series(names, sizes, "directed_tx_per_delivered"), True),
                      ("broadcast tx per node (payload)",
                       series(names, sizes, "broadcast_tx_per_node"), True),
                      ("control messages per node per s",
                       series(names, sizes, "control_msgs_per_node_s"), False)], xs_log=True)
    loss_pts = [(0.0, "loss-0"), (5.0, "size-200"), (10.0, "loss-10"), (20.0, "loss-20")]
    loss_pts = [(x, n) for x, n in loss_pts if n in agg]
    if len(loss_pts) > 1:
        xs = [x for x, _n in loss_pts]
        names = [n for _x, n in loss_pts]
        fig("delivery_vs_loss.png", "Delivery against link loss (RGG, 200 nodes)",
            "loss per attempt (%)", [
                ("directed delivery", series(names, xs, "directed_delivery"), False),
                ("directed delivery, first attempt",
                 series(names, xs, "directed_delivery_first"), False),
                ("broadcast coverage", series(names, xs, "broadcast_coverage"), False)])
        fig("overhead_vs_loss.png", "Overhead against link loss (RGG, 200 nodes)",
            "loss per attempt (%)", [
                ("tx per delivered directed message",
                 series(names, xs, "directed_tx_per_delivered"), True),
                ("broadcast tx per node (payload)",
                 series(names, xs, "broadcast_tx_per_node"), True)])
    rec = results.get("recovery_series", {}).get("target-recovery-d12")
    if rec:
        f, ax = plt.subplots(figsize=(7, 4))
        for s in STRATEGY_ORDER:
            if s in rec:
                start, ys = rec[s]
                ax.plot([start + i for i in range(len(ys))], ys, label=s)
        ax.axvline(results["scenarios"]["target-recovery-d12"]["churn_at_s"], color="k", ls=":",
                   label="failure")
        ax.set_xlabel("time (s)")
        ax.set_ylabel("first-attempt delivery of the flows (1 s bins)")
        ax.set_title("Most central node fails silently (1000-node RGG, degree 12)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        f.tight_layout()
        f.savefig(os.path.join(out_dir, "recovery.png"), dpi=110)
        plt.close(f)
        made.append("recovery.png")
    return made


def recovery_series(runs: list) -> dict:
    """scenario -> strategy -> (start_s, mean series over seeds)."""
    acc: dict = {}
    for r in runs:
        s = r["summary"]
        if not s.get("recovery_series"):
            continue
        key = acc.setdefault(r["scenario"], {}).setdefault(r["strategy"], [None, []])
        key[0] = s["recovery_series_start_s"]
        key[1].append(s["recovery_series"])
    out: dict = {}
    for scen, by in acc.items():
        out[scen] = {}
        for strat, (start, lists) in by.items():
            n = max(len(x) for x in lists)
            ys = []
            for i in range(n):
                m, _ci = mean_ci([x[i] if i < len(x) else None for x in lists])
                ys.append(m)
            out[scen][strat] = (start, ys)
    return out


def write(out_dir: str, scenarios: list, runs: list, agg: dict, meta: dict,
          make_plots: bool = True) -> dict:
    """Write results.json, report.md and the PNGs into out_dir; return the results."""
    os.makedirs(out_dir, exist_ok=True)
    results = {
        "meta": meta,
        "scenario_order": [s["name"] for s in scenarios],
        "scenarios": {s["name"]: s for s in scenarios},
        "aggregate": agg,
        "targets": verdicts(agg),
        "recovery_series": recovery_series(runs),
        "runs": [{k: v for k, v in r.items() if k != "summary"} | {
            "summary": {k: v for k, v in r["summary"].items() if k != "per_msg"}}
            for r in runs],
        "plots": [],
    }
    if make_plots:
        results["plots"] = plots(results, out_dir)
    with open(os.path.join(out_dir, "results.json"), "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1, sort_keys=True, default=str)
    with open(os.path.join(out_dir, "report.md"), "w", encoding="utf-8") as f:
        f.write(markdown(results) + "\n")
    return results


def meta_info(command: str, runs: list, wall_s: float, workers: int) -> dict:
    events = sum(r["summary"]["events"] for r in runs)
    sim_s = sum(r["summary"]["wall_s"] for r in runs)
    per: dict = {}
    for r in runs:
        e, w = per.get(r["strategy"], (0, 0.0))
        per[r["strategy"]] = (e + r["summary"]["events"], w + r["summary"]["wall_s"])
    return {"command": command, "date": time.strftime("%Y-%m-%d %H:%M"),
            "events_per_s_by_strategy": {k: (e / w if w else 0.0) for k, (e, w) in per.items()},
            "machine": f"{platform.processor() or platform.machine()}, "
                       f"{os.cpu_count()} CPUs, Python {platform.python_version()}",
            "runs": len(runs), "events": events, "wall_s": wall_s, "sim_s": sim_s,
            "events_per_s": events / sim_s if sim_s else 0.0, "workers": workers}

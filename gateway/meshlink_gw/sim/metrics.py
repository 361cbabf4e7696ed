"""Metrics: one summary per run, then mean and 95 % interval over seeds.

Definitions (docs/ROUTING.md "Metrics"); only messages originated after the
warm-up count:
  * directed "all": every directed message a live source sent, to a
    destination down or cut off too, with every transmission of its copies
    and Acks (directed_all_tx; against the oracle's for the same traffic);
  * directed: eligible if the destination was reachable over live nodes and
    links when it was sent and both ends stayed up until the deadline
    (delivery_timeout_ms, when the origin gives up); delivered if the destination got any
    attempt before the deadline (arrival); proof = the origin got an Ack
    (its meshlink.delivery reported Delivered), as a user sees it;
    first = delivered by the first attempt;
  * traffic by kind (tx_*, bytes_*, kb_per_node_s_*): routed data, routed
    Acks, discovery, broadcast payload, lazy-push control, announcements,
    probes; each against the oracle per seed (*_vs_oracle);
    control_kb_per_node_s = lazy-push control + announcements + hop acks + probes;
  * tx per delivered directed = every transmission (link attempt) of every
    attempt's copies and of their Acks, over all eligible messages, divided
    by the delivered ones; "routed" restricts it to messages none of whose
    copies was sent in discovery (flood) mode;
  * optimum = ETX of the shortest path there plus the Ack's path back;
  * broadcast coverage = share of the nodes reachable from the source at
    send time (and up until the deadline) that got it within
    bcast_deadline_ms; tx per node = payload transmissions / those nodes
    (+ the source); control = IHave/Graft/Prune transmissions on top;
  * latency stretch = delivery time / fastest live path (latency + tx time);
  * recovery = seconds from the failure (or the heal, or the first failure
    of a --failures-file) until the first-attempt delivery ratio of the
    flows over RECOVERY_WINDOW_MS is back within 1 point of its level in the
    20 s before the failure;
  * never chosen = share of nodes that no neighbour ever sent a data copy to.
"""

from __future__ import annotations

import math

PRE_WINDOW_MS = 20000.0
GUARD_MS = 1000.0
TOLERANCE = 0.01
RECOVERY_WINDOW_MS = 2000.0
# traffic kinds reported separately, each against the oracle: routed directed
# data, routed Acks, discovery copies, broadcast payloads, lazy-push control,
# announcements, hop acks (router_hop), probes (pings and pongs)
KINDS = ("data", "ack", "disc", "bcast", "ctrl", "announce", "hopack", "probe")
# per-seed ratios to the oracle's run of the same seed: metric -> (numerator
# keys, summed)
VS_ORACLE = {
    "directed_all_tx_vs_oracle": ("directed_all_tx",),
    "directed_tx_all_kinds_vs_oracle": ("tx_data", "tx_ack", "tx_disc"),
    "control_bytes_vs_oracle": ("bytes_ctrl", "bytes_announce", "bytes_hopack", "bytes_probe"),
    "all_bytes_vs_oracle": tuple(f"bytes_{c}" for c in KINDS),
    "all_tx_vs_oracle": tuple(f"tx_{c}" for c in KINDS),
    **{f"tx_{c}_vs_oracle": (f"tx_{c}",) for c in KINDS},
    **{f"bytes_{c}_vs_oracle": (f"bytes_{c}",) for c in KINDS},
}


def summarize(sim) -> dict:
    p = sim.p
    warm = sim.warm
    dur_s = p["duration_s"]
    n = sim.n
    dl = p["delivery_timeout_ms"]
    bd = p["bcast_deadline_ms"]
    alive_during = sim.alive_during
    d_elig = d_deliv = d_first = d_tx = d_disc = d_proof = 0
    all_n = all_tx = unreach_n = unreach_tx = 0
    opt = 0.0
    stretch = []
    stretch_first = []
    routed_tx = routed_n = 0
    per_msg = []
    b_cov = []
    b_tx = 0
    b_den = 0
    for k, info in sim.info.items():
        t0, src, dst, _size, _flow = sim.traffic[k]
        if dst is None:
            elig = [v for v in info if v != src and alive_during(v, t0, t0 + bd)]
            if not elig:
                continue
            rk = sim.reach.get(k, {})
            got = sum(1 for v in elig if rk.get(v, math.inf) <= t0 + bd)
            b_cov.append(got / len(elig))
            b_tx += sim.tx_k[k]
            b_den += len(elig) + 1
            continue
        # every directed message counts here, to a destination down or cut off too
        all_n += 1
        all_tx += sim.tx_k[k]
        if info is None or not alive_during(src, t0, t0 + dl) or not alive_during(dst, t0, t0 + dl):
            if info is None or not alive_during(dst, t0, t0 + dl):
                unreach_n += 1
                unreach_tx += sim.tx_k[k]
            continue
        d_elig += 1
        tx = sim.tx_k[k]
        d_tx += tx
        disc = sim.disc_k[k]
        d_disc += disc
        t = sim.deliv_t[k]
        ok = t is not None and t <= t0 + dl
        per_msg.append((k, tx, 1 if ok else 0, disc))
        if sim.acked[k]:
            d_proof += 1
        if ok:
            d_deliv += 1
            best_lat, o = sim.world.optimum(info, src, dst)
            opt += o
            s = (t - t0) / best_lat if best_lat > 0 else 1.0
            stretch.append(s)
            if sim.first_ok[k]:
                d_first += 1
                stretch_first.append(s)
            if not disc:
                routed_tx += tx
                routed_n += 1
    node_s = n * dur_s
    alive_sometime = [v for v in range(n) if sim.alive[v] or any(
        b > warm for _a, b in sim.down_iv[v])]
    never = sum(1 for v in alive_sometime if not sim.chosen[v])
    out = {
        "nodes": n,
        "mean_degree": sim.topo.mean_degree(),
        "events": sim.events,
        "wall_s": sim.wall_s,
        "events_per_s": sim.events / sim.wall_s if sim.wall_s > 0 else 0.0,
        "directed_msgs": d_elig,
        "directed_delivery": d_deliv / d_elig if d_elig else None,
        "directed_delivery_first": d_first / d_elig if d_elig else None,
        "directed_delivery_proof": d_proof / d_elig if d_elig else None,
        "directed_all_msgs": all_n,
        "directed_unreachable_msgs": unreach_n,
        "directed_all_tx": all_tx,
        "directed_unreachable_tx": unreach_tx,
        "directed_all_tx_per_msg": all_tx / all_n if all_n else None,
        "directed_unreachable_tx_per_msg": unreach_tx / unreach_n if unreach_n else None,
        "directed_tx_per_delivered": d_tx / d_deliv if d_deliv else None,
        "directed_opt_per_delivered": opt / d_deliv if d_deliv else None,
        "directed_tx_vs_opt": (d_tx / opt) if opt > 0 else None,
        "directed_discovery_share": d_disc / d_elig if d_elig else None,
        "directed_routed_tx_per_delivered": routed_tx / routed_n if routed_n else None,
        "latency_stretch": _mean(stretch),
        "latency_stretch_first": _mean(stretch_first),
        "broadcast_msgs": len(b_cov),
        "broadcast_coverage": _mean(b_cov),
        "broadcast_full_share": (sum(1 for c in b_cov if c >= 0.99) / len(b_cov)) if b_cov
        else None,
        "broadcast_tx_per_node": b_tx / b_den if b_den else None,
        "broadcast_ctrl_per_node": sim.tx["ctrl"] / b_den if b_den else None,
        "control_msgs_per_node_s": (sim.tx["ctrl"] + sim.tx["announce"] + sim.tx["hopack"]
                                    + sim.probe_msgs) / node_s,
        "control_bytes_per_node_s": (sim.bytes["ctrl"] + sim.bytes["announce"]
                                     + sim.bytes["hopack"] + sim.probe_bytes) / node_s,
        "routing_ctrl_msgs_per_node_s": (sim.tx["ctrl"] + sim.tx["announce"]) / node_s,
        "announce_msgs_per_node_s": sim.tx["announce"] / node_s,
        "announce_bytes_per_node_s": sim.bytes["announce"] / node_s,
        # announcement entries per node and second: all, those carrying a proof
        # (the others are bare, PROTOCOL §11.4), retractions (hops 255)
        "announce_entries_per_node_s": sim.announce_entries[0] / node_s,
        "announce_proofs_per_node_s": sim.announce_entries[1] / node_s,
        "announce_retractions_per_node_s": sim.announce_entries[2] / node_s,
        "data_bytes_per_node_s": (sim.bytes["data"] + sim.bytes["ack"] + sim.bytes["disc"]
                                  + sim.bytes["bcast"]) / node_s,
        "control_kb_per_node_s": (sim.bytes["ctrl"] + sim.bytes["announce"]
                                  + sim.bytes["hopack"] + sim.probe_bytes) / node_s / 1000.0,
        "never_chosen": never / len(alive_sometime) if alive_sometime else None,
        "queue_drops": sim.queue_drops,
        "link_failures": sim.link_fail,
        "false_downs": sim.false_down,
        "heartbeat_probes": sim.hb_probes,
        "silent_detect_s": _mean(sim.detect_ms) / 1000.0 if sim.detect_ms else None,
        "silent_detect_max_s": max(sim.detect_ms) / 1000.0 if sim.detect_ms else None,
        # shared medium (medium knob): attempts lost to collisions, and the
        # mean time an attempt waited for the channel (carrier sense)
        "medium_collision_share": sim.collisions / sim.medium_attempts
        if sim.medium_attempts else None,
        "medium_defer_ms": sim.defer_ms / sim.medium_attempts if sim.medium_attempts else None,
        "per_msg": per_msg,
    }
    for cat in KINDS:
        tx = sim.probe_msgs if cat == "probe" else sim.tx[cat]
        nb = sim.probe_bytes if cat == "probe" else sim.bytes[cat]
        out[f"tx_{cat}"] = tx
        out[f"bytes_{cat}"] = nb
        out[f"kb_per_node_s_{cat}"] = nb / node_s / 1000.0
    out.update(_airtime(sim, node_s / n if n else 0.0))
    out.update(_recovery(sim))
    return out


# Shared-medium presets: usable channel bit rate in bit/s. WiFi-like: one
# 802.11g/n channel at the ~20 Mbit/s a contended cell actually carries;
# LoRa-like: SF7 / 125 kHz, ~5.5 kbit/s raw, before any duty-cycle limit.
MEDIA = {"wifi": 20e6, "lora": 5470.0}


def _airtime(sim, dur_s) -> dict:
    """Airtime accounting on a shared medium (not a contention model: no
    collisions, no backoff): a node's transmissions occupy the channel of its
    whole neighbourhood, so the busy share at node w is the airtime of w and
    its neighbours over the measured time. Above 1 the offered load cannot
    fit the channel at all; control's share of it is capacity lost to data."""
    if dur_s <= 0:
        return {}
    adj = sim.topo.adj
    air = sim.air
    ctrl = sim.air_ctrl
    load = []
    cload = []
    for w in range(sim.n):
        a = air[w]
        c = ctrl[w]
        for v in adj[w]:
            a += air[v]
            c += ctrl[v]
        load.append(a)
        cload.append(c)
    order = sorted(range(sim.n), key=lambda w: load[w])
    mid = order[len(order) // 2]
    top = order[-1]
    out = {}
    for name, bps in MEDIA.items():
        k = 8.0 / bps / dur_s
        out[f"air_{name}_busy_p50"] = load[mid] * k
        out[f"air_{name}_busy_max"] = load[top] * k
        out[f"air_{name}_ctrl_max"] = cload[top] * k
    return out


def _mean(xs):
    return sum(xs) / len(xs) if xs else None


def _recovery(sim) -> dict:
    p = sim.p
    churn = p["churn"]
    fails = p.get("failures")
    if p["flows"] <= 0 or (churn not in ("central", "mass", "partition") and not fails):
        return {}
    if fails:
        pre_end = event = min(f["at_ms"] for f in fails)
    elif churn == "partition":
        pre_end = p["churn_at_s"] * 1000.0
        event = p["heal_at_s"] * 1000.0
    else:
        pre_end = event = p["churn_at_s"] * 1000.0
    to = p["retry_interval_ms"]  # the first attempt's window
    pts = []
    for k, rec in enumerate(sim.traffic):
        t0, src, dst, _s, flow = rec
        if flow is None or t0 < sim.warm / 2 or sim.attempts[k] == 0:
            continue
        if not sim.alive_during(src, t0, t0 + to) or not sim.alive_during(dst, t0, t0 + to):
            continue
        pts.append((t0, sim.first_ok[k]))
    pre = [ok for t, ok in pts if pre_end - GUARD_MS - PRE_WINDOW_MS <= t < pre_end - GUARD_MS]
    if not pre:
        return {}
    level = sum(pre) / len(pre)
    win = RECOVERY_WINDOW_MS
    step = 250.0
    rec_s = None
    tau = 0.0
    last = max(t for t, _ok in pts)
    while event + tau + win <= last:
        w = [ok for t, ok in pts if event + tau <= t < event + tau + win]
        if w and sum(w) / len(w) >= level - TOLERANCE:
            rec_s = tau / 1000.0
            break
        tau += step
    lost = sum(1 for t, ok in pts if event <= t < event + (tau if rec_s is not None else 1e12)
               and not ok)
    series = []
    t = pre_end - PRE_WINDOW_MS
    while t < last:
        w = [ok for tt, ok in pts if t <= tt < t + 1000.0]
        series.append(round(sum(w) / len(w), 4) if w else None)
        t += 1000.0
    return {"recovery_s": rec_s, "recovery_probe_intervals": (rec_s * 1000.0 / p["idle_ping_ms"])
            if rec_s is not None else None, "recovered": 1.0 if rec_s is not None else 0.0,
            "recovery_pre_level": level,
            "recovery_lost": lost, "recovery_series_start_s": (pre_end - PRE_WINDOW_MS) / 1000,
            "recovery_series": series}


# -- aggregation over seeds --------------------------------------------------
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def mean_ci(xs):
    """(mean, 95 % half-width) of the non-None values; (None, None) if none."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return None, None
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, None
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))
    t = _T975[len(xs) - 2] if len(xs) - 2 < len(_T975) else 1.96
    return m, t * sd / math.sqrt(len(xs))


SKIP = {"per_msg", "recovery_series", "recovery_series_start_s"}


def aggregate(runs: list) -> dict:
    """runs: dicts with scenario, strategy, seed and a summary. Returns
    {scenario: {strategy: {metric: {"mean", "ci95", "n"}}}} plus ratios to
    the oracle of the same scenario and seed."""
    by: dict = {}
    for r in runs:
        by.setdefault(r["scenario"], {}).setdefault(r["strategy"], {})[r["seed"]] = r["summary"]
    out: dict = {}
    for scen, strats in by.items():
        oracle = strats.get("oracle", {})
        out[scen] = {}
        for strat, seeds in strats.items():
            keys = sorted({k for s in seeds.values() for k in s if k not in SKIP})
            m: dict = {}
            for key in keys:
                vals = [s.get(key) for s in seeds.values()]
                if any(v is not None and not isinstance(v, (int, float)) for v in vals):
                    continue
                mean, ci = mean_ci(vals)
                m[key] = {"mean": mean, "ci95": ci, "n": sum(v is not None for v in vals)}
                seen = [v for v in vals if v is not None]
                if seen:
                    m[key]["max"] = max(seen)
            ratios = []
            routed = []
            for seed, s in seeds.items():
                o = oracle.get(seed)
                if o is None:
                    continue
                a, b = s.get("directed_tx_per_delivered"), o.get("directed_tx_per_delivered")
                if a is not None and b:
                    ratios.append(a / b)
                routed.append(_routed_ratio(s.get("per_msg"), o.get("per_msg")))
            if ratios:
                mean, ci = mean_ci(ratios)
                m["directed_tx_vs_oracle"] = {"mean": mean, "ci95": ci, "n": len(ratios)}
            for name, parts in VS_ORACLE.items():
                rs = []
                for seed, mine in seeds.items():
                    theirs = oracle.get(seed)
                    if theirs is None:
                        continue
                    num = sum(mine.get(k) or 0 for k in parts)
                    den = sum(theirs.get(k) or 0 for k in parts)
                    if den > 0:
                        rs.append(num / den)
                if rs:
                    mean, ci = mean_ci(rs)
                    m[name] = {"mean": mean, "ci95": ci, "n": len(rs)}
            mean, ci = mean_ci(routed)
            if mean is not None:
                m["directed_routed_tx_vs_oracle"] = {"mean": mean, "ci95": ci,
                                                     "n": sum(x is not None for x in routed)}
            out[scen][strat] = m
    return out


def _routed_ratio(mine, oracle):
    """Transmissions of our routed (no discovery) delivered messages over the
    oracle's transmissions for the same messages (delivered by both)."""
    if not mine or not oracle:
        return None
    o = {k: (tx, ok) for k, tx, ok, _d in oracle}
    a = b = 0
    for k, tx, ok, disc in mine:
        ot = o.get(k)
        if ok and not disc and ot is not None and ot[1]:
            a += tx
            b += ot[0]
    return a / b if b else None

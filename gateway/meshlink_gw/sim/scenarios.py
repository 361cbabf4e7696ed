"""Scenario knobs, their defaults, their valid values, and the named presets (`--preset`).

Rule: a bad knob raises meshlink.errors.ConfigError naming it as the command
line spells it (`--nodes -3: ...`), here, before any run starts.
"""

from __future__ import annotations

import math
from typing import Any

from meshlink.delivery import DELIVERY_TIMEOUT_MS, RETRY_BACKOFF_MAX, RETRY_INTERVAL_MS
from meshlink.errors import ConfigError

from .topology import KINDS

STRATEGY_ORDER = ("meshlink", "seed", "flood", "oracle")

# Every knob of a scenario, with its default and the help text the CLI shows.
KNOBS = {
    "topology": ("rgg", "rgg | grid | line | star | regular | ba (file: set by "
                        "--topology-file)"),
    "nodes": (200, "number of nodes (grid: rounded to a square)"),
    "degree": (12.0, "target mean degree (rgg radius is tuned to it; regular: d; ba: 2m)"),
    "oneway": (0.0, "share of links made one-way (loss 1.0 in one direction)"),
    "loss": (0.05, "loss per transmission attempt (uniform; distance: mean-ish; burst: ignored)"),
    "loss_model": ("uniform", "uniform | distance (2 %% .. 2*loss by distance, rgg) | burst "
                   "(Gilbert-Elliott: 1 %%/50 %% loss, P(G>B)=0.01, P(B>G)=0.1)"),
    "latency_ms": (20.0, "median one-way link latency (lognormal per link)"),
    "latency_sigma": (0.5, "lognormal sigma of link latency (0 = fixed)"),
    "link_tries": (4, "link-layer attempts per send (ARQ); each attempt is a transmission"),
    "tx_ms": (0.5, "time to put one message on the wire (queue service time)"),
    "queue_cap": (64, "per-node output queue capacity in messages (overflow drops)"),
    "medium": ("none", "none (point-to-point links, tx_ms each) | wifi | lora: a shared "
                       "channel per neighbourhood (airtime from frame size, carrier sense, "
                       "random backoff, collisions at a receiver that hears another sender; "
                       "docs/ROUTING.md §5)"),
    "idle_ping_ms": (5000, "ping interval of every link (feeds record_rtt / "
                     "record_ping_lost; an unanswered one starts the probes; the node's "
                     "[node] idle_ping_ms)"),
    "probe_interval_ms": (500, "probe interval of a link whose directed message or ping "
                          "went unanswered (nothing heard back since; the node's [node] "
                          "probe_interval_ms)"),
    "probe_misses": (3, "probes unanswered when the next is due before the runtime calls "
                        "peer_down (the node's [node] probe_misses)"),
    "failure_mode": ("silent", "how --churn failures look to the neighbours: silent (no "
                               "error, detected by the heartbeat) | clean (connections "
                               "close, neighbours learn at once)"),
    "probe_tries": (1, "attempts per idle ping and per pong (1: one lost attempt loses the "
                       "ping, which starts the heartbeat probes; those ride the link layer)"),
    "duration_s": (120.0, "measured time after the warm-up, in seconds"),
    "warmup_s": (60.0, "warm-up time (traffic flows, metrics ignore it), in seconds"),
    "drain_s": (32.0, "time after the end to let messages and retries finish "
                      "(at least delivery_timeout_ms)"),
    "rate": (1.0, "messages per second network-wide (Poisson)"),
    "bcast_frac": (0.7, "share of broadcasts in the random traffic"),
    "zipf": (1.0, "Zipf exponent of destination popularity (0 = uniform)"),
    "flows": (0, "fixed (src, dst) flows for recovery measurements"),
    "flow_ms": (500, "interval between messages of a flow"),
    "flow_mode": ("random", "random | central (half of the flows cross the most central node)"),
    "retry_interval_ms": (RETRY_INTERVAL_MS, "end-to-end retry timer: the n-th retry waits "
                          "n times it, at most retry_backoff_max times (the node's "
                          "meshlink.delivery policy)"),
    "retry_backoff_max": (RETRY_BACKOFF_MAX, "cap of the retry interval's multiplier "
                          "(1: a fixed interval, the simulator's policy before it ran "
                          "meshlink.delivery)"),
    "delivery_timeout_ms": (DELIVERY_TIMEOUT_MS, "a directed message expires this long after "
                            "its first attempt (the node's default)"),
    "bcast_deadline_ms": (10000, "broadcast coverage counts copies received within this"),
    "churn": ("none", "none | central (most central node fails) | mass (churn_frac fail at "
                      "once) | partition (cut in half, heals) | sessions (up/down sessions)"),
    "churn_at_s": (90.0, "time of the failure / cut (central, mass, partition)"),
    "heal_at_s": (120.0, "time the partition heals"),
    "churn_frac": (0.1, "mass: share failing; sessions: long-run share of nodes down"),
    "session_down_s": (60.0, "sessions: mean down time (up time follows from churn_frac)"),
    "ttl": (8, "router default_ttl (seed and flood TTL; meshlink's floor)"),
    "flood_ttl": (0, "flood's TTL if > 0 (0: use ttl)"),
    "seeds": (3, "number of seeds (independent topologies, traffic, churn)"),
}

DEFAULTS = {k: v[0] for k, v in KNOBS.items()}

# Knobs with a fixed set of values.
CHOICES: dict[str, tuple[str, ...]] = {
    "topology": KINDS + ("file",),
    "loss_model": ("uniform", "distance", "burst"),
    "flow_mode": ("random", "central"),
    "failure_mode": ("silent", "clean"),
    "medium": ("none", "wifi", "lora"),
    "churn": ("none", "central", "mass", "partition", "sessions"),
}

# Numeric knobs: (lowest, highest, lowest allowed itself?); None: unbounded.
# Every numeric knob is listed, so a new knob without a range fails the tests.
RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "nodes": (2, None, True),
    "degree": (0, None, False),
    "oneway": (0, 1, True),
    "loss": (0, 1, True),
    "latency_ms": (0, None, True),
    "latency_sigma": (0, None, True),
    "link_tries": (1, None, True),
    "tx_ms": (0, None, True),
    "queue_cap": (1, None, True),
    "idle_ping_ms": (1, None, True),
    "probe_interval_ms": (1, None, True),
    "probe_misses": (1, None, True),
    "probe_tries": (1, None, True),
    "duration_s": (0, None, False),
    "warmup_s": (0, None, True),
    "drain_s": (0, None, True),
    "rate": (0, None, True),
    "bcast_frac": (0, 1, True),
    "zipf": (0, None, True),
    "flows": (0, None, True),
    "flow_ms": (1, None, True),
    "retry_interval_ms": (1, None, True),
    "retry_backoff_max": (1, None, True),
    "delivery_timeout_ms": (1, None, True),
    "bcast_deadline_ms": (1, None, True),
    "churn_at_s": (0, None, True),
    "heal_at_s": (0, None, True),
    "churn_frac": (0, 1, True),
    "session_down_s": (0, None, False),
    "ttl": (1, 255, True),
    "flood_ttl": (0, 255, True),
    "seeds": (1, None, True),
}


def flag(knob: str) -> str:
    """The command-line spelling of a knob: loss_model -> --loss-model."""
    return "--" + knob.replace("_", "-")


def _check_type(k: str, v: Any) -> None:
    default = DEFAULTS[k]
    if isinstance(default, bool):
        ok = isinstance(v, bool)
    elif isinstance(default, int):
        ok = isinstance(v, int) and not isinstance(v, bool)
    elif isinstance(default, float):
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    else:
        ok = isinstance(v, str)
    if not ok:
        kind = "a finite number" if isinstance(default, float) else type(default).__name__
        raise ConfigError(f"{flag(k)} {v!r}: expected {kind}")


def _check_range(k: str, v: float) -> None:
    lo, hi, lo_ok = RANGES[k]
    if lo is not None and not (v >= lo if lo_ok else v > lo):
        raise ConfigError(f"{flag(k)} {v!r}: must be {'at least' if lo_ok else 'more than'} "
                          f"{lo}")
    if hi is not None and not v <= hi:
        raise ConfigError(f"{flag(k)} {v!r}: must be at most {hi}")


def check(p: dict) -> None:
    """Check every knob of scenario p (types, ranges, choices, combinations).

    Raises:
        ConfigError: naming the first bad knob, as the command line spells it.
    """
    for k in KNOBS:
        if k not in p:
            raise ConfigError(f"scenario {p.get('name', '?')!r} has no {k} knob")
        v = p[k]
        _check_type(k, v)
        if k in CHOICES and v not in CHOICES[k]:
            raise ConfigError(f"{flag(k)} {v!r}: expected one of {', '.join(CHOICES[k])}")
        if k in RANGES:
            _check_range(k, v)
    if p["topology"] == "regular":
        # the pairing model needs an even n*d and d < n (no loops, no double links)
        d = int(p["degree"])
        d += (p["nodes"] * d) % 2
        if not 1 <= d < p["nodes"]:
            raise ConfigError(f"--topology regular: needs a --degree of at least 1 and more "
                              f"--nodes than the degree {d} (got --nodes {p['nodes']}, "
                              f"--degree {p['degree']})")
    if p["churn"] == "sessions" and not 0 < p["churn_frac"] < 1:
        raise ConfigError(f"--churn-frac {p['churn_frac']!r}: --churn sessions needs a share "
                          "strictly between 0 and 1")
    if p["churn"] == "partition" and not p["heal_at_s"] > p["churn_at_s"]:
        raise ConfigError(f"--heal-at-s {p['heal_at_s']!r}: the partition must heal after "
                          f"it is cut (--churn-at-s {p['churn_at_s']!r})")
    graph = p.get("graph")
    if (graph is not None) != (p["topology"] == "file"):
        raise ConfigError("--topology file: comes with a --topology-file, and only with it")
    if graph is not None:
        if not isinstance(graph, dict) or len(graph.get("nodes") or ()) != p["nodes"]:
            raise ConfigError("--topology-file: the scenario's graph does not match --nodes")
    fails = p.get("failures")
    if fails is not None:
        if p["churn"] != "none":
            raise ConfigError(f"--churn {p['churn']}: give either --churn or a "
                              "--failures-file, not both")
        if not isinstance(fails, list) or any(
                not isinstance(f, dict) or not 0 <= f.get("node", -1) < p["nodes"]
                for f in fails):
            raise ConfigError("--failures-file: a failure names a node outside the topology")
    opts = p.get("meshlink_options")
    if opts is not None and not isinstance(opts, dict):
        raise ConfigError(f"meshlink_options {opts!r}: expected a dict of --option values")


def scenario(name, **kw):
    """A checked scenario: DEFAULTS overridden by kw. Raises ConfigError."""
    p = dict(DEFAULTS)
    for k, v in kw.items():
        if k not in p and k not in ("meshlink_options", "graph", "failures"):
            raise ConfigError(f"unknown scenario knob {k!r} (known: {', '.join(KNOBS)})")
        p[k] = v
    p["name"] = name
    check(p)
    return p


# -- presets -----------------------------------------------------------------
# Each preset is a list of scenarios; a scenario carries its own seeds and
# strategies. "target" holds the acceptance runs (1000-node random geometric
# graphs, mean degree 12 and 6, 5 % loss, 10 % churn, silent failures).
TARGET = dict(topology="rgg", nodes=1000, degree=12.0, loss=0.05, warmup_s=45.0,
              duration_s=90.0, rate=2.0, seeds=5)


def _target():
    out = []
    for d in (12, 6):
        t = dict(TARGET, degree=float(d))
        out += [
            scenario(f"target-churn-d{d}", churn="sessions", churn_frac=0.1,
                     session_down_s=60.0, **t),
            scenario(f"target-recovery-d{d}", **dict(t, warmup_s=30.0, duration_s=40.0,
                                                     rate=0.25),
                     churn="central", churn_at_s=45.0, flows=8, flow_ms=1000,
                     flow_mode="central"),
        ]
    return out


def _sweeps():
    base = dict(topology="rgg", degree=12.0, loss=0.05, warmup_s=30.0, duration_s=60.0,
                rate=2.0)
    out = []
    for n, seeds in ((50, 5), (200, 5), (1000, 2)):
        out.append(scenario(f"size-{n}", nodes=n, seeds=seeds, **base))
    for loss in (0.0, 0.1, 0.2):
        out.append(scenario(f"loss-{int(loss * 100)}", nodes=200, loss_model="uniform",
                            seeds=3, **dict(base, loss=loss)))
    return out


def _variety():
    base = dict(nodes=200, degree=12.0, loss=0.05, warmup_s=30.0, duration_s=60.0, rate=2.0,
                seeds=3)
    fail = dict(base, topology="rgg", rate=1.0)
    return [
        scenario("grid-196", **dict(base, topology="grid", degree=4.0)),
        scenario("line-32", **dict(base, topology="line", nodes=32, degree=2.0)),
        scenario("overlay-regular-8", **dict(base, topology="regular", degree=8.0)),
        scenario("hubs-ba-6", **dict(base, topology="ba", degree=6.0)),
        scenario("oneway-10", **dict(base, topology="rgg"), oneway=0.1),
        scenario("bursty-loss", **dict(base, topology="rgg", loss_model="burst")),
        scenario("distance-loss", **dict(base, topology="rgg", loss_model="distance")),
        scenario("mass-fail-10", **fail, churn="mass", churn_frac=0.1, churn_at_s=55.0,
                 flows=8, flow_ms=1000),
        scenario("mass-fail-30", **fail, churn="mass", churn_frac=0.3, churn_at_s=55.0,
                 flows=8, flow_ms=1000),
        scenario("partition-heal", **fail, churn="partition", churn_at_s=50.0,
                 heal_at_s=70.0, flows=8, flow_ms=1000),
        scenario("sessions-10", **dict(base, topology="rgg"), churn="sessions",
                 churn_frac=0.1),
        scenario("central-fail-200", **dict(fail, rate=0.5), churn="central",
                 churn_at_s=55.0, flows=8, flow_ms=1000, flow_mode="central"),
    ]


def _medium():
    """The shared-medium runs: 200-node meshes of degree 12 and 6 with 10 %
    churn, on a WiFi-like channel with the target runs' traffic (2 msg/s,
    70 % broadcast) and on a LoRa-like one with a message every 20 s (at
    2 msg/s a LoRa channel cannot carry the payloads alone, oracle included)."""
    base = dict(topology="rgg", nodes=200, loss=0.05, warmup_s=30.0, duration_s=60.0,
                seeds=2, churn="sessions", churn_frac=0.1, session_down_s=60.0)
    return [scenario(f"medium-{m}-d{d}", medium=m,
                     **dict(base, degree=float(d), rate=2.0 if m == "wifi" else 0.05))
            for m in ("wifi", "lora") for d in (12, 6)]


def _quick():
    base = dict(topology="rgg", nodes=50, degree=8.0, loss=0.05, warmup_s=20.0,
                duration_s=30.0, rate=2.0, seeds=2)
    return [scenario("quick", **base),
            scenario("quick-fail", **dict(base, rate=0.5), churn="central", churn_at_s=35.0,
                     flows=6, flow_ms=1000, flow_mode="central")]


PRESETS = {
    "report": ("targets, size and loss sweeps, topologies, churn, shared medium (make sim)",
               lambda: _target() + _sweeps() + _variety() + _medium()),
    "target": ("the 1000-node acceptance runs only", _target),
    "sweeps": ("size (50/200/1000) and loss (0-20 %) sweeps", _sweeps),
    "variety": ("other topologies, loss models and churn at 200 nodes", _variety),
    "quick": ("a 50-node smoke run (seconds)", _quick),
    "medium": ("shared-medium contention runs (WiFi-like, LoRa-like) at 200 nodes", _medium),
}


def preset(name):
    """The scenarios of a named preset. Raises ConfigError for an unknown name."""
    if name not in PRESETS:
        raise ConfigError(f"--preset {name!r}: expected one of {', '.join(sorted(PRESETS))}")
    return PRESETS[name][1]()

"""Scenario knobs, their defaults, and the named presets (`--preset`)."""

from __future__ import annotations

from meshlink.delivery import DELIVERY_TIMEOUT_MS, RETRY_BACKOFF_MAX, RETRY_INTERVAL_MS

STRATEGY_ORDER = ("meshlink", "seed", "flood", "oracle")

# Every knob of a scenario, with its default and the help text the CLI shows.
KNOBS = {
    "topology": ("rgg", "rgg | grid | line | star | regular | ba"),
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
    "probe_ms": (5000, "ping interval per link (feeds record_rtt / record_ping_lost)"),
    "down_after": (3, "consecutive lost pings before the runtime calls peer_down"),
    "probe_tries": (1, "attempts per ping and per pong (1: one lost attempt loses the probe; "
                       "more models pings riding a retransmitting link, as over TCP)"),
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


def scenario(name, **kw):
    p = dict(DEFAULTS)
    for k, v in kw.items():
        if k not in p and k != "meshlink_options":
            raise KeyError(f"unknown knob {k}")
        p[k] = v
    p["name"] = name
    return p


# -- presets -----------------------------------------------------------------
# Each preset is a list of scenarios; a scenario carries its own seeds and
# strategies. "target" holds the acceptance runs (1000-node random
# geometric graphs, mean degree 12, 5 % loss, 10 % churn, 10 seeds).
TARGET = dict(topology="rgg", nodes=1000, degree=12.0, loss=0.05, warmup_s=45.0,
              duration_s=90.0, rate=2.0, seeds=10)


def _target():
    return [
        scenario("target-churn", churn="sessions", churn_frac=0.1, session_down_s=60.0,
                 **TARGET),
        scenario("target-recovery", **dict(TARGET, warmup_s=30.0, duration_s=40.0, rate=0.25),
                 churn="central", churn_at_s=45.0, flows=8, flow_ms=1000,
                 flow_mode="central"),
    ]


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


def _quick():
    base = dict(topology="rgg", nodes=50, degree=8.0, loss=0.05, warmup_s=20.0,
                duration_s=30.0, rate=2.0, seeds=2)
    return [scenario("quick", **base),
            scenario("quick-fail", **dict(base, rate=0.5), churn="central", churn_at_s=35.0,
                     flows=6, flow_ms=1000, flow_mode="central")]


PRESETS = {
    "report": ("targets, size and loss sweeps, topologies, churn (make sim)",
               lambda: _target() + _sweeps() + _variety()),
    "target": ("the 1000-node acceptance runs only", _target),
    "sweeps": ("size (50/200/1000) and loss (0-20 %) sweeps", _sweeps),
    "variety": ("other topologies, loss models and churn at 200 nodes", _variety),
    "quick": ("a 50-node smoke run (seconds)", _quick),
}


def preset(name):
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    return PRESETS[name][1]()

"""Prometheus text exposition (format 0.0.4) of a node's status snapshot.

Rule: a pure function of the snapshot (web/server.py's /api/state document);
counters end in _total, gauges do not; label values are escaped.
"""

from __future__ import annotations

from collections.abc import Iterable

PREFIX = "meshlink"

# status["stats"] (the node) and status["gateway"]["stats"] (the board service)
# hold counters; the router's status mixes counters and table sizes (gauges).
ROUTER_COUNTERS = ("sent", "delivered", "relayed", "originated", "received", "duplicates")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _sample(name: str, value: float, labels: dict[str, str] | None = None) -> str:
    label_text = ""
    if labels:
        label_text = "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items())) + "}"
    return f"{PREFIX}_{name}{label_text} {value:g}"


def _metric(name: str, kind: str, doc: str, samples: Iterable[str]) -> list[str]:
    return [f"# HELP {PREFIX}_{name} {doc}", f"# TYPE {PREFIX}_{name} {kind}", *samples]


def _numbers(d: dict) -> dict[str, float]:
    return {k: v for k, v in sorted(d.items()) if type(v) in (int, float)}


def render(state: dict) -> str:
    """The /metrics document for a snapshot {"status": ..., "nodes": [...]}."""
    st = state["status"]
    ident = {"node_id": st["node_id"]}
    out = _metric("info", "gauge", "this node (value 1)",
                  [_sample("info", 1, dict(ident, name=st.get("name", ""),
                                           router=str(st.get("router", ""))))])
    out += _metric("peers", "gauge", "neighbours with a live link",
                   [_sample("peers", len(st["peers"]))])
    nodes = state.get("nodes", [])
    out += _metric("nodes_known", "gauge", "nodes this node knows of, by reachability",
                   [_sample("nodes_known", sum(1 for n in nodes if n["reachable"] is r),
                            {"reachable": str(r).lower()}) for r in (True, False)])
    out += _metric("pending_sends", "gauge", "directed messages awaiting an ack",
                   [_sample("pending_sends", st.get("pending", 0))])
    for key, value in _numbers(st.get("stats", {})).items():
        out += _metric(f"node_{key}_total", "counter", f"node counter {key}",
                       [_sample(f"node_{key}_total", value)])
    routing = st.get("routing", {})
    for key, value in _numbers(routing).items():
        if key in ROUTER_COUNTERS:
            out += _metric(f"router_{key}_total", "counter", f"router counter {key}",
                           [_sample(f"router_{key}_total", value)])
        else:
            out += _metric(f"router_{key}", "gauge", f"router table size {key}",
                           [_sample(f"router_{key}", value)])
    drops = routing.get("drops", {})
    out += _metric("router_dropped_total", "counter", "messages the router dropped, by reason",
                   [_sample("router_dropped_total", v, {"reason": str(k)})
                    for k, v in sorted(drops.items())])
    out += _gateway(st.get("gateway"))
    return "\n".join(out) + "\n"


def _gateway(gw: dict | None) -> list[str]:
    if not gw:
        return []
    out = []
    for key in ("boards", "online", "half_open", "queued"):
        if key in gw:
            out += _metric(f"gateway_boards_{key}", "gauge", f"board service: {key}",
                           [_sample(f"gateway_boards_{key}", gw[key])])
    for key, value in _numbers(gw.get("stats", {})).items():
        out += _metric(f"gateway_{key}_total", "counter", f"board service counter {key}",
                       [_sample(f"gateway_{key}_total", value)])
    out += _metric("gateway_refusals_total", "counter", "board link refusals, by reason",
                   [_sample("gateway_refusals_total", v, {"reason": str(k)})
                    for k, v in sorted(gw.get("refusals", {}).items())])
    mqtt = gw.get("mqtt")
    if isinstance(mqtt, dict):
        out += _metric("mqtt_connected", "gauge", "MQTT bridge connected to its broker (0/1)",
                       [_sample("mqtt_connected", 1 if mqtt.get("connected") else 0)])
        out += _metric("mqtt_outbox", "gauge", "MQTT messages queued for the broker",
                       [_sample("mqtt_outbox", mqtt.get("outbox", 0))])
        for key, value in _numbers(mqtt.get("stats", {})).items():
            out += _metric(f"mqtt_{key}_total", "counter", f"MQTT bridge counter {key}",
                           [_sample(f"mqtt_{key}_total", value)])
    return out

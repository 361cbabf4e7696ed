# Routing decision records for the JSONL log (whitepaper §7.3 "AI-routing
# logging"). Imported only when a Router has a log callable, so boards that
# do not log never load it. Rule: pure functions returning JSON-able dicts.
#
# A "receive"/"originate" record holds the decision and, per connected peer,
# the features a learner can weigh: the whitepaper score parts (lat, up, rel,
# route), the score, the link cost, and the strategy's route to dst through
# that peer (dst_hops, dst_fails, is_dst). An "outcome" record (msg_id, ok)
# follows when the end-to-end Ack arrives or the retry timer expires; join
# the two on msg_id (docs/ROUTING.md, "Tuning with the log").
from meshlink.messages import Ack


def features(router, dst, now_ms):
    out = []
    for pid in router.up:
        p = router.peer(pid)
        lat, up, rel, route = p.parts(now_ms)
        out.append({"peer": pid, "lat": lat, "up": up, "rel": rel, "route": route,
                    "score": p.score, "cost": p.link_cost()})
    table = getattr(router.strategy, "t", None)  # meshlink's RouteTable
    if table is not None and dst is not None:
        route_features(table, dst, out)
    return out


def route_features(table, dst, out):
    """Add each peer's route to dst (hops, fails, is it dst) to the features."""
    by_via = {}
    for c in table.routes.get(dst) or ():
        by_via[c[0]] = c
    for f in out:
        c = by_via.get(f["peer"])
        f["dst_hops"] = c[1] if c is not None else None
        f["dst_fails"] = c[3] if c is not None else None
        f["is_dst"] = f["peer"] == dst


def decision_record(router, event, msg, from_peer, d, now_ms):
    return {"event": event, "t": now_ms, "node": router.node_id,
            "strategy": router.strategy_name, "kind": "ack" if type(msg) is Ack else "mesh",
            "msg_id": msg.message_id, "src": msg.src, "dst": msg.dst,
            "from": from_peer, "ttl": msg.ttl, "hops": len(msg.path),
            "deliver": d.deliver, "forward": [p for p, _m in d.forward],
            "drop": d.drop_reason, "mode": d.mode,
            "features": features(router, msg.dst, now_ms)}


def outcome_record(router, message_id, dst, ok, now_ms):
    return {"event": "outcome", "t": now_ms, "node": router.node_id,
            "strategy": router.strategy_name, "msg_id": message_id, "dst": dst, "ok": ok}

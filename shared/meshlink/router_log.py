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
        out.append({"peer": pid, "lat": p.latency_score(), "up": p.uptime_score(now_ms),
                    "rel": p.reliability(), "route": p.route_success(),
                    "score": p.score, "cost": p.link_cost()})
    extra = getattr(router.strategy, "route_features", None)
    if extra is not None and dst is not None:
        extra(dst, out)
    return out


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

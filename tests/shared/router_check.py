# Step checks for router_steps (a separate module so each compiles in a small
# MicroPython heap). Runs on CPython and MicroPython.
from router_steps import _ids, make_msg, routes, uid


def check_out(where, got, want):
    """got: list of (peer_id, msg); want: list of [peer, {field: value}]."""
    assert len(got) == len(want), "%s: %d sends, expected %d: %s" % (
        where, len(got), len(want), [p for p, _m in got])
    for i in range(len(got)):
        peer, msg = got[i]
        wpeer, spec = want[i]
        assert peer == uid(wpeer), "%s: sent to %s, expected %s" % (where, peer, wpeer)
        if "type" in spec:
            assert msg.TYPE == spec["type"], "%s: %s, expected %s" % (where, msg.TYPE, spec["type"])
        if "ttl" in spec:
            assert msg.ttl == spec["ttl"], "%s: ttl %d, expected %d" % (where, msg.ttl, spec["ttl"])
        if "path" in spec:
            assert msg.path == _ids(spec["path"]), "%s: path %s" % (where, msg.path)
        if "ids" in spec:
            assert msg.ids == _ids(spec["ids"]), "%s: ids %s" % (where, msg.ids)
        if "routes" in spec:
            assert msg.routes == routes(spec["routes"]), "%s: routes %s" % (where, msg.routes)
        if "id" in spec:
            assert msg.message_id == uid(spec["id"]), where


def check_decision(where, d, want):
    if "deliver" in want:
        assert d.deliver == want["deliver"], "%s: deliver %r" % (where, d.deliver)
    if "drop" in want:
        assert d.drop_reason == want["drop"], "%s: drop %r, expected %r" % (
            where, d.drop_reason, want["drop"])
    if "mode" in want:
        assert d.mode == want["mode"], "%s: mode %r, expected %r" % (where, d.mode, want["mode"])
    if "forward" in want:
        check_out(where, d.forward, want["forward"])


def run_step(r, case, i, step):
    where = "%s step %d (%s)" % (case["name"], i, step["op"])
    op = step["op"]
    t = step.get("t", 0)
    if op == "up":
        for p in step["peers"]:
            r.peer_up(uid(p), t)
    elif op == "down":
        r.peer_down(uid(step["peer"]), t)
    elif op == "rtt":
        r.record_rtt(uid(step["peer"]), step["ms"], t)
    elif op == "lost":
        r.record_ping_lost(uid(step["peer"]), t)
    elif op == "recv":
        check_decision(where, r.receive(make_msg(step["msg"]), uid(step["from"]), t),
                       step["expect"])
    elif op == "orig":
        check_decision(where, r.originate(make_msg(step["msg"]), t), step["expect"])
    elif op == "ack":
        r.on_ack(make_msg(step["msg"]), t)
    elif op == "fail":
        r.on_delivery_failed(uid(step["id"]), t)
    elif op == "deadline":
        assert r.next_deadline() == step["expect"], "%s: deadline %r" % (
            where, r.next_deadline())
    elif op == "timer":
        check_out(where, r.handle_timer(t), step["expect"])
    elif op == "score":
        got = r.peer(uid(step["peer"])).score
        assert abs(got - step["expect"]) < 1e-9, "%s: score %r" % (where, got)
    else:
        raise AssertionError("unknown op " + op)

# Sequence number requests (meshlink.router_dv_req, docs/PROTOCOL.md §7.4):
# a route starved by the feasibility condition asks its destination for a
# newer sequence number, when a message needs it, instead of waiting for the
# next periodic one. Runs on
# CPython and MicroPython (requests are off by default on MicroPython).
import gc

gc.collect()
from meshlink.messages import Routes, SeqRequest  # noqa: E402
from router_steps import MeshMessage, Router, uid, via  # noqa: E402

gc.collect()
OPTS = {"announce_ms": 60000, "announce_slack": 0, "hop_ack_ms": 0, "seq_requests": True}


def _router(me="X", seq0=0):
    r = Router(uid(me), "meshlink", rng=1, options=dict(OPTS, announce_seq0=seq0))
    for p in ("A", "B", "C"):
        r.peer_up(uid(p), 0)
    r.handle_timer(300)
    return r


def _run_until(r, t):
    """Every timer due up to t; what they sent."""
    out = []
    while r.next_deadline() is not None and r.next_deadline() <= t:
        out += r.handle_timer(r.next_deadline())
    return out


def _requests(out):
    return [(p, m.dst, m.seq) for p, m in out if type(m) is SeqRequest]


def _msg(mid):
    return MeshMessage(src=uid("X"), dst=uid("D"), data=b"", message_id=uid(mid), ttl=9,
                       path=[])


def test_a_starved_route_asks_its_destination_when_a_message_needs_it():
    r = _router()
    r.receive(Routes(routes=[[uid("D"), 3, 1, ""]]), uid("A"), 400)
    r.receive(Routes(routes=[[uid("D"), 3, 4, ""]]), uid("B"), 400)  # infeasible: 5 > 2
    r.handle_timer(r.next_deadline())
    r.peer_down(uid("A"), 1000)  # B's route is longer than we announced: starved
    assert _requests(_run_until(r, 1400)) == []  # nobody needs it yet: no request
    d = r.originate(_msg("o1"), 1500)
    assert via(d) == [uid("B")]  # still forwarded, infeasible or not
    assert _requests(_run_until(r, 1500)) == [(uid("B"), uid("D"), 4)]
    r.originate(_msg("o2"), 1700)  # once per 500 ms ...
    assert _requests(_run_until(r, 1700)) == []
    r.originate(_msg("o3"), 2100)  # ... then again (the first may have been lost)
    assert _requests(_run_until(r, 2100)) == [(uid("B"), uid("D"), 4)]
    # the answer (seq 4) makes B's route feasible: no more requests
    r.receive(Routes(routes=[[uid("D"), 4, 4, ""]]), uid("B"), 2200)
    assert r.strategy.dv.next_hop(uid("D"), None, []) == (uid("B"), 5)
    out = _run_until(r, 2250)
    r.originate(_msg("o4"), 2700)
    assert _requests(out + _run_until(r, 2700)) == []
    # told at once, not in the next batch
    assert [m.routes for p, m in out if type(m) is Routes][0] == [[uid("D"), 4, 5, ""]]


def test_the_destination_raises_its_seq_by_one_at_most_every_two_seconds():
    r = _router("D", seq0=7)
    r.receive(SeqRequest(dst=uid("D"), seq=8), uid("A"), 1000)
    sent = [m.routes for p, m in r.handle_timer(r.next_deadline()) if type(m) is Routes]
    assert sent and sent[0] == [[uid("D"), 8, 0, ""]]
    r.receive(SeqRequest(dst=uid("D"), seq=9), uid("B"), 1500)  # too soon
    assert r.strategy.dv.seq == 8
    r.receive(SeqRequest(dst=uid("D"), seq=10 ** 9), uid("B"), 3100)  # far ahead: one more
    assert r.strategy.dv.seq == 9
    r.receive(SeqRequest(dst=uid("D"), seq=5), uid("C"), 6000)  # old: nothing
    assert r.strategy.dv.seq == 9


def test_a_relay_answers_from_a_route_new_enough_else_passes_the_request_on():
    r = _router()
    r.receive(Routes(routes=[[uid("D"), 3, 1, ""]]), uid("A"), 400)
    r.handle_timer(r.next_deadline())
    # our route has seq 3: a request for 3 is answered with it, at once
    r.receive(SeqRequest(dst=uid("D"), seq=3), uid("B"), 1000)
    out = r.handle_timer(r.next_deadline())
    assert [m.routes for p, m in out if type(m) is Routes][0] == [[uid("D"), 3, 2, ""]]
    assert _requests(out) == []
    # a request for 4 goes on towards D (not back to B), once per hold time
    r.receive(SeqRequest(dst=uid("D"), seq=4), uid("B"), 2000)
    r.receive(SeqRequest(dst=uid("D"), seq=4), uid("C"), 2010)
    assert _requests(r.handle_timer(r.next_deadline())) == [(uid("A"), uid("D"), 4)]
    # never back to the neighbour it came from
    r.receive(SeqRequest(dst=uid("D"), seq=4), uid("A"), 3000)
    assert _requests(r.handle_timer(r.next_deadline() or 3000)) == []

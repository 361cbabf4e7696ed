# Fresh evidence over stale routes after the topology moved (router_meshlink,
# router_dv): an Ack goes back the way its message just came, a learned route
# older than the announced route's last change yields to one confirmed since,
# and a better backup displaces the worst announced candidate. Runs on CPython
# and MicroPython.
import gc

gc.collect()
from meshlink.messages import Ack, Routes  # noqa: E402
from router_steps import Router, msg, uid, via  # noqa: E402

gc.collect()
OPTS = {"announce_ms": 60000, "hop_ack_ms": 0, "seq_requests": False}


def _ack(mid, src, dst):
    return Ack(src=uid(src), dst=uid(dst), ack_for=uid("m"), message_id=uid(mid), ttl=8,
               path=[])


def _router():
    r = Router(uid("X"), "meshlink", rng=1, options=OPTS)
    for p in ("A", "B", "C"):
        r.peer_up(uid(p), 0)
    r.handle_timer(300)
    return r


def test_an_ack_goes_back_the_way_its_message_just_came():
    r = _router()
    # S announced 2 hops away through A; its message arrives over 5 hops via B
    r.receive(Routes(routes=[[uid("S"), 3, 1, ""]]), uid("A"), 400)
    d = r.receive(msg("m1", "S", "X", ["S", "p", "q", "r", "B"]), uid("B"), 1000)
    assert d.deliver
    assert via(r.originate(_ack("k1", "X", "S"), 1010)) == [uid("B")]
    # a data message still takes the shorter announced route ...
    assert via(r.originate(msg("o1", "X", "S", []), 1020)) == [uid("A")]
    # ... and an Ack does too once that evidence is older than ack_fresh_ms
    assert via(r.originate(_ack("k2", "X", "S"), 4000)) == [uid("A")]


def test_a_learned_route_older_than_the_announced_change_yields_to_a_fresh_one():
    r = _router()
    r.receive(msg("m1", "T", "X", ["T", "A"]), uid("A"), 1000)  # learned: T via A, 2 hops
    r.receive(Routes(routes=[[uid("T"), 3, 1, ""]]), uid("A"), 1100)
    r.receive(Routes(routes=[[uid("T"), 3, 255, ""]]), uid("A"), 2000)  # retracted
    r.receive(msg("m2", "T", "X", ["T", "p", "q", "C"]), uid("C"), 2500)  # via C since
    d = r.originate(msg("o1", "X", "T", []), 2600)
    assert via(d) == [uid("C")]


def test_a_better_backup_displaces_the_worst_announced_candidate():
    r = _router()
    r.peer_up(uid("E"), 0)
    r.receive(Routes(routes=[[uid("D"), 3, 0, ""]]), uid("A"), 400)  # in use, 1 hop
    r.receive(Routes(routes=[[uid("D"), 3, 5, ""]]), uid("B"), 400)
    r.receive(Routes(routes=[[uid("D"), 3, 6, ""]]), uid("C"), 400)
    r.receive(Routes(routes=[[uid("D"), 3, 1, ""]]), uid("E"), 500)  # < A, > C
    r.peer_down(uid("A"), 1000)
    assert r.strategy.dv.next_hop(uid("D"), None, []) == (uid("E"), 2)

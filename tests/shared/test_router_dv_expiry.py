# The meshlink strategy with destination announcements: a learned route
# yields to a fresher announced one, one neighbour cannot fill the
# announcement table, no flood for a destination known retracted until the
# backoff allows one search. Runs on CPython and MicroPython (a module of
# its own so router_dv loads on a clean 96K heap).
import gc

gc.collect()
from meshlink.router import load_strategy  # noqa: E402

gc.collect()
load_strategy("meshlink")
gc.collect()
from meshlink.messages import Routes  # noqa: E402
from router_steps import Router, msg, uid, via  # noqa: E402

gc.collect()


def test_a_learned_route_yields_to_a_fresher_announced_one():
    r = Router(uid("X"), "meshlink", rng=1, options={"announce_ms": 60000, "explore": 0.0})
    r.peer_up(uid("A"), 0)
    r.peer_up(uid("B"), 0)
    # learned at t=10: D two hops away through A
    r.receive(msg("b1", "D", None, ["D", "n1", "A"]), uid("A"), 10)
    assert via(r.originate(msg("o1", "X", "D", []), 15)) == [uid("A")]
    # announced at t=20 (after the learned route's last confirmation): D is
    # 3 hops through B; the topology moved, the announcement wins
    r.receive(Routes(routes=[[uid("D"), 5, 2, ""]]), uid("B"), 20)
    d = r.originate(msg("o2", "X", "D", []), 25)
    assert via(d) == [uid("B")] and d.mode == "route"
    # a copy from D through A confirms the learned route again: shorter wins
    r.receive(msg("b2", "D", None, ["D", "n1", "A"]), uid("A"), 30)
    assert via(r.originate(msg("o3", "X", "D", []), 35)) == [uid("A")]


def test_one_neighbour_cannot_fill_the_announcement_table():
    r = Router(uid("X"), "meshlink", rng=1,
               options={"max_routes": 8, "peer_route_share": 0.5, "announce_ms": 60000})
    r.peer_up(uid("A"), 0)
    r.peer_up(uid("B"), 0)
    r.receive(Routes(routes=[[uid("F%d" % i), 1, 1, ""] for i in range(10)]), uid("A"), 10)
    dv = r.strategy.dv
    assert len(dv.table) == 4 and dv.refused == 6
    r.receive(Routes(routes=[[uid("H%d" % i), 1, 1, ""] for i in range(4)]), uid("B"), 20)
    assert all(uid("H%d" % i) in dv.table for i in range(4))


def test_no_flood_for_a_retracted_destination():
    r = Router(uid("X"), "meshlink", rng=1, options={"announce_ms": 60000, "hop_ack_ms": 0,
                                                     "seq_requests": False})
    for p in ("A", "B", "C"):
        r.peer_up(uid(p), 0)
    r.receive(Routes(routes=[[uid("D"), 3, 1, ""]]), uid("A"), 10)
    assert r.strategy.dv.next_hop(uid("D"), None, []) == (uid("A"), 2)
    r.receive(Routes(routes=[[uid("D"), 3, 255, ""]]), uid("A"), 20)  # D went away
    # a relay still searches (the retraction may be a starved route) ...
    d = r.receive(msg("s1", "S", "D", ["S", "B"]), uid("B"), 30)
    assert d.mode == "discover" and d.forward
    # ... the origin does not, until the backoff allows one search
    d = r.originate(msg("o1", "X", "D", []), 40)
    assert d.forward == [] and d.drop_reason == "unreachable"
    d = r.originate(msg("o2", "X", "D", []), 40 + 5000)
    assert d.mode == "discover" and d.forward
    # D is back: routed at once
    r.receive(Routes(routes=[[uid("D"), 4, 1, ""]]), uid("C"), 6000)
    assert r.originate(msg("o5", "X", "D", []), 6010).mode == "route"
    # a retraction of a destination we never knew is remembered (and so is
    # in the whole table a new neighbour gets): no search for it either
    r.receive(Routes(routes=[[uid("E"), 7, 255, ""]]), uid("A"), 6020)
    assert r.originate(msg("o6", "X", "E", []), 6030).drop_reason == "unreachable"
    r.peer_up(uid("N"), 6040)
    whole = [m.routes for p, m in r.handle_timer(r.next_deadline()) if p == uid("N")]
    assert [uid("E"), 7, 255, ""] in whole[0]
    # an unknown destination is searched for; not again right after a failure
    d = r.originate(msg("o3", "X", "Q", []), 100)
    assert d.mode == "discover" and d.forward
    r.on_delivery_failed(uid("o3"), 2100)
    assert r.originate(msg("o4", "X", "Q", []), 2200).drop_reason == "unreachable"


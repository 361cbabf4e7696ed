# The meshlink strategy's routes expire with the topology and stay bounded
# per neighbour: a learned route yields to a fresher announced one, a next
# hop that stops producing Acks loses its learned routes, one neighbour
# cannot fill the route tables, no flood for a destination known down or
# just searched for in vain, hop-count changes are held down. Runs on
# CPython and MicroPython (a module of its own so it fits a clean 96K heap).
import gc

gc.collect()
from meshlink.router import load_strategy  # noqa: E402

gc.collect()
load_strategy("meshlink")
gc.collect()
from meshlink.messages import Routes  # noqa: E402
from router_steps import MeshMessage, Router, uid  # noqa: E402

gc.collect()


def _msg(mid, src, dst, path, ttl=9):
    return MeshMessage(src=uid(src), dst=uid(dst) if dst else None, data=b"",
                       message_id=uid(mid), ttl=ttl, path=[uid(p) for p in path])


def _via(d):
    return [p for p, _m in d.forward]


def test_a_learned_route_yields_to_a_fresher_announced_one():
    r = Router(uid("X"), "meshlink", rng=1, options={"announce_ms": 60000, "explore": 0.0})
    r.peer_up(uid("A"), 0)
    r.peer_up(uid("B"), 0)
    # learned at t=10: D two hops away through A
    r.receive(_msg("b1", "D", None, ["D", "n1", "A"]), uid("A"), 10)
    assert _via(r.originate(_msg("o1", "X", "D", []), 15)) == [uid("A")]
    # announced at t=20 (after the learned route's last confirmation): D is
    # 3 hops through B; the topology moved, the announcement wins
    r.receive(Routes(routes=[[uid("D"), 5, 2, ""]]), uid("B"), 20)
    d = r.originate(_msg("o2", "X", "D", []), 25)
    assert _via(d) == [uid("B")] and d.mode == "route"
    # a copy from D through A confirms the learned route again: shorter wins
    r.receive(_msg("b2", "D", None, ["D", "n1", "A"]), uid("A"), 30)
    assert _via(r.originate(_msg("o3", "X", "D", []), 35)) == [uid("A")]


def test_a_next_hop_without_acks_loses_its_learned_routes():
    r = Router(uid("X"), "meshlink", rng=1,
               options={"announce_ms": 0, "explore": 0.0, "max_fails": 9,
                        "peer_max_fails": 3})
    r.peer_up(uid("A"), 0)
    r.peer_up(uid("B"), 0)
    for i in range(4):
        r.receive(_msg("b%d" % i, "D%d" % i, None, ["D%d" % i, "n", "A"]), uid("A"), 10 + i)
    t = r.strategy.t
    assert all(uid("D%d" % i) in t.routes for i in range(4))
    # three unacknowledged messages through A (to three destinations)
    for i in range(3):
        d = r.originate(_msg("o%d" % i, "X", "D%d" % i, []), 100 + i)
        assert _via(d) == [uid("A")]
        r.on_delivery_failed(uid("o%d" % i), 2100 + i)
    # every learned route through A is gone, D3's too (never tried)
    assert not any(uid("D%d" % i) in t.routes for i in range(4))
    # an Ack resets the count: two failures and an Ack keep the routes
    r.receive(_msg("c1", "E1", None, ["E1", "n", "A"]), uid("A"), 3000)
    r.receive(_msg("c2", "E2", None, ["E2", "n", "A"]), uid("A"), 3001)
    for i, dst in enumerate(("E1", "E2", "E1")):
        r.originate(_msg("p%d" % i, "X", dst, []), 3100 + i)
    r.on_delivery_failed(uid("p0"), 5100)
    r.on_delivery_failed(uid("p1"), 5101)
    from meshlink.messages import Ack
    r.on_ack(Ack(src=uid("E1"), dst=uid("X"), ack_for=uid("p2"), message_id=uid("k2"),
                 ttl=5, path=[uid("E1"), uid("A")]), 5200)
    assert uid("E1") in t.routes and uid("E2") in t.routes


def test_one_neighbour_cannot_fill_the_learned_route_table():
    r = Router(uid("X"), "meshlink", options={"max_routes": 8, "peer_route_share": 0.5,
                                              "announce_ms": 0},
               dedup_max_entries=64)
    r.peer_up(uid("A"), 0)
    r.peer_up(uid("B"), 0)
    for i in range(3):
        r.receive(_msg("h%d" % i, "H%d" % i, None, ["H%d" % i, "B"]), uid("B"), i)
    for i in range(40):  # A makes up 40 destinations
        r.receive(_msg("f%d" % i, "F%d" % i, None, ["F%d" % i, "A"]), uid("A"), 10 + i)
        routes = r.strategy.t.routes
        assert len(routes) <= 8
        assert sum(1 for k in routes if r.strategy.t.owner.get(k) == uid("A")) <= 4
    # B's destinations were not pushed out; A's newest is there
    for i in range(3):
        assert uid("H%d" % i) in r.strategy.t.routes
    assert uid("F39") in r.strategy.t.routes


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


def test_no_flood_for_a_retracted_destination_until_the_backoff():
    r = Router(uid("X"), "meshlink", rng=1, options={"announce_ms": 60000})
    for p in ("A", "B", "C"):
        r.peer_up(uid(p), 0)
    r.receive(Routes(routes=[[uid("D"), 3, 1, ""]]), uid("A"), 10)
    assert r.strategy.dv.next_hop(uid("D"), None, []) == (uid("A"), 2)
    r.receive(Routes(routes=[[uid("D"), 3, 255, ""]]), uid("A"), 20)  # D went away
    # a relay still searches (the retraction may be a starved route) ...
    d = r.receive(_msg("s1", "S", "D", ["S", "B"]), uid("B"), 30)
    assert d.mode == "discover" and d.forward
    # ... the origin does not, until the backoff allows one search
    d = r.originate(_msg("o1", "X", "D", []), 40)
    assert d.forward == [] and d.drop_reason == "unreachable"
    d = r.originate(_msg("o2", "X", "D", []), 40 + 5000)
    assert d.mode == "discover" and d.forward
    # an unknown destination is searched for; not again right after a failure
    d = r.originate(_msg("o3", "X", "Q", []), 100)
    assert d.mode == "discover" and d.forward
    r.on_delivery_failed(uid("o3"), 2100)
    assert r.originate(_msg("o4", "X", "Q", []), 2200).drop_reason == "unreachable"


def _sent(out):
    return [(p, [e[:3] for e in m.routes]) for p, m in out]


def test_hop_count_changes_are_held_down_but_retractions_go_at_once():
    r = Router(uid("X"), "meshlink", rng=1,
               options={"announce_ms": 600000, "announce_hold_ms": 15000,
                        "announce_flush_ms": 1000})
    r.peer_up(uid("A"), 0)
    r.handle_timer(0)
    r.handle_timer(200)  # the new neighbour's full table (our own entry)
    r.receive(Routes(routes=[[uid("D"), 3, 1, ""]]), uid("A"), 1000)
    t_sent = r.next_deadline()
    out = r.handle_timer(t_sent)
    assert _sent(out) == [(uid("A"), [[uid("D"), 3, 2]])]
    # the same sequence number, one hop longer: held until hold_ms after
    r.receive(Routes(routes=[[uid("D"), 3, 2, ""]]), uid("A"), 3000)
    assert r.handle_timer(r.next_deadline()) == []
    due = r.next_deadline()
    assert due == t_sent + 15000
    out = r.handle_timer(due)
    assert _sent(out) == [(uid("A"), [[uid("D"), 3, 3]])]
    # a retraction is not held
    r.receive(Routes(routes=[[uid("D"), 3, 255, ""]]), uid("A"), due + 100)
    t = r.next_deadline()
    assert t < due + 100 + 15000
    assert _sent(r.handle_timer(t)) == [(uid("A"), [[uid("D"), 3, 255]])]


def test_a_relay_does_not_search_for_a_neighbour_it_saw_go():
    r = Router(uid("X"), "meshlink", rng=1, options={"announce_ms": 0})
    for p in ("A", "B", "D"):
        r.peer_up(uid(p), 0)
    r.peer_down(uid("D"), 1000)  # our heartbeat gave up on D
    d = r.receive(_msg("s1", "S", "D", ["S", "B"]), uid("B"), 1100)
    assert d.forward == [] and d.drop_reason == "unreachable"
    assert r.originate(_msg("o1", "X", "D", []), 1200).drop_reason == "unreachable"
    # another destination is still searched for
    assert r.receive(_msg("s2", "S", "Q", ["S", "B"]), uid("B"), 1300).forward
    # D back: delivered directly again
    r.peer_up(uid("D"), 5000)
    assert _via(r.receive(_msg("s3", "S", "D", ["S", "B"]), uid("B"), 5100)) == [uid("D")]

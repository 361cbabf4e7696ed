# The meshlink strategy's learned routes expire with the topology and stay
# bounded per neighbour: a next hop that stops producing Acks loses its
# learned routes, one neighbour cannot fill the route table, no flood for a
# neighbour just seen going or a destination just searched for in vain
# (announcements: test_router_dv_expiry). Runs on
# CPython and MicroPython (a module of its own so it fits a clean 96K heap).
import gc

gc.collect()
from meshlink.router import load_strategy  # noqa: E402

gc.collect()
load_strategy("meshlink")
gc.collect()
from router_steps import Router, msg, uid, via  # noqa: E402

gc.collect()


def test_a_next_hop_without_acks_loses_its_learned_routes():
    r = Router(uid("X"), "meshlink", rng=1,
               options={"announce_ms": 0, "explore": 0.0, "max_fails": 9,
                        "peer_max_fails": 3})
    r.peer_up(uid("A"), 0)
    r.peer_up(uid("B"), 0)
    for i in range(4):
        r.receive(msg("b%d" % i, "D%d" % i, None, ["D%d" % i, "n", "A"]), uid("A"), 10 + i)
    t = r.strategy.t
    assert all(uid("D%d" % i) in t.routes for i in range(4))
    # three unacknowledged messages through A (to three destinations)
    for i in range(3):
        d = r.originate(msg("o%d" % i, "X", "D%d" % i, []), 100 + i)
        assert via(d) == [uid("A")]
        r.on_delivery_failed(uid("o%d" % i), 2100 + i)
    # every learned route through A is gone, D3's too (never tried)
    assert not any(uid("D%d" % i) in t.routes for i in range(4))
    # an Ack resets the count: two failures and an Ack keep the routes
    r.receive(msg("c1", "E1", None, ["E1", "n", "A"]), uid("A"), 3000)
    r.receive(msg("c2", "E2", None, ["E2", "n", "A"]), uid("A"), 3001)
    for i, dst in enumerate(("E1", "E2", "E1")):
        r.originate(msg("p%d" % i, "X", dst, []), 3100 + i)
    r.on_delivery_failed(uid("p0"), 5100)
    r.on_delivery_failed(uid("p1"), 5101)
    from meshlink.messages import Ack
    r.on_ack(Ack(src=uid("E1"), dst=uid("X"), ack_for=uid("p2"), message_id=uid("k2"),
                 ttl=5, path=[uid("E1"), uid("A")]), 5200)
    assert uid("E1") in t.routes and uid("E2") in t.routes


def test_one_neighbour_cannot_fill_the_learned_route_table():
    r = Router(uid("X"), "meshlink", options={"max_routes": 8, "peer_route_share": 0.5,
                                              "announce_ms": 0},
               dedup_max_entries=32)
    r.peer_up(uid("A"), 0)
    r.peer_up(uid("B"), 0)
    for i in range(3):
        r.receive(msg("h%d" % i, "H%d" % i, None, ["H%d" % i, "B"]), uid("B"), i)
    for i in range(12):  # A makes up 12 destinations
        gc.collect()
        r.receive(msg("f%d" % i, "F%d" % i, None, ["F%d" % i, "A"]), uid("A"), 10 + i)
        routes = r.strategy.t.routes
        assert len(routes) <= 8
        assert sum(1 for k in routes if r.strategy.t.owner.get(k) == uid("A")) <= 4
    # B's destinations were not pushed out; A's newest is there
    for i in range(3):
        assert uid("H%d" % i) in r.strategy.t.routes
    assert uid("F11") in r.strategy.t.routes


def test_a_relay_does_not_search_for_a_neighbour_it_saw_go():
    r = Router(uid("X"), "meshlink", rng=1, options={"announce_ms": 0})
    for p in ("A", "B", "D"):
        r.peer_up(uid(p), 0)
    r.peer_down(uid("D"), 1000)  # our heartbeat gave up on D
    d = r.receive(msg("s1", "S", "D", ["S", "B"]), uid("B"), 1100)
    assert d.forward == [] and d.drop_reason == "unreachable"
    assert r.originate(msg("o1", "X", "D", []), 1200).drop_reason == "unreachable"
    # another destination is still searched for
    assert r.receive(msg("s2", "S", "Q", ["S", "B"]), uid("B"), 1300).forward
    # D back: delivered directly again
    r.peer_up(uid("D"), 5000)
    assert via(r.receive(msg("s3", "S", "D", ["S", "B"]), uid("B"), 5100)) == [uid("D")]

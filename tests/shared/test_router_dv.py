# Destination announcements (router_dv): the decision vectors
# (tests/vectors/router_dv.json) and served IDs. Runs on CPython and
# MicroPython; a module of its own so router_dv compiles on a clean 96K heap.
import gc

gc.collect()
import router_check  # noqa: E402,F401  (compiled here, on a heap not yet fragmented)
from router_steps import Router, run_file, uid  # noqa: E402

gc.collect()


def test_dv_vectors():
    run_file("router_dv")


def test_served_ids_are_announced_and_withdrawn():
    from meshlink.messages import Routes
    r = Router(uid("G"), "meshlink", rng=1,
               options={"announce_ms": 60000, "announce_seq0": 7, "hop_ack_ms": 0})
    r.peer_up(uid("A"), 0)
    assert [m.routes for _p, m in r.handle_timer(300)] == [[[uid("G"), 7, 0, ""]]]
    r.serve(uid("b1"))
    assert r.next_deadline() == 0  # the next tick announces it
    assert [(p, m.routes) for p, m in r.handle_timer(310)] == [(uid("A"), [[uid("b1"), 7, 0, ""]])]
    # an announcement of a served ID by a neighbour is ignored
    r.receive(Routes(routes=[[uid("b1"), 9, 1, ""], [uid("Z"), 3, 1, ""]]), uid("A"), 320)
    assert r.strategy.dv.next_hop(uid("b1"), None, []) is None
    assert r.strategy.dv.next_hop(uid("Z"), None, []) == (uid("A"), 2)
    assert [m.routes for _p, m in r.handle_timer(700)] == [[[uid("Z"), 3, 2, ""]]]
    r.unserve(uid("b1"))
    out = r.handle_timer(4000)
    assert [(p, m.routes) for p, m in out] == [(uid("A"), [[uid("b1"), 7, 255, ""]])]


def test_destinations_list_announced_routes_and_drop_retracted_ones():
    from meshlink.messages import Routes
    r = Router(uid("G"), "meshlink", rng=1, options={"announce_ms": 60000})
    r.peer_up(uid("A"), 0)
    r.receive(Routes(routes=[[uid("Z"), 3, 1, ""], [uid("Y"), 3, 2, ""]]), uid("A"), 10)
    assert r.destinations() == {uid("Z"): (uid("A"), 2), uid("Y"): (uid("A"), 3)}
    r.receive(Routes(routes=[[uid("Z"), 3, 255, ""]]), uid("A"), 20)  # Z left
    assert r.destinations() == {uid("Y"): (uid("A"), 3)}
    assert Router(uid("G"), "flood", rng=1).destinations() == {}


def test_node_names():
    from meshlink.nodeid import is_name
    assert is_name("gw-1.garden_2") and is_name("x" * 32)
    for bad in ("", "-x", "x" * 33, "a b", "<b>", None):
        assert not is_name(bad)

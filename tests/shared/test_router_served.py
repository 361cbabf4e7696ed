# Served IDs in the shared router (Router.serve/unserve): node IDs a node
# acts for, like a gateway's boards. Exact decisions for messages and Acks TO
# a served ID (test_router_served_origin.py: FROM one). Runs on CPython and
# MicroPython (96K heap).
import gc

gc.collect()
from meshlink.router import load_strategy  # noqa: E402

gc.collect()
load_strategy("meshlink")  # compile it first, while the heap is emptiest
gc.collect()

from meshlink.errors import LocalProtocolError  # noqa: E402
from router_served_helpers import ORIG, S2, A, B, D, S, X, _gateway, _msg  # noqa: E402
from router_steps import Ack, Router, uid, via  # noqa: E402
from vectors import expect_raises  # noqa: E402


def test_serve_is_bounded_idempotent_and_not_our_own_id():
    import meshlink.router_served as served

    bound = served.MAX_SERVED
    served.MAX_SERVED = 2
    try:
        r = Router(X, "meshlink")
        r.serve(S)
        r.serve(S)
        r.serve(S2)
        assert r.served == {S, S2}
        expect_raises(LocalProtocolError, r.serve, D)
        expect_raises(LocalProtocolError, r.serve, X)
        r.unserve(S)
        r.unserve(S)
        r.serve(D)
        assert r.served == {S2, D}
    finally:
        served.MAX_SERVED = bound


def test_message_for_a_served_id_is_delivered_not_forwarded():
    r = _gateway()
    d = r.receive(_msg("m1", ORIG, S, [ORIG, A], ttl=5), A, 10)
    assert d.deliver and d.forward == [] and d.drop_reason is None and d.mode == "served"
    # the same copy again (another flood branch): a duplicate
    d = r.receive(_msg("m1", ORIG, S, [ORIG, B], ttl=5), B, 11)
    assert not d.deliver and d.drop_reason == "duplicate" and d.forward == []
    # a copy that already passed through us: a loop
    d = r.receive(_msg("m2", ORIG, S, [ORIG, X, A]), A, 12)
    assert not d.deliver and d.drop_reason == "loop"
    # TTL 0 at the destination still delivers (as for our own node ID)
    d = r.receive(_msg("m3", ORIG, S, [ORIG, A], ttl=0), A, 13)
    assert d.deliver and d.mode == "served"
    assert r.counters["received"] == 4 and r.counters["delivered"] == 2


def test_route_to_the_sender_is_learned_from_a_served_message():
    r = _gateway()
    r.receive(_msg("m1", ORIG, S, [ORIG, A]), A, 10)
    d = r.originate(_msg("r1", X, ORIG, []), 20)
    assert via(d) == [A] and d.mode == "route"
    assert d.forward[0][1].path == [X]


def test_ack_for_a_served_id_is_delivered():
    r = _gateway()
    ack = Ack(src=ORIG, dst=S, ack_for=uid("m0"), message_id=uid("k1"), ttl=4, path=[ORIG, B])
    d = r.receive(ack, B, 5)
    assert d.deliver and d.forward == [] and d.mode == "served"


def test_after_unserve_the_id_is_routed_like_any_other():
    r = _gateway()
    r.unserve(S)
    d = r.receive(_msg("m1", ORIG, S, [ORIG, A], ttl=5), A, 10)
    assert not d.deliver and via(d) == [B] and d.mode == "discover"
    out = d.forward[0][1]
    assert out.path == [ORIG, A, X] and out.ttl == 4 and out.dst == S

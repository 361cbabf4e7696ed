# Served IDs in the shared router: exact decisions for messages and Acks FROM
# a served ID (Router.originate with src = a served ID), which enter the mesh
# as if the served ID were a neighbour one hop behind this node. Runs on
# CPython and MicroPython (96K heap).
import gc

gc.collect()
from meshlink.router import load_strategy  # noqa: E402

gc.collect()
load_strategy("meshlink")  # compile it first, while the heap is emptiest
gc.collect()

from meshlink.errors import LocalProtocolError  # noqa: E402
from router_served_helpers import ORIG, S2, A, B, D, S, X, _gateway, _msg  # noqa: E402
from router_steps import Ack, MeshMessage, Router, uid, via  # noqa: E402
from vectors import expect_raises  # noqa: E402


def test_broadcast_from_a_served_id_enters_one_hop_behind_us():
    r = _gateway()
    d = r.originate(MeshMessage(src=S, dst=None, data=b"hi", message_id=uid("b1"), ttl=8,
                                path=[]), 10)
    assert not d.deliver and via(d) == [A, B] and d.mode == "eager"
    out = d.forward[0][1]
    assert out.path == [S, X] and out.ttl == 7 and out.src == S and out.data == b"hi"
    assert r.counters["originated"] == 1 and r.counters["received"] == 0
    # our own copy coming back: we are on its path
    d = r.receive(_msg("b1", S, None, [S, X, A]), A, 11)
    assert d.drop_reason == "loop" and not d.deliver


def test_directed_message_and_ack_from_a_served_id():
    r = _gateway()
    d = r.originate(_msg("d1", S, A, []), 10)  # the destination is our neighbour
    assert via(d) == [A] and d.mode == "direct" and d.forward[0][1].path == [S, X]
    d = r.originate(_msg("d2", S, D, [S]), 11)  # unknown: discovery, path [S] accepted
    assert via(d) == [A, B] and d.mode == "discover" and d.forward[0][1].ttl == 7
    r.receive(_msg("m9", D, X, [D, B]), B, 12)  # now D is known via B
    ack = Ack(src=S, dst=D, ack_for=uid("m8"), message_id=uid("k2"), ttl=8, path=[])
    d = r.originate(ack, 13)
    assert via(d) == [B] and d.mode == "route" and d.forward[0][1].path == [S, X]
    d = r.originate(_msg("d2", S, D, []), 14)  # the same message id again
    assert d.drop_reason == "duplicate" and d.forward == []


def test_served_message_for_us_or_another_served_id_stays_here():
    r = _gateway()
    r.serve(S2)
    for mid, dst in (("l1", X), ("l2", S2)):
        d = r.originate(_msg(mid, S, dst, []), 10)
        assert d.deliver and d.forward == [] and d.mode == "served"


def test_originate_refuses_foreign_sources_and_paths():
    r = _gateway()
    expect_raises(LocalProtocolError, r.originate, _msg("e1", D, None, []), 1)
    expect_raises(LocalProtocolError, r.originate, _msg("e2", S, None, [X]), 1)
    expect_raises(LocalProtocolError, r.originate, _msg("e3", X, None, [S]), 1)
    r.unserve(S)
    expect_raises(LocalProtocolError, r.originate, _msg("e4", S, None, []), 1)


def test_remote_node_learns_the_served_id_via_the_gateway():
    gw = _gateway()
    d = gw.originate(_msg("a1", S, None, []), 10)  # e.g. the board's announcement
    copy = d.forward[0][1]
    far = Router(A, "meshlink")
    far.peer_up(X, 0)
    far.peer_up(D, 0)
    d = far.receive(copy, X, 11)
    assert d.deliver and via(d) == [D] and d.forward[0][1].path == [S, X, A]
    d = far.originate(_msg("to-s", A, S, []), 12)
    assert via(d) == [X] and d.mode == "route"
    # and the gateway delivers it to the served ID
    d = gw.receive(d.forward[0][1], A, 13)
    assert d.deliver and d.mode == "served"


def test_seed_strategy_serves_too():
    r = _gateway("seed")
    d = r.receive(_msg("m1", ORIG, S, [ORIG, A], ttl=5), A, 10)
    assert d.deliver and d.forward == [] and d.mode == "served"
    d = r.originate(_msg("b1", S, None, []), 11)
    assert not d.deliver and via(d) == [A, B] and d.mode == "top3"
    assert d.forward[0][1].path == [S, X] and d.forward[0][1].ttl == 7

# Hop acknowledgements (meshlink.router_hop, docs/PROTOCOL.md §7.4): a copy
# sent to one neighbour that does not take it within hop_ack_ms goes another
# way, and that neighbour is passed over until it answers. Runs on CPython
# and MicroPython (hop acks are off by default on MicroPython: options on).
import gc

gc.collect()
from meshlink.messages import Ack, HopAck, Routes  # noqa: E402
from router_steps import MeshMessage, Router, msg, uid, via  # noqa: E402

gc.collect()
OPTS = {"announce_ms": 60000, "hop_ack_ms": 500, "hop_avoid_ms": 2000, "seq_requests": False}


def _router(acking=("A", "B")):
    """X with neighbours A and B, both announcing D (A one hop closer);
    those in acking have sent X a HopAck (so X waits for theirs)."""
    r = Router(uid("X"), "meshlink", rng=1, options=OPTS)
    for p in ("A", "B"):
        r.peer_up(uid(p), 0)
    r.handle_timer(300)
    r.receive(Routes(routes=[[uid("D"), 3, 1, ""]]), uid("A"), 400)
    r.receive(Routes(routes=[[uid("D"), 3, 2, ""]]), uid("B"), 400)
    for p in acking:
        r.receive(HopAck(ids=[uid("z0")]), uid(p), 450)
    r.handle_timer(r.next_deadline())
    return r


def _sends(out, kind):
    return [(p, m) for p, m in out if type(m) is kind]


def test_every_directed_copy_is_acknowledged_to_the_neighbour_it_came_from():
    r = _router()
    r.receive(msg("m1", "S", "D", ["S", "B"]), uid("B"), 1000)
    r.receive(Ack(src=uid("D"), dst=uid("S"), ack_for=uid("m0"), message_id=uid("k1"),
                  ttl=8, path=[uid("D"), uid("A")]), uid("A"), 1000)
    assert r.next_deadline() <= 1000  # owed: they go at the next tick
    acks = _sends(r.handle_timer(1000), HopAck)
    assert sorted((p, m.ids) for p, m in acks) == sorted(
        [(uid("B"), [uid("m1")]), (uid("A"), [uid("k1")])])


def test_a_copy_not_taken_goes_another_way_and_the_neighbour_is_passed_over():
    r = _router()
    d = r.originate(msg("o1", "X", "D", []), 1000)
    assert via(d) == [uid("A")]
    assert r.next_deadline() <= 1500
    out = r.handle_timer(1500)  # no HopAck from A: rerouted through B
    assert [(p, m.message_id) for p, m in _sends(out, MeshMessage)] == [(uid("B"), uid("o1"))]
    assert r.status()["hop_rerouted"] == 1
    # A is passed over for new copies, announced routes included ...
    assert via(r.originate(msg("o2", "X", "D", []), 1600)) == [uid("B")]
    # ... until it answers: its HopAck (here for the late copy) takes it back
    r.receive(HopAck(ids=[uid("o1")]), uid("A"), 1700)
    assert via(r.originate(msg("o3", "X", "D", []), 1800)) == [uid("A")]


def test_an_acknowledged_copy_is_not_sent_again():
    r = _router()
    r.originate(msg("o1", "X", "D", []), 1000)
    r.receive(HopAck(ids=[uid("o1")]), uid("A"), 1100)
    out = r.handle_timer(1600) if r.next_deadline() is not None else []
    assert _sends(out, MeshMessage) == []
    assert r.status()["hop_rerouted"] == 0


def test_a_hop_ack_counts_only_from_the_neighbour_the_copy_went_to():
    r = _router()
    r.originate(msg("o1", "X", "D", []), 1000)
    r.receive(HopAck(ids=[uid("o1")]), uid("B"), 1100)  # B cannot answer for A
    out = r.handle_timer(1500)
    assert [p for p, _m in _sends(out, MeshMessage)] == [uid("B")]


def test_copies_waiting_on_a_neighbour_that_goes_down_go_another_way_at_once():
    r = _router()
    r.originate(msg("o1", "X", "D", []), 1000)
    r.peer_down(uid("A"), 1200)
    assert r.next_deadline() <= 1200
    out = r.handle_timer(1200)
    assert [p for p, _m in _sends(out, MeshMessage)] == [uid("B")]


def test_an_avoided_neighbour_is_taken_back_after_hop_avoid_ms():
    r = _router()
    r.originate(msg("o1", "X", "D", []), 1000)
    r.handle_timer(1500)  # A avoided until 3500
    assert via(r.originate(msg("o2", "X", "D", []), 3400)) == [uid("B")]
    r.handle_timer(3500)
    assert via(r.originate(msg("o3", "X", "D", []), 3600)) == [uid("A")]


def test_a_neighbour_that_never_sent_a_hop_ack_is_not_waited_for():
    # hop acknowledgements off there (hop_ack_ms 0): its copies are not
    # rerouted and it is never avoided
    r = _router(acking=("B",))
    r.originate(msg("o1", "X", "D", []), 1000)
    out = r.handle_timer(r.next_deadline() or 1600) if r.next_deadline() else []
    assert _sends(out, MeshMessage) == [] and r.status()["hop_rerouted"] == 0
    assert via(r.originate(msg("o2", "X", "D", []), 1600)) == [uid("A")]

# Convergence after a neighbour is lost (router_dv, router_meshlink): bad
# news is announced soon, good news batched; an origin searches for a
# retracted destination that acknowledged it lately (a starved route?). Runs on CPython and
# MicroPython (a module of its own: a clean 96K heap).
import gc

gc.collect()
from meshlink.router import load_strategy  # noqa: E402

gc.collect()
load_strategy("meshlink")
gc.collect()
from meshlink.messages import Ack, Routes  # noqa: E402
from router_steps import Router, msg, uid, via  # noqa: E402

gc.collect()


def test_bad_news_is_announced_soon_good_news_batched():
    r = Router(uid("G"), "meshlink", rng=1, options={
        "announce_ms": 60000, "announce_flush_ms": 3000, "seq_requests": False})
    for p in ("A", "B", "C"):
        r.peer_up(uid(p), 0)
    r.handle_timer(300)  # the whole table to the new neighbours
    r.receive(Routes(routes=[[uid("Z"), 3, 1, ""], [uid("Y"), 3, 1, ""]]), uid("A"), 400)
    r.receive(Routes(routes=[[uid("Z"), 3, 2, ""]]), uid("B"), 400)
    r.handle_timer(800)  # Z and Y newly reachable: urgent
    r.receive(Routes(routes=[[uid("Y"), 3, 0, ""]]), uid("C"), 1000)  # good news: batched
    assert r.next_deadline() >= 1000 + 1500
    r.handle_timer(r.next_deadline())
    # A goes down: Z now 3 hops through B, Y lost (retracted): both soon
    r.peer_down(uid("A"), 10000)
    r.peer_down(uid("C"), 10000)
    assert r.next_deadline() <= 10000 + 300
    sent = {p: m.routes for p, m in r.handle_timer(10300)}
    assert sent == {uid("B"): [[uid("Y"), 3, 255, ""], [uid("Z"), 3, 3, ""]]}
    # a neighbour's retraction that leaves us without a route: soon too
    r.receive(Routes(routes=[[uid("Z"), 3, 255, ""]]), uid("B"), 20000)
    assert r.next_deadline() <= 20000 + 300


def test_an_origin_searches_for_a_retracted_destination_that_acked_lately():
    r = Router(uid("X"), "meshlink", rng=1, options={"announce_ms": 60000})
    for p in ("A", "B", "C"):
        r.peer_up(uid(p), 0)
    # retracted, never acknowledged us: known down, no search
    r.receive(Routes(routes=[[uid("H"), 3, 1, ""]]), uid("A"), 6100)
    r.receive(Routes(routes=[[uid("H"), 3, 255, ""]]), uid("A"), 6110)
    assert r.originate(msg("o9", "X", "H", []), 6110 + 5000).drop_reason == "unreachable"
    # retracted, but acknowledged us lately (its learned route went with a
    # neighbour): searched for
    r.receive(Routes(routes=[[uid("F"), 3, 1, ""]]), uid("A"), 6100)
    r.receive(Routes(routes=[[uid("F"), 3, 255, ""]]), uid("A"), 6110)
    r.receive(msg("f1", "F", None, ["F", "n1", "B"]), uid("B"), 6120)  # learned via B
    assert via(r.originate(msg("o7", "X", "F", []), 6130)) == [uid("B")]
    r.on_ack(Ack(src=uid("F"), dst=uid("X"), ack_for=uid("o7"), message_id=uid("k7"),
                 ttl=8, path=[]), 6140)
    r.peer_down(uid("B"), 15000)
    d = r.originate(msg("o8", "X", "F", []), 15010)
    assert d.mode == "discover" and d.forward

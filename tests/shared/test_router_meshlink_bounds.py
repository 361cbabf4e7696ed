# The MeshLink strategy's bounds and reports: path truncation, bounded tables,
# refused options, peer scores. Runs on CPython and MicroPython; apart from
# the decision vectors (test_router_meshlink) so each fits a clean 96K heap.
import gc

gc.collect()
from meshlink.router import load_strategy  # noqa: E402

gc.collect()
load_strategy("meshlink")
gc.collect()
from meshlink.errors import ConfigError  # noqa: E402
from router_steps import MeshMessage, Router, msg, uid, via  # noqa: E402
from vectors import expect_raises  # noqa: E402

gc.collect()


def test_full_path_keeps_origin_and_drops_oldest_relay():
    r = Router(uid("X"), "meshlink")
    r.peer_up(uid("A"), 0)
    r.peer_up(uid("B"), 0)
    # one format per ID: uid()'s temporaries would fragment a 96K heap
    path = ["00000000-0000-4000-8000-%012x" % i for i in range(64)]
    d = r.receive(MeshMessage(src=path[0], dst=None, data=b"", message_id=uid("f1"), ttl=99,
                              path=path), path[63], 1)
    assert d.deliver and via(d) == [uid("A"), uid("B")]
    out = d.forward[0][1]
    assert out.ttl == 98 and len(out.path) == 64
    assert out.path[0] == path[0] and out.path[1] == path[2] and out.path[62] == path[63]
    assert out.path[63] == uid("X")


def test_route_table_is_bounded():
    r = Router(uid("X"), "meshlink", options={"max_routes": 8, "cache_max": 4},
               dedup_max_entries=16)
    r.peer_up(uid("A"), 0)
    for i in range(40):
        r.receive(msg("m%d" % i, "s%d" % i, None, ["s%d" % i, "A"]), uid("A"), i)
        assert len(r.strategy.t.routes) <= 8 and len(r.dedup) <= 16
    # the newest destinations survive eviction
    assert uid("s39") in r.strategy.t.routes


def test_pending_and_missing_are_bounded():
    r = Router(uid("X"), "meshlink", options={"max_pending": 8, "missing_max": 4})
    r.peer_up(uid("A"), 0)
    from meshlink.messages import IHave
    for i in range(20):
        r.originate(msg("o%d" % i, "X", "Z", []), i)
        r.receive(IHave(ids=[uid("i%d" % i)]), uid("A"), i)
    st = r.strategy
    assert len(st.t.pending) <= 8
    assert len(st.lazy.missing) <= 4


def test_unknown_option_and_strategy_refused():
    expect_raises(ConfigError, lambda: Router(uid("X"), "meshlink", options={"nope": 1}))
    expect_raises(ConfigError, Router, uid("X"), "nope")


def test_peers_report_scores_and_eager_flag():
    r = Router(uid("X"))
    assert r.strategy_name == "meshlink"
    r.peer_up(uid("A"), 0)
    r.record_rtt(uid("A"), 40, 1000)
    r.record_ping_lost(uid("A"), 2000)
    p = r.peers(3000)[0]
    assert p["peer_id"] == uid("A") and p["rtt_ms"] == 40 and p["eager"] is True
    assert p["up"] is True and 0.0 < p["score"] < 1.0 and p["reliability"] < 1.0


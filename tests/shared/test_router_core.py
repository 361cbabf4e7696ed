# Router building blocks and the runtime contract: the dedup window, the
# whitepaper score, the PRNG, argument checks. Runs on CPython and MicroPython.
import gc

gc.collect()
from meshlink.errors import ConfigError, LocalProtocolError  # noqa: E402
from meshlink.router import DEFAULT_STRATEGY, STRATEGIES, load_strategy  # noqa: E402
from meshlink.router_core import (  # noqa: E402
    PING_LOST,
    PONG,
    DedupCache,
    PeerInfo,
    XorShiftRng,
    relay_copy,
)
from router_steps import Ack, MeshMessage, Router, uid  # noqa: E402
from vectors import expect_raises  # noqa: E402


def test_dedup_window_is_exact_and_bounded():
    d = DedupCache(1000, 8)
    assert not d.check_and_add("a", 0)
    assert d.check_and_add("a", 999)
    assert not d.seen("a", 1000)  # 1000 ms later it is new again
    assert not d.check_and_add("a", 1000)
    for i in range(40):
        d.add("k%d" % i, 1001 + i)
        assert len(d) <= 8
    assert d.evicted_early > 0
    assert d.seen("k39", 1040) and not d.seen("k0", 1040)


def test_dedup_generations_rotate_without_losing_recent_ids():
    d = DedupCache(100, 1000)
    d.add("x", 0)
    d.add("y", 99)
    assert d.seen("y", 150) and not d.seen("x", 150)
    d.add("z", 250)  # two rotations later only z and fresh ids remain
    assert not d.seen("y", 250) and d.seen("z", 300) and len(d) <= 2


def test_whitepaper_score_exact():
    p = PeerInfo("p", 0)
    assert abs(p.score - 0.7) < 1e-12  # 0.3*0.5 + 0.15*0 + 0.3*1 + 0.25*1
    p.record(PONG, 100, 300000)  # latency 0.5, uptime 0.5, reliability 3/3, route 2/2
    base = 0.3 * 0.5 + 0.15 * 0.5 + 0.3 * 1.0 + 0.25 * 1.0
    assert abs(p.score - (0.7 * 0.7 + 0.3 * base)) < 1e-12
    p.record(PING_LOST, None, 300000)  # reliability (1+2)/(1+1+2)
    base2 = 0.3 * 0.5 + 0.15 * 0.5 + 0.3 * 0.75 + 0.25 * 1.0
    s1 = 0.7 * 0.7 + 0.3 * base
    assert abs(p.score - (0.7 * s1 + 0.3 * base2)) < 1e-12
    assert abs(p.etx() - 4.0 / 3.0) < 1e-12
    assert abs(p.link_cost() - p.etx() * (1.5 - 0.5 * p.score)) < 1e-12


def test_rng_is_deterministic_on_both_interpreters():
    r = XorShiftRng(12345)
    got = [r.getrandbits(32) for _ in range(3)]
    assert got == [3336926330, 1697253807, 2816511904], got  # Marsaglia xorshift32
    x = XorShiftRng(1).random()
    assert 0.0 <= x < 1.0


def test_registry_and_defaults():
    assert DEFAULT_STRATEGY == "meshlink"
    for name in ("meshlink", "seed", "flood"):
        assert name in STRATEGIES
    assert load_strategy("seed").name == "seed"
    assert load_strategy("nope") is None
    expect_raises(ConfigError, Router, uid("X"), "nope")
    expect_raises(ConfigError, lambda: Router(uid("X"), "seed", default_ttl=0))
    expect_raises(ConfigError, lambda: Router(uid("X"), "seed", dedup_window_ms=0))


def test_originate_checks_its_arguments():
    r = Router(uid("X"), "flood")
    r.peer_up(uid("A"), 0)
    bad_src = MeshMessage(src=uid("Y"), dst=None, data=b"", message_id=uid("m"), ttl=8,
                          path=[])
    expect_raises(LocalProtocolError, r.originate, bad_src, 0)
    bad_path = MeshMessage(src=uid("X"), dst=None, data=b"", message_id=uid("m"), ttl=8,
                           path=[uid("A")])
    expect_raises(LocalProtocolError, r.originate, bad_path, 0)
    ok = MeshMessage(src=uid("X"), dst=None, data=b"", message_id=uid("m"), ttl=8,
                     path=[uid("X")])
    d = r.originate(ok, 0)
    assert d.forward[0][1].path == [uid("X")]
    # our own message coming back is a duplicate
    back = relay_copy(ok, 7, [uid("X"), uid("A")])
    assert r.receive(back, uid("A"), 1).drop_reason == "duplicate"
    expect_raises(LocalProtocolError, r.receive, "not a message", uid("A"), 2)


def test_relay_copy_keeps_every_field():
    m = MeshMessage(src=uid("S"), dst=uid("D"), data=b"ab", message_id=uid("m2"),
                    origin_id=uid("m1"), ttl=5, path=[uid("S")])
    c = relay_copy(m, 4, [uid("S"), uid("X")])
    for _w, attr, _k in MeshMessage.FIELDS:
        if attr not in ("ttl", "path"):
            assert getattr(c, attr) == getattr(m, attr), attr
    assert c.ttl == 4 and c.path == [uid("S"), uid("X")] and m.ttl == 5
    a = Ack(src=uid("D"), dst=uid("S"), ack_for=uid("m2"), message_id=uid("k"), ttl=3,
            path=[uid("D")])
    ca = relay_copy(a, 2, [uid("D"), uid("X")])
    for _w, attr, _k in Ack.FIELDS:
        if attr not in ("ttl", "path"):
            assert getattr(ca, attr) == getattr(a, attr), attr
    assert ca.encode()  # a valid message


def test_log_records_decisions_and_outcomes():
    recs = []
    r = Router(uid("X"), "seed", log=recs.append)
    r.peer_up(uid("A"), 0)
    r.originate(MeshMessage(src=uid("X"), dst=uid("D"), data=b"", message_id=uid("m"),
                            ttl=8, path=[]), 5)
    r.on_delivery_failed(uid("m"), 10)
    assert [x["event"] for x in recs] == ["originate", "outcome"]
    d = recs[0]
    assert d["forward"] == [uid("A")] and d["dst"] == uid("D") and d["mode"] == "top3"
    f = d["features"][0]
    for k in ("peer", "lat", "up", "rel", "route", "score", "cost"):
        assert k in f, k
    assert recs[1]["ok"] is False and recs[1]["msg_id"] == uid("m")

# The whitepaper strategy (seed) and flooding: decision vectors and unit
# checks. Runs on CPython and MicroPython.
from router_steps import MeshMessage, Router, run_file, uid


def test_seed_and_flood_vectors():
    run_file("router_seed")


def _bcast(mid, path, ttl=8):
    return MeshMessage(src=uid(path[0]), dst=None, data=b"", message_id=uid(mid), ttl=ttl,
                       path=[uid(p) for p in path])


def test_seed_never_exceeds_three_and_respects_exclusions():
    r = Router(uid("X"), "seed")
    peers = ["A", "B", "C", "D", "E", "F"]
    for p in peers:
        r.peer_up(uid(p), 0)
    for i, p in enumerate(peers):
        r.record_rtt(uid(p), 10 * (i + 1), 100)
    for n in range(1, 6):
        path = ["S"] + peers[:n]
        d = r.receive(_bcast("b%d" % n, path), uid(peers[n - 1]), 200)
        sent = [p for p, _m in d.forward]
        assert len(sent) == min(3, len(peers) - n)
        for p in path:
            assert uid(p) not in sent


def test_flood_path_full_is_dropped():
    r = Router(uid("X"), "flood")
    r.peer_up(uid("A"), 0)
    r.peer_up(uid("B"), 0)
    path = ["p%02d" % i for i in range(63)] + ["A"]
    d = r.receive(_bcast("f1", path), uid("A"), 1)
    assert d.deliver and d.drop_reason == "path_full" and d.forward == []


def test_seed_counts_and_status():
    r = Router(uid("X"), "seed")
    r.peer_up(uid("A"), 0)
    r.peer_up(uid("B"), 0)
    r.receive(_bcast("c1", ["S", "A"]), uid("A"), 1)
    r.receive(_bcast("c1", ["S", "B"]), uid("B"), 2)
    st = r.status()
    assert st["strategy"] == "seed" and st["received"] == 2 and st["delivered"] == 1
    assert st["drops"] == {"duplicate": 1} and st["sent"] == 1

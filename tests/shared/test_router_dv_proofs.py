# Announcement proofs once per (destination, seq, neighbour) (docs/PROTOCOL.md
# §11.4): a neighbour that holds dst's proof for seq gets a bare entry; a bare
# entry is accepted only for a pair whose proof the receiver verified. Runs on
# CPython and MicroPython (a toy signature stands in for Ed25519).
import gc

gc.collect()
import hashlib  # noqa: E402

import meshlink.router_dv_bare  # noqa: E402,F401  (_flush loads it: load it on a clean heap)
from meshlink.auth import Auth  # noqa: E402
from meshlink.messages import Routes  # noqa: E402
from meshlink.nodeid import node_id_text_from_public_key  # noqa: E402
from router_steps import Router, uid  # noqa: E402

gc.collect()


def _sign(key):
    def sign(data):
        h = hashlib.sha256(key + data).digest()
        return h + h  # not a signature: a stand-in of the right size
    return sign


def _verify(key, data, sig):
    return _sign(bytes(key))(bytes(data)) == bytes(sig)


def _node(seed):
    """(node id, Auth holding its key)."""
    key = bytes([seed]) * 32
    nid = node_id_text_from_public_key(key)
    auth = Auth(_verify)
    auth.add_signer(nid, key, _sign(key))
    return nid, auth


def _sent(out):
    """{peer: [(dst, seq, hops, has proof)]} of a flush."""
    got = {}
    for p, m in out:
        got.setdefault(p, []).extend((d, s, h, bool(pr)) for d, s, h, pr in m.routes)
    return got


def test_a_proof_goes_once_to_each_neighbour():
    x, ax = _node(1)
    d, ad = _node(2)
    a, b = uid("A"), uid("B")
    r = Router(x, "meshlink", rng=1, options={"announce_ms": 60000, "announce_seq0": 5,
                                               "announce_auth": ax, "hop_ack_ms": 0})
    r.peer_up(a, 0)
    r.peer_up(b, 0)
    first = _sent(r.handle_timer(300))  # the whole table: our own entry, with its proof
    assert first == {a: [(x, 5, 0, True)], b: [(x, 5, 0, True)]}
    proof = ad.announce_proof(d, 3)
    r.receive(Routes(routes=[[d, 3, 1, proof]]), a, 400)
    out = _sent(r.handle_timer(10000))
    # A announced (d, 3) to us, so it holds the proof; B gets it once
    assert out == {a: [(d, 3, 2, False)], b: [(d, 3, 2, True)]}
    # the route through A gets longer, same seq: nobody needs the proof again
    r.receive(Routes(routes=[[d, 3, 2, ""]]), a, 11000)
    assert r.strategy.dv.next_hop(d, None, []) == (a, 3)
    out = _sent(r.handle_timer(20000))
    assert out == {a: [(d, 3, 3, False)], b: [(d, 3, 3, False)]}
    # B reconnects: it gets the whole table with every proof
    r.peer_down(b, 21000)
    r.peer_up(b, 21000)
    out = _sent(r.handle_timer(30000))
    assert out[b] == [(x, 5, 0, True), (d, 3, 3, True)]
    # a fresher seq needs its proof again, everywhere
    r.receive(Routes(routes=[[d, 4, 2, ad.announce_proof(d, 4)]]), a, 31000)
    out = _sent(r.handle_timer(40000))
    assert out == {a: [(d, 4, 3, False)], b: [(d, 4, 3, True)]}
    assert r.strategy.describe()["announce_unproven"] == 0


def test_a_bare_entry_needs_a_proof_verified_before():
    x, ax = _node(1)
    d, ad = _node(2)
    a, b = uid("A"), uid("B")
    r = Router(x, "meshlink", rng=1, options={"announce_ms": 60000, "announce_auth": ax})
    r.peer_up(a, 0)
    r.peer_up(b, 0)
    r.receive(Routes(routes=[[d, 3, 1, ""]]), a, 10)  # never proven here
    assert r.strategy.dv.next_hop(d, None, []) is None
    assert r.strategy.describe()["announce_unproven"] == 1
    r.receive(Routes(routes=[[d, 3, 1, ad.announce_proof(d, 3)]]), a, 20)
    r.receive(Routes(routes=[[d, 3, 0, ""]]), b, 30)  # B's bare entry for the verified pair
    assert r.strategy.dv.next_hop(d, None, []) == (b, 1)
    r.receive(Routes(routes=[[d, 9, 0, ""]]), b, 40)  # a fresher seq, bare: withdraws B's
    assert r.strategy.dv.next_hop(d, None, []) == (a, 2)
    assert r.strategy.describe()["announce_unproven"] == 2
    assert r.strategy.dv.forged == 0


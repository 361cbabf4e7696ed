# Replays router decision scenarios (tests/vectors/router_*.json) step by step
# against meshlink.router, on CPython and MicroPython. Node and message names
# in the vectors are short ("A", "m1"); they become UUIDs here. The vector
# files hold one case per line so a 96K heap parses one case at a time.
# Test modules import the router through here: collecting garbage between the
# big imports keeps MicroPython's 96K heap from fragmenting while it compiles.
import gc

gc.collect()
from meshlink.messages import Ack, Graft, IHave, MeshMessage, Prune, Routes  # noqa: E402

gc.collect()
from meshlink.router import Router  # noqa: E402
from vectors import iter_lines  # noqa: E402

gc.collect()


def uid(name):
    """'A' -> 00000000-0000-4000-8000-000000000041 (hex of the name's bytes)."""
    h = ""
    for ch in name:
        h += "%02x" % ord(ch)
    return "00000000-0000-4000-8000-" + ("0" * 12 + h)[-12:]


def msg(mid, src, dst, path, ttl=9):
    """A MeshMessage named in short names (dst None: a broadcast)."""
    return MeshMessage(src=uid(src), dst=uid(dst) if dst else None, data=b"",
                       message_id=uid(mid), ttl=ttl, path=[uid(p) for p in path])


def via(decision):
    """The neighbours a router Decision forwards to, in order."""
    return [p for p, _m in decision.forward]


def _ids(names):
    return [uid(n) for n in names]


def routes(entries):
    """[["A", seq, hops], ...] -> the same with UUIDs and an empty proof
    (these vectors run without meshlink.auth; tests/shared/test_auth.py has
    the signed form)."""
    return [[uid(n), seq, hops, ""] for n, seq, hops in entries]


def make_msg(spec):
    t = spec["type"]
    if t == "mesh":
        return MeshMessage(src=uid(spec["src"]), dst=uid(spec["dst"]) if spec.get("dst") else None,
                           data=b"x", message_id=uid(spec["id"]),
                           origin_id=uid(spec.get("origin", spec["id"])), ttl=spec["ttl"],
                           path=_ids(spec["path"]))
    if t == "ack":
        return Ack(src=uid(spec["src"]), dst=uid(spec["dst"]), ack_for=uid(spec["for"]),
                   message_id=uid(spec["id"]), ttl=spec["ttl"], path=_ids(spec["path"]))
    if t == "ihave":
        return IHave(ids=_ids(spec["ids"]))
    if t == "graft":
        return Graft(ids=_ids(spec["ids"]))
    if t == "routes":
        return Routes(routes=routes(spec["routes"]))
    return Prune()


def new_router(case):
    gc.collect()
    opts = case.get("options")
    if case["strategy"] == "meshlink" and "hop_ack_ms" not in (opts or {}):
        # the vectors' decisions without hop acks and sequence number requests
        # (on by default on CPython, off on MicroPython): their own tests are
        # tests/shared/test_router_hop.py and test_router_dv_req.py
        opts = dict(opts or {}, hop_ack_ms=0, seq_requests=False)
    return Router(uid(case["node"]), case["strategy"], rng=case.get("rng", 1),
                  default_ttl=case.get("default_ttl", 8), options=opts,
                  dedup_window_ms=case.get("dedup_window_ms", 60000))


def run_file(name):
    """Replay every case of a vector file; returns the number of cases."""
    gc.collect()
    from router_check import run_step
    r = case = None
    n = i = 0
    for obj in iter_lines(name):
        if "case" in obj:
            case = obj["case"]
            r = None  # the previous case's router is garbage before the next is built
            r = new_router(case)
            n += 1
            i = 0
        else:
            run_step(r, case, i, obj["step"])
            i += 1
    assert n > 0, name
    return n

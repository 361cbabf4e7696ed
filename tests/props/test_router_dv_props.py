"""Destination announcements under arbitrary input: a `routes` message either
decodes or raises DecodeError; a router fed any sequence of announcements,
retractions and link changes keeps its invariants (bounded table, the
selected route is a feasible candidate with the announced hop count, no
candidate through a down peer)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from meshlink import messages
from meshlink.errors import DecodeError
from meshlink.router import Router
from meshlink.router_dv import CANDS, FD_HOPS, FD_SEQ, HOPS, INFINITY, SEQ, VIA

NODES = ["00000000-0000-4000-8000-%012x" % i for i in range(12)]
ME, PEERS, DSTS = NODES[0], NODES[1:5], NODES[1:]

junk = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=4), max_leaves=12)


@given(st.lists(junk, max_size=6))
def test_routes_decode_or_typed_error(entries):
    raw = json.dumps({"type": "routes", "v": 1, "routes": entries}).encode()
    try:
        msg = messages.decode(raw)
    except DecodeError:
        return
    assert messages.decode(msg.encode()).routes == msg.routes


entry = st.tuples(st.sampled_from(DSTS), st.integers(0, 6),
                  st.sampled_from([0, 1, 2, 3, 5, 8, INFINITY]))
event = st.one_of(
    st.tuples(st.just("routes"), st.sampled_from(PEERS), st.lists(entry, max_size=8)),
    st.tuples(st.just("down"), st.sampled_from(PEERS), st.none()),
    st.tuples(st.just("up"), st.sampled_from(PEERS), st.none()),
    st.tuples(st.just("timer"), st.none(), st.none()))


@settings(max_examples=300, deadline=None)
@given(st.lists(event, max_size=40), st.integers(0, 3))
def test_announcement_invariants(events, slack):
    r = Router(ME, "meshlink", rng=1, options={
        "announce_ms": 5000, "announce_slack": slack, "max_routes": 8, "candidates": 2})
    dv = r.strategy.dv
    for p in PEERS:
        r.peer_up(p, 0)
    now = 0
    for kind, peer, arg in events:
        now += 700
        if kind == "routes":
            r.receive(messages.Routes(routes=[list(x) + [""] for x in arg]), peer, now)
        elif kind == "down":
            r.peer_down(peer, now)
        elif kind == "up":
            r.peer_up(peer, now)
        else:
            for _p, m in r.handle_timer(now):
                if type(m) is messages.Routes:  # (hop acks go out on timers too)
                    assert len(m.routes) <= messages.MAX_ROUTES
        assert len(dv.table) <= 8
        for dst, e in dv.table.items():
            assert dst != ME and (len(e) - CANDS) % 3 == 0 and len(e) - CANDS <= 6
            vias = e[CANDS::3]
            assert len(set(vias)) == len(vias) and all(v in r.up_set for v in vias)
            if e[VIA] < 0:
                assert e[HOPS] == INFINITY
                continue
            i = e[VIA]
            assert CANDS <= i < len(e) and (i - CANDS) % 3 == 0
            assert e[HOPS] == e[i + 2] + 1 and e[SEQ] == e[i + 1]
            # feasibility: the route in use carries the feasibility distance's
            # sequence number and at most slack hops more than its best
            assert e[SEQ] == e[FD_SEQ] and e[HOPS] <= e[FD_HOPS] + slack

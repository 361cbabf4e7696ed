# Sequence number requests for router_dv (Babel's seqno request, RFC 8966
# §3.8.2; docs/PROTOCOL.md §7.4): a node whose route to dst starved (no
# candidate feasible after a failure, because the detour is longer than the
# feasibility slack allows) asks dst for a newer sequence number, which makes
# every candidate feasible again, instead of waiting up to announce_ms for
# dst's next one. Rule: sans-I/O; imported by router_dv only when a request
# is made or received (never on a board: announcements are off there).
#
#   a node that needs a starved route (a message to route, and candidates
#   left, none feasible) sends SeqRequest(dst, FD seq + 1) to the neighbour
#   of its best candidate, at most once per dst per REQ_HOLD_MS: on demand,
#   so that routes nobody uses cost nothing (requesting on every starvation
#   doubled the announcement traffic of a 300-node mesh under 10 % churn);
#   a node that holds a route to dst at that seq or newer answers with its
#   announcement (at once, once per REQ_HOLD_MS); dst itself raises its sequence
#   number by one (at most once per REQ_BUMP_MS, so a flood of requests
#   cannot run it ahead of the wall-clock seconds a restart starts from);
#   any other node passes the request on to its own best next hop to dst
#   (not back, at most once per dst per REQ_HOLD_MS).
# A request claims nothing about anyone: the answer is dst's own signed
# sequence number, checked as any announcement. With hop acknowledgements
# (router_hop) a request is acknowledged hop by hop like a directed message
# (the HopAck names its dst), and one not taken goes another way.
from meshlink.messages import SeqRequest

# DistanceVector.req: [requests to send, dst -> when one last went out,
# when they are due (None: nothing), when ours was last raised on request]
OUT, SENT, DUE, BUMPED = 0, 1, 2, 3
INFINITY = 255
CANDS = 5  # router_dv: first candidate index in a table entry
FD_SEQ, SEQ, HOPS, VIA = 0, 2, 3, 4
REQ_HOLD_MS = 500  # a node sends or passes on one request per dst this often
REQ_BUMP_MS = 2000  # dst raises its sequence number on request at most this often


def _best(dv, e, not_via):
    """The via of the candidate with the fewest hops, not not_via and not an
    avoided neighbour (router_hop: one that leaves copies untaken), or None."""
    best = None
    for i in range(CANDS, len(e), 3):
        if e[i] != not_via and e[i] not in dv.avoid and (best is None or e[i + 2] < e[best + 2]):
            best = i
    return None if best is None else e[best]


def new_state():
    return [[], {}, None, -1 << 30]


def _held(dv, dst, now_ms):
    """True if a request for dst went out less than REQ_HOLD_MS ago; else notes one now."""
    sent = dv.req[SENT]
    last = sent.get(dst)
    if last is not None and now_ms - last < REQ_HOLD_MS:
        return True
    if len(sent) >= dv.max_dsts:
        sent.clear()  # bounded: forgetting only allows one more request
    sent[dst] = now_ms
    return False


def _send(dv, peer, req, now_ms):
    dv.req[OUT].append((peer, req))
    dv.req[DUE] = now_ms  # requests go at once


def starved(dv, dst, e, now_ms):
    """A message needs dst's route, which has candidates but none feasible:
    ask dst for a newer seq through the best of them (once per hold time;
    the next message asks again, so a request lost at a failed neighbour
    is not the last)."""
    via = _best(dv, e, None)
    if via is None or _held(dv, dst, now_ms):
        return
    _send(dv, via, SeqRequest(dst=dst, seq=e[FD_SEQ] + 1), now_ms)


def due_requests(dv):
    """The requests to send now."""
    out = dv.req[OUT]
    dv.req[OUT] = []
    dv.req[DUE] = None
    return out


def on_request(dv, msg, from_peer, now_ms):
    """A neighbour's SeqRequest: bump, answer or pass it on."""
    r = dv.r
    dv.now_ms = now_ms
    dst = msg.dst
    if dst == r.node_id or dst in r.served:
        if msg.seq > dv.seq and now_ms - dv.req[BUMPED] >= REQ_BUMP_MS:
            dv.req[BUMPED] = now_ms
            dv.seq += 1
            dv.dirty.add(dst)
            dv.asap = True
            dv._schedule(now_ms)
        return
    e = dv.table.get(dst)
    if e is None:
        return
    if e[VIA] >= 0 and e[HOPS] != INFINITY and e[SEQ] >= msg.seq:
        # our route is new enough: announce it at once (once per hold time:
        # requests cannot make us announce faster than that)
        if not _held(dv, dst, now_ms):
            dv.dirty.add(dst)
            dv.asap = True
            dv._schedule(now_ms)
        return
    via = _via(dv, e, from_peer)
    if via is None or _held(dv, dst, now_ms):
        return
    _send(dv, via, SeqRequest(dst=dst, seq=msg.seq), now_ms)


def _via(dv, e, not_via):
    """Where a request for e's destination goes: the selected next hop, else
    the best candidate; never not_via (None if nowhere)."""
    via = e[e[VIA]] if e[VIA] >= 0 else _best(dv, e, not_via)
    return None if via == not_via else via


def pass_again(dv, msg, lost_at):
    """A request that neighbour lost_at did not take (router_hop): where it
    goes now, [(neighbour, request)] or []. lost_at is avoided by now, so the
    route to dst was reselected without it."""
    e = dv.table.get(msg.dst)
    via = None if e is None else _via(dv, e, lost_at)
    return [] if via is None else [(via, msg)]

# Destination announcements for the meshlink strategy: a distance vector
# with Babel's feasibility condition (RFC 8966 §2.4), so that a node that has
# never heard from a destination still knows a next hop without flooding a
# discovery. Rule: sans-I/O; bounded (max_routes destinations, `candidates`
# neighbours per destination); deterministic given the rng.
#
#   every node announces itself (and the IDs it serves) at hop count 0 with
#   its sequence number, which it raises every announce_ms;
#   a neighbour's announcement (dst, seq, hops) is a candidate next hop at
#   hops + 1; the selected route is the feasible candidate with the fewest
#   hops, feasible meaning seq > FD.seq or (seq == FD.seq and hops < FD.hops)
#   where FD is the best (seq, hops) we have announced for dst: routes that
#   could lead back through us are never selected, so announcements cannot
#   count to infinity;
#   a change of the selected (seq, hops) is announced to every neighbour,
#   batched every announce_flush_ms (bad news: a tenth of it; up to
#   MAX_ROUTES = 80 entries per Routes message); a new neighbour gets the
#   whole table; no feasible candidate -> we announce
#   hops 255 (retraction) until the destination's next sequence number
#   (or one a node that needs the route asks for: router_dv_req).
# The forwarding decision (router_meshlink) compares this next hop with the
# route learned from traffic and takes the shorter.
from meshlink.messages import MAX_ROUTES, Routes

INFINITY = 255  # hops of a retraction (unreachable)
# table entry: [fd_seq, fd_hops, seq, hops, index of the selected candidate or -1,
#               cand_via, cand_seq, cand_hops, ...]
FD_SEQ, FD_HOPS, SEQ, HOPS, VIA, CANDS = 0, 1, 2, 3, 4, 5


def _drop(e, i):
    """Remove the candidate at index i, keeping the selected index right."""
    del e[i:i + 3]
    if e[VIA] == i:
        e[VIA] = -1
    elif e[VIA] > i:
        e[VIA] -= 3


class DistanceVector:
    def __init__(self, router, opts):
        self.r = router
        self.period_ms = opts["announce_ms"]
        self.flush_ms = opts["announce_flush_ms"]
        self.max_dsts = opts["max_routes"]
        self.max_cands = 3 * opts["candidates"]
        self.seq = opts["announce_seq0"]
        self.slack = opts["announce_slack"]
        self.table = {}
        self.dirty = set()  # destinations whose selected route changed
        self.full = set()  # new neighbours that need the whole table
        self.flush_due = None
        self.urgent = False  # the pending batch holds news that should go soon ...
        self.asap = False  # ... or at once: a newer seq that starved nodes asked for
        self.bump_due = None
        self.refused = 0  # announcements dropped because the table was full
        self.auth = opts["announce_auth"]
        self.forged = 0  # entries dropped: no valid proof from their destination
        self.unproven = 0  # bare entries (no proof) for a (dst, seq) we hold no proof of
        # proof once per (dst, seq, neighbour) (docs/PROTOCOL.md §11.4): flush
        # number n; proved[dst] = (seq, n) when every neighbour up at flush n
        # got dst's entry at seq; joined[p] = the flush that gave p our table.
        # One attribute: [n, proved, joined] (a 96K heap counts them)
        self.pn = [0, {}, {}]  # type: list
        self.max_hops = 0  # farthest destination announced to us (the network's extent)
        self.changed_ms = {}  # dst -> when its selected route last changed (fresher than learned?)
        self.now_ms = 0
        self.owner = {}  # dst -> the neighbour whose announcement created its entry ...
        self.owned = {}  # ... and per neighbour how many (the per-neighbour quota)
        self.quota = max(1, int(opts["max_routes"] * opts["peer_route_share"]))
        # sequence number requests (router_dv_req; off on a board): its state
        self.req = None
        if opts["seq_requests"]:
            from meshlink.router_dv_req import new_state
            self.req = new_state()
        self.avoid = {}  # neighbours whose candidates are passed over (router_hop)

    # -- the forwarding side ---------------------------------------------------
    def next_hop(self, dst, exclude, path, now_ms=None):
        """(via, hops) towards dst, or None. The selected route if usable here,
        else the candidate with the fewest hops not in the message's path.
        With now_ms (a message needs the route now) a starved route asks dst
        for a newer seq (router_dv_req: on demand, so an idle mesh under
        churn does not pay for routes nobody uses)."""
        e = self.table.get(dst)
        if e is None:
            return None
        sel = e[VIA]
        if sel < 0 and now_ms is not None and self.req is not None and len(e) > CANDS:
            from meshlink.router_dv_req import starved
            starved(self, dst, e, now_ms)
        if sel >= 0:
            via = e[sel]
            if via != exclude and via not in path:
                return via, e[HOPS]
        best = None
        for i in range(CANDS, len(e), 3):
            v = e[i]
            if v != exclude and v not in path and (best is None or e[i + 2] < best[1]):
                best = (v, e[i + 2])
        return None if best is None else (best[0], best[1] + 1)

    def destinations(self):
        """{dst: (selected next hop, hops)} of every reachable destination."""
        out = {}
        for dst, e in self.table.items():
            if e[VIA] >= 0 and e[HOPS] != INFINITY:
                out[dst] = (e[e[VIA]], e[HOPS])
        return out

    # -- announcements received ------------------------------------------------
    def on_routes(self, msg, from_peer, now_ms):
        """Apply a neighbour's Routes message. The hot loop of a converging mesh:
        candidate lookup is a C-level `in`/index (next hops are the only
        strings in an entry)."""
        if from_peer not in self.r.up_set:
            return
        self.now_ms = now_ms
        table = self.table
        get = table.get
        select = self._select
        consider = self._consider
        far = self.max_hops - 1
        full = CANDS + self.max_cands
        auth = self.auth
        for dst, seq, hops, proof in msg.routes:
            if hops < INFINITY and auth is not None and not auth.check_announce(dst, seq, proof):
                if proof:
                    self.forged += 1  # only dst may claim a sequence number of dst
                    continue
                # a bare entry whose proof we no longer hold: the sender's
                # route is unproven here, so it withdraws its candidate
                self.unproven += 1
                hops = INFINITY
            if far < hops < INFINITY:
                far = hops
            e = get(dst)
            if e is None:
                if not self._admit(dst, from_peer):
                    continue
                if hops >= INFINITY:
                    # known unreachable (no candidate): no search from here
                    # while it lasts; forgotten at our next seq (_expire)
                    table[dst] = [0, INFINITY, seq, INFINITY, -1]
                    continue
                table[dst] = e = [0, INFINITY, 0, INFINITY, -1, from_peer, seq, hops]
                select(dst, e)
            elif from_peer in e[CANDS::3]:  # the vias only: no str-int compares
                i = e.index(from_peer, CANDS)
                if hops >= INFINITY:
                    _drop(e, i)  # unselects it if it was the selected one
                    if e[VIA] < 0:
                        select(dst, e)
                elif e[i + 1] == seq and e[i + 2] == hops:
                    continue  # nothing new
                else:
                    e[i + 1] = seq
                    e[i + 2] = hops
                    if i == e[VIA]:
                        select(dst, e)  # the route in use changed: look at all
                    else:
                        consider(dst, e, i)
            elif hops >= INFINITY:
                continue
            elif len(e) < full:
                e.append(from_peer)
                e.append(seq)
                e.append(hops)
                consider(dst, e, len(e) - 3)
            elif seq > e[SEQ] or hops < e[FD_HOPS] + self.slack:
                # full: a newer one, or a backup that would be feasible,
                # displaces the worst candidate (admitting only those that
                # beat the route in use left a node with no feasible backup
                # when it failed, though a neighbour had one)
                w = self._worst(e)
                if (seq, -hops) > (e[w + 1], -e[w + 2]):
                    e[w] = from_peer
                    e[w + 1] = seq
                    e[w + 2] = hops
                    if w == e[VIA]:
                        select(dst, e)
                    else:
                        consider(dst, e, w)
        self.max_hops = far + 1
        self._schedule(now_ms)

    def _admit(self, dst, from_peer):
        """A new destination: not us, not served by us, room in the table and
        in from_peer's share of it (one neighbour cannot fill it)."""
        r = self.r
        if dst == r.node_id or dst in r.served:
            return False
        n = self.owned.get(from_peer, 0)
        if len(self.table) >= self.max_dsts or n >= self.quota:
            self.refused += 1
            return False
        self.owner[dst] = from_peer
        self.owned[from_peer] = n + 1
        return True

    def _remove(self, dst):
        """Delete dst's entry (and its owner's count)."""
        self.table.pop(dst, None)
        self.changed_ms.pop(dst, None)
        via = self.owner.pop(dst, None)
        if via is not None:
            n = self.owned.get(via, 0) - 1
            if n > 0:
                self.owned[via] = n
            else:
                self.owned.pop(via, None)

    def _worst(self, e):
        w = CANDS
        for i in range(CANDS + 3, len(e), 3):
            if (e[i + 1], -e[i + 2]) < (e[w + 1], -e[w + 2]):
                w = i
        return w

    def _consider(self, dst, e, i):
        """Candidate i is new or changed and is not the selected one: it wins
        only if feasible with fewer hops than the selected route (the same
        answer as _select, which the current selection already is for the
        other candidates; a tie keeps the current one)."""
        sel = e[VIA]
        if sel < 0:
            self._select(dst, e)
            return
        if e[i] in self.avoid:
            return
        s = e[i + 1]
        h = e[i + 2]
        fd_seq = e[FD_SEQ]
        if h + 1 >= e[HOPS] or not (s > fd_seq or (s == fd_seq and h < e[FD_HOPS] + self.slack)):
            return
        hops = h + 1
        e[VIA] = i
        self.changed_ms[dst] = self.now_ms
        if s > fd_seq:
            e[FD_SEQ] = s
            e[FD_HOPS] = hops
        elif hops < e[FD_HOPS]:
            e[FD_HOPS] = hops
        e[SEQ] = s
        e[HOPS] = hops
        self.dirty.add(dst)

    def _select(self, dst, e):
        """Pick the feasible candidate with the fewest hops (keep the current
        one on a tie); mark dst dirty if the announced (seq, hops) changed."""
        fd_seq = e[FD_SEQ]
        fd_hops = e[FD_HOPS]
        slack = self.slack
        cur = e[e[VIA]] if e[VIA] >= 0 else None
        best = -1
        avoid = self.avoid
        for i in range(CANDS, len(e), 3):
            s = e[i + 1]
            h = e[i + 2]
            if e[i] in avoid:
                continue
            if s > fd_seq or (s == fd_seq and h < fd_hops + slack):
                if best < 0 or h < e[best + 2] or (h == e[best + 2] and e[i] == cur):
                    best = i
        if best < 0:
            e[VIA] = -1
            if e[HOPS] != INFINITY:
                e[HOPS] = INFINITY
                self.dirty.add(dst)
                self.urgent = True  # bad news: a retraction goes soon
            return
        seq = e[best + 1]
        if e[HOPS] == INFINITY:
            self.urgent = True  # newly reachable (a node that came up): tell soon
        # a newer seq within 5 s of a request for dst that started or passed here
        asked = seq > e[SEQ] and self.req is not None and \
            self.now_ms - self.req[1].get(dst, -5000) < 5000
        hops = e[best + 2] + 1
        if e[VIA] != best or seq != e[SEQ] or hops != e[HOPS]:
            self.changed_ms[dst] = self.now_ms
        e[VIA] = best
        if seq > fd_seq:
            e[FD_SEQ] = seq
            e[FD_HOPS] = hops
        elif hops < fd_hops:
            e[FD_HOPS] = hops
        if seq != e[SEQ] or hops != e[HOPS]:
            if hops > e[HOPS]:
                self.urgent = True  # bad news (a longer detour): tell soon
            if asked:
                # the answer to a request that passed here or started here
                # (router_dv_req): starved nodes wait for it, tell at once
                self.asap = True
            e[SEQ] = seq
            e[HOPS] = hops
            self.dirty.add(dst)

    # -- peers -------------------------------------------------------------------
    def peer_up(self, peer_id, now_ms):
        """A new neighbour gets the whole table soon."""
        self.full.add(peer_id)
        self.pn[2].pop(peer_id, None)
        self.urgent = True
        self._schedule(now_ms)

    def on_served(self, node_id):
        """A served ID was added or removed: announce it at the next tick."""
        self.dirty.add(node_id)
        self._remove(node_id)
        if self.flush_due is None:
            self.flush_due = 0

    def peer_down(self, peer_id, now_ms):
        """Forget every candidate through peer_id and reselect."""
        self.full.discard(peer_id)
        self.pn[2].pop(peer_id, None)
        self.now_ms = now_ms
        for dst, e in self.table.items():
            if peer_id in e:
                _drop(e, e.index(peer_id))
                self._select(dst, e)
        self._schedule(now_ms)

    # -- timers ------------------------------------------------------------------
    def _schedule(self, now_ms):
        """Plan the next batch: a tenth of the delay for urgent news, else
        0.5-1.5 x announce_flush_ms (jittered so neighbours do not synchronise).
        Urgent: a new neighbour, a destination newly reachable, or bad news
        (a route lost or longer, after a neighbour went down or announced
        so): a detour is then known end to end in about hops x flush_ms / 10,
        not hops x flush_ms; at most one batch per flush_ms / 10 either way."""
        if not (self.dirty or self.full):
            return
        if self.urgent or self.asap:
            soon = now_ms + self.flush_ms // (100 if self.asap else 10)
            if self.flush_due is None or self.flush_due > soon:
                self.flush_due = soon
        elif self.flush_due is None:
            self.flush_due = now_ms + self.flush_ms // 2 + int(self.r.rng.random() * self.flush_ms)

    def next_deadline(self):
        due = self.flush_due
        for t in (self.bump_due, None if self.req is None else self.req[2]):
            if t is not None and (due is None or t < due):
                due = t
        return due

    def handle_timer(self, now_ms):
        """Raise our sequence number when due; send the batched announcements."""
        if self.bump_due is None:
            self.bump_due = now_ms + self.period_ms
        elif now_ms >= self.bump_due:
            self.seq += 1
            self.bump_due = now_ms + self.period_ms
            self.dirty.add(self.r.node_id)
            for sid in self.r.served:
                self.dirty.add(sid)
            self._expire()
            self._schedule(now_ms)
        out = []
        if self.req is not None and self.req[2] is not None and now_ms >= self.req[2]:
            from meshlink.router_dv_req import due_requests
            out = due_requests(self)
        if self.flush_due is None or now_ms < self.flush_due:
            return out
        self.flush_due = None
        return out + self._flush()

    def _expire(self):
        """Drop unreachable destinations without candidates (kept until now so
        their feasibility distance outlived any stale announcement in flight)."""
        gone = [d for d, e in self.table.items() if e[HOPS] == INFINITY and len(e) == CANDS]
        for d in gone:
            self._remove(d)
        if self.auth is not None:
            from meshlink.router_dv_bare import forget
            forget(self)

    def _flush(self):
        """The batch: the whole table to new neighbours, what changed to the
        others. An entry goes bare (proof "") to a neighbour that holds dst's
        proof for that seq: it announced (dst, seq) to us, or every neighbour
        up since it joined got (dst, seq) from us (PROTOCOL §11.4)."""
        self.urgent = self.asap = False
        pn = self.pn
        pn[0] = n = pn[0] + 1
        out = []
        up = self.r.up_set
        full = sorted(p for p in self.full if p in up)
        self.full = set()
        if full:
            whole = self._messages(self._entries(None))
            for p in full:
                pn[2][p] = n
                for m in whole:
                    out.append((p, m))
        if self.dirty and self.auth is not None:
            # per-neighbour batches (bare entries): its own module, loaded
            # only when proofs are on (never on a board)
            from meshlink.router_dv_bare import batch
            batch(self, out, full, n)
        elif self.dirty:
            part = self._messages(self._entries(sorted(self.dirty)))
            self.dirty = set()
            for p in self.r.up:
                if p not in full:
                    for m in part:
                        out.append((p, m))
        return out

    def _entries(self, dsts):
        """[dst, seq, hops, proof] of dsts (None: ourselves and every reachable one)."""
        r = self.r
        out = []
        entry = self._entry
        if dsts is None:
            for d in [r.node_id] + sorted(r.served):
                entry(out, d, self.seq, 0)
            for d, e in self.table.items():
                # retractions too: a new neighbour (a node that restarted)
                # learns which destinations are down without searching
                entry(out, d, e[SEQ], e[HOPS])
            return out
        me = r.node_id
        served = r.served
        for d in dsts:
            if d == me or d in served:
                entry(out, d, self.seq, 0)
            else:
                e = self.table.get(d)
                if e is not None:
                    entry(out, d, e[SEQ], e[HOPS])
                else:  # a served ID we let go of
                    entry(out, d, self.seq, INFINITY)
        return out

    def _entry(self, out, dst, seq, hops):
        """Append [dst, seq, hops, proof]: the destination's own proof, which
        relays pass on unchanged; a route we can no longer prove is left out
        (a retraction needs none: it only withdraws the sender's own route)."""
        if self.auth is None or hops == INFINITY:
            out.append([dst, seq, hops, ""])
            return
        proof = self.auth.announce_proof(dst, seq)
        if proof or hops == INFINITY:
            out.append([dst, seq, hops, proof])

    def _messages(self, entries):
        return [Routes(routes=entries[i:i + MAX_ROUTES])
                for i in range(0, len(entries), MAX_ROUTES)]

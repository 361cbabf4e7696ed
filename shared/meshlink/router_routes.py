# Route table of the meshlink strategy: per destination up to `candidates`
# next hops learned from the paths of received copies, with the cost,
# hysteresis, exploration and Ack credit rules of docs/ROUTING.md.
# Rule: sans-I/O; bounded (max_routes destinations, LRU-ish eviction).
# Options and their defaults: router_opts.
from meshlink.messages import MAX_TTL
from meshlink.router_core import ROUTE_FAILED, ROUTE_OK


class RouteTable:
    """dst -> [[via, hops, confirmed_ms, fails], ...] plus the next hop in use."""

    def __init__(self, router, opts):
        self.r = router
        self.o = opts
        self.refresh_ms = opts["refresh_ms"]
        self.routes = {}
        self.current = {}  # dst -> via in use (hysteresis)
        self.max_hops = 0  # longest path seen (the network's extent)
        self.pending = {}  # our message id -> [dst, via or None, mode]
        self.ring = {}  # dst -> discovery TTL for the next attempt
        self.neg = {}  # dst -> [no discovery before this ms, backoff_ms]: the negative cache
        self.gone = {}  # neighbour we declared down -> until when no search for it
        self.owner = {}  # dst -> the neighbour whose copy created its entry ...
        self.owned = {}  # ... and per neighbour how many (the per-neighbour quota)
        self.quota = max(1, int(opts["max_routes"] * opts["peer_route_share"]))
        self.peer_fails = {}  # neighbour -> unacknowledged routed messages in a row

    def learn(self, path, from_peer, now_ms, limit=0):
        """Routes to the nodes of path (received from from_peer): all of them,
        or (limit > 0) the origin and the last `limit` hops. The hot loop of
        a relay: one dict lookup per hop in the common case."""
        k = len(path) - 1
        if k < 0 or path[k] != from_peer or self.r.node_id in path:
            return
        if k >= self.max_hops:
            self.max_hops = k + 1
        up = self.r.up_set
        get = self.routes.get
        refresh = self.refresh_ms
        stop = k - limit if 0 < limit < k else 0
        j = k
        via = from_peer
        for i in range(k, stop - 1, -1):
            node = path[i]
            if node in up:
                j = i  # a neighbour: reached directly, and a shorter way on
                via = node
                continue
            hops = j - i + 1
            cands = get(node)
            if cands:
                for c in cands:
                    if c[0] == via:  # refresh this next hop
                        if hops <= c[1] or now_ms - c[2] >= refresh:
                            c[1] = hops
                        c[2] = now_ms
                        break
                else:
                    self._update(node, via, hops, now_ms)
            else:
                self._update(node, via, hops, now_ms)
        if stop > 0:
            node = path[0]
            if node not in up:
                for i in range(stop - 1, 0, -1):
                    if path[i] in up:
                        j = i
                self._update(node, path[j], j + 1, now_ms)

    def _update(self, dst, via, hops, now_ms):
        cands = self.routes.get(dst)
        if cands is None:
            if self.owned.get(via, 0) >= self.quota:
                self._evict(via)  # a neighbour over its share displaces only its own
            elif len(self.routes) >= self.o["max_routes"]:
                self._evict()
            self.routes[dst] = [[via, hops, now_ms, 0]]
            self.owner[dst] = via
            self.owned[via] = self.owned.get(via, 0) + 1
            return
        for c in cands:
            if c[0] == via:
                if hops <= c[1] or now_ms - c[2] >= self.refresh_ms:
                    c[1] = hops
                c[2] = now_ms
                return
        if len(cands) < self.o["candidates"]:
            cands.append([via, hops, now_ms, 0])
            return
        worst = None
        for c in cands:
            if worst is None or (c[1] + 2 * c[3], -c[2]) > (worst[1] + 2 * worst[3], -worst[2]):
                worst = c
        if hops < worst[1] + 2 * worst[3] or now_ms - worst[2] > self.o["route_ttl_ms"]:
            worst[0] = via
            worst[1] = hops
            worst[2] = now_ms
            worst[3] = 0

    def _evict(self, owner=None):
        """Forget the eighth of destinations confirmed longest ago (of those
        owner brought, if given)."""
        ages = []
        for dst in self.routes:
            if owner is not None and self.owner.get(dst) != owner:
                continue
            newest = 0
            for c in self.routes[dst]:
                if c[2] > newest:
                    newest = c[2]
            ages.append((newest, dst))
        ages.sort()
        for _t, dst in ages[:max(1, len(ages) // 8)]:
            self._forget(dst)

    def _forget(self, dst):
        del self.routes[dst]
        self.current.pop(dst, None)
        via = self.owner.pop(dst, None)
        if via is not None:
            n = self.owned.get(via, 0) - 1
            if n > 0:
                self.owned[via] = n
            else:
                self.owned.pop(via, None)

    def forget_via(self, via):
        """Drop every learned candidate through via (it stopped producing
        delivery proofs); destinations left without one are forgotten."""
        gone = []
        for dst, cands in self.routes.items():
            for c in cands:
                if c[0] == via:
                    cands.remove(c)
                    if self.current.get(dst) == via:
                        del self.current[dst]
                    break
            if not cands:
                gone.append(dst)
        for dst in gone:
            self._forget(dst)

    def confirmed_ms(self, dst, via):
        """When the learned route dst via `via` (None: any) was last
        confirmed (-1: none)."""
        t = -1
        for c in self.routes.get(dst) or ():
            if (via is None or c[0] == via) and c[2] > t:
                t = c[2]
        return t

    def ranked(self, dst, exclude, path, now_ms):
        """Usable candidates for dst as (cost, via, hops), cheapest first."""
        cands = self.routes.get(dst)
        out = []
        if not cands:
            return out
        r = self.r
        up = r.up_set
        ttl = self.o["route_ttl_ms"]
        for c in cands:
            via = c[0]
            if via not in up or via == exclude or via in path or now_ms - c[2] > ttl:
                continue
            cost = (r.peer(via).link_cost() + c[1] - 1) * (1 + c[3])
            out.append((cost, via, c[1]))
        out.sort()
        return out

    def freshest(self, dst, exclude, path, now_ms, fresh_ms):
        """(via, hops) of the usable route to dst confirmed last, if less than
        fresh_ms ago (a copy from dst just came that way), else None."""
        best = None
        up = self.r.up_set
        for c in self.routes.get(dst) or ():
            if c[0] in up and c[0] != exclude and c[0] not in path and \
                    now_ms - c[2] < fresh_ms and (best is None or c[2] > best[2]):
                best = c
        return None if best is None else (best[0], best[1])

    def next_hop(self, dst, exclude, path, now_ms):
        """(via, hops) for dst with hysteresis and exploration, or None."""
        ranked = self.ranked(dst, exclude, path, now_ms)
        if not ranked:
            return None
        best = ranked[0]
        cur = self.current.get(dst)
        if cur is not None and cur != best[1]:
            for c in ranked:
                if c[1] == cur and best[0] > c[0] * (1 - self.o["hysteresis"]):
                    best = c
                    break
        self.current[dst] = best[1]
        if len(ranked) > 1 and self.o["explore"] > 0:
            alt = ranked[1] if ranked[0] is best else ranked[0]
            if alt[0] <= best[0] * self.o["explore_ratio"] and \
                    self.r.rng.random() < self.o["explore"]:
                return alt[1], alt[2]
        return best[1], best[2]

    def blame(self, dst, via, ok, now_ms):
        cands = self.routes.get(dst)
        if cands:
            for c in cands:
                if c[0] == via:
                    if ok:
                        c[3] = 0
                        c[2] = now_ms
                    else:
                        c[3] += 1
                        if c[3] >= self.o["max_fails"]:
                            cands.remove(c)
                    break
            if not ok:
                self.current.pop(dst, None)
        if ok:
            self.peer_fails.pop(via, None)
        else:
            n = self.peer_fails.get(via, 0) + 1
            if n >= self.o["peer_max_fails"]:
                # unacknowledged through via for several destinations in a
                # row: none of its learned routes is trusted any more
                self.peer_fails.pop(via, None)
                self.forget_via(via)
            else:
                if via not in self.peer_fails and len(self.peer_fails) >= 256:
                    self.peer_fails = {}
                self.peer_fails[via] = n
        p = self.r.peer(via)
        if p is not None:
            p.record(ROUTE_OK if ok else ROUTE_FAILED, None, now_ms)

    # -- TTLs ----------------------------------------------------------------
    def route_ttl(self, hops):
        """Twice the learned distance + margin: room for a relay's local repair."""
        return min(MAX_TTL, 2 * hops + self.o["ttl_margin"])

    def extent_ttl(self):
        return min(MAX_TTL, max(self.r.default_ttl, self.max_hops + self.o["ttl_margin"]))

    def broadcast_ttl(self):
        """Twice the extent + margin; MAX_TTL while the extent is unknown (a
        node that just started: broadcasts are deduplicated, so a large TTL
        costs nothing, and a small one would cut the broadcast short)."""
        if self.max_hops == 0:
            return MAX_TTL
        return min(MAX_TTL, max(self.r.default_ttl, 2 * self.max_hops + self.o["ttl_margin"]))

    # -- outcomes of our own messages ------------------------------------------
    def remember(self, message_id, dst, via, mode):
        """We sent message_id to dst through via (None: discovery) in mode."""
        if len(self.pending) >= self.o["max_pending"]:
            for k in sorted(self.pending)[:max(1, len(self.pending) // 4)]:
                del self.pending[k]
        self.pending[message_id] = [dst, via, mode]

    def negative(self, dst, now_ms, known_down):
        """True if dst gets no discovery now: a failed discovery's backoff is
        running, or dst is known down (retracted) and its first backoff starts
        now. A destination nobody reaches then costs one bounded search per
        backoff (neg_min_ms doubling to neg_max_ms), not one per attempt."""
        if not self.o["neg_min_ms"]:
            return False  # negative cache off
        e = self.neg.get(dst)
        if e is not None:
            return now_ms < e[0]
        if known_down:
            self._neg_set(dst, now_ms, None)
            return True
        return False

    def neighbour_gone(self, peer, now_ms):
        """Our runtime declared peer down: copies for it that find no route
        here are dropped, not searched for, for half of neg_max_ms (this node
        saw it go; the announcements will say so everywhere by then)."""
        if not self.o["neg_min_ms"]:
            return
        if peer not in self.gone and len(self.gone) >= 256:
            self.gone = {}
        self.gone[peer] = now_ms + self.o["neg_max_ms"] // 2

    def just_gone(self, dst, now_ms):
        """True if dst is a neighbour we declared down not long ago."""
        t = self.gone.get(dst)
        if t is None:
            return False
        if now_ms < t:
            return True
        del self.gone[dst]
        return False

    def _neg_set(self, dst, now_ms, prev):
        if prev is None:
            back = self.o["neg_min_ms"]
        else:
            back = min(self.o["neg_max_ms"], 2 * prev[1])
        if dst not in self.neg and len(self.neg) >= self.o["max_pending"]:
            self.neg = {}  # bounded; forgetting only allows searches again
        self.neg[dst] = [now_ms + back, back]

    def acked(self, message_id, now_ms):
        p = self.pending.pop(message_id, None)
        if p is None:
            return
        self.ring.pop(p[0], None)
        self.neg.pop(p[0], None)
        if p[1] is not None and p[2] == "route":
            self.blame(p[0], p[1], True, now_ms)

    def failed(self, message_id, now_ms):
        p = self.pending.pop(message_id, None)
        if p is None:
            return
        dst, via, mode = p
        if mode == "route":
            self.blame(dst, via, False, now_ms)
        elif mode == "discover":
            if self.o["neg_min_ms"]:
                self._neg_set(dst, now_ms, self.neg.get(dst))
            cur = self.ring.get(dst)
            self.ring[dst] = min(MAX_TTL, 2 * (self.extent_ttl() if cur is None else cur))
            if len(self.ring) > self.o["max_pending"]:
                self.ring = {}

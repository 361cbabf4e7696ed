# The MeshLink routing strategy ("meshlink", the default). Rule: sans-I/O;
# every table bounded; deterministic given the rng. See docs/ROUTING.md.
#
# Directed messages and Acks:
#   * every copy teaches routes: path [o, ..., P] received from P gives a
#     route to each listed node via the listed node closest to the end that
#     is our neighbour (so a detour through our own neighbourhood is cut);
#   * a route's cost is the next hop's link cost (ETX from probes, scaled by
#     the whitepaper score) + 1 per further hop, times (1 + fails) where fails
#     counts unacknowledged messages through that (destination, next hop);
#   * forward: destination is a neighbour -> send it there; else the best
#     route (kept unless another is >15 % cheaper; a small share goes to the
#     runner-up to keep it measured); else flood the copy onward ("discover",
#     route-or-flood: a relay that knows a route uses it);
#   * TTL: known route -> its hop count + margin; discovery -> a ring that
#     starts at the network extent seen in paths and doubles after a failed
#     attempt;
#   * the origin's Ack credits the (destination, next hop) pair, a timeout
#     blames it (two strikes remove it);
#   * negative cache: no route and a failed discovery (or the destination
#     retracted by the announcements, no learned route confirmed for
#     neg_max_ms / 2; else it may be a starved route) -> no discovery for a backoff
#     (neg_min_ms doubling to neg_max_ms). Relays do not drop searches for
#     destinations they see retracted: a retraction may be a starved route
#     (measured: at mean degree 6 it cut recovery delivery from 94 to 82 %).
# Destinations never heard from: router_dv (destination announcements, a
# distance vector); the shorter of its next hop and the learned one is used.
# Broadcasts: router_lazy (eager tree, lazy IHave repair).
from meshlink.messages import Ack, Routes
from meshlink.router import Strategy, register_strategy
from meshlink.router_core import Decision
from meshlink.router_lazy import LazyPush, sample
from meshlink.router_opts import DEFAULTS, parse_options
from meshlink.router_routes import RouteTable

DUP_LEARN_HOPS = 2
DEAD_END_LAZY = 1  # lazy peers a discovery copy goes to when no tree peer is left


class MeshlinkStrategy(Strategy):
    name = "meshlink"
    truncate_path = True  # keep the origin and the latest 62 hops

    def __init__(self, router, options):
        self.r = router
        self.o = opts = parse_options(options)
        self.t = RouteTable(router, opts)
        self.lazy = LazyPush(router, opts)
        self.dv = None
        if opts["announce_ms"] > 0:  # imported here: boards (announcements off) never load it
            from meshlink.router_dv import DistanceVector
            self.dv = DistanceVector(router, opts)

    def learn(self, path, from_peer, now_ms, limit=None):
        """Learn routes from a path (also used by gateway wrappers)."""
        self.t.learn(path, from_peer, now_ms, self.o["learn_hops"] if limit is None else limit)

    def _next_hop(self, dst, exclude, path, now_ms, ack=False):
        """(via, hops): the learned route or the announced one, whichever is
        shorter; the announced one if it changed since the learned one was
        last confirmed (the topology moved: the learned path may be gone).
        An Ack takes the way a copy from its destination came last if that
        was less than ack_fresh_ms ago: the reverse of the path its message
        just took works now, where a shorter route may be one the topology
        has not yet taken back (measured: after a failure, Acks of messages
        that arrived were lost on stale shorter routes)."""
        if ack:
            hop = self.t.freshest(dst, exclude, path, now_ms, self.o["ack_fresh_ms"])
            if hop is not None:
                return hop
        hop = self.t.next_hop(dst, exclude, path, now_ms)
        if self.dv is not None:
            changed = self.dv.changed_ms.get(dst, -1)
            if hop is not None and self.t.confirmed_ms(dst, hop[0]) < changed:
                # learned before the announced route last changed (the
                # topology moved): only one confirmed since then is trusted
                hop = self.t.freshest(dst, exclude, path, now_ms, now_ms - changed)
            alt = self.dv.next_hop(dst, exclude, path, now_ms)
            if alt is not None and (hop is None or alt[1] < hop[1]
                                    or changed > self.t.confirmed_ms(dst, hop[0])):
                return alt
        return hop

    # -- messages ------------------------------------------------------------
    def originate(self, msg, now_ms):
        r = self.r
        dst = msg.dst
        if dst is None:
            out = r.stamp(msg, self.t.broadcast_ttl())
            fwd = self.lazy.push(out, None, out.path, now_ms)
            return Decision(forward=fwd, mode="eager",
                            drop_reason=None if fwd else "no_peers")
        if dst == r.node_id:
            return Decision(deliver=True, mode="direct")
        if dst in r.up_set:
            out = r.stamp(msg, 1 + self.o["ttl_margin"])
            self.t.remember(msg.message_id, dst, dst, "direct")
            return Decision(forward=[(dst, out)], mode="direct")
        hop = self._next_hop(dst, None, (), now_ms, type(msg) is Ack)
        if hop is not None:
            out = r.stamp(msg, self.t.route_ttl(hop[1]))
            self.t.remember(msg.message_id, dst, hop[0], "route")
            return Decision(forward=[(hop[0], out)], mode="route")
        e = None if self.dv is None else self.dv.table.get(dst)
        # retracted: known down, unless a learned route to dst was confirmed
        # (its Ack, or its path seen) less than neg_max_ms / 2 ago: the route
        # may only be starved while the mesh converges (no feasible candidate
        # along a long detour; measured on real nodes: the first search
        # found it), so the searches go on
        known_down = e is not None and e[3] == 255
        if known_down:
            heard = self.t.confirmed_ms(dst, None)
            known_down = heard < 0 or now_ms - heard >= self.o["neg_max_ms"] // 2
        known_down = known_down or self.t.just_gone(dst, now_ms)
        if self.t.negative(dst, now_ms, known_down):
            # known down, or a search failed not long ago: no flood now
            self.t.remember(msg.message_id, dst, None, "unreachable")
            return Decision(drop_reason="unreachable", mode="discover")
        ttl = self.t.ring.get(dst)
        if ttl is None:
            ttl = self.t.extent_ttl()
        out = r.stamp(msg, ttl)
        self.t.remember(msg.message_id, dst, None, "discover")
        peers = self._discovery_peers(msg, None, out.path)
        if not peers:
            return Decision(drop_reason="no_route", mode="discover")
        return Decision(forward=[(p, out) for p in peers], mode="discover")

    def _discovery_peers(self, msg, exclude, path):
        """Peers a copy goes to when no route is known: all eligible peers, or
        the eager (tree) ones plus a few random lazy ones, more for a retry
        (an end-to-end retry keeps origin_id and gets a fresh message_id)."""
        r = self.r
        out = []
        if self.o["discover_via"] == "all":
            for pid in r.up:
                if pid != exclude and pid not in path:
                    out.append(pid)
            return out
        eager = self.lazy.eager
        lazy = []
        for pid in r.up:
            if pid != exclude and pid not in path:
                if pid in eager:
                    out.append(pid)
                else:
                    lazy.append(pid)
        retry = type(msg) is not Ack and msg.origin_id != msg.message_id
        extra = self.o["retry_lazy" if retry else "discover_lazy"]
        if not out:
            # a tree leaf: the copy may have been routed here by a relay whose
            # route through us is stale, or the tree may be cut; detour through
            # a lazy peer rather than swallow it
            extra = max(extra, DEAD_END_LAZY)
        if lazy and extra > 0:
            out.extend(sample(r.rng, lazy, extra))
        return out

    def receive(self, msg, from_peer, now_ms):
        r = self.r
        me = r.node_id
        if me in msg.path:
            return Decision(drop_reason="loop")
        dup = r.dedup.check_and_add(msg.message_id, now_ms)
        # a duplicate still teaches an alternative next hop to the origin and
        # the last hops (cheap: floods bring up to one copy per neighbour)
        share = self.o["learn_all"]
        if dup:
            limit = DUP_LEARN_HOPS
        elif share >= 1.0 or msg.dst == me or (share > 0.0 and r.rng.random() < share):
            limit = 0
        else:
            limit = self.o["learn_hops"]
        self.t.learn(msg.path, from_peer, now_ms, limit)
        if dup:
            if msg.dst is None:
                return self.lazy.duplicate(from_peer)
            return Decision(drop_reason="duplicate")
        dst = msg.dst
        if dst is None:
            self.lazy.first_from(from_peer)
            if msg.ttl < 1:
                return Decision(deliver=True, drop_reason="ttl")
            out = r.relay(msg)
            return Decision(deliver=True, forward=self.lazy.push(out, from_peer, msg.path, now_ms),
                            mode="eager")
        if dst == me:
            return Decision(deliver=True, mode="route")
        if msg.ttl < 1:
            return Decision(drop_reason="ttl")
        if dst in r.up_set and dst not in msg.path:
            return Decision(forward=[(dst, r.relay(msg))], mode="direct")
        hop = self._next_hop(dst, from_peer, msg.path, now_ms, type(msg) is Ack)
        if hop is not None:
            return Decision(forward=[(hop[0], r.relay(msg))], mode="route")
        if self.t.just_gone(dst, now_ms):
            # dst was our neighbour and our runtime declared it down: no
            # route, and no search that could only find it gone
            return Decision(drop_reason="unreachable", mode="discover")
        peers = self._discovery_peers(msg, from_peer, msg.path)
        if not peers:
            return Decision(drop_reason="no_route", mode="discover")
        out = r.relay(msg)
        return Decision(forward=[(p, out) for p in peers], mode="discover")

    def on_control(self, msg, from_peer, now_ms):
        if type(msg) is Routes:
            if self.dv is None:
                return Decision(drop_reason="unsupported", mode="control")
            self.dv.on_routes(msg, from_peer, now_ms)
            if self.dv.max_hops > self.t.max_hops:  # TTLs cover the announced extent
                self.t.max_hops = self.dv.max_hops
            return Decision(mode="control")
        t = msg.TYPE
        if t == "seqreq":
            if self.dv is not None and self.dv.req is not None:
                from meshlink.router_dv_req import on_request
                on_request(self.dv, msg, from_peer, now_ms)
            return Decision(mode="control")
        if t == "hopack":
            return Decision(drop_reason="unsupported", mode="control")  # hop acks off here
        return self.lazy.on_control(msg, from_peer, now_ms)

    # -- outcomes (router_routes.RouteTable keeps the pending messages) -------
    def on_ack(self, ack, now_ms):
        self.t.acked(ack.ack_for, now_ms)

    def on_delivery_failed(self, message_id, now_ms):
        self.t.failed(message_id, now_ms)

    # -- peers and timers ----------------------------------------------------
    def on_peer_up(self, peer_id, now_ms):
        self.t.gone.pop(peer_id, None)
        self.t.neg.pop(peer_id, None)
        self.lazy.eager.add(peer_id)
        if self.dv is not None:
            self.dv.peer_up(peer_id, now_ms)

    def on_peer_down(self, peer_id, now_ms):
        self.t.neighbour_gone(peer_id, now_ms)
        self.lazy.peer_down(peer_id, now_ms)
        if self.dv is not None:
            self.dv.peer_down(peer_id, now_ms)

    def on_served(self, node_id):
        if self.dv is not None:
            self.dv.on_served(node_id)

    def next_deadline(self):
        a = self.lazy.next_deadline()
        b = None if self.dv is None else self.dv.next_deadline()
        return b if a is None else (a if b is None or a < b else b)

    def handle_timer(self, now_ms):
        out = self.lazy.handle_timer(now_ms)
        if self.dv is not None:
            out = out + self.dv.handle_timer(now_ms)
        return out

    def peer_flags(self, peer_id):
        return {"eager": peer_id in self.lazy.eager}

    def destinations(self):
        """{dst: (via, hops)}: the announced route or the shortest learned one
        through a live neighbour, whichever is shorter; a destination whose
        announcement was retracted is left out (no side effects)."""
        out = {} if self.dv is None else self.dv.destinations()
        up = self.r.up_set
        gone = () if self.dv is None else self.dv.table  # retracted: not via a learned route
        for dst, cands in self.t.routes.items():
            if dst in gone and dst not in out:
                continue
            for c in cands:
                if c[0] in up:
                    best = out.get(dst)
                    if best is None or c[1] < best[1]:
                        out[dst] = (c[0], c[1])
        return out

    def describe(self):
        return {"routes": len(self.t.routes), "max_hops": self.t.max_hops,
                "announced": 0 if self.dv is None else len(self.dv.table),
                "announce_refused": 0 if self.dv is None else self.dv.refused,
                "announce_unproven": 0 if self.dv is None else self.dv.unproven,
                "missing": len(self.lazy.missing), "cached": len(self.lazy.cache)}


def _meshlink(router, options):
    """The strategy, with hop acknowledgements (router_hop) unless hop_ack_ms
    is 0 (the default on a board, which then never loads that module)."""
    if options.get("hop_ack_ms", DEFAULTS["hop_ack_ms"]):
        from meshlink.router_hop import HopAckStrategy
        return HopAckStrategy(router, options)
    return MeshlinkStrategy(router, options)


register_strategy("meshlink", _meshlink)

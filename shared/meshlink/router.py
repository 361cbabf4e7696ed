# The mesh router: one object per node, strategies chosen by name.
# Rule: sans-I/O. The runtime (or the simulator) passes now_ms and peer
# events in and sends what comes out: Decision.forward from originate/receive
# and the control messages handle_timer returns. Runs on MicroPython.
#
# Path convention: a message's path lists every node that has sent it, the
# origin first. originate() accepts a message whose path is [] or [self] and
# stamps path=[self] and the TTL the strategy chooses; each forwarder appends
# itself, so a copy arriving from peer P ends with P.
#
# Served IDs (serve/unserve): node IDs this node acts for, e.g. a gateway's
# boards; the logic is in meshlink.router_served, imported on first use.
from meshlink.errors import ConfigError, LocalProtocolError
from meshlink.messages import MAX_TTL, Ack, MeshMessage
from meshlink.router_core import (
    PING_LOST,
    PONG,
    Decision,
    DedupCache,
    PeerInfo,
    XorShiftRng,
    clamp_ttl,
    extend_path,
    relay_copy,
    seed_from_text,
)

DEFAULT_STRATEGY = "meshlink"
# name -> strategy class, or the module(s) that register it (imported on first
# use, which keeps unused strategies off a board's heap).
STRATEGIES = {"meshlink": "meshlink.router_opts meshlink.router_routes meshlink.router_lazy "
                         "meshlink.router_meshlink",
              "seed": "meshlink.router_seed", "flood": "meshlink.router_seed"}
# Link-local control messages a strategy may exchange (their TYPE); the
# runtime passes any of these to Router.receive like mesh messages.
CONTROL_TYPES = ("ihave", "graft", "prune", "routes", "hopack", "seqreq")
MAX_PEERS = 256  # peer records kept (down peers beyond this are forgotten)


def register_strategy(name, cls):
    """Make strategy class cls available to Router(strategy=name)."""
    if type(name) is not str or not name:
        raise ConfigError("a strategy needs a name")
    STRATEGIES[name] = cls
    return cls


def load_strategy(name):
    """The strategy class registered as name (importing its module), or None."""
    cls = STRATEGIES.get(name)
    if type(cls) is str:
        import gc
        for module in cls.split():
            gc.collect()  # compiling on a 96K heap: start each module unfragmented
            __import__(module)
        cls = STRATEGIES.get(name)
    return None if type(cls) is str else cls


def _nothing(self, *args):
    return None


def _empty(self, *args):
    return {}


class Strategy:
    """Base of routing strategies. Subclasses override what they need:
    originate, receive (required); on_control, on_ack, on_delivery_failed,
    on_peer_up, on_peer_down, on_served, next_deadline, handle_timer, describe,
    peer_flags (no-ops here; one shared function each keeps a board's heap small)."""

    name = ""
    truncate_path = False  # when the path is full: drop (False) or truncate

    def __init__(self, router, options):
        self.r = router

    def on_control(self, msg, from_peer, now_ms):
        return Decision(drop_reason="unsupported")

    def handle_timer(self, now_ms):
        return []

    on_ack = on_delivery_failed = on_peer_up = on_peer_down = on_served = next_deadline = _nothing
    describe = peer_flags = destinations = _empty


class Router:
    """Routing state of one node.

    Args:
        node_id: our node ID (UUID text).
        strategy: a name in STRATEGIES ("meshlink", "seed", "flood", ...).
        rng: object with random() and getrandbits(n), or an int seed; default
            a PRNG seeded from node_id (deterministic, no I/O).
        default_ttl: TTL of originated messages (seed, flood); the floor of
            the learned TTLs (meshlink).
        dedup_window_ms, dedup_max_entries: the duplicate filter bounds.
        log: optional callable(dict) given one JSON-able record per decision.
        options: optional dict of strategy tunables (see each strategy).
    Raises:
        ConfigError: unknown strategy or out-of-range setting.
    """

    def __init__(self, node_id, strategy=DEFAULT_STRATEGY, *, rng=None, default_ttl=8,
                 dedup_window_ms=60000, dedup_max_entries=4096, log=None, options=None):
        cls = load_strategy(strategy)
        if cls is None:
            raise ConfigError("unknown routing strategy %r (known: %s)" % (
                strategy, ", ".join(sorted(STRATEGIES))))
        if type(default_ttl) is not int or not 1 <= default_ttl <= MAX_TTL:
            raise ConfigError("default_ttl must be 1..%d" % MAX_TTL)
        try:
            self.dedup = DedupCache(dedup_window_ms, dedup_max_entries)
        except ValueError as e:
            raise ConfigError(str(e))
        if rng is None:
            rng = XorShiftRng(seed_from_text(node_id))
        elif type(rng) is int:
            rng = XorShiftRng(rng)
        self.node_id = node_id
        self.strategy_name = strategy
        self.default_ttl = default_ttl
        self.rng = rng
        self.log = log
        self._peers = {}
        self.up = []  # ids of connected peers, sorted (deterministic order)
        self.up_set = set()
        self.counters = {"originated": 0, "received": 0, "delivered": 0, "sent": 0}
        self.drops = {}
        self.last_ms = 0  # latest now_ms of a peer event (for peers())
        self.served = set()  # node IDs we act for (serve/unserve)
        self.strategy = cls(self, options or {})

    # serve(node_id): act for node_id: its messages and Acks are delivered
    # here and originate() sends from it (meshlink.router_served). Idempotent.
    # Raises LocalProtocolError: our own ID, or max_served reached.
    def serve(self, node_id):
        from meshlink import router_served
        if node_id not in self.served:
            router_served.serve(self, node_id)
            self.strategy.on_served(node_id)

    def unserve(self, node_id):  # idempotent
        if node_id in self.served:
            self.served.discard(node_id)
            self.strategy.on_served(node_id)

    # -- peers ---------------------------------------------------------------
    def peer_up(self, peer_id, now_ms):
        """A connection to peer_id is established (idempotent)."""
        self.last_ms = now_ms
        p = self._peers.get(peer_id)
        if p is None:
            if len(self._peers) >= MAX_PEERS:
                self._forget_down_peer()
            p = PeerInfo(peer_id, now_ms)
            self._peers[peer_id] = p
        elif not p.up:
            p.up = True
            p.up_since_ms = now_ms
        else:
            return
        self.up_set.add(peer_id)
        self.up = sorted(self.up_set)
        self.strategy.on_peer_up(peer_id, now_ms)

    def peer_down(self, peer_id, now_ms):
        """The connection to peer_id is gone (idempotent)."""
        p = self._peers.get(peer_id)
        if p is None or not p.up:
            return
        p.up = False
        self.up_set.discard(peer_id)
        self.up = sorted(self.up_set)
        self.strategy.on_peer_down(peer_id, now_ms)

    def _forget_down_peer(self):
        for pid in sorted(self._peers):
            if not self._peers[pid].up:
                del self._peers[pid]
                return
        raise LocalProtocolError("more than %d connected peers" % MAX_PEERS)

    def peer(self, peer_id):
        """The PeerInfo of peer_id, or None."""
        return self._peers.get(peer_id)

    def is_up(self, peer_id):
        return peer_id in self.up_set

    def record_rtt(self, peer_id, rtt_ms, now_ms):
        """A Pong from peer_id came back after rtt_ms."""
        self.last_ms = now_ms
        p = self._peers.get(peer_id)
        if p is not None:
            p.record(PONG, rtt_ms, now_ms)

    def record_ping_lost(self, peer_id, now_ms):
        """A Ping to peer_id timed out."""
        self.last_ms = now_ms
        p = self._peers.get(peer_id)
        if p is not None:
            p.record(PING_LOST, None, now_ms)

    def peers(self, now_ms=None):
        """One dict per known peer (peer_id, up, score, rtt_ms, reliability,
        route_success, uptime_ms, link_cost, plus strategy flags), by peer_id.
        uptime_ms is measured to now_ms, default the last probe event's time."""
        if now_ms is None:
            now_ms = self.last_ms
        out = []
        for pid in sorted(self._peers):
            p = self._peers[pid]
            d = {"peer_id": pid, "up": p.up, "score": p.score, "rtt_ms": p.rtt_ms,
                 "reliability": p.reliability(), "route_success": p.parts(now_ms)[3],
                 "uptime_ms": (now_ms - p.up_since_ms) if p.up else 0,
                 "link_cost": p.link_cost()}
            d.update(self.strategy.peer_flags(pid))
            out.append(d)
        return out

    def status(self):
        """Counters, drop reasons and the strategy's table sizes (for status)."""
        d = {"strategy": self.strategy_name, "dedup_entries": len(self.dedup)}
        d.update(self.counters)
        d["drops"] = dict(self.drops)
        d.update(self.strategy.describe())
        return d

    def destinations(self):
        """{dst: (next hop, hops)} of every destination the strategy has a route
        to (announced or learned; empty for strategies without routes)."""
        return self.strategy.destinations()

    # -- messages ------------------------------------------------------------
    def originate(self, msg, now_ms):
        """Route a MeshMessage or Ack created here (src = us, path [] or [us])."""
        # (or src = a served ID, path [] or [it]: meshlink.router_served)
        if type(msg) is not MeshMessage and type(msg) is not Ack:
            raise LocalProtocolError("only mesh messages and acks are routed")
        if msg.src != self.node_id:
            from meshlink import router_served
            return router_served.originate(self, msg, now_ms)
        if msg.path and msg.path != [self.node_id]:
            raise LocalProtocolError("originate: path must be [] or [this node]")
        self.dedup.add(msg.message_id, now_ms)
        self.counters["originated"] += 1
        d = self.strategy.originate(msg, now_ms)
        self._account(d)
        if self.log is not None:
            self._log_decision("originate", msg, None, d, now_ms)
        return d

    def receive(self, msg, from_peer, now_ms):
        """A message arrived from neighbour from_peer; decide what to do with it."""
        t = type(msg)
        if t is MeshMessage or t is Ack:
            self.counters["received"] += 1
            if msg.dst in self.served:
                from meshlink import router_served
                d = router_served.receive(self, msg, from_peer, now_ms)
            else:
                d = self.strategy.receive(msg, from_peer, now_ms)
        elif getattr(msg, "TYPE", None) in CONTROL_TYPES:
            d = self.strategy.on_control(msg, from_peer, now_ms)
        else:
            raise LocalProtocolError("the router does not handle %s" % t.__name__)
        self._account(d)
        if self.log is not None and (t is MeshMessage or t is Ack):
            self._log_decision("receive", msg, from_peer, d, now_ms)
        return d

    def on_ack(self, ack_msg, now_ms):
        """An end-to-end Ack for one of our messages arrived: credit the route."""
        self.strategy.on_ack(ack_msg, now_ms)
        if self.log is not None:
            from meshlink.router_log import outcome_record
            self.log(outcome_record(self, ack_msg.ack_for, ack_msg.src, True, now_ms))

    def on_delivery_failed(self, message_id, now_ms):
        """Our retry timer for message_id expired without an Ack: penalise."""
        self.strategy.on_delivery_failed(message_id, now_ms)
        if self.log is not None:
            from meshlink.router_log import outcome_record
            self.log(outcome_record(self, message_id, None, False, now_ms))

    def next_deadline(self):
        """The now_ms at which handle_timer wants to run, or None."""
        return self.strategy.next_deadline()

    def handle_timer(self, now_ms):
        """Run due timers; returns a list of (peer_id, control message) to send."""
        out = self.strategy.handle_timer(now_ms)
        self.counters["sent"] += len(out)
        return out

    # -- helpers for strategies ----------------------------------------------
    def stamp(self, msg, ttl):
        """The originated copy: our path and the given TTL."""
        return relay_copy(msg, clamp_ttl(ttl), [self.node_id])

    def relay(self, msg):
        """The forwarded copy (TTL - 1, path + us), or None if the path is full."""
        path = extend_path(msg.path, self.node_id, self.strategy.truncate_path)
        if path is None:
            return None
        return relay_copy(msg, msg.ttl - 1, path)

    def drop(self, reason, deliver=False, mode=None):
        return Decision(deliver=deliver, drop_reason=reason, mode=mode)

    def _account(self, d):
        self.counters["sent"] += len(d.forward)
        if d.deliver:
            self.counters["delivered"] += 1
        if d.drop_reason is not None:
            self.drops[d.drop_reason] = self.drops.get(d.drop_reason, 0) + 1

    def _log_decision(self, event, msg, from_peer, d, now_ms):
        from meshlink.router_log import decision_record
        self.log(decision_record(self, event, msg, from_peer, d, now_ms))

    def features(self, dst, now_ms):
        """Per-peer features behind a decision (see router_log.features)."""
        from meshlink.router_log import features
        return features(self, dst, now_ms)


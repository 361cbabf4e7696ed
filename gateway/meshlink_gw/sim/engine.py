"""The discrete-event simulator: a heapq loop in virtual time (ms) that drives
the shared meshlink.router code of every node (no reimplementation).

Model (docs/ROUTING.md "Simulator"):
  * a transmission is one unicast send attempt of one message to one
    neighbour (the real node's per-peer TCP send); a link-layer ARQ makes up
    to link_tries attempts, each counted, and every strategy and the optimum
    use this same definition;
  * loss per attempt: independent (p) or Gilbert-Elliott bursts; latency per
    link fixed (lognormal); each node has one output queue of queue_cap
    messages served at tx_ms each;
  * the runtime around each router behaves like meshlink_gw's node: each
    link's heartbeat is the node's own meshlink.liveness.Liveness, fed what
    crosses the link (sent, received, pinged) and polled at its deadline:
    an unanswered directed message or ping makes it probe every
    probe_interval_ms, and its DOWN calls peer_down; idle pings every
    idle_ping_ms also feed record_rtt / record_ping_lost; an exhausted ARQ
    to a live neighbour or a clean failure calls peer_down at once; a
    silent failure (the default) gives no error; a successful ping calls
    peer_up;
  * end-to-end delivery is the node's own code: each node runs a
    meshlink.delivery.Delivery (Ack matching, the retry schedule, expiry,
    duplicate filter) with the node's defaults, and the loop feeds its
    retries and expiries to the router (on_delivery_failed, originate) as
    the node does;
  * idle pings go in one round per node every idle_ping_ms (sampled,
    counted as control overhead) rather than one event per link, to keep
    1000-node runs fast: the only departure from Liveness's own idle
    schedule (a link's phase is its node's); a suspicious link's probes
    are events at its Liveness deadline;
  * medium "wifi" or "lora" (default "none"): a shared channel instead of
    point-to-point links. A frame's airtime is its bytes at the channel's
    bit rate plus a per-frame overhead; the sender defers while it hears a
    neighbour's frame (carrier sense) and waits a random backoff that
    doubles per attempt; its frame occupies the channel of its whole
    neighbourhood; an attempt collides (is lost) if the receiver was
    hearing another frame or sending one itself then (a hidden or exposed
    sender). Each node remembers only the latest frame it heard (an
    approximation: older overlapping ones are forgotten). Pings and pongs
    are counted, not put on the channel.
"""

from __future__ import annotations

import gc
import heapq
import math
import random
import time

from meshlink.delivery import Delivered, Delivery, Retry
from meshlink.errors import ConfigError
from meshlink.liveness import DOWN, PING, Liveness
from meshlink.messages import Ack, HopAck, MeshMessage, Routes, SeqRequest
from meshlink.router import STRATEGIES, Router, load_strategy

from . import oracle as oracle_mod
from .metrics import MEDIA
from .scenarios import check as check_scenario
from .topology import bfs_dist, build, from_graph
from .traffic import make_traffic

EV_ARRIVE, EV_TIMER, EV_TRAFFIC, EV_PROBE, EV_LINKFAIL, EV_CHURN, EV_HB = range(7)
INF = float("inf")
# Gilbert-Elliott bursty loss (routing.md §3.3): P(G->B), P(B->G), loss in G, in B.
GE = (0.01, 0.1, 0.01, 0.5)
# Shared media (the "medium" knob): bit rate (metrics.MEDIA), per-frame
# overhead in ms (WiFi: preamble, SIFS and the link-layer ACK; LoRa SF7 /
# 125 kHz: an 8-symbol preamble and header, ~12 ms) and the first backoff
# window in ms (doubled per attempt).
MEDIUM_FRAME_MS = {"wifi": 0.1, "lora": 12.3}
MEDIUM_BACKOFF_MS = {"wifi": 0.3, "lora": 20.0}
# Rough wire sizes in bytes (canonical JSON + 4-byte frame + AEAD tag) for the
# overhead estimate.
# The simulator signs nothing (Ed25519 for every message of a 1000-node run
# would dominate its run time) but counts the bytes of the end-to-end proofs
# (docs/PROTOCOL.md §11): the origin's key and signature on every mesh message
# and Ack, the destination's proof on every announcement entry.
SZ_SIG = 150  # ,"key":"<44 base64>","sig":"<88 base64>"
SZ_PROOF = 131  # ,"<128 base64 of key || signature>"
SZ_MESH, SZ_ACK, SZ_PER_HOP, SZ_IDS, SZ_PRUNE, SZ_PROBE = (
    190 + SZ_SIG, 230 + SZ_SIG, 39, 60, 45, 90)
SZ_ROUTE = 54  # one [dst, seq, hops, ...] entry of a Routes message, without its proof
SZ_BARE = 3  # ,"" : the proof field of a bare entry (PROTOCOL §11.4) or a retraction
# A directed payload is sealed end to end (docs/PROTOCOL.md §13): its steady
# data form adds 25 raw bytes, 32 in base64 (the once-per-pair setup form
# and the keys exchange are not counted: they are amortised over a session)
SZ_SEAL = 32


class CountingAuth:
    """What a node's meshlink.auth.Auth does with announcement proofs, minus
    the signatures (the simulator signs nothing): it holds a proof for its own
    IDs, caches every (dst, seq) it accepted (two generations of cache_max
    pairs, as Auth), and accepts a bare entry (proof "") only for a cached
    pair. Every proof is PROOF, a 128-character stand-in, so the engine counts
    the bytes a real proof costs exactly where one is sent."""

    PROOF = "p" * 128

    def __init__(self, own, cache_max=4096):
        self.own = own
        self.cache_max = cache_max
        self._cache = {}
        self._cache_old = {}

    def _has(self, key):
        return key in self._cache or key in self._cache_old

    def _remember(self, key):
        if len(self._cache) >= self.cache_max:
            self._cache_old = self._cache
            self._cache = {}
        self._cache[key] = 1

    def announce_proof(self, dst, seq):
        key = (dst, seq)
        if self._has(key):
            return self.PROOF
        if dst == self.own:
            self._remember(key)
            return self.PROOF
        return ""

    def check_announce(self, dst, seq, proof):
        key = (dst, seq)
        if self._has(key):
            return True
        if not proof:
            return False
        self._remember(key)
        return True


def _uuid(i, salt):
    return "%08x-%04x-4000-8000-%012x" % (i, salt & 0xFFFF, 0)


class Sim:
    """One run: a scenario (dict of knobs), one strategy, one seed."""

    def __init__(self, p: dict, strategy: str, seed: int, decision_log=None, traffic=None):
        """Raises ConfigError: a bad knob in p (scenarios.check) or an unknown strategy."""
        check_scenario(p)
        if load_strategy(strategy) is None:
            raise ConfigError(f"--strategies: unknown routing strategy {strategy!r} "
                              f"(known: {', '.join(sorted(STRATEGIES))})")
        self.p = p
        self.strategy = strategy
        self.seed = seed
        rt = random.Random(f"{seed}:topology:{p['topology']}:{p['nodes']}")
        link = dict(loss=p["loss"], loss_model=p["loss_model"], latency_ms=p["latency_ms"],
                    latency_sigma=p["latency_sigma"], oneway=p["oneway"])
        if p.get("graph") is not None:
            self.topo = t = from_graph(p["graph"], rt, **link)
        else:
            self.topo = t = build(p["topology"], p["nodes"], p["degree"], rt, **link)
        n = self.n = t.n
        self.ids = [_uuid(i, seed) for i in range(n)]
        self.idx = {s: i for i, s in enumerate(self.ids)}
        self.rng = random.Random(f"{seed}:links:{strategy}")
        self.alive = [True] * n
        self.clean_dead = bytearray(n)  # down by a clean failure: sends to it fail at once
        # the heartbeat (docs/ROUTING.md "Failure detection"): per node, per
        # neighbour, the link's meshlink.liveness.Liveness (made when the
        # link is first used, dropped when it goes down), and the neighbours
        # whose EV_HB is pending (one per suspicious link)
        self.lv: list[dict[int, Liveness]] = [dict() for _ in range(n)]
        self.hb_on: list[set[int]] = [set() for _ in range(n)]
        self.detect_ms: list = []  # (failure time, detection delay) per silent neighbour
        self.cut: set = set()
        self.burst = p["loss_model"] == "burst"
        self.ge_bad: dict = {}
        self.routers: list = [None] * n
        self.deliveries: list = [None] * n  # meshlink.delivery per live node
        self.gen = [0] * n
        self.upv: list[set[int]] = [set() for _ in range(n)]
        self.lossrun: list[dict[int, int]] = [dict() for _ in range(n)]
        self.busy = [0.0] * n
        self.tdue: list = [None] * n  # each node's armed deadline (one timer, as a node's)
        self.ttok = [0] * n  # ... and its token: an event of an older arming is stale
        self.heap: list = []
        self.seq = 0
        self.now = 0.0
        self.events = 0
        self.decision_log = decision_log
        self.world = oracle_mod.World(self)
        self.warm = p["warmup_s"] * 1000.0
        self.end = (p["warmup_s"] + p["duration_s"]) * 1000.0
        self.mid_counter = 0
        # traffic, churn (strategy independent: seeded by the run seed only)
        self.central = None
        if p["churn"] == "central" or p["flow_mode"] == "central":
            self.central = central_node(t, random.Random(f"{seed}:central"))
        self.traffic = make_traffic(p, t, seed, self.warm, self.end, self.central) \
            if traffic is None else sorted(traffic, key=lambda r: r[0])
        self.churn = self._make_churn(random.Random(f"{seed}:churn"))
        self.info: dict = {}  # k -> what the optimum looked like at origination
        self._reach_cache: dict = {}
        # accounting
        nk = len(self.traffic)
        self.mid2k: dict = {}
        self.tx_k = [0] * nk  # transmissions of each logical message (data + acks)
        self.disc_k = bytearray(nk)  # 1 if any copy was sent in discovery mode
        self.deliv_t: list = [None] * nk
        self.first_ok = bytearray(nk)
        self.acked = bytearray(nk)  # the origin got the Ack (its delivery's Delivered)
        self.attempt_mid: list = [None] * nk
        self.attempts = [0] * nk
        self.origin2k: dict = {}  # origin_id -> k
        self.reach: dict = {}  # k -> {node: time} for broadcasts
        # transmissions and bytes after the warm-up by kind: routed directed
        # data, routed Acks, discovery (directed copies sent in discovery
        # mode), broadcast payloads, lazy-push control (IHave/Graft/Prune),
        # announcements, hop acks; probes (pings, pongs) are probe_msgs / probe_bytes
        self.tx = {"data": 0, "ack": 0, "disc": 0, "bcast": 0, "ctrl": 0, "announce": 0,
                   "hopack": 0}
        self.bytes = dict(self.tx)
        self.chosen = bytearray(n)
        self.queue_drops = 0
        self.link_fail = 0
        self.dead_arrivals = 0
        self.false_down = 0
        self.hb_probes = 0
        # bytes each node put on the air after the warm-up (all kinds; of
        # which control), for the shared-medium airtime accounting (metrics)
        self.air = [0] * n
        self.air_ctrl = [0] * n
        self.probe_msgs = 0
        self.probe_bytes = 0
        # announcement entries sent (after the warm-up): all, with a proof, retractions
        self.announce_entries = [0, 0, 0]
        self.down_iv: list = [[] for _ in range(n)]  # (t_down, t_up)
        # shared medium: the latest frame each node heard [start, end) and
        # sent itself; attempts lost to collisions; time spent deferring
        self.medium = None if p["medium"] == "none" else p["medium"]
        self.heard_iv = [(0.0, 0.0)] * n
        self.sent_iv = [(0.0, 0.0)] * n
        self.collisions = 0
        self.medium_attempts = 0
        self.defer_ms = 0.0

    # -- setup ---------------------------------------------------------------
    def _new_router(self, i):
        p = self.p
        ttl = p["ttl"]
        if self.strategy == "flood" and p.get("flood_ttl"):
            ttl = p["flood_ttl"]
        log = None
        if self.decision_log is not None:
            log = self.decision_log
        opts = None
        if self.strategy == "meshlink":
            # as a real node passes wall-clock seconds: a restarted node's
            # announcements outrank the ones it made before
            opts = dict(p.get("meshlink_options") or {}, announce_seq0=int(self.now // 1000))
            opts.setdefault("announce_auth", CountingAuth(self.ids[i]))
        r = Router(self.ids[i], self.strategy, rng=random.Random(f"{self.seed}:r:{i}"),
                   default_ttl=ttl, log=log, options=opts)
        if self.strategy == "oracle":
            r.strategy.world = self.world
            r.strategy.me = i
        return r

    def _new_delivery(self):
        p = self.p
        return Delivery(self.new_mid, retry_interval_ms=p["retry_interval_ms"],
                        delivery_timeout_ms=p["delivery_timeout_ms"],
                        backoff_max=p["retry_backoff_max"], max_pending=1 << 30,
                        default_ttl=p["ttl"])

    def _push(self, t, kind, a, b=None, c=None):
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, kind, a, b, c))

    def _make_churn(self, rc):
        """[(t_ms, "down" | "up" | "cut" | "heal", node or None, failure mode)]."""
        ev = [(t, what, v, self.p["failure_mode"]) for t, what, v in self._churn_events(rc)]
        for f in self.p.get("failures") or ():
            ev.append((f["at_ms"], "down", f["node"], f["mode"]))
            if f["until_ms"] is not None:
                ev.append((f["until_ms"], "up", f["node"], f["mode"]))
        return ev

    def _churn_events(self, rc):
        p = self.p
        kind = p["churn"]
        ev = []
        at = p["churn_at_s"] * 1000.0
        if kind == "central":
            ev.append((at, "down", self.central))
        elif kind == "mass":
            k = int(round(p["churn_frac"] * self.n))
            for v in rc.sample(range(self.n), k):
                ev.append((at, "down", v))
        elif kind == "partition":
            ev.append((at, "cut", None))
            ev.append((p["heal_at_s"] * 1000.0, "heal", None))
        elif kind == "sessions":
            f = p["churn_frac"]
            mean_down = p["session_down_s"] * 1000.0
            mean_up = mean_down * (1 - f) / f
            for v in range(self.n):
                t = 0.0
                up = rc.random() >= f
                if not up:
                    ev.append((0.0, "down", v))
                while True:
                    t += rc.expovariate(1.0 / (mean_up if up else mean_down))
                    if t >= self.end:
                        break
                    up = not up
                    ev.append((t, "up" if up else "down", v))
        elif kind != "none":
            raise ConfigError(f"--churn {kind!r}: unknown")
        return ev

    def new_mid(self):
        self.mid_counter += 1
        c = self.mid_counter
        return "%08x-%04x-4000-9000-%012x" % (c & 0xFFFFFFFF, self.seed & 0xFFFF, c >> 32)

    # -- link layer ----------------------------------------------------------
    def send(self, u, pid, msg, now, mode):
        self.dispatch(u, ((pid, msg),), now, mode)

    def dispatch(self, u, forward, now, mode):
        """Put each (peer_id, message) of forward on u's link layer.

        Hot path: locals bound once, per-message accounting done once per
        distinct message object (a decision shares one copy among peers)."""
        p = self.p
        idx = self.idx
        latu = self.topo.lat[u]
        lossu = self.topo.loss[u]
        alive = self.alive
        cut = self.cut
        rnd = self.rng.random
        heap = self.heap
        push = heapq.heappush
        tx_ms = p["tx_ms"]
        medium = self.medium
        # the queue holds queue_cap frames: of tx_ms each, or on a shared
        # medium of a full (1500-byte) frame's airtime each
        qmax = p["queue_cap"] * (tx_ms if medium is None else
                                 MEDIUM_FRAME_MS[medium] + 12000.0 / MEDIA[medium] * 1000)
        tries_max = p["link_tries"]
        burst = self.burst
        measuring = now >= self.warm
        discover = mode == "discover"
        busy = self.busy[u]
        lvu = self.lv[u]
        clean_dead = self.clean_dead
        last = None
        k = None
        cat = ""
        nb = 0
        awaits = False
        for pid, msg in forward:
            v = idx[pid]
            lat = latu.get(v)
            if lat is None:
                raise RuntimeError(f"router of {u} sent to non-neighbour {v}")
            start = now if busy < now else busy
            if start - now >= qmax:
                self.queue_drops += 1
                continue
            if msg is not last:
                last = msg
                t = type(msg)
                awaits = t is MeshMessage and msg.dst is not None
                if t is MeshMessage or t is Ack:
                    k = self.mid2k.get(msg.message_id)
                    if k is not None and discover:
                        self.disc_k[k] = 1
                    # directed copies (data or Ack) sent in discovery mode
                    # count as discovery, the others as routed data / Acks
                    cat = "disc" if discover and msg.dst is not None else (
                        "ack" if t is Ack else ("bcast" if msg.dst is None else "data"))
                    nb = (SZ_ACK if t is Ack else SZ_MESH + (SZ_SEAL if msg.dst else 0)
                          ) + SZ_PER_HOP * len(msg.path)
                elif t is Routes:
                    k = None
                    cat = "announce"
                    nb = SZ_IDS + SZ_ROUTE * len(msg.routes)
                    for e in msg.routes:
                        nb += SZ_PROOF if e[3] else SZ_BARE
                    ents = (len(msg.routes), sum(1 for e in msg.routes if e[3]),
                            sum(1 for e in msg.routes if e[2] == 255))
                elif t is SeqRequest:  # routing control: counted with the announcements
                    k = None
                    cat = "announce"
                    nb = SZ_IDS + SZ_ROUTE
                    ents = (0, 0, 0)
                elif t is HopAck:
                    k = None
                    cat = "hopack"
                    nb = SZ_IDS + SZ_PER_HOP * len(msg.ids)
                else:
                    k = None
                    cat = "ctrl"
                    ids = getattr(msg, "ids", None)
                    nb = SZ_PRUNE if ids is None else SZ_IDS + SZ_PER_HOP * len(ids)
            ok = False
            silent = False
            tries = 0
            if medium is not None:
                live = alive[v] and (not cut or (u, v) not in cut)
                end, tries, ok = self._medium_send(u, v, start, nb, tries_max,
                                                   lossu[v] if live else 1.0)
                silent = not live and not clean_dead[v]
            elif alive[v] and (not cut or (u, v) not in cut):
                if burst:
                    key = (u, v)
                    bad = self.ge_bad.get(key, False)
                    while tries < tries_max:
                        tries += 1
                        bad = (rnd() >= GE[1]) if bad else (rnd() < GE[0])
                        if rnd() >= (GE[3] if bad else GE[2]):
                            ok = True
                            break
                    self.ge_bad[key] = bad
                else:
                    loss = lossu[v]
                    while tries < tries_max:
                        tries += 1
                        if rnd() >= loss:
                            ok = True
                            break
            else:
                # a frozen peer or a cut cable gives no error (the send is
                # queued and retransmitted); a closed connection does
                tries = tries_max
                silent = not clean_dead[v]
            dur = end - start if medium is not None else tries * tx_ms
            busy = start + dur
            if measuring:
                if cat == "announce":
                    ae = self.announce_entries
                    ae[0] += ents[0] * tries
                    ae[1] += ents[1] * tries
                    ae[2] += ents[2] * tries
                self.tx[cat] += tries
                self.bytes[cat] += nb * tries
                self.air[u] += nb * tries
                if cat == "ctrl" or cat == "announce" or cat == "hopack":
                    self.air_ctrl[u] += nb * tries
                else:
                    self.chosen[v] = 1
                    if k is not None:
                        self.tx_k[k] += tries
            self.seq += 1
            if ok:
                push(heap, (start + dur + (2 * tries - 1) * lat, self.seq, EV_ARRIVE, v, u, msg))
            elif not silent:
                push(heap, (start + dur + 2 * tries * lat, self.seq, EV_LINKFAIL, u, v,
                            self.gen[u]))
            if awaits:
                # a directed message expects an answer: the link's heartbeat
                # turns suspicious (and probes v if nothing is heard)
                lv = lvu.get(v)
                if lv is None:
                    lv = self._liveness(u, v, now)
                if lv.sent(now, True):
                    self._suspect(u, v, lv)
        self.busy[u] = busy

    def _medium_send(self, u, v, start, nb, tries_max, loss):
        """Up to tries_max attempts of an nb-byte frame from u to v on the
        shared medium, from start: (end of the last attempt, attempts, ok)."""
        m = str(self.medium)  # set: dispatch calls this only on a shared medium
        air = MEDIUM_FRAME_MS[m] + nb * 8000.0 / MEDIA[m]
        cw = MEDIUM_BACKOFF_MS[m]
        rnd = self.rng.random
        heard = self.heard_iv
        sent = self.sent_iv
        adj = self.topo.adj[u]
        t = start
        tries = 0
        while tries < tries_max:
            tries += 1
            hs, he = heard[u]
            if hs <= t < he:  # carrier sense: a neighbour's frame is on the air
                self.defer_ms += he - t
                t = he
            t += rnd() * cw * (1 << (tries - 1))  # backoff, doubled per attempt
            end = t + air
            hs, he = heard[v]
            ss, se = sent[v]
            # v hears another sender u cannot hear, or is sending itself
            collided = (hs < end and t < he) or (ss < end and t < se)
            iv = (t, end)
            sent[u] = iv
            for w in adj:  # the frame occupies u's whole neighbourhood
                if heard[w][1] < end:
                    heard[w] = iv
            self.medium_attempts += 1
            if collided:
                self.collisions += 1
            elif rnd() >= loss:
                return end, tries, True
            t = end
        return t, tries, False

    def arm_timer(self, u):
        nd = self.routers[u].next_deadline()
        dd = self.deliveries[u].next_deadline()
        if dd is not None and (nd is None or dd < nd):
            nd = dd
        if nd is not None:
            cur = self.tdue[u]
            if cur is None or nd < cur:
                self.tdue[u] = nd
                self.ttok[u] += 1
                self._push(nd if nd > self.now else self.now, EV_TIMER, u, self.gen[u],
                           self.ttok[u])

    # -- node life -----------------------------------------------------------
    def kill(self, v, now, mode="silent"):
        """v fails: silently (its neighbours must notice) or cleanly (every
        connection closes: each neighbour's runtime calls peer_down now)."""
        if not self.alive[v]:
            return
        self.alive[v] = False
        self.clean_dead[v] = mode == "clean"
        self.lv[v] = {}
        self.hb_on[v] = set()
        if mode == "clean":
            vid = self.ids[v]
            for u in self.topo.adj[v]:
                if self.alive[u] and v in self.upv[u]:
                    self.routers[u].peer_down(vid, now)
                    self.upv[u].discard(v)
                    self.lv[u].pop(v, None)
                    self.arm_timer(u)
        self.gen[v] += 1
        self.routers[v] = None
        self.deliveries[v] = None  # a dead node's pending sends die with it
        self.tdue[v] = None
        self.upv[v] = set()
        self.lossrun[v] = {}
        self.down_iv[v].append([now, INF])
        self.world.changed()

    def revive(self, v, now):
        if self.alive[v]:
            return
        self.alive[v] = True
        self.clean_dead[v] = 0
        self.gen[v] += 1
        self.busy[v] = now
        if self.down_iv[v]:
            self.down_iv[v][-1][1] = now
        r = self.routers[v] = self._new_router(v)
        self.deliveries[v] = self._new_delivery()
        vid = self.ids[v]
        for u in self.topo.adj[v]:
            if self.alive[u] and (u, v) not in self.cut:
                r.peer_up(self.ids[u], now)
                self.upv[v].add(u)
                ru = self.routers[u]
                self.lv[u].pop(v, None)  # a new connection, a new heartbeat
                if v in self.upv[u]:
                    ru.peer_down(vid, now)  # the old connection is replaced
                ru.peer_up(vid, now)
                self.upv[u].add(v)
                self.arm_timer(u)
        self._push(now + self.rng.random() * self.p["idle_ping_ms"], EV_PROBE, v, self.gen[v])
        self.world.changed()

    def _probe_ok(self, u, v, tries=None):
        """Ping u->v and pong v->u each get through in one of probe_tries
        attempts (the heartbeat's probes: link_tries, as they ride the link
        layer like any frame)."""
        rnd = self.rng.random
        loss = self.topo.loss
        if tries is None:
            tries = self.p["probe_tries"]
        for a, b in ((u, v), (v, u)):
            p = loss[a][b]
            for _ in range(tries):
                if rnd() >= p:
                    break
            else:
                return False
        return True

    def _liveness(self, u, v, now):
        """The heartbeat of link u->v, made when the link is first used."""
        p = self.p
        lv = self.lv[u][v] = Liveness(now, p["probe_interval_ms"], p["probe_misses"],
                                      p["idle_ping_ms"])
        return lv

    def _suspect(self, u, v, lv):
        """lv turned suspicious: its heartbeat wakes at its deadline (one
        pending EV_HB per link; a stale one re-arms itself)."""
        hb = self.hb_on[u]
        if v not in hb:
            hb.add(v)
            self._push(lv.next_deadline(), EV_HB, u, v, self.gen[u])

    def probe(self, u, now):
        """One idle round of node u: a Ping/Pong per neighbour (sampled;
        counted as one ping and one pong whatever probe_tries is). A link
        already suspicious is skipped: its pings are the heartbeat's."""
        r = self.routers[u]
        ids = self.ids
        alive = self.alive
        upv = self.upv[u]
        lvu = self.lv[u]
        lossrun = self.lossrun[u]
        lat = self.topo.lat
        loss = self.topo.loss
        rnd = self.rng.random
        single = self.p["probe_tries"] == 1  # the hot default, inlined
        cut = self.cut
        pinged = 0
        for v in self.topo.adj[u]:
            lv = lvu.get(v)
            if lv is not None and lv.suspicious():
                continue
            pinged += 1
            if alive[v] and (u, v) not in cut and (
                    rnd() >= loss[u][v] and rnd() >= loss[v][u] if single
                    else self._probe_ok(u, v)):
                if v not in upv:
                    r.peer_up(ids[v], now)
                    upv.add(v)
                    lvu.pop(v, None)  # a new connection, a new heartbeat
                    lv = None
                r.record_rtt(ids[v], lat[u][v] + lat[v][u], now)
                lossrun[v] = 0
                if lv is not None:
                    lv.pinged(now)
                    lv.received(now)
            elif v in upv:
                # an unanswered ping makes the link suspicious: probes every
                # probe_interval_ms until anything is heard (the heartbeat)
                r.record_ping_lost(ids[v], now)
                lossrun[v] = lossrun.get(v, 0) + 1
                if lv is None:
                    lv = self._liveness(u, v, now)
                lv.pinged(now)
                self._suspect(u, v, lv)
        if now >= self.warm:
            nb = 2 * SZ_PROBE * pinged
            self.probe_msgs += 2 * pinged
            self.probe_bytes += nb
            self.air[u] += nb  # the pongs are the neighbours' airtime, in the
            self.air_ctrl[u] += nb  # same neighbourhood: charged here
        self.arm_timer(u)

    def _declare_down(self, u, v, now):
        """u's runtime ends the link: its heartbeat said DOWN."""
        if self.alive[v] and (u, v) not in self.cut:
            self.false_down += 1
        elif not self.alive[v] and self.down_iv[v] and now >= self.warm:
            self.detect_ms.append(now - self.down_iv[v][-1][0])
        self.routers[u].peer_down(self.ids[v], now)
        self.upv[u].discard(v)
        self.lv[u].pop(v, None)
        self.lossrun[u].pop(v, None)

    def heartbeat(self, u, v, now):
        """EV_HB of link u->v: poll its Liveness (meshlink.liveness, the
        node's module). PING: u probes v (a Ping, a Pong if it gets through);
        DOWN: u's runtime calls peer_down (probe_misses probes unanswered
        when the next is due); while still suspicious, wake again at its
        deadline."""
        self.hb_on[u].discard(v)
        lv = self.lv[u].get(v)  # every way a link goes down drops its Liveness
        if lv is None or not lv.suspicious():
            return
        act = lv.poll(now)
        if act == DOWN:
            self._declare_down(u, v, now)
            self.arm_timer(u)
            return
        if act == PING:
            lv.pinged(now)
            measuring = now >= self.warm
            if measuring:
                self.probe_msgs += 1
                self.probe_bytes += SZ_PROBE
                self.hb_probes += 1
                self.air[u] += SZ_PROBE
                self.air_ctrl[u] += SZ_PROBE
            if self.alive[v] and (u, v) not in self.cut and self._probe_ok(
                    u, v, self.p["link_tries"]):
                if measuring:
                    self.probe_msgs += 1
                    self.probe_bytes += SZ_PROBE
                    self.air[v] += SZ_PROBE
                    self.air_ctrl[v] += SZ_PROBE
                lv.received(now)
                self.routers[u].record_rtt(self.ids[v],
                                           self.topo.lat[u][v] + self.topo.lat[v][u], now)
                self.lossrun[u][v] = 0
                return
        self._suspect(u, v, lv)

    # -- traffic -------------------------------------------------------------
    def originate(self, k, now):
        """Message k's first attempt, built and tracked by its source's delivery."""
        _t0, src, dst, _size, _flow = self.traffic[k]
        dl = self.deliveries[src]
        msg = dl.message(self.ids[src], None if dst is None else self.ids[dst], b"")
        self.origin2k[msg.message_id] = k
        if dst is not None:
            dl.track(msg, now)
        else:
            self.reach[k] = {}
        self._attempt(src, k, msg, now)

    def _attempt(self, src, k, msg, now):
        """Route one attempt of message k from src (its first or a retry)."""
        self.attempt_mid[k] = msg.message_id
        self.attempts[k] += 1
        self.mid2k[msg.message_id] = k
        d = self.routers[src].originate(msg, now)
        self.dispatch(src, d.forward, now, d.mode)
        self.arm_timer(src)

    # -- main loop -----------------------------------------------------------
    def run(self, progress=None):
        """Run to the end; the cyclic GC is paused (the loop makes no cycles,
        and full collections over a million route entries cost seconds)."""
        was = gc.isenabled()
        gc.disable()
        try:
            self._run(progress)
        finally:
            if was:
                gc.enable()

    def _run(self, progress):
        p = self.p
        now = 0.0
        for (t, what, v, mode) in self.churn:
            self._push(t, EV_CHURN, what, v, mode)
        for k, rec in enumerate(self.traffic):
            self._push(rec[0], EV_TRAFFIC, k)
        downs0 = {v for (t, what, v, _m) in self.churn if t == 0.0 and what == "down"}
        for v in range(self.n):
            if v in downs0:
                self.alive[v] = False
                self.down_iv[v].append([0.0, INF])
                continue
            self.routers[v] = self._new_router(v)
            self.deliveries[v] = self._new_delivery()
        for v in range(self.n):
            if not self.alive[v]:
                continue
            r = self.routers[v]
            for u in self.topo.adj[v]:
                if self.alive[u]:
                    r.peer_up(self.ids[u], 0.0)
                    self.upv[v].add(u)
            self._push(self.rng.random() * p["idle_ping_ms"], EV_PROBE, v, self.gen[v])
        self.world.changed()
        heap = self.heap
        pop = heapq.heappop
        alive = self.alive
        routers = self.routers
        ids = self.ids
        dispatch = self.dispatch
        lvs = self.lv
        end = self.end + p["drain_s"] * 1000.0
        events = 0
        wall0 = time.perf_counter()
        next_tick = wall0 + 0.5
        while heap:
            t, _s, kind, a, b, c = pop(heap)
            if t > end:
                break
            events += 1
            self.now = now = t
            if kind == EV_ARRIVE:
                if not alive[a]:
                    self.dead_arrivals += 1
                    continue
                lv = lvs[a].get(b)
                if lv is not None:
                    lv.received(now)
                r = routers[a]
                d = r.receive(c, ids[b], now)
                if d.forward:
                    dispatch(a, d.forward, now, d.mode)
                if d.deliver:
                    self._delivered(a, c, r, now)
                self.arm_timer(a)
            elif kind == EV_TIMER:
                if b != self.gen[a] or self.ttok[a] != c:
                    continue  # re-armed since, or the node restarted
                self.tdue[a] = None
                r = routers[a]
                rd = r.next_deadline()
                if rd is not None and rd <= now:
                    out = r.handle_timer(now)
                    if out:
                        dispatch(a, out, now, "control")
                for ev in self.deliveries[a].handle_timer(now):
                    self._on_delivery_event(a, ev, now)
                self.arm_timer(a)
            elif kind == EV_PROBE:
                if b != self.gen[a] or not alive[a]:
                    continue
                self.probe(a, now)
                if now < self.end:
                    self._push(now + p["idle_ping_ms"], EV_PROBE, a, b)
            elif kind == EV_TRAFFIC:
                src = self.traffic[a][1]
                if alive[src]:
                    if now >= self.warm:
                        self._snapshot(a)
                    self.originate(a, now)
            elif kind == EV_LINKFAIL:
                u, v = a, b
                if c == self.gen[u] and v in self.upv[u]:
                    self.link_fail += 1
                    routers[u].peer_down(ids[v], now)
                    self.upv[u].discard(v)
                    self.lv[u].pop(v, None)  # the next connection gets a new heartbeat
                    self.arm_timer(u)
            elif kind == EV_HB:
                if c == self.gen[a] and alive[a]:
                    self.heartbeat(a, b, now)
            elif kind == EV_CHURN:
                self._churn(a, b, now, c)
            if progress is not None and events & 0xFFF == 0:
                w = time.perf_counter()
                if w >= next_tick:
                    next_tick = w + 0.5
                    progress(now / end)
        self.events = events
        self.wall_s = time.perf_counter() - wall0
        self.now = now

    def _delivered(self, v, msg, r, now):
        t = type(msg)
        if t is MeshMessage:
            k = self.mid2k.get(msg.message_id)
            if msg.dst is None:
                if k is not None:
                    rk = self.reach.get(k)
                    if rk is not None and v not in rk:
                        rk[v] = now
                return
            dl = self.deliveries[v]
            if dl.first_arrival(msg, now) and k is not None and self.deliv_t[k] is None:
                self.deliv_t[k] = now
                if self.attempts[k] == 1:
                    self.first_ok[k] = 1
            ack = dl.ack_for(msg)  # every arrival: an earlier Ack may be lost
            if k is not None:
                self.mid2k[ack.message_id] = k
            d = r.originate(ack, now)
            self.dispatch(v, d.forward, now, d.mode)
        elif t is Ack:
            r.on_ack(msg, now)
            done = self.deliveries[v].on_ack(msg, now)
            if type(done) is Delivered:
                k = self.origin2k.get(done.origin_id)
                if k is not None:
                    self.acked[k] = 1

    def _on_delivery_event(self, src, ev, now):
        """A retry or an expiry from src's delivery, handled as the node does."""
        self.routers[src].on_delivery_failed(ev.failed_id, now)
        if type(ev) is Retry:
            self._attempt(src, self.origin2k[ev.msg.origin_id], ev.msg, now)

    def _churn(self, what, v, now, mode):
        if what == "down":
            self.kill(v, now, mode)
        elif what == "up":
            self.revive(v, now)
        elif what == "cut":
            half = [x < 0.5 for x, _y in self.topo.pos]
            for a, b in self.topo.edges():
                if half[a] != half[b]:
                    self.cut.add((a, b))
                    self.cut.add((b, a))
            self.cut_at = now
            self.world.changed()
        elif what == "heal":
            self.cut = set()
            self.heal_at = now
            self.world.changed()

    def _snapshot(self, k):
        """Record the live graph's view of message k at its origination."""
        _t0, src, dst, _size, _flow = self.traffic[k]
        key = (src, self.world.version)
        reach = self._reach_cache.get(key)
        if reach is None:
            if len(self._reach_cache) > 64:
                self._reach_cache = {}
            reach = self._reach_cache[key] = live_reach(self, src)
        if dst is None:
            self.info[k] = reach
            return
        if dst not in reach:
            self.info[k] = None
            return
        # the optimum is computed at the end, for delivered messages only
        self.info[k] = self.world.snapshot()

    # -- liveness queries for metrics ----------------------------------------
    def alive_during(self, v, t0, t1):
        for a, b in self.down_iv[v]:
            if a < t1 and b > t0:
                return False
        return True


def central_node(topo, rng, samples=64):
    """The node of highest (sampled Brandes) betweenness."""
    n = topo.n
    adj = topo.adj
    bc = [0.0] * n
    srcs = range(n) if n <= samples else rng.sample(range(n), samples)
    for s in srcs:
        stack = []
        pred: list = [[] for _ in range(n)]
        sigma = [0] * n
        sigma[s] = 1
        dist = [-1] * n
        dist[s] = 0
        q = [s]
        qi = 0
        while qi < len(q):
            v = q[qi]
            qi += 1
            stack.append(v)
            for w in adj[v]:
                if dist[w] < 0:
                    dist[w] = dist[v] + 1
                    q.append(w)
                if dist[w] == dist[v] + 1:
                    sigma[w] += sigma[v]
                    pred[w].append(v)
        delta = [0.0] * n
        while stack:
            w = stack.pop()
            for v in pred[w]:
                delta[v] += sigma[v] / sigma[w] * (1 + delta[w])
            if w != s:
                bc[w] += delta[w]
    return max(range(n), key=lambda i: (bc[i], -i))


def live_reach(sim, src):
    """Nodes reachable from src now over live nodes and uncut, non-one-way links."""
    alive = sim.alive
    cut = sim.cut
    loss = sim.topo.loss
    adj = sim.topo.adj
    seen = {src}
    stack = [src]
    while stack:
        u = stack.pop()
        lu = loss[u]
        for v in adj[u]:
            if v not in seen and alive[v] and lu[v] < 1.0 and (u, v) not in cut:
                seen.add(v)
                stack.append(v)
    return seen


__all__ = ["Sim", "central_node", "live_reach", "bfs_dist", "math"]

# Pieces every routing strategy shares: the decision object, the bounded
# dedup window, per-peer statistics with the whitepaper score, and a small
# deterministic PRNG. Rule: sans-I/O; time only from now_ms arguments;
# randomness only from an injected rng; every table has a size bound.
from meshlink.messages import MAX_PATH_NODES, MAX_TTL, Ack

# Whitepaper §5.1 score weights and moving average (kept exactly).
W_LATENCY = 0.3
W_UPTIME = 0.15
W_RELIABILITY = 0.3
W_ROUTE = 0.25
EWMA_HISTORY = 0.7  # alpha: weight of the historical score
EWMA_NEW = 0.3  # beta: weight of the new base score
# Normalisations the whitepaper leaves open (documented in docs/ROUTING.md).
LATENCY_REF_MS = 100  # latency_score = 1 / (1 + rtt_ms / LATENCY_REF_MS)
UPTIME_REF_MS = 600000  # uptime_score = min(1, connected time / 10 min)
COUNT_WINDOW = 64  # ok/lost counters are halved when they reach this
PRIOR = 2  # pseudo-successes in the reliability and route-success ratios
RTT_GAIN = 0.125  # smoothed RTT, as TCP's SRTT


class Decision:
    """What the router decided about one message.

    deliver: hand the message to the local application.
    forward: list of (peer_id, message) to send; message objects may be shared
        between entries and must not be mutated.
    drop_reason: why nothing (more) happens, or None.
    mode: how the strategy chose the peers ("top3", "flood", "route",
        "direct", "discover", "eager", "graft", "control"); for logs and the
        simulator's accounting. An extension of the runtime contract.
    """

    def __init__(self, deliver=False, forward=None, drop_reason=None, mode=None):
        self.deliver = deliver
        self.forward = forward if forward is not None else []
        self.drop_reason = drop_reason
        self.mode = mode

    def __repr__(self):
        return "Decision(deliver=%r, forward=%r, drop_reason=%r, mode=%r)" % (
            self.deliver, [p for p, _m in self.forward], self.drop_reason, self.mode)


class DedupCache:
    """Message ids seen less than window_ms ago; at most max_entries kept.

    Two generations of dicts (MicroPython dicts are unordered, so no LRU by
    insertion order): lookups compare the stored first-seen time, so the
    window is exact; a generation is dropped when it can only hold expired
    ids, or early when the size bound is hit (counted in evicted_early: a
    duplicate older than that can pass as new).
    """

    def __init__(self, window_ms, max_entries):
        if window_ms <= 0 or max_entries < 2:
            raise ValueError("dedup window and size must be positive")
        self.window_ms = window_ms
        self.max_entries = max_entries
        self._cur = {}
        self._old = {}
        self._rotated_ms = None
        self.evicted_early = 0

    def _rotate(self, now_ms):
        if self._rotated_ms is None:
            self._rotated_ms = now_ms
        elif now_ms - self._rotated_ms >= self.window_ms:
            self._old = self._cur  # everything in the former _old has expired
            self._cur = {}
            self._rotated_ms = now_ms

    def seen(self, message_id, now_ms):
        """True if message_id was first seen less than window_ms ago."""
        r = self._rotated_ms
        if r is None or now_ms - r >= self.window_ms:
            self._rotate(now_ms)
        t = self._cur.get(message_id)
        if t is None:
            t = self._old.get(message_id)
        return t is not None and now_ms - t < self.window_ms

    def add(self, message_id, now_ms):
        """Remember message_id as first seen at now_ms (no-op if already in window)."""
        if self.seen(message_id, now_ms):
            return
        if len(self._cur) >= self.max_entries // 2:
            self.evicted_early += len(self._old)
            self._old = self._cur
            self._cur = {}
            self._rotated_ms = now_ms
        self._cur[message_id] = now_ms

    def check_and_add(self, message_id, now_ms):
        """True if a duplicate; otherwise remember it and return False."""
        if self.seen(message_id, now_ms):
            return True
        self.add(message_id, now_ms)
        return False

    def __len__(self):
        return len(self._cur) + len(self._old)


# PeerInfo.record kinds
PONG = 1  # value: rtt_ms
PING_LOST = 2
ROUTE_OK = 3  # an Ack for a message we sent through this peer
ROUTE_FAILED = 4  # its retry timer expired


class PeerInfo:
    """What we know about one neighbour, and its whitepaper score.

    The score is updated (final = 0.7 * previous + 0.3 * base) once per
    measurement: a Pong, a lost Ping, or a route outcome (Ack or timeout).
    """

    def __init__(self, peer_id, now_ms):
        self.peer_id = peer_id
        self.up = True
        self.up_since_ms = now_ms
        self.rtt_ms = None
        self.ping_ok = 0
        self.ping_lost = 0
        self.route_ok = 0
        self.route_fail = 0
        self.score = None
        self.record(0, None, now_ms)

    def parts(self, now_ms):
        """The whitepaper's score parts: (latency, uptime, reliability, route_success).

        latency = 1/(1 + rtt/100 ms) (0.5 before any Pong); uptime = connected
        time / 10 min, at most 1; reliability = Ping success rate and
        route_success = Ack rate, each with PRIOR pseudo-successes."""
        rtt = self.rtt_ms
        up = now_ms - self.up_since_ms if self.up else 0
        return (0.5 if rtt is None else 1.0 / (1.0 + rtt / LATENCY_REF_MS),
                1.0 if up >= UPTIME_REF_MS else (up / UPTIME_REF_MS if up > 0 else 0.0),
                (self.ping_ok + PRIOR) / (self.ping_ok + self.ping_lost + PRIOR),
                (self.route_ok + PRIOR) / (self.route_ok + self.route_fail + PRIOR))

    def record(self, kind, value, now_ms):
        """Count one measurement (PONG with value = rtt_ms, PING_LOST, ROUTE_OK,
        ROUTE_FAILED; 0 = none) and step the moving average."""
        if kind == PONG:
            self.rtt_ms = value if self.rtt_ms is None else (
                self.rtt_ms + RTT_GAIN * (value - self.rtt_ms))
            self.ping_ok += 1
        elif kind == PING_LOST:
            self.ping_lost += 1
        elif kind == ROUTE_OK:
            self.route_ok += 1
        elif kind == ROUTE_FAILED:
            self.route_fail += 1
        if self.ping_ok + self.ping_lost >= COUNT_WINDOW:
            self.ping_ok //= 2
            self.ping_lost //= 2
        if self.route_ok + self.route_fail >= COUNT_WINDOW:
            self.route_ok //= 2
            self.route_fail //= 2
        lat, up, rel, route = self.parts(now_ms)
        base = W_LATENCY * lat + W_UPTIME * up + W_RELIABILITY * rel + W_ROUTE * route
        self.score = base if self.score is None else EWMA_HISTORY * self.score + EWMA_NEW * base

    def reliability(self):
        return (self.ping_ok + PRIOR) / (self.ping_ok + self.ping_lost + PRIOR)

    def etx(self):
        """Expected transmissions on this link: 1 / probe success rate."""
        rel = self.reliability()
        return 1.0 / rel if rel > 0.05 else 20.0

    def link_cost(self):
        """ETX scaled by the whitepaper score: x1.0 at score 1, x1.5 at score 0."""
        return self.etx() * (1.5 - 0.5 * self.score)


class XorShiftRng:
    """Deterministic PRNG (xorshift32) with random() and getrandbits(n <= 32)."""

    def __init__(self, seed):
        self._s = (seed & 0xFFFFFFFF) or 0x9E3779B9

    def getrandbits(self, n):
        s = self._s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self._s = s
        return s >> (32 - n) if n < 32 else s

    def random(self):
        return self.getrandbits(24) / 16777216.0


def seed_from_text(text):
    """A 32-bit seed from a string (FNV-1a), identical on both interpreters."""
    h = 0x811C9DC5
    for ch in text:
        h = ((h ^ ord(ch)) * 0x01000193) & 0xFFFFFFFF
    return h


def relay_copy(msg, ttl, path):
    """A new MeshMessage/Ack like msg with the given ttl and path.

    Built without __init__ (a relay's hot path): the fields are copied from
    an already valid message.
    """
    t = type(msg)
    c = object.__new__(t)
    c.src = msg.src
    c.dst = msg.dst
    c.message_id = msg.message_id
    c.key = msg.key  # the origin's signature covers neither ttl nor path
    c.sig = msg.sig
    if t is Ack:
        c.ack_for = msg.ack_for
    else:
        c.data = msg.data
        c.origin_id = msg.origin_id
    c.ttl = ttl
    c.path = path
    return c


def extend_path(path, node_id, truncate):
    """path + [node_id]; when full, drop (truncate=True) the oldest hops after
    the origin, or return None (truncate=False: the message must be dropped)."""
    if len(path) < MAX_PATH_NODES:
        return path + [node_id]
    if not truncate:
        return None
    return [path[0]] + path[len(path) - MAX_PATH_NODES + 2:] + [node_id]


def clamp_ttl(ttl):
    return 0 if ttl < 0 else (MAX_TTL if ttl > MAX_TTL else ttl)

# Duplicate-suppressed broadcast for the meshlink strategy: Plumtree-style
# eager push on a self-pruning tree plus lazy push (IHave) for repair.
# Rule: sans-I/O; every table bounded; deterministic given the rng.
#
#   first copy from P   -> deliver; P becomes eager; send the payload to every
#                          eager peer, queue its id for IHave to at most
#                          lazy_fanout lazy peers (batched every ihave_ms)
#   duplicate from P    -> P becomes lazy, reply Prune
#   Prune from P        -> P becomes lazy
#   IHave(ids) from P   -> ids we lack become "missing"; if still missing
#                          graft_ms later, Graft(ids) to an announcer (which
#                          becomes eager) and try the next one graft_ms later
#   Graft(ids) from P   -> P becomes eager; resend the cached payloads
#   eager peer goes down-> Graft([]) to the two cheapest lazy peers, so the
#                          subtree behind us reattaches before the next message
from meshlink.messages import Graft, IHave, Prune
from meshlink.router_core import Decision

MAX_IDS = 64  # ids per IHave/Graft (the wire limit of an id list)
MAX_ANNOUNCERS = 4


class TimedCache:
    """key -> value for keys put less than window_ms ago, at most max_entries
    (two generations, like DedupCache)."""

    def __init__(self, window_ms, max_entries):
        self.window_ms = window_ms
        self.max_entries = max_entries
        self._cur = {}
        self._old = {}
        self._rotated_ms = None

    def put(self, key, value, now_ms):
        if self._rotated_ms is None:
            self._rotated_ms = now_ms
        elif now_ms - self._rotated_ms >= self.window_ms or len(self._cur) >= self.max_entries // 2:
            self._old = self._cur
            self._cur = {}
            self._rotated_ms = now_ms
        self._cur[key] = (now_ms, value)

    def get(self, key, now_ms):
        e = self._cur.get(key)
        if e is None:
            e = self._old.get(key)
        if e is None or now_ms - e[0] >= self.window_ms:
            return None
        return e[1]

    def __len__(self):
        return len(self._cur) + len(self._old)


def sample(rng, items, k):
    """k items of the list items chosen uniformly at random (partial shuffle)."""
    if len(items) <= k:
        return items
    pool = list(items)
    n = len(pool)
    for i in range(k):
        j = i + int(rng.random() * (n - i))
        pool[i], pool[j] = pool[j], pool[i]
    return pool[:k]


class LazyPush:
    """Broadcast state of one node: the set of eager peers (the others are lazy)."""

    def __init__(self, router, opts):
        self.r = router
        self.lazy_fanout = opts["lazy_fanout"]
        self.ihave_ms = opts["ihave_ms"]
        self.graft_ms = opts["graft_ms"]
        self.missing_max = opts["missing_max"]
        self.cache = TimedCache(opts["cache_ms"], opts["cache_max"])
        self.ihave_q = {}  # peer -> ids to announce
        self.ihave_due = None
        self.missing = {}  # message id -> [deadline_ms, announcers]
        self.missing_due = None
        self.graft_q = {}  # peer -> ids to request (may be empty: "attach me")
        self.eager = set()  # connected peers we push payloads to

    # -- payloads ------------------------------------------------------------
    def push(self, out, exclude, path, now_ms):
        """Send out (the copy to forward) eagerly; announce it lazily."""
        r = self.r
        self.cache.put(out.message_id, out, now_ms)
        self.missing.pop(out.message_id, None)
        eager = []
        lazy = []
        es = self.eager
        for pid in r.up:
            if pid == exclude:
                continue
            if pid in es:
                if pid not in path:
                    eager.append(pid)
            else:
                lazy.append(pid)
        if lazy and self.lazy_fanout > 0:
            for pid in sample(r.rng, lazy, self.lazy_fanout):
                q = self.ihave_q.get(pid)
                if q is None:
                    self.ihave_q[pid] = [out.message_id]
                elif len(q) < 4 * MAX_IDS:
                    q.append(out.message_id)
            if self.ihave_due is None:
                self.ihave_due = now_ms + self.ihave_ms
        if out.ttl < 0:
            return []
        return [(pid, out) for pid in eager]

    def duplicate(self, from_peer):
        """A copy we already had: stop the eager push on that link."""
        if from_peer in self.eager:
            self.eager.discard(from_peer)
            return Decision(drop_reason="duplicate", forward=[(from_peer, Prune())],
                            mode="control")
        return Decision(drop_reason="duplicate")

    def first_from(self, from_peer):
        if self.r.is_up(from_peer):
            self.eager.add(from_peer)

    # -- control -------------------------------------------------------------
    def on_control(self, msg, from_peer, now_ms):
        r = self.r
        if not r.is_up(from_peer):
            return Decision(drop_reason="not_connected")
        if type(msg) is Prune:
            self.eager.discard(from_peer)
            return Decision(mode="control")
        if type(msg) is Graft:
            self.eager.add(from_peer)
            out = []
            for mid in msg.ids:
                m = self.cache.get(mid, now_ms)
                if m is not None and from_peer not in m.path and m.ttl >= 0:
                    out.append((from_peer, m))
            return Decision(forward=out, mode="graft")
        # IHave
        for mid in msg.ids:
            if r.dedup.seen(mid, now_ms):
                continue
            m = self.missing.get(mid)
            if m is None:
                if len(self.missing) >= self.missing_max:
                    continue
                due = now_ms + self.graft_ms
                self.missing[mid] = [due, [from_peer]]
                if self.missing_due is None or due < self.missing_due:
                    self.missing_due = due
            elif from_peer not in m[1] and len(m[1]) < MAX_ANNOUNCERS:
                m[1].append(from_peer)
        return Decision(mode="control")

    def peer_down(self, peer_id, now_ms):
        """If an eager peer left, ask two lazy peers to push to us again."""
        r = self.r
        self.ihave_q.pop(peer_id, None)
        self.graft_q.pop(peer_id, None)
        if peer_id not in self.eager:
            return
        self.eager.discard(peer_id)
        lazy = []
        for pid in r.up:
            if pid not in self.eager:
                lazy.append((r.peer(pid).link_cost(), pid))
        lazy.sort()
        for _c, pid in lazy[:2]:
            self.eager.add(pid)
            if pid not in self.graft_q:
                self.graft_q[pid] = []
        if lazy:
            self.missing_due = now_ms  # send the Grafts at the next timer

    # -- timers --------------------------------------------------------------
    def next_deadline(self):
        a = self.ihave_due
        b = self.missing_due
        if a is None:
            return b
        return a if b is None or a < b else b

    def handle_timer(self, now_ms):
        r = self.r
        out = []
        if self.ihave_due is not None and now_ms >= self.ihave_due:
            for pid in sorted(self.ihave_q):
                ids = self.ihave_q[pid]
                if r.is_up(pid) and pid not in self.eager:
                    for i in range(0, len(ids), MAX_IDS):
                        out.append((pid, IHave(ids=ids[i:i + MAX_IDS])))
            self.ihave_q = {}
            self.ihave_due = None
        if self.missing_due is not None and now_ms >= self.missing_due:
            self._graft_missing(now_ms)
            for pid in sorted(self.graft_q):
                ids = self.graft_q[pid]
                if r.is_up(pid):
                    out.append((pid, Graft(ids=ids[:MAX_IDS])))
            self.graft_q = {}
        return out

    def _graft_missing(self, now_ms):
        r = self.r
        due = None
        for mid in sorted(self.missing):
            m = self.missing[mid]
            if r.dedup.seen(mid, now_ms):
                del self.missing[mid]
                continue
            if now_ms >= m[0]:
                ann = m[1]
                while ann and not r.is_up(ann[0]):
                    ann.pop(0)
                if not ann:
                    del self.missing[mid]
                    continue
                pid = ann.pop(0)
                self.eager.add(pid)
                q = self.graft_q.get(pid)
                if q is None:
                    self.graft_q[pid] = [mid]
                elif len(q) < MAX_IDS:
                    q.append(mid)
                m[0] = now_ms + self.graft_ms
            if due is None or m[0] < due:
                due = m[0]
        self.missing_due = due

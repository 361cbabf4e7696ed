# The whitepaper's routing algorithm ("seed", §4.3 and §5) exactly as
# written, and plain flooding ("flood", the reference). Rule: sans-I/O.
#
# Literal reading of the whitepaper, step by step, for every received copy:
#   1. dedup: drop if the message_id was seen in the last 60 s (the id is
#      recorded here, before the TTL and loop checks);
#   2. drop if TTL == 0;
#   3. drop if our node_id is in the path;
#   then deliver if it is a broadcast or addressed to us (an addressed copy
#   stops here: the destination does not relay its own messages);
#   4. score the eligible peers (connected, not the sender, not on the path),
#      sort by score (descending; ties by peer_id), keep the top 3;
#   5. send each a copy with TTL - 1 and the path extended by us. A copy may
#      leave with TTL 0 and is then dropped by its receiver (step 2).
# Directed messages follow the same top 3: the whitepaper has no "the
# destination is my neighbour" rule, so none is added. Route history is
# learned only where an outcome exists: an Ack (or a timeout) for a message
# we originated credits (or blames) every peer we sent it to.
from meshlink.router import Strategy, register_strategy
from meshlink.router_core import ROUTE_FAILED, ROUTE_OK, Decision

FANOUT = 3  # whitepaper §5.2: top N = 3
MAX_PENDING = 256  # our unacknowledged messages remembered for crediting


class FloodStrategy(Strategy):
    """Send every new copy to every eligible peer (dedup, TTL, loop checks)."""

    name = "flood"
    mode = "flood"

    def __init__(self, router, options):
        self.r = router
        self.pending = {}  # our message_id -> list of peers it went to
        self.fanout = options.get("fanout", FANOUT)

    def choose(self, exclude, path, now_ms):
        out = []
        for pid in self.r.up:
            if pid not in exclude and pid not in path:
                out.append(pid)
        return out

    def originate(self, msg, now_ms):
        r = self.r
        out = r.stamp(msg, r.default_ttl)
        peers = self.choose((), out.path, now_ms)
        if msg.dst is not None:
            self._remember(msg.message_id, peers)
        if not peers:
            return Decision(drop_reason="no_peers", mode=self.mode)
        return Decision(forward=[(p, out) for p in peers], mode=self.mode)

    def receive(self, msg, from_peer, now_ms):
        r = self.r
        if r.dedup.check_and_add(msg.message_id, now_ms):
            return Decision(drop_reason="duplicate")
        if msg.ttl == 0:
            return Decision(drop_reason="ttl")
        me = r.node_id
        if me in msg.path:
            return Decision(drop_reason="loop")
        if msg.dst == me:
            return Decision(deliver=True, mode=self.mode)
        deliver = msg.dst is None
        peers = self.choose((from_peer,), msg.path, now_ms)
        if not peers:
            return Decision(deliver=deliver, drop_reason="no_peers", mode=self.mode)
        out = r.relay(msg)
        if out is None:
            return Decision(deliver=deliver, drop_reason="path_full", mode=self.mode)
        return Decision(deliver=deliver, forward=[(p, out) for p in peers], mode=self.mode)

    def _remember(self, message_id, peers):
        if len(self.pending) >= MAX_PENDING:
            for k in sorted(self.pending)[:MAX_PENDING // 4]:
                del self.pending[k]
        self.pending[message_id] = peers

    def _outcome(self, message_id, ok, now_ms):
        peers = self.pending.pop(message_id, None)
        if peers is None:
            return
        for pid in peers:
            p = self.r.peer(pid)
            if p is not None:
                p.record(ROUTE_OK if ok else ROUTE_FAILED, None, now_ms)

    def on_ack(self, ack, now_ms):
        self._outcome(ack.ack_for, True, now_ms)

    def on_delivery_failed(self, message_id, now_ms):
        self._outcome(message_id, False, now_ms)


class SeedStrategy(FloodStrategy):
    """Whitepaper: forward to the top 3 eligible peers by score."""

    name = "seed"
    mode = "top3"

    def choose(self, exclude, path, now_ms):
        r = self.r
        ranked = []
        for pid in r.up:
            if pid not in exclude and pid not in path:
                ranked.append((-r.peer(pid).score, pid))
        ranked.sort()
        return [pid for _s, pid in ranked[:self.fanout]]


register_strategy("flood", FloodStrategy)
register_strategy("seed", SeedStrategy)

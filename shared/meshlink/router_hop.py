# Hop acknowledgements for the meshlink strategy (docs/PROTOCOL.md §7.4,
# docs/ROUTING.md §4.8): per-hop evidence that a neighbour took a directed
# message, so that a relay repairs a route in half a second instead of the
# origin retrying after its end-to-end timeout.
# Rule: sans-I/O; bounded (max_pending tracked copies); loaded only when
# hop_ack_ms > 0 (never on a board).
#
#   a node owes every neighbour a HopAck naming each directed copy (mesh
#   message with a destination, or Ack) it received from it; the owed ids go
#   out at the next timer tick, batched per neighbour;
#   a copy we sent alone (route or direct mode) to neighbour P waits for P's
#   HopAck, if P has sent one since its link came up (each node sends an
#   empty one to a new neighbour, so that one that does not send them is
#   never waited for); with none after hop_ack_ms, or when P goes down first, the copy
#   is handed back to the strategy to be sent another way (not to P, not to a
#   node on its path), and P is avoided as a next hop for hop_avoid_ms or
#   until anything routed comes from it;
#   a HopAck says only what its sender took: it is believed only for copies
#   sent to that neighbour (a link proves who is at its other end, nothing
#   about anyone else).
from meshlink.messages import MAX_PATH_NODES, HopAck, MeshMessage
from meshlink.router_core import Decision
from meshlink.router_meshlink import MeshlinkStrategy

VIA = 4  # router_dv: index of the selected candidate in a table entry


def _key(msg):
    """What a HopAck names: a directed copy's message id, a request's dst."""
    return msg.dst if msg.TYPE == "seqreq" else msg.message_id


def _nothing(_peer, _now_ms):
    pass


class HopAcks:
    """on_avoid(peer, now_ms) / on_resume(peer, now_ms): called when a
    neighbour starts or stops being avoided (the strategy sets them)."""

    def __init__(self, opts):
        self.on_avoid = _nothing
        self.on_resume = _nothing
        self.timeout_ms = opts["hop_ack_ms"]
        self.avoid_ms = opts["hop_avoid_ms"]
        self.max_pending = opts["max_pending"]
        self.owed = {}  # neighbour -> [message ids received from it, not yet acked]
        self.waiting = {}  # (neighbour, message id) -> [copy, due_ms]
        self.expired = []  # [(neighbour, copy)] to send another way at the next tick
        self.avoid = {}  # neighbour -> until when it is not used as a next hop
        self.rerouted = 0  # copies sent another way (for status)
        self.acking = set()  # neighbours that sent a HopAck since their link came up
        self.due = None

    def peer_up(self, peer, now_ms):
        """A new neighbour: an empty HopAck at the next tick tells it we send them."""
        self.owed.setdefault(peer, [])
        self.due = now_ms

    def took(self, msg, from_peer, now_ms):
        """A directed copy (or a sequence number request) arrived from
        from_peer: we owe it a HopAck."""
        ids = self.owed.get(from_peer)
        if ids is None:
            self.owed[from_peer] = [_key(msg)]
        else:
            ids.append(_key(msg))
        self.due = now_ms

    def sent(self, forward, now_ms):
        """A decision's forward list: a copy that went to one neighbour only
        waits for its HopAck (discovery copies to several are not tracked)."""
        if len(forward) != 1 or len(self.waiting) >= self.max_pending:
            return
        peer, msg = forward[0]
        if peer not in self.acking:
            return  # it has not shown it sends them: nothing to wait for
        due = now_ms + self.timeout_ms
        self.waiting[(peer, _key(msg))] = [msg, due]
        if self.due is None or due < self.due:
            self.due = due

    def acked(self, msg, from_peer, now_ms):
        """from_peer's HopAck: its copies are taken, and it is answering."""
        self.acking.add(from_peer)
        self.heard(from_peer, now_ms)
        waiting = self.waiting
        for mid in msg.ids:
            waiting.pop((from_peer, mid), None)

    def heard(self, from_peer, now_ms):
        """Anything routed came from from_peer: it is answering again."""
        if from_peer in self.avoid:
            del self.avoid[from_peer]
            self.on_resume(from_peer, now_ms)

    def peer_down(self, peer):
        """Copies still waiting on a neighbour that went down go another way now."""
        self.owed.pop(peer, None)
        self.avoid.pop(peer, None)
        self.acking.discard(peer)
        for key in [k for k in self.waiting if k[0] == peer]:
            self.expired.append((peer, self.waiting.pop(key)[0]))
            self.due = 0

    def avoided(self, now_ms):
        """The neighbours not to use as next hops now."""
        avoid = self.avoid
        for p in [p for p, until in avoid.items() if until <= now_ms]:
            del avoid[p]
            self.on_resume(p, now_ms)
        return list(avoid)

    def handle_timer(self, now_ms):
        """(owed HopAcks as [(neighbour, HopAck)], [(neighbour, copy)] to
        reroute: those unacknowledged for hop_ack_ms or whose neighbour went)."""
        out = []
        for peer, ids in self.owed.items():
            for i in range(0, max(1, len(ids)), MAX_PATH_NODES):
                out.append((peer, HopAck(ids=ids[i:i + MAX_PATH_NODES])))
        self.owed = {}
        lost = self.expired
        self.expired = []
        nxt = None
        for key in list(self.waiting):
            w = self.waiting[key]
            if w[1] <= now_ms:
                del self.waiting[key]
                lost.append((key[0], w[0]))
                peer = key[0]
                fresh = peer not in self.avoid
                self.avoid[peer] = now_ms + self.avoid_ms
                if fresh:
                    self.on_avoid(peer, now_ms)
            elif nxt is None or w[1] < nxt:
                nxt = w[1]
        self.avoided(now_ms)  # expired ones are taken back now ...
        for until in self.avoid.values():
            if nxt is None or until < nxt:
                nxt = until  # ... the others then
        self.due = nxt
        self.rerouted += len(lost)
        return out, lost


def suspend(dv, peer_id, now_ms):
    """peer_id left a copy untaken: reselect every announced route through
    it (router_dv skips its candidates while it is avoided, keeping them)."""
    dv.now_ms = now_ms
    for dst, e in dv.table.items():
        if e[VIA] >= 0 and e[e[VIA]] == peer_id:
            dv._select(dst, e)
    dv._schedule(now_ms)


def resume(dv, peer_id, now_ms):
    """peer_id answers again: its candidates count again."""
    dv.now_ms = now_ms
    for dst, e in dv.table.items():
        if peer_id in e:
            dv._select(dst, e)
    dv._schedule(now_ms)


class HopAckStrategy(MeshlinkStrategy):
    """The meshlink strategy with hop acknowledgements (hop_ack_ms > 0)."""

    def __init__(self, router, options):
        MeshlinkStrategy.__init__(self, router, options)
        self.hop = hop = HopAcks(self.o)
        dv = self.dv
        if dv is not None:
            # a neighbour that leaves a copy untaken is no next hop for the
            # announced routes either, until it answers
            dv.avoid = hop.avoid
            hop.on_avoid = lambda p, t: suspend(dv, p, t)
            hop.on_resume = lambda p, t: resume(dv, p, t)

    def _next_hop(self, dst, exclude, path, now_ms, ack=False):
        if self.hop.avoid:  # avoided neighbours are skipped like the path
            path = list(path) + self.hop.avoided(now_ms)
        return MeshlinkStrategy._next_hop(self, dst, exclude, path, now_ms, ack)

    def originate(self, msg, now_ms):
        d = MeshlinkStrategy.originate(self, msg, now_ms)
        if msg.dst is not None and d.forward:
            self.hop.sent(d.forward, now_ms)
        return d

    def receive(self, msg, from_peer, now_ms):
        hop = self.hop
        if from_peer is not None:
            hop.heard(from_peer, now_ms)
            if msg.dst is not None:
                hop.took(msg, from_peer, now_ms)
        d = MeshlinkStrategy.receive(self, msg, from_peer, now_ms)
        if msg.dst is not None and d.forward:
            hop.sent(d.forward, now_ms)
        return d

    def on_control(self, msg, from_peer, now_ms):
        if type(msg) is HopAck:
            self.hop.acked(msg, from_peer, now_ms)
            return Decision(mode="control")
        self.hop.heard(from_peer, now_ms)
        if msg.TYPE == "seqreq":
            self.hop.took(msg, from_peer, now_ms)
        return MeshlinkStrategy.on_control(self, msg, from_peer, now_ms)

    def on_peer_up(self, peer_id, now_ms):
        self.hop.peer_up(peer_id, now_ms)
        MeshlinkStrategy.on_peer_up(self, peer_id, now_ms)

    def on_peer_down(self, peer_id, now_ms):
        self.hop.peer_down(peer_id)
        MeshlinkStrategy.on_peer_down(self, peer_id, now_ms)

    def next_deadline(self):
        due = MeshlinkStrategy.next_deadline(self)
        h = self.hop.due
        return h if due is None or (h is not None and h < due) else due

    def handle_timer(self, now_ms):
        out = MeshlinkStrategy.handle_timer(self, now_ms)
        hop = self.hop
        for peer, msg in out:
            if msg.TYPE == "seqreq":  # requests wait for their HopAck too
                hop.sent([(peer, msg)], now_ms)
        if hop.due is None or hop.due > now_ms:
            return out
        acks, lost = hop.handle_timer(now_ms)
        out = out + acks
        for peer, msg in lost:
            fwd = self._reroute(peer, msg, now_ms)
            if fwd:
                hop.sent(fwd, now_ms)
                out = out + fwd
        return out

    def _reroute(self, peer, msg, now_ms):
        """A copy peer did not take (no HopAck, or peer went down): the next
        hop now, not peer and not on its path, else the discovery peers. A
        sequence number request: the route to its dst now (router_dv_req)."""
        if msg.TYPE == "seqreq":
            from meshlink.router_dv_req import pass_again
            return pass_again(self.dv, msg, peer)
        dst = msg.dst
        if dst == peer:
            return []  # the destination itself did not take it: no other way to it
        if dst in self.r.up_set and dst not in msg.path:
            return [(dst, msg)]
        hop = self._next_hop(dst, peer, msg.path, now_ms, type(msg) is not MeshMessage)
        if hop is not None:
            return [(hop[0], msg)]
        return [(p, msg) for p in self._discovery_peers(msg, peer, msg.path)]

    def describe(self):
        d = MeshlinkStrategy.describe(self)
        d["hop_rerouted"] = self.hop.rerouted
        return d

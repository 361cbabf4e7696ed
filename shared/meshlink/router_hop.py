# Hop acknowledgements for the meshlink strategy (docs/PROTOCOL.md §7.5,
# docs/ROUTING.md §4.3): per-hop evidence that a neighbour took a directed
# message, so that a relay repairs a route in half a second instead of the
# origin retrying after its end-to-end timeout.
# Rule: sans-I/O; bounded (max_pending tracked copies); loaded only when
# hop_ack_ms > 0 (never on a board).
#
#   a node owes every neighbour a HopAck naming each directed copy (mesh
#   message with a destination, or Ack) it received from it; the owed ids go
#   out at the next timer tick, batched per neighbour;
#   a copy we sent alone (route or direct mode) to neighbour P waits for P's
#   HopAck; with none after hop_ack_ms, or when P goes down first, the copy
#   is handed back to the strategy to be sent another way (not to P, not to a
#   node on its path), and P is avoided as a next hop for hop_avoid_ms or
#   until anything routed comes from it;
#   a HopAck says only what its sender took: it is believed only for copies
#   sent to that neighbour (a link proves who is at its other end, nothing
#   about anyone else).
from meshlink.messages import MAX_PATH_NODES, HopAck


class HopAcks:
    """on_avoid(peer, now_ms) / on_resume(peer, now_ms): called when a
    neighbour starts or stops being avoided (the strategy sets them)."""

    on_avoid = on_resume = None

    def __init__(self, opts):
        self.timeout_ms = opts["hop_ack_ms"]
        self.avoid_ms = opts["hop_avoid_ms"]
        self.max_pending = opts["max_pending"]
        self.owed = {}  # neighbour -> [message ids received from it, not yet acked]
        self.waiting = {}  # (neighbour, message id) -> [copy, due_ms]
        self.expired = []  # [(neighbour, copy)] to send another way at the next tick
        self.avoid = {}  # neighbour -> until when it is not used as a next hop
        self.rerouted = 0  # copies sent another way (for status)
        self.due = None

    def took(self, msg, from_peer, now_ms):
        """A directed copy arrived from from_peer: we owe it a HopAck."""
        ids = self.owed.get(from_peer)
        if ids is None:
            self.owed[from_peer] = [msg.message_id]
        else:
            ids.append(msg.message_id)
        self.due = now_ms

    def sent(self, forward, now_ms):
        """A decision's forward list: a copy that went to one neighbour only
        waits for its HopAck (discovery copies to several are not tracked)."""
        if len(forward) != 1 or len(self.waiting) >= self.max_pending:
            return
        peer, msg = forward[0]
        due = now_ms + self.timeout_ms
        self.waiting[(peer, msg.message_id)] = [msg, due]
        if self.due is None or due < self.due:
            self.due = due

    def acked(self, msg, from_peer, now_ms):
        """from_peer's HopAck: its copies are taken, and it is answering."""
        self.heard(from_peer, now_ms)
        waiting = self.waiting
        for mid in msg.ids:
            waiting.pop((from_peer, mid), None)

    def heard(self, from_peer, now_ms):
        """Anything routed came from from_peer: it is answering again."""
        if from_peer in self.avoid:
            del self.avoid[from_peer]
            if self.on_resume is not None:
                self.on_resume(from_peer, now_ms)

    def peer_down(self, peer):
        """Copies still waiting on a neighbour that went down go another way now."""
        self.owed.pop(peer, None)
        self.avoid.pop(peer, None)
        for key in [k for k in self.waiting if k[0] == peer]:
            self.expired.append((peer, self.waiting.pop(key)[0]))
            self.due = 0

    def avoided(self, now_ms):
        """The neighbours not to use as next hops now."""
        avoid = self.avoid
        for p in [p for p, until in avoid.items() if until <= now_ms]:
            del avoid[p]
            if self.on_resume is not None:
                self.on_resume(p, now_ms)
        return list(avoid)

    def handle_timer(self, now_ms):
        """(owed HopAcks as [(neighbour, HopAck)], [(neighbour, copy)] to
        reroute: those unacknowledged for hop_ack_ms or whose neighbour went)."""
        out = []
        for peer, ids in self.owed.items():
            for i in range(0, len(ids), MAX_PATH_NODES):
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
                if fresh and self.on_avoid is not None:
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

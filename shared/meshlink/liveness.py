"""Neighbour liveness: an adaptive heartbeat for one link, sans-I/O.

Rule: no clock, no socket. The owner reports what crosses the link
(`sent`, `received`) with `now_ms`, sends a ping when `poll` says PING,
ends the link when it says DOWN, and wakes at `next_deadline()`. The node
runs one per link (in its peer table), and so does the simulator's engine
for every simulated link (docs/PROTOCOL.md §4):

* idle: a ping every `idle_ping_ms` (an RTT sample and a keepalive);
* suspicious: once a frame that expects an answer (a ping, a directed
  mesh message) has gone out and nothing at all has come back, a probe
  (ping) every `probe_interval_ms`; with `probe_misses` probes unanswered
  when the next one is due, the neighbour is DOWN.

Any frame from the neighbour ends the suspicion. A silent neighbour is
declared down `probe_interval_ms * (probe_misses + 1)` after the first
unanswered directed frame (2 s with the defaults); on an idle link the
unanswered ping is the first probe, so 1.5 s after it, within
`idle_ping_ms` + 1.5 s of the failure; a healthy idle link costs one ping and pong per
`idle_ping_ms`, as before.
"""

PROBE_INTERVAL_MS = 500  # a suspicious link is probed this often
PROBE_MISSES = 3  # probes unanswered when the next is due: the neighbour is down
IDLE_PING_MS = 5000  # an idle link is pinged this often

NOTHING = 0
PING = 1
DOWN = 2


class Liveness:
    """The heartbeat state of one link.

    Args:
        now_ms: when the link came up (the first ping is due at once).
        probe_interval_ms, probe_misses, idle_ping_ms: as the module says.
    """

    def __init__(self, now_ms, probe_interval_ms=PROBE_INTERVAL_MS,
                 probe_misses=PROBE_MISSES, idle_ping_ms=IDLE_PING_MS):
        self.probe_interval_ms = probe_interval_ms
        self.probe_misses = probe_misses
        self.idle_ping_ms = idle_ping_ms
        self.last_rx_ms = now_ms
        self.last_ping_ms = now_ms - idle_ping_ms  # first ping due at once
        self.waiting_since_ms = None  # first unanswered frame since the last rx
        self.unanswered = 0  # pings sent since the last frame received
        self.probes = 0  # pings sent because of suspicion (counted, for figures)

    def sent(self, now_ms, awaits_answer):
        """A frame went to the neighbour; awaits_answer: it should draw a
        frame back (a ping, a directed message). True if that makes the link
        suspicious now (the owner's next deadline moved earlier)."""
        if awaits_answer and self.waiting_since_ms is None:
            self.waiting_since_ms = now_ms
            return True
        return False

    def received(self, now_ms):
        """Any frame (a pong, data, anything that opened) came from the neighbour."""
        self.last_rx_ms = now_ms
        self.waiting_since_ms = None
        self.unanswered = 0

    def pinged(self, now_ms):
        """The owner sent the ping that poll() asked for."""
        if self.waiting_since_ms is not None and now_ms - self.last_ping_ms < self.idle_ping_ms:
            self.probes += 1
        self.last_ping_ms = now_ms
        self.unanswered += 1
        if self.waiting_since_ms is None:
            self.waiting_since_ms = now_ms

    def excuse(self, now_ms):
        """The owner could not read for a while (its loop stalled, or it held
        its readers back for backpressure): what the peer sent may sit unread,
        so the silence so far proves nothing. A suspicion starts over at now_ms."""
        if self.waiting_since_ms is not None:
            self.waiting_since_ms = now_ms
            self.unanswered = 0

    def suspicious(self):
        return self.waiting_since_ms is not None

    def next_deadline(self):
        """When poll() may next have something to say (ms)."""
        idle_due = self.last_ping_ms + self.idle_ping_ms
        if self.waiting_since_ms is None:
            return idle_due
        since = self.waiting_since_ms
        if self.last_ping_ms > since:
            since = self.last_ping_ms
        fast_due = since + self.probe_interval_ms
        return fast_due if fast_due < idle_due else idle_due

    def poll(self, now_ms):
        """NOTHING, PING (send one, then call pinged()) or DOWN (end the link)."""
        if now_ms < self.next_deadline():
            return NOTHING
        if self.waiting_since_ms is not None and self.unanswered >= self.probe_misses \
                and now_ms - self.waiting_since_ms >= self.probe_interval_ms:
            return DOWN
        return PING

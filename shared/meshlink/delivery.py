"""End-to-end delivery of directed mesh messages, sans-I/O.

One state machine serves the node runtime and the simulator (so the
simulator measures the retry policy that nodes run):

* the origin tracks each directed message until an Ack names one of its
  attempts (`on_ack` -> `Delivered`) or `delivery_timeout_ms` passes
  (`handle_timer` -> `Expired`);
* an attempt unacknowledged for its retry interval is sent again with a
  fresh message_id and the same origin_id (`handle_timer` -> `Retry`); the
  n-th retry waits `retry_interval_ms * min(n, RETRY_BACKOFF_MAX)`;
* the destination suppresses duplicates (`first_arrival`, per
  (from, origin_id) within a bounded memory) and acks every arrival
  (`ack_for`), so a lost Ack is answered by the next retry.

The owner feeds `now_ms`, routes what comes out and wakes at
`next_deadline()` (aioquic's get_timer / handle_timer). Nothing here reads a
clock or draws randomness: message IDs come from the `new_id` callable.
"""

import heapq

from meshlink.errors import LocalProtocolError
from meshlink.messages import Ack, MeshMessage

RETRY_INTERVAL_MS = 2000  # first retry after this; the n-th after n times it ...
RETRY_BACKOFF_MAX = 4  # ... up to this many times it
DELIVERY_TIMEOUT_MS = 30000  # give up (Expired) this long after the first attempt
MAX_PENDING = 10000  # directed messages awaiting an Ack; more are refused
SEEN_MAX = 4096  # (from, origin_id) pairs remembered per generation (two generations)


class Delivered:
    """An Ack from the destination named one of origin_id's attempts."""

    def __init__(self, origin_id, msg, rtt_ms, attempts):
        self.origin_id = origin_id
        self.msg = msg  # the first attempt
        self.rtt_ms = rtt_ms  # first attempt to Ack
        self.attempts = attempts


class Retry:
    """Send msg (a new attempt); attempt failed_id is given up on."""

    def __init__(self, msg, failed_id):
        self.msg = msg
        self.failed_id = failed_id


class Expired:
    """No Ack before the deadline; failed_id was the last attempt."""

    def __init__(self, origin_id, msg, failed_id, attempts):
        self.origin_id = origin_id
        self.msg = msg
        self.failed_id = failed_id
        self.attempts = attempts


class _Pending:
    def __init__(self, msg, now_ms, retry_ms, expires_ms):
        self.msg = msg
        self.started_ms = now_ms
        self.retry_ms = retry_ms
        self.expires_ms = expires_ms
        self.attempts = 1
        self.attempt_ids = [msg.message_id]

    def due_ms(self):
        return self.retry_ms if self.retry_ms < self.expires_ms else self.expires_ms


class Delivery:
    """Tracks one node's directed sends and remembers what it has received.

    Args:
        new_id: returns a fresh message ID (UUID form) per call.
        retry_interval_ms, backoff_max, delivery_timeout_ms, max_pending:
            the retry policy (the n-th retry waits retry_interval_ms *
            min(n, backoff_max)).
        default_ttl: TTL of the Acks this node sends.
        seen_max: size of one generation of the duplicate filter.
    """

    def __init__(self, new_id, retry_interval_ms=RETRY_INTERVAL_MS,
                 delivery_timeout_ms=DELIVERY_TIMEOUT_MS, max_pending=MAX_PENDING,
                 default_ttl=8, seen_max=SEEN_MAX, backoff_max=RETRY_BACKOFF_MAX):
        self.new_id = new_id
        self.retry_interval_ms = retry_interval_ms
        self.backoff_max = backoff_max
        self.delivery_timeout_ms = delivery_timeout_ms
        self.max_pending = max_pending
        self.default_ttl = default_ttl
        self.seen_max = seen_max
        self._pending = {}  # origin_id -> _Pending
        self._attempt_origin = {}  # attempt message_id -> origin_id
        self._timers = []  # heap of (due_ms, origin_id); stale entries skipped
        self._seen = set()
        self._seen_old = set()
        self._seen_since_ms = None

    # -- origin side ---------------------------------------------------------
    def message(self, src, dst, data):
        """A new mesh message from src (validated; nothing is tracked yet).

        Raises:
            LocalProtocolError: invalid IDs or payload too large.
        """
        msg = MeshMessage(src=src, dst=dst, data=data, message_id=self.new_id(),
                          ttl=self.default_ttl, path=[])
        msg.encode()  # validate before anything is queued or routed
        return msg

    def track(self, msg, now_ms):
        """Await msg's end-to-end Ack (msg is directed and its first attempt).

        Raises:
            LocalProtocolError: max_pending messages already await an Ack.
        """
        if len(self._pending) >= self.max_pending:
            raise LocalProtocolError("too many directed messages awaiting acknowledgement")
        p = _Pending(msg, now_ms, now_ms + self.retry_interval_ms,
                     now_ms + self.delivery_timeout_ms)
        self._pending[msg.origin_id] = p
        self._attempt_origin[msg.message_id] = msg.origin_id
        heapq.heappush(self._timers, (p.due_ms(), msg.origin_id))

    def on_ack(self, ack, now_ms):
        """An Ack addressed to this node (or a served ID) arrived.

        Returns:
            Delivered, or None if it names no pending attempt (late or duplicate).
        """
        origin = self._attempt_origin.get(ack.ack_for)
        p = self._pending.pop(origin, None) if origin is not None else None
        if p is None:
            return None
        self._forget(p)
        return Delivered(origin, p.msg, now_ms - p.started_ms, p.attempts)

    def handle_timer(self, now_ms):
        """Retries and expiries due at now_ms, as a list of Retry / Expired."""
        out = []  # type: list
        timers = self._timers
        while timers and timers[0][0] <= now_ms:
            due, origin = heapq.heappop(timers)
            p = self._pending.get(origin)
            if p is None or p.due_ms() != due:
                continue  # acked, or rescheduled: a stale entry
            failed = p.attempt_ids[-1]
            if now_ms >= p.expires_ms:
                del self._pending[origin]
                self._forget(p)
                out.append(Expired(origin, p.msg, failed, p.attempts))
                continue
            out.append(Retry(self._next_attempt(p, now_ms), failed))
            heapq.heappush(timers, (p.due_ms(), origin))
        return out

    def next_deadline(self):
        """The earliest time handle_timer has work, or None."""
        timers = self._timers
        while timers:
            due, origin = timers[0]
            p = self._pending.get(origin)
            if p is not None and p.due_ms() == due:
                return due
            heapq.heappop(timers)
        return None

    def abandon(self):
        """Stop tracking everything (shutdown); returns what was pending."""
        out = list(self._pending.values())
        self._pending = {}
        self._attempt_origin = {}
        self._timers = []
        return [Expired(p.msg.origin_id, p.msg, p.attempt_ids[-1], p.attempts) for p in out]

    def pending_count(self):
        return len(self._pending)

    def _next_attempt(self, p, now_ms):
        m = p.msg
        mid = self.new_id()
        again = MeshMessage(src=m.src, dst=m.dst, data=m.data, message_id=mid,
                            origin_id=m.origin_id, ttl=m.ttl, path=[])
        p.attempts += 1
        p.attempt_ids.append(mid)
        self._attempt_origin[mid] = m.origin_id
        factor = p.attempts if p.attempts < self.backoff_max else self.backoff_max
        p.retry_ms = now_ms + self.retry_interval_ms * factor
        return again

    def _forget(self, p):
        for mid in p.attempt_ids:
            self._attempt_origin.pop(mid, None)

    # -- destination side ----------------------------------------------------
    def first_arrival(self, msg, now_ms):
        """True the first time (from, origin_id) arrives, False for a duplicate.

        Memory is two generations of at most seen_max pairs each, turned over
        every delivery_timeout_ms (no sender retries after that): under a
        flood of distinct messages the window shrinks, so a durable store
        (the node's inbox) keeps its own unique key as the backstop.
        """
        if self._seen_since_ms is None:
            self._seen_since_ms = now_ms
        elif (len(self._seen) >= self.seen_max
              or now_ms - self._seen_since_ms >= self.delivery_timeout_ms):
            self._seen_old = self._seen
            self._seen = set()
            self._seen_since_ms = now_ms
        key = (msg.src, msg.origin_id)
        if key in self._seen or key in self._seen_old:
            return False
        self._seen.add(key)
        return True

    def forget_arrival(self, msg):
        """Undo first_arrival(msg): it could not be kept, so its retry is new."""
        self._seen.discard((msg.src, msg.origin_id))

    def ack_for(self, msg):
        """The end-to-end Ack the destination of msg sends back to its origin."""
        return Ack(src=msg.dst, dst=msg.src, ack_for=msg.message_id, message_id=self.new_id(),
                   ttl=self.default_ttl, path=[])

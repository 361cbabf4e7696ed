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

With an `auth` (meshlink.auth.Auth; docs/PROTOCOL.md §11) every message and
Ack built here is signed by its origin, `authentic` checks an arrival's
origin and `on_ack` counts only an Ack that the tracked message's
destination signed (a delivery proof). Without one (the simulator, which
accounts the signature bytes instead) nothing is signed or checked.

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
    def __init__(self, msg, now_ms, retry_after_ms, timeout_ms, order):
        self.msg = msg
        self.order = order  # tracking order (retry_now resends in it)
        self.started_ms = now_ms
        # retries and expiry are offsets from the first attempt, summed as
        # integers: with a fractional now_ms (the simulator) a retry due at
        # the expiry instant stays exactly equal to it and is not sent
        self.retry_after_ms = retry_after_ms
        self.retry_ms = now_ms + retry_after_ms
        self.expires_ms = now_ms + timeout_ms
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
        auth: a meshlink.auth.Auth that signs and checks, or None (no checks).
    """

    def __init__(self, new_id, retry_interval_ms=RETRY_INTERVAL_MS,
                 delivery_timeout_ms=DELIVERY_TIMEOUT_MS, max_pending=MAX_PENDING,
                 default_ttl=8, seen_max=SEEN_MAX, backoff_max=RETRY_BACKOFF_MAX, auth=None):
        self.new_id = new_id
        self.auth = auth
        self.forged_acks = 0  # Acks naming a pending attempt that were no proof
        self.retry_interval_ms = retry_interval_ms
        self.backoff_max = backoff_max
        self.delivery_timeout_ms = delivery_timeout_ms
        self.max_pending = max_pending
        self.default_ttl = default_ttl
        self.seen_max = seen_max
        self._pending = {}  # origin_id -> _Pending (not ordered on MicroPython: see order)
        self._tracked = 0  # messages ever tracked: the next _Pending.order
        self._attempt_origin = {}  # attempt message_id -> origin_id
        self._timers = []  # heap of (due_ms, origin_id); stale entries skipped
        self._seen = set()
        self._seen_old = set()
        self._seen_since_ms = None

    # -- origin side ---------------------------------------------------------
    def message(self, src, dst, data, sign=True):
        """A new mesh message from src (validated and signed; nothing is tracked
        yet). sign=False: it never leaves this node (no one would verify it).

        Raises:
            LocalProtocolError: invalid IDs, payload too large, or no key for src.
        """
        msg = MeshMessage(src=src, dst=dst, data=data, message_id=self.new_id(),
                          ttl=self.default_ttl, path=[])
        msg.encode()  # validate before anything is queued or routed (and signed)
        return self._signed(msg) if sign else msg

    def _signed(self, msg):
        if self.auth is not None:
            if msg.TYPE == "ack":
                self.auth.sign_ack(msg)
            else:
                self.auth.sign_mesh(msg)
        return msg

    def authentic(self, msg):
        """True if msg (a mesh message) was signed by its origin (always without auth)."""
        return self.auth is None or self.auth.check_mesh(msg)

    def track(self, msg, now_ms):
        """Await msg's end-to-end Ack (msg is directed and its first attempt).

        Raises:
            LocalProtocolError: max_pending messages already await an Ack.
        """
        if len(self._pending) >= self.max_pending:
            raise LocalProtocolError("too many directed messages awaiting acknowledgement")
        p = _Pending(msg, now_ms, self.retry_interval_ms, self.delivery_timeout_ms,
                     self._tracked)
        self._tracked += 1
        self._pending[msg.origin_id] = p
        self._attempt_origin[msg.message_id] = msg.origin_id
        heapq.heappush(self._timers, (p.due_ms(), msg.origin_id))

    def on_ack(self, ack, now_ms):
        """An Ack addressed to this node (or a served ID) arrived.

        Returns:
            Delivered, or None if it names no pending attempt (late or
            duplicate) or is no proof: not from the message's destination, or
            not signed by it (counted in forged_acks; the attempt stays pending).
        """
        origin = self._attempt_origin.get(ack.ack_for)
        p = self._pending.get(origin) if origin is not None else None
        if p is None:
            return None
        if ack.src != p.msg.dst or ack.dst != p.msg.src or (
                self.auth is not None and not self.auth.check_ack(ack)):
            self.forged_acks += 1
            return None
        del self._pending[origin]
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

    def retry_now(self, now_ms, dst=None):
        """Send a new attempt of every pending message (to dst, or all) at once,
        oldest first: the owner calls it when the earlier attempts are known to
        be lost (a link came up after an outage; the destination published a
        new key record), so that the retries reach the destination in the order
        the messages were sent, before anything sent later. Each counts as a
        retry (the backoff schedule moves on by one step); expired messages are
        left to handle_timer.

        Returns:
            a list of Retry, in tracking order.
        """
        due = [p for p in self._pending.values()
               if (dst is None or p.msg.dst == dst) and now_ms < p.expires_ms]
        due.sort(key=lambda p: p.order)
        out = []
        for p in due:
            failed = p.attempt_ids[-1]
            out.append(Retry(self._next_attempt(p, now_ms), failed))
            heapq.heappush(self._timers, (p.due_ms(), p.msg.origin_id))
        return out

    def tracking_order(self, origin_id):
        """The order in which origin_id's message was tracked (-1 if it is not
        pending): the owner sorts what it held back by it."""
        p = self._pending.get(origin_id)
        return -1 if p is None else p.order

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

    def cancel(self, origin_id):
        """Stop tracking one message (its heap entry goes stale); True if it was."""
        p = self._pending.pop(origin_id, None)
        if p is None:
            return False
        self._forget(p)
        return True

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
        again = self._signed(MeshMessage(src=m.src, dst=m.dst, data=m.data, message_id=mid,
                                         origin_id=m.origin_id, ttl=m.ttl, path=[]))
        p.attempts += 1
        p.attempt_ids.append(mid)
        self._attempt_origin[mid] = m.origin_id
        factor = p.attempts if p.attempts < self.backoff_max else self.backoff_max
        p.retry_after_ms += self.retry_interval_ms * factor
        p.retry_ms = p.started_ms + p.retry_after_ms
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
        """The end-to-end Ack (signed: a delivery proof) the destination of msg
        sends back to its origin. Raises LocalProtocolError without msg.dst's key."""
        return self._signed(Ack(src=msg.dst, dst=msg.src, ack_for=msg.message_id,
                                message_id=self.new_id(), ttl=self.default_ttl, path=[]))

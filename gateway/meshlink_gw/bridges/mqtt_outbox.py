"""The MQTT bridge's bounded outbox and token-bucket rate limiter.

Rule: pure bookkeeping, no I/O and no clock of its own (now_s is passed in).
An uplink message stays in the outbox from publish_reading() until the broker
acknowledges it (PUBACK for QoS 1), so messages in flight when the broker dies
are sent again after the reconnect. When full (entries or bytes), the oldest
entry is dropped. With a store (mqtt_store.OutboxStore) every entry is also
kept on disk until acknowledged, so it survives a gateway restart.
"""

from __future__ import annotations

import collections
import dataclasses


@dataclasses.dataclass
class OutboxEntry:
    seq: int
    topic: str
    payload: bytes
    qos: int
    retain: bool = False
    mid: int | None = None  # paho message id while in flight


class Outbox:
    """Ordered, bounded store of uplink messages not yet acknowledged.

    Args:
        max_entries, max_bytes: bounds (payload bytes); the oldest goes first.
        store: where entries are kept across restarts (loaded here), or None.
    """

    def __init__(self, max_entries: int, max_bytes: int | None = None, store=None) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.store = store
        self._entries: dict[int, OutboxEntry] = {}  # insertion-ordered by seq
        self._unsent: collections.deque[int] = collections.deque()  # ascending seqs
        self._inflight: dict[int, int] = {}  # mid -> seq
        self._next_seq = 0
        self.bytes = 0
        for seq, topic, payload, qos, retain in (store.load() if store else ()):
            self._entries[seq] = OutboxEntry(seq, topic, payload, qos, retain)
            self._unsent.append(seq)
            self.bytes += len(payload)
            self._next_seq = seq + 1

    def __len__(self) -> int:
        return len(self._entries)

    def inflight_count(self) -> int:
        return len(self._inflight)

    def unsent_count(self) -> int:
        return len(self._entries) - len(self._inflight)

    def append(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> int:
        """Queue a message; return how many old ones were dropped to make room."""
        dropped = 0
        while self._entries and (len(self._entries) >= self.max_entries or (
                self.max_bytes is not None and self.bytes + len(payload) > self.max_bytes)):
            self._drop_oldest()
            dropped += 1
        seq = self._next_seq
        self._next_seq += 1
        self._entries[seq] = OutboxEntry(seq, topic, payload, qos, retain)
        self._unsent.append(seq)
        self.bytes += len(payload)
        if self.store is not None:
            self.store.add(seq, topic, payload, qos, retain)
        return dropped

    def _forget(self, entry: OutboxEntry) -> None:
        self.bytes -= len(entry.payload)
        if self.store is not None:
            self.store.remove(entry.seq)

    def _drop_oldest(self) -> None:
        seq = next(iter(self._entries))
        entry = self._entries.pop(seq)
        self._forget(entry)
        if entry.mid is not None:
            self._inflight.pop(entry.mid, None)
        elif self._unsent and self._unsent[0] == seq:
            self._unsent.popleft()

    def next_unsent(self) -> OutboxEntry | None:
        """The oldest entry not in flight, taken off the send queue."""
        while self._unsent:
            seq = self._unsent.popleft()
            entry = self._entries.get(seq)
            if entry is not None and entry.mid is None:
                return entry
        return None

    def mark_inflight(self, entry: OutboxEntry, mid: int) -> None:
        entry.mid = mid
        self._inflight[mid] = entry.seq

    def unsend(self, entry: OutboxEntry) -> None:
        """Put back an entry that could not be handed to the client."""
        if entry.seq in self._entries and entry.mid is None:
            self._unsent.appendleft(entry.seq)

    def ack(self, mid: int) -> OutboxEntry | None:
        """The broker acknowledged mid: forget that entry and return it."""
        seq = self._inflight.pop(mid, None)
        if seq is None:
            return None
        entry = self._entries.pop(seq, None)
        if entry is not None:
            self._forget(entry)
        return entry

    def requeue_inflight(self) -> int:
        """The connection is gone: everything unacknowledged is unsent again,
        in the original order. Returns how many were in flight."""
        n = len(self._inflight)
        self._inflight.clear()
        for entry in self._entries.values():
            entry.mid = None
        self._unsent = collections.deque(self._entries)
        return n


class TokenBucket:
    """rate_per_s tokens per second, at most burst stored; one per allowed event."""

    def __init__(self, rate_per_s: float, burst: int, now_s: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._at_s = now_s

    def _refill(self, now_s: float) -> None:
        elapsed = max(0.0, now_s - self._at_s)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate_per_s)
        self._at_s = now_s

    def has_token(self, now_s: float) -> bool:
        self._refill(now_s)
        return self._tokens >= 1.0

    def take(self) -> None:
        self._tokens -= 1.0


class RateLimiter:
    """A bucket per source plus one global bucket; an event needs a token from both.

    At most max_sources source buckets are kept; the least recently used is
    forgotten first (a forgotten source starts again with a full burst, but
    the global bucket still bounds the total).
    """

    def __init__(self, source_rate_per_s: float, source_burst: int,
                 global_rate_per_s: float, global_burst: int, max_sources: int,
                 now_s: float) -> None:
        self._source_rate = source_rate_per_s
        self._source_burst = source_burst
        self._max_sources = max_sources
        self._global = TokenBucket(global_rate_per_s, global_burst, now_s)
        self._sources: collections.OrderedDict[str, TokenBucket] = collections.OrderedDict()

    def allow(self, source: str, now_s: float) -> bool:
        bucket = self._sources.pop(source, None)
        if bucket is None:
            bucket = TokenBucket(self._source_rate, self._source_burst, now_s)
            if len(self._sources) >= self._max_sources:
                self._sources.popitem(last=False)
        self._sources[source] = bucket
        if not (bucket.has_token(now_s) and self._global.has_token(now_s)):
            return False
        bucket.take()
        self._global.take()
        return True

"""The runtime's clock and reconnect backoff, written once.

Every asyncio component (node, peer table, board service, transports'
supervisor) reads time through now_ms() and waits between reconnects with
Backoff, so the sans-I/O cores they drive see one clock.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from meshlink.errors import ConfigError


def now_ms() -> int:
    """Monotonic milliseconds: never jumps with the wall clock, never wraps."""
    return time.monotonic_ns() // 1_000_000


_WALL0_MS = time.time_ns() // 1_000_000  # the wall clock, read once per process
_MONO0_MS = now_ms()


def steady_unix_ms() -> int:
    """Unix milliseconds that cannot jump: the wall clock read once at process
    start, advanced by the monotonic clock. A wall-clock step while running
    (NTP fixing a bad RTC, an operator) neither ages nor expires anything; a
    step while the process was stopped is trusted at its next start."""
    return _WALL0_MS + now_ms() - _MONO0_MS


class Backoff:
    """Exponential backoff with jitter: each delay is drawn from [d/2, d].

    d doubles from initial_ms up to max_ms; reset() starts again.

    Raises:
        ConfigError: not 0 < initial_ms <= max_ms.
    """

    def __init__(self, initial_ms: int = 500, max_ms: int = 30_000,
                 rng: Callable[[], float] = random.random) -> None:
        if initial_ms <= 0 or max_ms < initial_ms:
            raise ConfigError(
                f"backoff: need 0 < initial_ms <= max_ms, got {initial_ms}, {max_ms}")
        self.initial_ms = initial_ms
        self.max_ms = max_ms
        self._rng = rng
        self._attempt = 0

    def next_ms(self) -> int:
        ceiling = min(self.max_ms, self.initial_ms * (1 << min(self._attempt, 30)))
        self._attempt += 1
        return int(ceiling * (0.5 + 0.5 * self._rng()))

    def reset(self) -> None:
        self._attempt = 0


class TokenBucket:
    """rate_per_s tokens per second, at most burst; take() spends one.

    Integer milli-tokens: elapsed_ms * rate_per_s is exact, so the long-run
    rate is exact too.
    """

    __slots__ = ("rate_per_s", "cap_milli", "milli", "t_ms")

    def __init__(self, rate_per_s: int, burst: int, now_ms: int) -> None:
        self.rate_per_s = rate_per_s
        self.cap_milli = burst * 1000
        self.milli = self.cap_milli
        self.t_ms = now_ms

    def take(self, now_ms: int) -> bool:
        if now_ms > self.t_ms:
            self.milli = min(self.cap_milli, self.milli + (now_ms - self.t_ms) * self.rate_per_s)
            self.t_ms = now_ms
        if self.milli >= 1000:
            self.milli -= 1000
            return True
        return False


class LogLimiter:
    """Log lines about refused input (forged messages, bad records, failed
    handshakes), at most one per interval_ms per kind: a flood costs a
    counter, not the log. The next line of a kind says how many of its lines
    were held back since the last one.

    Args:
        logger: a logging.Logger (any object with .log(level, msg, *args)).
        interval_ms: per kind, at most one line this often (0: every line).
        max_kinds: kinds remembered (bounded: a peer chooses nothing here, but
            a caller may key kinds on a peer); the table is cleared past it.
        clock: milliseconds (now_ms; a test may drive it).
    """

    def __init__(self, logger, interval_ms: int = 1000, max_kinds: int = 1024,
                 clock: Callable[[], int] = now_ms) -> None:
        self._logger = logger
        self._clock = clock
        self.interval_ms = interval_ms
        self._max_kinds = max_kinds
        self._last: dict[str, list[int]] = {}  # kind -> [last line ms, lines held back]
        self.held_back = 0  # lines not written, all kinds

    def log(self, level: int, kind: str, fmt: str, *args: object) -> bool:
        """Write the line unless a line of this kind was written less than
        interval_ms ago; True if written."""
        now = self._clock()
        slot = self._last.get(kind)
        if slot is not None and now - slot[0] < self.interval_ms:
            slot[1] += 1
            self.held_back += 1
            return False
        if slot is None and len(self._last) >= self._max_kinds:
            self._last.clear()
        held = slot[1] if slot is not None else 0
        self._last[kind] = [now, 0]
        if held:
            fmt += " (and %d more like this since the last report)"
            args = args + (held,)
        self._logger.log(level, fmt, *args)
        return True

    def warning(self, kind: str, fmt: str, *args: object) -> bool:
        return self.log(logging.WARNING, kind, fmt, *args)

"""Refused board messages: counted by reason, logged at most once per interval.

Rule: a refusal costs a counter and, throttled per (board, reason), one
WARNING line with the number suppressed since the last one
(docs/BOARDS.md, "Refusals, limits and logs").
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from meshlink_gw.runtime import now_ms

log = logging.getLogger("meshlink.gateway")

MAX_THROTTLE_KEYS = 10_000  # (board, reason) pairs remembered for throttling



class RefusalLog:
    """counts[reason]; refuse() counts and logs one refused message.

    interval_ms: per board and reason, at most one log line this often
    (read through a callable so a live config change applies at once).
    """

    def __init__(self, interval_ms: Callable[[], int]) -> None:
        self._interval_ms = interval_ms
        self.counts: Counter[str] = Counter()
        self._logged: dict[tuple[str, str], list[int]] = {}

    def refuse(self, reason: str, detail: str, board: str | None = None,
               peer: Any = None) -> None:
        """Count and log (throttled per board and reason) a refused board message."""
        self.counts[reason] += 1
        where = peer.describe() if peer is not None else "?"
        key = (board or where, reason)
        now = now_ms()
        slot = self._logged.get(key)
        if slot is not None and now - slot[0] < self._interval_ms():
            slot[1] += 1
            return
        suppressed = slot[1] if slot else 0
        if len(self._logged) > MAX_THROTTLE_KEYS:
            self._logged.clear()
        self._logged[key] = [now, 0]
        log.warning("refused board=%s from=%s reason=%s: %s%s", board or "?", where, reason,
                    detail, f" ({suppressed} more since the last report)" if suppressed else "")

"""runtime.LogLimiter: refused input is logged at most once per interval per
kind, and the next line of a kind says how many were held back (driven with
a fake clock; the lines are captured by a real logging.Logger)."""

from __future__ import annotations

import logging

from meshlink_gw.runtime import LogLimiter


def _limiter(caplog, interval_ms: int, max_kinds: int = 1024):
    clock = [0]
    logger = logging.getLogger("test.limiter")
    caplog.set_level(logging.WARNING, logger="test.limiter")
    return LogLimiter(logger, interval_ms, max_kinds, clock=lambda: clock[0]), clock


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "test.limiter"]


def test_one_line_per_interval_per_kind_with_a_count(caplog):
    lim, clock = _limiter(caplog, 1000)
    for i in range(500):  # a flood of one kind in one interval
        lim.warning("forged", "forged message %d", i)
    lim.warning("bad_record", "bad record")  # another kind is not held back
    assert _lines(caplog) == ["forged message 0", "bad record"]
    assert lim.held_back == 499
    clock[0] = 999
    assert not lim.warning("forged", "forged message late")
    clock[0] = 1000
    assert lim.warning("forged", "forged message %d", 501)
    assert _lines(caplog)[-1] == \
        "forged message 501 (and 500 more like this since the last report)"
    clock[0] = 5000
    lim.warning("forged", "quiet since")
    assert _lines(caplog)[-1] == "quiet since"  # nothing held back: no count


def test_interval_zero_logs_everything_and_kinds_are_bounded(caplog):
    lim, _clock = _limiter(caplog, 0)
    for i in range(5):
        lim.warning("k", "line %d", i)
    assert len(_lines(caplog)) == 5 and lim.held_back == 0
    lim2, _ = _limiter(caplog, 10_000, max_kinds=8)
    for i in range(100):  # kinds a caller keys on something unbounded
        lim2.warning(f"kind {i}", "x")
    assert len(lim2._last) <= 8

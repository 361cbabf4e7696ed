"""The adaptive heartbeat (meshlink.liveness) under arbitrary traffic: a
neighbour that answers within a probe interval is never declared down, and
one that falls silent is declared down no later than probe_interval_ms *
(probe_misses + 1) after the first frame it leaves unanswered (or, on an
idle link, after the next idle ping)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from meshlink.liveness import DOWN, NOTHING, PING, Liveness

PROBE_MS, MISSES, IDLE_MS = 500, 3, 5000

# (gap before the event in ms, kind): "send" expects an answer, "quiet" does not
events = st.lists(st.tuples(st.integers(0, 3000), st.sampled_from(["send", "quiet"])),
                  max_size=60)


def _step_to(lv: Liveness, t: int, silent_at: int, log: list) -> None:
    """Every deadline up to t: ping when asked (answered at once before silent_at)."""
    while lv.next_deadline() <= t:
        when = lv.next_deadline()
        what = lv.poll(when)
        log.append((when, what))
        if what == DOWN:
            return
        assert what == PING
        lv.pinged(when)
        if when + 1 < silent_at:
            lv.received(when + 1)


@settings(max_examples=300)
@given(events, st.integers(1, PROBE_MS - 2))
def test_a_neighbour_that_answers_in_time_is_never_down(evs, answer_ms):
    lv = Liveness(0, PROBE_MS, MISSES, IDLE_MS)
    t, log = 0, []
    for gap, kind in evs:
        _step_to(lv, t + gap, 1 << 40, log)
        t += gap
        lv.sent(t, kind == "send")
        if kind == "send":  # its answer comes answer_ms later, before a probe is due
            _step_to(lv, t + answer_ms, 1 << 40, log)
            t += answer_ms
            lv.received(t)
    _step_to(lv, t + 60_000, 1 << 40, log)
    assert DOWN not in [w for _, w in log]
    assert lv.probes == 0  # and it is never probed: only idle pings
    assert all(w in (PING, NOTHING) for _, w in log)


@settings(max_examples=300)
@given(events, st.integers(0, 20_000))
def test_a_silent_neighbour_is_down_within_the_bound(evs, silent_at):
    lv = Liveness(0, PROBE_MS, MISSES, IDLE_MS)
    t, log = 0, []
    first_unanswered = None
    for gap, kind in evs:
        silent = t + gap >= silent_at
        _step_to(lv, t + gap, silent_at, log)
        if log and log[-1][1] == DOWN:
            break
        t += gap
        lv.sent(t, kind == "send")
        if silent and kind == "send" and first_unanswered is None:
            first_unanswered = t
    if not log or log[-1][1] != DOWN:
        _step_to(lv, t + 60_000, silent_at, log)
    down = [when for when, w in log if w == DOWN]
    assert len(down) == 1, log[-6:]
    # the idle ping that first went unanswered, or the first unanswered send
    pings_unanswered = [when for when, w in log if w == PING and when >= silent_at]
    starts = [x for x in (first_unanswered, pings_unanswered[0] if pings_unanswered else None)
              if x is not None]
    assert down[0] <= min(starts) + PROBE_MS * (MISSES + 1)

# The adaptive heartbeat of one link; runs on CPython and MicroPython.
from meshlink.liveness import DOWN, NOTHING, PING, Liveness


def _drive(lv, until_ms, answer=None):
    """Wake at every deadline up to until_ms; send each ping asked for; with
    answer(t) true, the peer answers at once. Returns [(t, PING|DOWN)]."""
    out = []
    while True:
        t = lv.next_deadline()
        if t > until_ms:
            return out
        what = lv.poll(t)
        if what == NOTHING:
            raise AssertionError("woken at %d for nothing" % t)
        out.append((t, what))
        if what == DOWN:
            return out
        lv.pinged(t)
        if answer is not None and answer(t):
            lv.received(t + 1)


def test_healthy_idle_link_pings_at_the_idle_rate_only():
    lv = Liveness(0, probe_interval_ms=500, probe_misses=3, idle_ping_ms=5000)
    events = _drive(lv, 60000, answer=lambda t: True)
    assert [t for t, _ in events] == list(range(0, 60001, 5000))
    assert all(w == PING for _, w in events)
    assert lv.probes == 0


def test_silent_after_a_directed_send_is_down_after_the_missed_probes():
    lv = Liveness(0, probe_interval_ms=500, probe_misses=3, idle_ping_ms=5000)
    lv.pinged(0)
    lv.received(1)
    assert lv.sent(1000, False) is False  # a frame that expects nothing: no suspicion
    assert lv.next_deadline() == 5000
    assert lv.sent(1200, True) is True  # a directed message: it owes us an answer
    assert lv.sent(1300, True) is False  # already suspicious
    assert lv.next_deadline() == 1700
    events = _drive(lv, 60000)
    assert events == [(1700, PING), (2200, PING), (2700, PING), (3200, DOWN)]
    assert lv.probes == 3


def test_silent_idle_peer_is_down_after_its_idle_ping_goes_unanswered():
    lv = Liveness(0, probe_interval_ms=500, probe_misses=3, idle_ping_ms=5000)
    events = _drive(lv, 60000, answer=lambda t: t < 10000)
    assert events[-4:] == [(10000, PING), (10500, PING), (11000, PING), (11500, DOWN)]


def test_any_frame_from_the_peer_ends_the_suspicion():
    lv = Liveness(0, probe_interval_ms=500, probe_misses=3, idle_ping_ms=5000)
    lv.pinged(0)
    lv.received(5)
    lv.sent(100, True)
    assert lv.poll(600) == PING
    lv.pinged(600)
    assert lv.poll(1100) == PING
    lv.pinged(1100)
    lv.received(1150)  # say, its Ack relayed back: not a pong
    assert not lv.suspicious()
    assert lv.poll(1600) == NOTHING
    assert lv.next_deadline() == 1100 + 5000  # back to the idle rate


def test_nothing_is_due_before_the_deadline():
    lv = Liveness(1000, probe_interval_ms=200, probe_misses=2, idle_ping_ms=1000)
    assert lv.poll(1000) == PING  # the first ping is due at once
    lv.pinged(1000)
    for t in range(1000, 1200, 10):
        assert lv.poll(t) == NOTHING
    assert lv.poll(1200) == PING
    lv.pinged(1200)
    assert lv.poll(1399) == NOTHING
    assert lv.poll(1400) == DOWN  # two pings unanswered with probe_misses=2


def test_a_busy_link_that_answers_is_never_probed():
    lv = Liveness(0, probe_interval_ms=500, probe_misses=3, idle_ping_ms=5000)
    lv.pinged(0)
    lv.received(1)
    t = 10
    while t < 20000:  # a directed message every 100 ms, an answer 50 ms later
        lv.sent(t, True)
        assert lv.poll(t) in (NOTHING, PING)
        if lv.poll(t) == PING:
            lv.pinged(t)
        lv.received(t + 50)
        t += 100
    assert lv.probes == 0


def test_an_excused_silence_starts_over():
    lv = Liveness(0, probe_interval_ms=500, probe_misses=3, idle_ping_ms=5000)
    lv.pinged(0)
    lv.received(1)
    lv.sent(100, True)
    for t in (600, 1100, 1600):
        assert lv.poll(t) == PING
        lv.pinged(t)
    assert lv.poll(2100) == DOWN
    lv.excuse(2100)  # our own loop stalled: the peer's frames may be unread
    assert lv.poll(2100) == NOTHING
    events = _drive(lv, 60000)
    assert events == [(2600, PING), (3100, PING), (3600, PING), (4100, DOWN)]
    idle = Liveness(0)
    idle.excuse(10)  # nothing owed: nothing changes
    assert not idle.suspicious() and idle.poll(0) == PING

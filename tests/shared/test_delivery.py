# End-to-end delivery state machine; runs on CPython and MicroPython.
from meshlink.delivery import RETRY_BACKOFF_MAX, Delivered, Delivery, Expired, Retry
from meshlink.errors import LocalProtocolError
from meshlink.messages import Ack
from vectors import expect_raises

A = "00000000-0000-4000-8000-00000000000a"
B = "00000000-0000-4000-8000-00000000000b"


def _ids():
    n = [0]

    def new_id():
        n[0] += 1
        return "00000000-0000-4000-9000-%012x" % n[0]

    return new_id


def _delivery(**kw):
    return Delivery(_ids(), retry_interval_ms=1000, delivery_timeout_ms=10000, **kw)


def _drive(d, until_ms):
    """Every timer event up to until_ms, as (time, event), waking at next_deadline."""
    out = []
    while True:
        t = d.next_deadline()
        if t is None or t > until_ms:
            return out
        for ev in d.handle_timer(t):
            out.append((t, ev))


def test_retry_schedule_grows_then_expires():
    d = _delivery()
    msg = d.message(A, B, b"hi")
    d.track(msg, 0)
    events = _drive(d, 60000)
    retries = [(t, ev) for t, ev in events if isinstance(ev, Retry)]
    # n-th retry waits interval * min(n, RETRY_BACKOFF_MAX)
    want, t = [], 0
    for n in range(1, 20):
        t += 1000 * min(n, RETRY_BACKOFF_MAX)
        if t >= 10000:
            break
        want.append(t)
    assert [t for t, _ev in retries] == want
    ids = [msg.message_id] + [ev.msg.message_id for _t, ev in retries]
    assert len(set(ids)) == len(ids)  # a fresh message_id per attempt
    for _t, ev in retries:
        assert ev.msg.origin_id == msg.message_id and ev.msg.data == b"hi"
    assert [ev.failed_id for _t, ev in retries] == ids[:-1]
    t_exp, exp = events[-1]
    assert isinstance(exp, Expired) and t_exp == 10000
    assert exp.origin_id == msg.message_id and exp.failed_id == ids[-1]
    assert exp.attempts == len(ids)
    assert d.next_deadline() is None and d.pending_count() == 0


def test_ack_for_any_attempt_delivers_once():
    d = _delivery()
    msg = d.message(A, B, b"x")
    d.track(msg, 0)
    (_t, retry), = _drive(d, 1000)
    late_first = Ack(src=B, dst=A, ack_for=msg.message_id, message_id=d.new_id(), ttl=8,
                     path=[])
    got = d.on_ack(late_first, 1500)
    assert isinstance(got, Delivered)
    assert got.origin_id == msg.message_id and got.rtt_ms == 1500 and got.attempts == 2
    second = Ack(src=B, dst=A, ack_for=retry.msg.message_id, message_id=d.new_id(), ttl=8,
                 path=[])
    assert d.on_ack(second, 1600) is None  # already delivered
    assert d.next_deadline() is None and _drive(d, 60000) == []


def test_destination_acks_every_arrival_and_keeps_the_first():
    src_side = _delivery()
    dst_side = _delivery()
    msg = src_side.message(A, B, b"x")
    src_side.track(msg, 0)
    (_t, retry), = _drive(src_side, 1000)
    assert dst_side.first_arrival(msg, 10) is True
    assert dst_side.first_arrival(retry.msg, 1010) is False  # same (from, origin_id)
    ack = dst_side.ack_for(retry.msg)
    assert (ack.src, ack.dst, ack.ack_for) == (B, A, retry.msg.message_id)
    assert isinstance(src_side.on_ack(ack, 1100), Delivered)


def test_duplicate_memory_is_bounded():
    d = _delivery(seen_max=4)
    msgs = [d.message(A, B, b"") for _ in range(12)]
    for m in msgs:
        assert d.first_arrival(m, 0) is True
    assert len(d._seen) + len(d._seen_old) <= 8
    assert d.first_arrival(msgs[-1], 0) is False  # recent ones are still known


def test_pending_limit_is_a_local_error():
    d = _delivery(max_pending=2)
    d.track(d.message(A, B, b""), 0)
    d.track(d.message(A, B, b""), 0)
    expect_raises(LocalProtocolError, d.track, d.message(A, B, b""), 0)
    expect_raises(LocalProtocolError, d.message, A, "not-an-id", b"")


def test_abandon_reports_everything_pending():
    d = _delivery()
    m1 = d.message(A, B, b"1")
    m2 = d.message(A, B, b"2")
    d.track(m1, 0)
    d.track(m2, 5)
    gone = d.abandon()
    assert sorted(e.origin_id for e in gone) == sorted([m1.message_id, m2.message_id])
    assert d.next_deadline() is None and d.pending_count() == 0


def test_cancel_stops_retries_and_ignores_late_ack():
    d = _delivery()
    msg = d.message(A, B, b"probe")
    d.track(msg, 0)
    assert d.cancel(msg.origin_id)
    assert not d.cancel(msg.origin_id)
    assert d.pending_count() == 0
    assert _drive(d, 60000) == []
    late = Ack(src=B, dst=A, ack_for=msg.message_id, message_id=d.new_id(), ttl=8, path=[B])
    assert d.on_ack(late, 500) is None


C = "00000000-0000-4000-8000-00000000000c"


def test_retry_now_resends_pending_oldest_first_and_moves_the_schedule_on():
    d = _delivery()
    # tracked in this order, with origin IDs that do not sort in it
    sent = []
    for i, dst in enumerate((B, C, B, B)):
        m = d.message(A, dst, b"m%d" % i)
        d.track(m, 100 * i)
        sent.append(m)
    acked = sent[2]
    d.on_ack(Ack(src=B, dst=A, ack_for=acked.message_id, message_id=d.new_id(), ttl=8,
                 path=[]), 350)
    out = d.retry_now(500, dst=B)
    assert [ev.msg.origin_id for ev in out] == [sent[0].message_id, sent[3].message_id]
    assert [ev.msg.data for ev in out] == [b"m0", b"m3"]
    assert [ev.failed_id for ev in out] == [sent[0].message_id, sent[3].message_id]
    for ev in out:  # a new attempt: a fresh id, an Ack for it delivers
        assert ev.msg.message_id != ev.msg.origin_id
    assert [ev.msg.data for ev in d.retry_now(600)] == [b"m0", b"m1", b"m3"]
    # m0 has now had 3 attempts: its next retry follows the backoff schedule
    # from its first attempt (1000 + 2000 + 3000 ms), not an early one
    first_retry = [ev for t, ev in _drive(d, 5999) if ev.msg.data == b"m0"]
    assert first_retry == []
    got = d.on_ack(Ack(src=B, dst=A, ack_for=out[0].msg.message_id, message_id=d.new_id(),
                       ttl=8, path=[]), 700)
    assert isinstance(got, Delivered) and got.attempts == 3


def test_retry_now_leaves_expired_messages_to_the_timer():
    d = _delivery()
    d.track(d.message(A, B, b"old"), 0)
    assert all(isinstance(ev, Retry) for _t, ev in _drive(d, 9999))
    assert d.retry_now(10000) == []
    (_t, exp), = _drive(d, 10000)
    assert isinstance(exp, Expired)


def test_tracking_order_sorts_what_the_owner_held_back():
    d = _delivery()
    ms = [d.message(A, B, b"m%d" % i) for i in range(3)]
    for i, m in enumerate(ms):
        d.track(m, i)
    held = [ms[2], ms[0], ms[1]]  # a re-held attempt moves to the end of a list
    held.sort(key=lambda m: d.tracking_order(m.origin_id))
    assert [m.data for m in held] == [b"m0", b"m1", b"m2"]
    d.cancel(ms[1].origin_id)
    assert d.tracking_order(ms[1].origin_id) == -1

"""Admission before authentication (node/admission.py), driven with virtual
now_ms: when the node counts as under load for cookies (PROTOCOL.md §5.3.1),
and the per-source limits it is paired with."""

from __future__ import annotations

from meshlink_gw.node.admission import Admission, LoadGate


def test_load_gate_under_load_above_the_m1_rate_and_back_after_it_drops():
    half_open = [1]
    gate = LoadGate(None, load_half_open=16, attempts_per_s=10,
                    half_open=lambda: half_open[0], now_ms=0)
    jars = [gate.jar(0) for _ in range(30)]  # 30 M1s in the same millisecond
    assert jars[:10] == [None] * 10  # the first 10 need no cookie
    assert all(j is gate.cookies for j in jars[10:])
    assert gate.jar(50) is gate.cookies  # still over the rate 50 ms later
    assert gate.jar(1050) is None  # a quiet second later: no load


def test_load_gate_under_load_from_the_half_open_threshold():
    half_open = [15]
    gate = LoadGate(bytes(32), load_half_open=16, attempts_per_s=1000,
                    half_open=lambda: half_open[0], now_ms=0)
    assert gate.jar(0) is None
    half_open[0] = 16
    assert gate.jar(1) is gate.cookies
    always = LoadGate(None, load_half_open=0, attempts_per_s=1000,
                      half_open=lambda: 0, now_ms=0)
    assert always.jar(0) is always.cookies


def test_admission_per_host_and_per_prefix():
    adm = Admission(half_open_per_host=2, attempts_per_s=1, attempt_burst=100)
    assert adm.admit("10.0.0.1", 0) is None
    assert adm.admit("10.0.0.1", 0) is None
    assert "host" in (adm.admit("10.0.0.1", 0) or "")
    adm.done("10.0.0.1")
    assert adm.admit("10.0.0.1", 0) is None
    for i in range(2, 5):  # the /24 holds 4 x 2 = 8
        assert adm.admit(f"10.0.0.{i}", 0) is None
        assert adm.admit(f"10.0.0.{i}", 0) is None
    assert "prefix" in (adm.admit("10.0.0.9", 0) or "")
    assert adm.admit("10.0.1.9", 0) is None  # another prefix

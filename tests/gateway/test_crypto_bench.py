"""The benchmark helper runs and reports every figure (tiny counts: no timing asserts)."""

from __future__ import annotations

from bench import crypto as bench


def test_bench_run_reports_all_rows():
    rows = bench.run(n_handshakes=3, n_handshakes_slow=1, n_records=200, n_e2e=20)
    names = [name for name, _value, _unit in rows]
    for backend in ("cryptography", "kyber-py"):
        assert any(backend in n and n.endswith("median") for n in names)
        assert any(backend in n and n.endswith("p95") for n in names)
    assert any("seal+open" in n for n in names)
    assert all(value > 0 for _name, value, _unit in rows)
    assert {unit for _n, _v, unit in rows} <= {"ms", "us", "msg/s", "B", "x"}
    sizes = {name: value for name, value, unit in rows if unit == "B"}
    # the end-to-end proofs' wire cost (docs/PROTOCOL.md §11.6)
    assert sizes == {"e2e: bytes added per mesh message or Ack": 150,
                     "e2e: bytes added per announcement entry": 131,
                     # sealed payloads (docs/PROTOCOL.md §13)
                     "seal: bytes added per message, steady state": 25,
                     "seal: bytes added per message, on the wire (base64)": 32,
                     "seal: bytes added, setup form (until the first Ack)": 1153,
                     "seal: key record (keys reply payload)": 1336,
                     # a cookie reply against M2 (docs/PROTOCOL.md §5.3.1)
                     "cookie: cookie reply payload": 119,
                     "cookie: M2 payload": 1790}

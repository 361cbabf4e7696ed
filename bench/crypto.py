"""Micro-benchmarks of PQMESH/1: handshake CPU time and AES-GCM record cost.

Rule: in-process only (no sockets); the clock is read here because measuring
time is the point. Run from the repository root: `python -m bench.crypto`.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from meshlink_gw.crypto.handshake import Initiator, Responder
from meshlink_gw.crypto.identity import Identity
from meshlink_gw.crypto.kem import BACKEND_NAMES, KemBackend, get_backend
from meshlink_gw.crypto.session import Session

RECORD_BYTES = 256


def _one_handshake_ns(backend: KemBackend, a: Identity, b: Identity) -> int:
    """CPU time of one full handshake, both roles, in this process."""
    t0 = time.process_time_ns()
    init = Initiator(a, listen_port=1, backend=backend, expected_node_id=b.node_id)
    resp = Responder(b, listen_port=2, backend=backend)
    init_m3 = init.receive(resp.receive_hello(init.start()))
    resp.receive_finish(init_m3)
    return time.process_time_ns() - t0


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def bench_handshake(backend: KemBackend, n_runs: int) -> list[tuple[str, float, str]]:
    """Median and p95 handshake CPU time (ms, initiator + responder together)."""
    a, b = Identity.generate(), Identity.generate()
    _one_handshake_ns(backend, a, b)  # warm-up
    samples_ms = [_one_handshake_ns(backend, a, b) / 1e6 for _ in range(n_runs)]
    label = "handshake cpu, both roles, %s" % backend.name
    return [(label + " median", statistics.median(samples_ms), "ms"),
            (label + " p95", _percentile(samples_ms, 0.95), "ms")]


def bench_records(n_records: int) -> list[tuple[str, float, str]]:
    """AES-256-GCM seal and open of 256-byte records through Session."""
    key, iv = os.urandom(32), os.urandom(12)
    sender = Session(send_key=key, send_iv=iv, recv_key=os.urandom(32), recv_iv=iv)
    receiver = Session(send_key=os.urandom(32), send_iv=iv, recv_key=key, recv_iv=iv)
    plaintext = os.urandom(RECORD_BYTES)
    seal, open_ = sender.seal, receiver.open
    t0 = time.perf_counter_ns()
    for _ in range(n_records):
        open_(seal(plaintext))
    pair_us = (time.perf_counter_ns() - t0) / 1e3 / n_records
    return [("aes-256-gcm seal+open, 256 B record", pair_us, "us"),
            ("aes-256-gcm per op (seal or open), 256 B", pair_us / 2, "us"),
            ("records relayed/s, 1 core (crypto only: open+seal)", 1e6 / pair_us, "msg/s")]


def run(n_handshakes: int = 200, n_handshakes_slow: int = 20,
        n_records: int = 200_000) -> list[tuple[str, float, str]]:
    """Run all benchmarks; return (name, value, unit) rows.

    kyber-py is pure Python (~10 ms per handshake), so it gets n_handshakes_slow runs.
    """
    rows: list[tuple[str, float, str]] = []
    for name in BACKEND_NAMES:
        backend = get_backend(name)
        runs = n_handshakes if name == "cryptography" else n_handshakes_slow
        print("bench: %d handshakes with %s" % (runs, name), file=sys.stderr)
        rows += bench_handshake(backend, runs)
    print("bench: %d records" % n_records, file=sys.stderr)
    return rows + bench_records(n_records)


def main() -> None:
    """Print the benchmark table."""
    for name, value, unit in run():
        print("%-55s %12.2f %s" % (name, value, unit))


if __name__ == "__main__":
    main()

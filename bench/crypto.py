"""Micro-benchmarks of PQMESH/1: handshake CPU time and AES-GCM record cost.

Rule: in-process only (no sockets); the clock is read here because measuring
time is the point. Run from the repository root: `python -m bench.crypto`.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from meshlink import messages
from meshlink.auth import Auth
from meshlink.nodeid import new_message_id
from meshlink_gw.crypto.cookie import CookieJar
from meshlink_gw.crypto.handshake import Initiator, Responder
from meshlink_gw.crypto.identity import Identity, verify
from meshlink_gw.crypto.kem import BACKEND_NAMES, KemBackend, get_backend
from meshlink_gw.crypto.seal import KeyRecord, PairOpener, PairSender, new_key_pair
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


def _us_per_call(fn, items: list) -> float:
    t0 = time.perf_counter_ns()
    for x in items:
        fn(x)
    return (time.perf_counter_ns() - t0) / 1e3 / len(items)


def bench_end_to_end(n: int) -> list[tuple[str, float, str]]:
    """Cost of the end-to-end proofs (docs/PROTOCOL.md §11) at the ends, and
    the bytes they add on the wire."""
    origin, dest = Identity.generate(), Identity.generate()
    auth = Auth(verify)
    auth.add_signer(origin.node_id, origin.public_bytes, origin.sign)
    auth.add_signer(dest.node_id, dest.public_bytes, dest.sign)

    def mesh() -> messages.MeshMessage:
        return messages.MeshMessage(src=origin.node_id, dst=dest.node_id,
                                    data=os.urandom(RECORD_BYTES),
                                    message_id=new_message_id(os.urandom(16)), ttl=8, path=[])

    unsigned = [mesh() for _ in range(n)]
    plain_bytes = len(unsigned[0].encode())
    sign_us = _us_per_call(auth.sign_mesh, unsigned)
    verify_us = _us_per_call(auth.check_mesh, unsigned)
    acks = [messages.Ack(src=dest.node_id, dst=origin.node_id, ack_for=m.message_id,
                         message_id=m.message_id, ttl=8, path=[]) for m in unsigned]
    ack_us = _us_per_call(auth.sign_ack, acks) + _us_per_call(auth.check_ack, acks)
    seqs = list(range(n))
    proofs = [auth.announce_proof(dest.node_id, q) for q in seqs]  # signs, fills the cache
    checker = Auth(verify)
    entries = list(zip(seqs, proofs, strict=True))
    first_us = _us_per_call(lambda e: checker.check_announce(dest.node_id, e[0], e[1]), entries)
    again_us = _us_per_call(lambda e: checker.check_announce(dest.node_id, e[0], e[1]), entries)
    entry = [dest.node_id, 1764032400, 2, ""]
    bare_entry = len(messages.Routes(routes=[entry]).encode())
    entry[3] = proofs[0]
    # the pre-auth wire forms had no key, sig or proof at all: count from there
    legacy_mesh = plain_bytes - len(',"key":"","sig":""')
    legacy_entry = bare_entry - len(',""')
    return [("e2e: sign a 256 B mesh message (Ed25519, origin)", sign_us, "us"),
            ("e2e: verify a 256 B mesh message (destination)", verify_us, "us"),
            ("e2e: sign + verify an Ack (delivery proof)", ack_us, "us"),
            ("e2e: announcement entry, first (dst, seq) seen: verify", first_us, "us"),
            ("e2e: announcement entry, (dst, seq) again: cache", again_us, "us"),
            ("e2e: bytes added per mesh message or Ack", len(unsigned[0].encode()) - legacy_mesh,
             "B"),
            ("e2e: bytes added per announcement entry",
             len(messages.Routes(routes=[entry]).encode()) - legacy_entry, "B")]


def _cpu_us(fn, n: int, runs: int = 5) -> float:
    """Median over runs of the CPU time per call of fn() (n calls per run)."""
    per_run = []
    for _ in range(runs):
        t0 = time.process_time_ns()
        for _ in range(n):
            fn()
        per_run.append((time.process_time_ns() - t0) / 1e3 / n)
    return statistics.median(per_run)


def bench_seal(n: int, n_setups: int = 100) -> list[tuple[str, float, str]]:
    """Sealed payloads (docs/PROTOCOL.md §13): first message to a new
    destination (record check, pair setup) and steady state, at each end."""
    backend = get_backend()
    a, b = Identity.generate(), Identity.generate()
    pair = new_key_pair(backend, b.node_id, 1, os.urandom)
    raw = pair.sign(b.public_bytes, b.sign).encode()
    record = KeyRecord.decode(raw)
    plain = os.urandom(RECORD_BYTES)
    check_us = _cpu_us(lambda: KeyRecord.decode(raw).check(verify), n_setups)
    setup_send_us = _cpu_us(lambda: PairSender(backend, record, a.node_id, b.node_id, 0,
                                               os.urandom).seal(plain), n_setups)
    setups = [PairSender(backend, record, a.node_id, b.node_id, 0, os.urandom).seal(plain)
              for _ in range(n_setups * 5)]
    it = iter(setups)
    setup_open_us = _cpu_us(lambda: PairOpener(backend, {1: pair}).open(
        a.node_id, b.node_id, next(it), 0), n_setups)
    sender = PairSender(backend, record, a.node_id, b.node_id, 0, os.urandom)
    opener = PairOpener(backend, {1: pair})
    opener.open(a.node_id, b.node_id, sender.seal(plain), 0)
    sender.confirmed = True
    seal_us = _cpu_us(lambda: sender.seal(plain), n)
    sealed = [sender.seal(plain) for _ in range(n * 5)]
    it2 = iter(sealed)
    open_us = _cpu_us(lambda: opener.open(a.node_id, b.node_id, next(it2), 0), n)
    base = AESGCM(os.urandom(32))  # baseline in the same run: one bare AES-GCM call
    nonce = bytes(12)
    aes_us = _cpu_us(lambda: base.encrypt(nonce, plain, b""), n)

    def wire(data: bytes) -> int:  # base64 in the mesh message's JSON
        return len(messages.MeshMessage(src=a.node_id, dst=b.node_id, data=data,
                                        message_id=a.node_id, ttl=8, path=[]).encode())
    return [("seal: key record check, once per destination", check_us, "us"),
            ("seal: first message, setup at the origin",
             setup_send_us, "us"),
            ("seal: first message, setup at the destination",
             setup_open_us, "us"),
            ("seal: steady state, seal 256 B (origin)", seal_us, "us"),
            ("seal: steady state, open 256 B (destination)", open_us, "us"),
            ("seal: baseline, one AES-256-GCM encrypt of 256 B", aes_us, "us"),
            ("seal: bytes added per message, steady state", len(sealed[0]) - len(plain),
             "B"),
            ("seal: bytes added per message, on the wire (base64)",
             wire(sealed[0]) - wire(plain), "B"),
            ("seal: bytes added, setup form (until the first Ack)",
             len(setups[0]) - len(plain), "B"),
            ("seal: key record (keys reply payload)", len(raw), "B")]


def bench_cookie(n: int) -> list[tuple[str, float, str]]:
    """A responder's CPU per M1 (docs/PROTOCOL.md §5.3.1): answered with a cookie
    reply under load, against a full M2 (X25519, ML-KEM encapsulation, Ed25519)
    measured in the same run; and the bytes of each answer."""
    ident = Identity.generate()
    jar = CookieJar(bytes(32))
    m1s = [Initiator(Identity.generate(), listen_port=1).start() for _ in range(50)]
    it = iter(m1s * (n * 10 // len(m1s) + 10))
    cookie_us = _cpu_us(lambda: Responder(ident, listen_port=2).receive_hello(
        next(it), cookies=jar, source="192.0.2.7", now_ms=0), n)
    m2_us = _cpu_us(lambda: Responder(ident, listen_port=2).receive_hello(next(it)),
                    max(1, n // 10))
    reply = Responder(ident, listen_port=2).receive_hello(m1s[0], cookies=jar,
                                                          source="192.0.2.7", now_ms=0)
    m2 = Responder(ident, listen_port=2).receive_hello(m1s[0])
    return [("cookie: responder cpu, M1 -> cookie reply (under load)", cookie_us, "us"),
            ("cookie: responder cpu, M1 -> M2 (same run)", m2_us, "us"),
            ("cookie: M2 cpu / cookie reply cpu", m2_us / cookie_us, "x"),
            ("cookie: cookie reply payload", len(reply), "B"),
            ("cookie: M2 payload", len(m2), "B")]


def run(n_handshakes: int = 200, n_handshakes_slow: int = 20,
        n_records: int = 200_000, n_e2e: int = 2000) -> list[tuple[str, float, str]]:
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
    rows += bench_records(n_records)
    print("bench: end-to-end signatures", file=sys.stderr)
    rows += bench_end_to_end(n_e2e)
    print("bench: cookie replies", file=sys.stderr)
    rows += bench_cookie(n_e2e)
    print("bench: sealed payloads", file=sys.stderr)
    return rows + bench_seal(n_e2e)


def main() -> None:
    """Print the benchmark table."""
    for name, value, unit in run():
        print("%-55s %12.2f %s" % (name, value, unit))


if __name__ == "__main__":
    main()

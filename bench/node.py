"""Full-node benchmarks over loopback (part of `make bench`).

- handshake time including the TCP connect, both KEM backends (in-process
  responder and initiator on one event loop: the whole CPU cost is counted);
- messages per second relayed by one middle node, a real `meshlink node`
  process, between a sender and a receiver (256-byte payloads, no loss
  allowed: the count received must equal the count sent), side by side:
  messages signed by their origin (docs/PROTOCOL.md §11, what nodes send)
  and the same messages with empty key and sig (the unsigned size), runs
  interleaved in one node process, median of 5 each, no loss; relays
  verify neither;
- per-hop latency (one relay, two links) at low load, p50 and p99.

The sender and receiver are lean raw peers in this process (handshake, then
pre-sealed records), so the middle node is what is measured.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from meshlink import messages
from meshlink.auth import Auth
from meshlink.frames import Deframer, encode_frame
from meshlink.nodeid import new_message_id
from meshlink_gw.crypto.handshake import Initiator, Responder
from meshlink_gw.crypto.identity import Identity, verify
from meshlink_gw.crypto.kem import get_backend
from meshlink_gw.crypto.seal import PairSender, new_key_pair

from examples.node_proc import NodeProcess

PAYLOAD_BYTES = 256
RELAY_MESSAGES = 60_000
RUNS = 5


def _pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


async def _read_frame(reader: asyncio.StreamReader, deframer: Deframer, pending: list) -> bytes:
    while not pending:
        chunk = await reader.read(1 << 16)
        if not chunk:
            raise EOFError("closed")
        pending.extend(deframer.feed(chunk))
    return pending.pop(0)


async def _handshake_tcp(backend_name: str, n: int) -> list[float]:
    backend = get_backend(backend_name)
    server_id, client_id = Identity.generate(), Identity.generate()

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        d, pend = Deframer(), list[bytes]()
        resp = Responder(server_id, listen_port=1, backend=backend)
        w.write(encode_frame(resp.receive_hello(await _read_frame(r, d, pend))))
        resp.receive_finish(await _read_frame(r, d, pend))
        w.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        r, w = await asyncio.open_connection("127.0.0.1", port)
        init = Initiator(client_id, listen_port=2, backend=backend)
        w.write(encode_frame(init.start()))
        w.write(encode_frame(init.receive(await _read_frame(r, Deframer(), []))))
        samples.append((time.perf_counter() - t0) * 1000)
        w.close()
    server.close()
    return samples


class _RawPeer:
    """A minimal peer: handshake with the node, then raw sealed records."""

    def __init__(self) -> None:
        self.identity = Identity.generate()
        self.auth = Auth(verify)
        self.auth.add_signer(self.identity.node_id, self.identity.public_bytes,
                             self.identity.sign)
        self.deframer = Deframer()
        self.pending: list[bytes] = []

    async def connect(self, host: str, port: int) -> None:
        self.reader, self.writer = await asyncio.open_connection(host, port, limit=1 << 22)
        init = Initiator(self.identity, listen_port=1)
        self.writer.write(encode_frame(init.start()))
        m2 = await _read_frame(self.reader, self.deframer, self.pending)
        self.writer.write(encode_frame(init.receive(m2, now_ms=0)))
        self.session = init.session

    def mesh_record(self, dst: str, signed: bool = True, sealer=None) -> bytes:
        me = self.identity.node_id
        data = os.urandom(PAYLOAD_BYTES)
        if sealer is not None:  # end to end (§13): the relay carries it as opaque bytes
            data = sealer.seal(data)
        msg = messages.MeshMessage(src=me, dst=dst, data=data,
                                   message_id=new_message_id(os.urandom(16)), ttl=16,
                                   path=[me])
        if signed:
            self.auth.sign_mesh(msg)
        return encode_frame(self.session.seal(msg.encode()))

    async def discard_incoming(self) -> None:
        self.pending.clear()
        try:
            while True:
                chunk = await asyncio.wait_for(self.reader.read(1 << 20), 0.1)
                self.deframer.feed(chunk)
        except TimeoutError:
            pass

    async def count_frames(self, n: int, timeout_s: float) -> int:
        got = len(self.pending)
        self.pending.clear()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while got < n:
            chunk = await asyncio.wait_for(self.reader.read(1 << 20), deadline - loop.time())
            if not chunk:
                break
            got += len(self.deframer.feed(chunk))
        return got


async def _relay_setup(node: NodeProcess) -> tuple[_RawPeer, _RawPeer]:
    host, port = node.listen.rsplit(":", 1)
    sender, receiver = _RawPeer(), _RawPeer()
    await sender.connect(host, int(port))
    await receiver.connect(host, int(port))
    await asyncio.sleep(0.2)  # let the node register both links
    for peer in (sender, receiver):
        await peer.discard_incoming()  # the node's first ping is not relay traffic
    return sender, receiver


def _sealer(sender: _RawPeer, receiver: _RawPeer) -> PairSender:
    backend = get_backend()
    dst = receiver.identity
    pair = new_key_pair(backend, dst.node_id, 1, os.urandom)
    pair.sign(dst.public_bytes, dst.sign)
    s = PairSender(backend, pair.record, sender.identity.node_id, dst.node_id, 0, os.urandom)
    s.confirmed = True  # steady state: the data form
    return s


async def _relay_rate(sender: _RawPeer, receiver: _RawPeer, kind: str) -> float:
    dst = receiver.identity.node_id
    sealer = _sealer(sender, receiver) if kind == "sealed" else None
    records = [sender.mesh_record(dst, kind != "unsigned", sealer)
               for _ in range(RELAY_MESSAGES)]
    t0 = time.perf_counter()

    async def blast() -> None:
        for i in range(0, len(records), 256):
            sender.writer.write(b"".join(records[i:i + 256]))
            await sender.writer.drain()

    blaster = asyncio.create_task(blast())
    got = await receiver.count_frames(RELAY_MESSAGES, 60)
    elapsed = time.perf_counter() - t0
    await blaster
    if got != RELAY_MESSAGES:
        raise RuntimeError(f"relay lost messages: {got}/{RELAY_MESSAGES}")
    return RELAY_MESSAGES / elapsed


async def _hop_latency(sender: _RawPeer, receiver: _RawPeer, n: int = 2000) -> list[float]:
    dst = receiver.identity.node_id
    samples = []
    for _ in range(n):
        rec = sender.mesh_record(dst)
        t0 = time.perf_counter()
        sender.writer.write(rec)
        await receiver.count_frames(1, 5)
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


async def _node_benches(root: Path) -> list[tuple[str, float, str]]:
    rows = []
    for backend in ("cryptography", "kyber-py"):
        s = await _handshake_tcp(backend, 100 if backend == "cryptography" else 20)
        rows += [(f"handshake incl. TCP connect, {backend}: median", statistics.median(s), "ms"),
                 (f"handshake incl. TCP connect, {backend}: p95", _pct(s, 0.95), "ms")]
    # The raw peers never answer pings: keep heartbeats out of the measurement.
    root.mkdir(parents=True, exist_ok=True)
    cfg = root / "middle.toml"
    cfg.write_text("[node]\nidle_ping_ms = 600000\nprobe_interval_ms = 600000\n"
                   "idle_timeout_ms = 600000\n")
    for loop_name, extra in (("asyncio", ()), ("uvloop", ("--uvloop",))):
        rows += await _relay_benches(root / loop_name, cfg, loop_name, extra)
    return rows


async def _relay_benches(data_dir: Path, cfg: Path, loop_name: str,
                         extra: tuple[str, ...]) -> list[tuple[str, float, str]]:
    with NodeProcess(data_dir, extra=("--config", str(cfg), *extra)) as node:
        node.start()
        sender, receiver = await _relay_setup(node)
        rates: dict[str, list[float]] = {"unsigned": [], "signed": [], "sealed": []}
        for _ in range(RUNS):  # interleaved, so all see the same machine load
            for kind in rates:
                rates[kind].append(await _relay_rate(sender, receiver, kind))
        lat = await _hop_latency(sender, receiver)
    unsigned = statistics.median(rates["unsigned"])
    signed_rate = statistics.median(rates["signed"])
    sealed_rate = statistics.median(rates["sealed"])
    return [
        (f"[{loop_name}] relayed by one node/s, 256 B, unsigned", unsigned, "msg/s"),
        (f"[{loop_name}] relayed by one node/s, 256 B, signed (same run)", signed_rate,
         "msg/s"),
        (f"[{loop_name}] relay throughput, signed / unsigned", 100 * signed_rate / unsigned,
         "%"),
        (f"[{loop_name}] relayed by one node/s, 256 B sealed + signed (same run)", sealed_rate,
         "msg/s"),
        (f"[{loop_name}] relay throughput, sealed / signed", 100 * sealed_rate / signed_rate,
         "%"),
        (f"[{loop_name}] per-hop latency, low load (one relay, two links): p50",
         _pct(lat, 0.5), "ms"),
        (f"[{loop_name}] per-hop latency, low load (one relay, two links): p99",
         _pct(lat, 0.99), "ms")]


def run(keep_dir: str | None = None) -> list[tuple[str, float, str]]:
    if keep_dir:
        return asyncio.run(_node_benches(Path(keep_dir)))
    with tempfile.TemporaryDirectory() as tmp:
        return asyncio.run(_node_benches(Path(tmp)))


if __name__ == "__main__":
    import sys

    for name, value, unit in run(sys.argv[1] if len(sys.argv) > 1 else None):
        print(f"{name:<64} {value:>12,.3f} {unit}")

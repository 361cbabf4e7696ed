"""`make bench`, section "gateway and boards: over-the-air updates" (picked by
`python -m bench boards` too).

Rule: measured now, on this machine, against a real gateway process on
loopback; every process started here is stopped; bounded time.

1. One board: the REAL firmware on the MicroPython unix port (112K heap,
   `meshlink board run`, which boots it again when it exits to reboot) takes a
   full release (every firmware file as .mpy, about 55 KB) from `meshlink
   board update` over UDP. The time is the gateway's, from the update's start
   to the board's status record naming the new version: the offer, the
   reboot into the update receiver, a new session, the transfer with every
   check, the switch, the reboot into the new slot and its first session.
   Median of RUNS updates (each a new version, alternating slots).
2. 100 simulated boards at once through one gateway. The simulated boards
   are CPython stand-ins in this process (examples/sim_board.SimBoard: the
   real board-link handshake and records over UDP, sharing a few sockets),
   each running the board's side of docs/PROTOCOL.md §8.1 written here:
   it checks the manifest MAC under its own PSK, the manifest's SHA-256 and
   every file's SHA-256, keeps the bytes in memory (no flash writes), and
   instead of rebooting sends its status record with the new version on
   the same session. So this measures the gateway's side (signature check,
   100 transfers with their windows, acks and retries, at the default
   [boards] rate limit of 20 records/s per board), not the boards'.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from meshlink._compat import b64decode, ct_equal
from meshlink_gw.boards import ota
from meshlink_gw.boards.registry import BoardRegistry

from examples.gateway_proc import BoardProcess, GatewayProcess, meshlink
from examples.sim_board import SharedUdp, SimBoard

RUNS = 3
FLEET = 100
SOCKETS = 8
TIMEOUT_S = 120.0

GATEWAY_TOML = """
[boards]
offline_after_ms = 60000
max_half_open = 256
retry_ms = 500
"""


def _gateway(root: Path, name: str) -> GatewayProcess:
    data = root / name
    data.mkdir(parents=True, exist_ok=True)
    conf = root / f"{name}.toml"
    conf.write_text(GATEWAY_TOML)
    return GatewayProcess(data, config=conf)


def _ok(out) -> str:
    if out.returncode != 0:
        raise RuntimeError((out.stdout + out.stderr).strip()[-600:])
    return out.stdout


def _update(gw: GatewayProcess, release: Path, *names: str) -> list[dict]:
    out = _ok(meshlink("board", "update", *(names or ("--all",)), "--release", str(release),
                       "--json", "--timeout-s", str(TIMEOUT_S), "--data-dir", str(gw.data_dir),
                       timeout_s=TIMEOUT_S + 30))
    rows = json.loads([ln for ln in out.splitlines() if ln.startswith("[")][-1])
    if not all(r["state"] == "updated" for r in rows):
        raise RuntimeError(f"not every board updated: {rows}")
    return rows


def one_board_figures(root: Path) -> list[tuple[str, float, str]]:
    gw = _gateway(root, "gw-ota1")
    with gw.start(timeout_s=60):
        _ok(meshlink("board", "update-key", "--data-dir", str(gw.data_dir)))
        _ok(meshlink("board", "add", "b1", "--board", "unix", "--gateway", gw.board_udp,
                     "--set", "heap_report_ms=0", "--data-dir", str(gw.data_dir)))
        board = BoardProcess(gw.data_dir, "b1", cpython=False)
        try:
            board.wait_for(r"LINK up", timeout_s=60)
            times, size = [], 0
            for i in range(RUNS):
                version = f"2.0.{i}"
                _ok(meshlink("board", "release", version, "--board", "unix", "--data-dir",
                             str(gw.data_dir), timeout_s=120))
                row = _update(gw, ota.release_dir(gw.data_dir, "unix", version), "b1")[0]
                times.append(row["finished_ms"] - row["started_ms"])
                size = row["bytes"]
                print(f"   update {i + 1}/{RUNS} to {version}: {size} bytes in "
                      f"{times[-1]} ms", flush=True)
        finally:
            board.stop()
    med = statistics.median(times)
    return [("OTA, 1 MicroPython board (112K), UDP, offer to new version up", med, "ms"),
            ("  release size (manifest + every firmware file)", float(size), "bytes"),
            ("  effective rate over that whole time", size / med, "KB/s")]


class _StandIn:
    """A simulated board's side of an update (see the module docstring)."""

    def __init__(self, board: SimBoard, psk: bytes) -> None:
        self.board, self.psk = board, psk
        self.tid: str | None = None
        self.buf = bytearray()
        self.mlen = 0
        self.mh = b""
        self.n = 0

    async def serve(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                obj = await self.board.recv(timeout_s=max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                return
            if obj.get("t") != "ota":
                continue
            if obj["op"] == "begin":
                tag = ota.manifest_tag(self.psk, bytes.fromhex(obj["mh"]))
                if not ct_equal(tag, bytes.fromhex(obj["tag"])):
                    self.board.send({"t": "ota", "op": "fail", "id": obj["id"], "why": "mac"})
                    return
                if self.tid != obj["id"]:
                    self.tid, self.buf, self.n = obj["id"], bytearray(), 0
                    self.mlen, self.mh = obj["mlen"], bytes.fromhex(obj["mh"])
                self.board.send({"t": "ota", "op": "ack", "id": self.tid, "off": len(self.buf)})
            elif obj["op"] == "chunk" and obj["id"] == self.tid:
                if obj["off"] != len(self.buf):
                    self.board.send({"t": "ota", "op": "ack", "id": self.tid,
                                     "off": len(self.buf)})
                    continue
                self.buf += b64decode(obj["data"])
                self.n += 1
                if self._complete():
                    version = self._verify()
                    self.board.send({"t": "ota", "op": "done", "id": self.tid, "ver": version})
                    self.board.send({"t": "status", "ver": version, "ota": "updated"})
                    return
                if self.n % 2 == 0:
                    self.board.send({"t": "ota", "op": "ack", "id": self.tid,
                                     "off": len(self.buf)})

    def _complete(self) -> bool:
        if len(self.buf) < self.mlen:
            return False
        _b, _v, files = ota.decode_manifest(bytes(self.buf[:self.mlen]))
        return len(self.buf) == self.mlen + sum(f["size"] for f in files)

    def _verify(self) -> str:
        manifest = bytes(self.buf[:self.mlen])
        if hashlib.sha256(manifest).digest() != self.mh:
            raise RuntimeError("manifest hash")
        _board, version, files = ota.decode_manifest(manifest)
        off = self.mlen
        for f in files:
            if hashlib.sha256(self.buf[off:off + f["size"]]).hexdigest() != f["sha256"]:
                raise RuntimeError(f"{f['path']}: hash")
            off += f["size"]
        return version


async def _fleet(gw: GatewayProcess, creds, releases: list[Path]) -> list[list[dict]]:
    host, port = gw.board_udp.rsplit(":", 1)
    sockets = [SharedUdp() for _ in range(SOCKETS)]
    for s in sockets:
        s.start()
    try:
        boards = [SimBoard(psk, board_id) for psk, board_id in creds]
        await asyncio.gather(*(b.connect_udp(sockets[i % SOCKETS], (host, int(port)),
                                             timeout_s=30) for i, b in enumerate(boards)))
        for b in boards:  # each board's first record, as the firmware's
            b.send({"t": "status", "ver": "factory", "ota": ""})
        runs = []
        for release in releases:
            deadline = time.monotonic() + TIMEOUT_S
            servers = [asyncio.create_task(_StandIn(b, psk).serve(deadline))
                       for b, (psk, _id) in zip(boards, creds, strict=True)]
            runs.append(await asyncio.to_thread(_update, gw, release))
            await asyncio.gather(*servers)
        return runs
    finally:
        for s in sockets:
            s.close()


def fleet_figures(root: Path) -> list[tuple[str, float, str]]:
    from meshlink_gw.crypto.identity import Identity

    gw = _gateway(root, "gw-ota100")
    reg = BoardRegistry(gw.data_dir)
    creds, rows = [], []
    for i in range(FLEET):
        psk, board_id = os.urandom(32), os.urandom(8)
        creds.append((psk, board_id))
        rows.append((f"sim{i:03d}", board_id, psk, Identity.generate()))
    reg.add_many(rows)
    reg.close()
    ota.generate_update_key(gw.data_dir)
    releases = [ota.build_release(gw.data_dir, "unix", f"3.0.{i}", gw.data_dir / ota.KEY_FILE)
                for i in range(RUNS)]
    with gw.start(timeout_s=60):
        runs = asyncio.run(_fleet(gw, creds, releases))
    totals, per = [], []
    for out in runs:
        totals.append(max(r["finished_ms"] for r in out) - min(r["started_ms"] for r in out))
        per.append(statistics.median(r["finished_ms"] - r["started_ms"] for r in out))
        print(f"   {FLEET} boards: all updated in {totals[-1]} ms", flush=True)
    size = runs[0][0]["bytes"]
    return [(f"OTA, {FLEET} simulated boards at once, UDP, all updated", statistics.median(totals),
             "ms"),
            ("  median per board", float(statistics.median(per)), "ms"),
            ("  bytes through the gateway per update", float(size * FLEET), "bytes")]


def run() -> list[tuple[str, float, str]]:
    root = Path(tempfile.mkdtemp(prefix="meshlink-bench-ota-"))
    try:
        return one_board_figures(root) + fleet_figures(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)

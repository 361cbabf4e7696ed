"""Helpers for the board end-to-end tests: real gateway processes, boards
provisioned with `meshlink board add`, and the REAL firmware bundle run by
`meshlink board run` (MicroPython unix port, -X heapsize=112K).

Waits are bounded and event-driven (console lines, log lines, CLI polls).
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

from meshlink_gw.board_bundle import find_micropython
from meshlink_gw.proc import NodeProcess, meshlink_cmd

# The ESP32 budget; MESHLINK_TEST_BOARD_HEAP overrides it only to debug the firmware.
HEAP = os.environ.get("MESHLINK_TEST_BOARD_HEAP", "112K")
# Short board-side timeouts so reconnects happen within a test's budget.
FAST_BOARD = ("ping_interval_ms=500", "link_timeout_ms=2500", "hello_timeout_ms=300",
              "hello_tries=3", "backoff_min_ms=200", "backoff_max_ms=1000",
              "heap_report_ms=0")

GATEWAY_TOML = """
[node]
retry_interval_ms = 1000
delivery_timeout_ms = 20000

[boards]
offline_after_ms = 3000
handshake_timeout_ms = 1500
retry_ms = 300
rate_records_per_s = {rate}
rate_burst = {burst}
refusal_log_interval_ms = 0
registry_poll_ms = 500
"""


def have_micropython() -> bool:
    return find_micropython() is not None


def cli(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run(meshlink_cmd() + list(args), capture_output=True, text=True,
                          timeout=timeout_s)


class GatewayProcess(NodeProcess):
    """`meshlink gateway` with board listeners on free loopback ports."""

    def __init__(self, data_dir: Path, *, peers: tuple[str, ...] = (), rate: int = 50,
                 burst: int = 100, udp: str = "127.0.0.1:0", tcp: str = "127.0.0.1:0",
                 listen: str = "127.0.0.1:0", extra: tuple[str, ...] = ()) -> None:
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        conf = data_dir.parent / f"{data_dir.name}.toml"
        conf.write_text(GATEWAY_TOML.format(rate=rate, burst=burst))
        super().__init__(data_dir, listen=listen, peers=peers, command="gateway",
                         extra=("--board-udp", udp, "--board-tcp", tcp, "--no-beacon",
                                "--config", str(conf), *extra),
                         log_path=data_dir.parent / f"{data_dir.name}.log")
        self.board_udp = ""
        self.board_tcp = ""

    def _read_started(self, timeout_s: float):
        started = super()._read_started(timeout_s)
        self.board_udp, self.board_tcp = started["board_udp"], started["board_tcp"]
        return started

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_log(self, pattern: str, timeout_s: float = 15.0, count: int = 1) -> list[str]:
        """Wait until at least count gateway log lines match pattern (regex)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        while True:
            hits = [ln for ln in self.log_text().splitlines() if rx.search(ln)]
            if len(hits) >= count:
                return hits
            if time.monotonic() > deadline:
                raise AssertionError(f"gateway log has {len(hits)} line(s) matching "
                                     f"{pattern!r}, wanted {count}; tail:\n"
                                     + "\n".join(self.log_text().splitlines()[-25:]))
            time.sleep(0.05)

    def boards(self) -> dict[str, dict]:
        out = cli("board", "list", "--json", "--data-dir", str(self.data_dir))
        if out.returncode != 0:
            raise AssertionError(out.stderr)
        return {row["name"]: row for row in json.loads(out.stdout)}

    def wait_board(self, name: str, pred, timeout_s: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout_s
        row: dict = {}
        while time.monotonic() < deadline:
            row = self.boards().get(name, {})
            if row and pred(row):
                return row
            time.sleep(0.1)
        raise AssertionError(f"board {name} never reached the wanted state: {row}")

    def readings(self, board_node_id: str) -> list[dict]:
        """Readings from a board delivered to this gateway's own inbox, decoded."""
        out = []
        for item in self.received():
            if item["from"] == board_node_id and "text" in item:
                body = json.loads(item["text"])
                if body.get("kind") == "reading":
                    out.append(body)
        return out


def add_board(data_dir: Path, name: str, *, gateway: str | None, transport: str = "udp",
              sets: tuple[str, ...] = FAST_BOARD, routes: tuple[str, ...] = (),
              rules: tuple[dict, ...] = (), interval_ms: int = 300) -> dict:
    """`meshlink board add` with a fast simulated temperature sensor; returns its info."""
    sensor = {"name": "temp", "type": "sim", "interval_ms": interval_ms, "unit": "C",
              "base": 30, "amplitude": 2, "period_ms": 4000, "noise": 0.1, "seed": 3}
    args = ["board", "add", name, "--board", "unix", "--transport", transport,
            "--data-dir", str(data_dir), "--json", "--sensor", json.dumps(sensor)]
    if gateway:
        args += ["--gateway", gateway]
    for s in sets:
        args += ["--set", s]
    for r in routes:
        args += ["--route", r]
    for r in rules:
        args += ["--rule", json.dumps(r)]
    out = cli(*args)
    if out.returncode != 0:
        raise AssertionError(f"board add failed: {out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


class FirmwareBoard:
    """`meshlink board run NAME`: the real firmware bundle on the unix port."""

    def __init__(self, data_dir: Path, name: str) -> None:
        self.name = name
        self.data_dir = Path(data_dir)
        self.proc = subprocess.Popen(
            meshlink_cmd() + ["board", "run", name, "--data-dir", str(data_dir),
                              "--heapsize", HEAP],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))
            self._q.put(line)
        self._q.put(None)

    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout_s: float = 15.0, count: int = 1) -> list[re.Match]:
        """Wait until count console lines (since start) match pattern."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                hits = [m for m in map(rx.search, self.lines) if m]
            if len(hits) >= count:
                return hits
            if time.monotonic() > deadline or (self.proc.poll() is not None and
                                               self._q.empty()):
                time.sleep(0.1)
                raise AssertionError(f"board {self.name}: {len(hits)} line(s) matching "
                                     f"{pattern!r}, wanted {count} (rc={self.proc.poll()}); "
                                     "tail:\n" + "\n".join(self.lines[-25:]))
            try:
                self._q.get(timeout=0.1)
            except queue.Empty:
                pass

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


class UdpTamperProxy:
    """A UDP man in the middle between one board and the gateway.

    tamper(index, datagram) -> list of datagrams to forward for the index-th
    board->gateway datagram (drop, replay, corrupt). Gateway->board traffic
    passes unchanged.
    """

    def __init__(self, gateway: str, tamper) -> None:
        import socket

        host, port = gateway.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.tamper = tamper
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.connect(self.upstream)
        self.address = "127.0.0.1:%d" % self.front.getsockname()[1]
        self.board_addr = None
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import select

        while not self._stop.is_set():
            ready, _, _ = select.select([self.front, self.back], [], [], 0.05)
            for s in ready:
                try:
                    if s is self.front:
                        data, self.board_addr = self.front.recvfrom(65536)
                        for out in self.tamper(self.count, data):
                            self.back.send(out)
                        self.count += 1
                    else:
                        data = self.back.recv(65536)
                        if self.board_addr is not None:
                            self.front.sendto(data, self.board_addr)
                except OSError:
                    continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.front.close()
        self.back.close()

    def kill(self) -> None:
        self.close()


def bundle_secrets(data_dir: Path, name: str) -> tuple[bytes, bytes, str]:
    """(psk, board_id, node_id) from a board's bundle config.json."""
    cfg = json.loads((Path(data_dir) / "boards" / name / "bundle" / "config.json").read_text())
    return bytes.fromhex(cfg["psk"]), bytes.fromhex(cfg["board_id"]), cfg["node_id"]


def tamper_bundle(data_dir: Path, name: str, **changes) -> None:
    """Change keys of a board's bundle config.json (e.g. a wrong psk)."""
    path = Path(data_dir) / "boards" / name / "bundle" / "config.json"
    cfg = json.loads(path.read_text())
    cfg.update(changes)
    path.write_text(json.dumps(cfg))

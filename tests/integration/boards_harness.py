"""Helpers for the board end-to-end tests: real gateway processes, boards
provisioned with `meshlink board add`, and the REAL firmware bundle run by
`meshlink board run` (MicroPython unix port, -X heapsize=112K).

Waits poll a condition (console lines, log lines, CLI polls) and end as soon
as it holds; their deadline is tests/helpers' generous DEADLINE_S.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
from pathlib import Path

from helpers import DEADLINE_S, cli, poll_until
from helpers.procs import Board, Gateway

from examples.localbroker import LocalMosquitto

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

[gateway]
beacon_interval_ms = 300

[boards]
offline_after_ms = 3000
handshake_timeout_ms = 1500
retry_ms = 300
rate_records_per_s = {rate}
rate_burst = {burst}
refusal_log_interval_ms = 0
registry_poll_ms = 500
"""


class GatewayProcess(Gateway):
    """`meshlink gateway` with board listeners on free loopback ports and fast
    test timeouts ([boards] table)."""

    def __init__(self, data_dir: Path, *, peers: tuple[str, ...] = (), rate: int = 50,
                 burst: int = 100, udp: str = "127.0.0.1:0", tcp: str = "127.0.0.1:0",
                 listen: str = "127.0.0.1:0", beacon_to: str | None = None,
                 extra: tuple[str, ...] = (), extra_toml: str = "") -> None:
        """extra_toml: more TOML tables ([mqtt], [[serial]], ...) for the gateway."""
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        conf = data_dir.parent / f"{data_dir.name}.toml"
        conf.write_text(GATEWAY_TOML.format(rate=rate, burst=burst) + extra_toml)
        super().__init__(data_dir, peers=peers, udp=udp, tcp=tcp, listen=listen, config=conf,
                         beacon_to=beacon_to, extra=extra)

    def wait_board(self, name: str, pred, timeout_s: float = DEADLINE_S) -> dict:
        """Poll `board list` until board name's row satisfies pred; return the row."""
        def check() -> dict | None:
            row = self.boards().get(name, {})
            return row if row and pred(row) else None
        return poll_until(check, timeout_s, interval_s=0.1,
                          what=f"board {name} in the wanted state")

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
              rules: tuple[dict, ...] = (), interval_ms: int = 300,
              extra_args: tuple[str, ...] = ()) -> dict:
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
    args += list(extra_args)
    out = cli(*args)
    if out.returncode != 0:
        raise AssertionError(f"board add failed: {out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


class FirmwareBoard(Board):
    """`meshlink board run NAME`: the real firmware bundle on the unix port."""

    def __init__(self, data_dir: Path, name: str) -> None:
        super().__init__(data_dir, name, cpython=False, heapsize=HEAP)


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


class MosquittoSub:
    """`mosquitto_sub -v` in the background; each line is "topic payload".

    client_id: a persistent session under this ID (-c -i): the broker keeps
    its subscription, and QoS-1 messages for it, while it is away."""

    def __init__(self, broker: LocalMosquitto, topic: str, client_id: str | None = None) -> None:
        args = ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-v", "-q", "1",
                "-t", topic]
        if client_id:
            args += ["-c", "-i", client_id]
        if shutil.which("stdbuf"):
            args = ["stdbuf", "-oL", *args]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def next(self, timeout_s: float = DEADLINE_S) -> tuple[str, str]:
        topic, _, payload = self.lines.get(timeout=timeout_s).partition(" ")
        return topic, payload

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(DEADLINE_S)

"""Gateways and simulated boards as real child processes (demo, tests, bench).

Rule: like examples.node_proc: every process started here is stopped by
stop()/kill(); waits are bounded by deadlines and driven by output lines.
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

from meshlink_gw.boards.bundle import find_micropython

from examples.node_proc import NodeProcess, meshlink_cmd


def meshlink(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    """Run one `meshlink ...` command and return its completed process."""
    return subprocess.run(meshlink_cmd() + list(args), capture_output=True, text=True,
                          timeout=timeout_s)


class GatewayProcess(NodeProcess):
    """`meshlink gateway`; knows its board addresses and can wait on its log."""

    def __init__(self, data_dir: Path, *, peers: tuple[str, ...] = (),
                 udp: str = "127.0.0.1:0", tcp: str = "127.0.0.1:0",
                 listen: str = "127.0.0.1:0", config: Path | None = None,
                 beacon_to: str | None = None, extra: tuple[str, ...] = ()) -> None:
        """beacon_to: "HOST:PORT" to send the GatewayBeacon to; None: no beacon."""
        data_dir = Path(data_dir)
        args = ["--board-udp", udp, "--board-tcp", tcp]
        if beacon_to is None:
            args.append("--no-beacon")
        else:
            host, port = beacon_to.rsplit(":", 1)
            args += ["--beacon-broadcast", host, "--beacon-port", port]
        if config is not None:
            args += ["--config", str(config)]
        super().__init__(data_dir, listen=listen, peers=peers, command="gateway",
                         extra=(*args, *extra),
                         log_path=data_dir.parent / f"{data_dir.name}.log")
        self.board_udp = ""
        self.board_tcp = ""

    def _read_started(self, timeout_s: float):
        started = super()._read_started(timeout_s)
        self.board_udp, self.board_tcp = started["board_udp"], started["board_tcp"]
        return started

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_log(self, pattern: str, timeout_s: float = 15.0, count: int = 1) -> list[re.Match]:
        """Wait until at least count gateway log lines match pattern (regex)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        while True:
            hits = [m for m in map(rx.search, self.log_text().splitlines()) if m]
            if len(hits) >= count:
                return hits
            if time.monotonic() > deadline:
                raise AssertionError(f"gateway log has {len(hits)} line(s) matching "
                                     f"{pattern!r}, wanted {count}; tail:\n"
                                     + "\n".join(self.log_text().splitlines()[-25:]))
            time.sleep(0.05)

    def boards(self) -> dict[str, dict]:
        """`meshlink board list --json`, by board name."""
        out = meshlink("board", "list", "--json", "--data-dir", str(self.data_dir))
        if out.returncode != 0:
            raise AssertionError(out.stderr)
        return {row["name"]: row for row in json.loads(out.stdout)}


class BoardProcess:
    """`meshlink board run NAME`: a simulated board running its deploy bundle
    (MicroPython unix port, or CPython through the shim when cpython=True)."""

    def __init__(self, data_dir: Path, name: str, *, cpython: bool | None = None,
                 heapsize: str = "112K", on_line=None) -> None:
        self.name = name
        self.data_dir = Path(data_dir)
        if cpython is None:
            cpython = find_micropython() is None
        self.cpython = cpython
        args = ["board", "run", name, "--data-dir", str(data_dir), "--heapsize", heapsize]
        if cpython:
            args.append("--cpython")
        self.proc = subprocess.Popen(meshlink_cmd() + args, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.on_line = on_line
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            with self._lock:
                self.lines.append(line)
            if self.on_line is not None:
                self.on_line(self.name, line)
            self._q.put(line)
        self._q.put(None)

    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout_s: float = 15.0, count: int = 1) -> list[re.Match]:
        """Wait until count console lines (since start) match pattern (regex)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                hits = [m for m in map(rx.search, self.lines) if m]
            if len(hits) >= count:
                return hits
            exited = self.proc.poll() is not None and self._q.empty()
            if time.monotonic() > deadline or exited:
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

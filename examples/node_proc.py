"""Run `meshlink` nodes as real child processes (for the demo, tests, benches).

Rule: every process started here is stopped by stop()/kill() or by the
context manager; waits are bounded by deadlines, never open-ended sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from meshlink.errors import TransportError


def meshlink_cmd() -> list[str]:
    """The command that runs our CLI with this interpreter."""
    return [sys.executable, "-m", "meshlink_gw.cli"]


class NodeProcess:
    """One `meshlink node` (or `meshlink gateway`) child process."""

    def __init__(self, data_dir: Path, *, listen: str = "127.0.0.1:0",
                 peers: tuple[str, ...] = (), extra: tuple[str, ...] = (),
                 command: str = "node", log_path: Path | None = None,
                 prefix: tuple[str, ...] = ()) -> None:
        self.prefix = list(prefix)  # e.g. ("ip", "netns", "exec", "ns1")
        self.data_dir = Path(data_dir)
        self.args = [command, "--data-dir", str(self.data_dir), "--listen", listen]
        for p in peers:
            self.args += ["--peer", p]
        self.args += list(extra)
        self.log_path = log_path or self.data_dir / "node.log"
        self.proc: subprocess.Popen | None = None
        self.node_id = ""
        self.listen = ""
        self.started: dict[str, Any] = {}

    def start(self, timeout_s: float = 20.0) -> NodeProcess:
        self.launch()
        return self.wait_started(timeout_s)

    def launch(self) -> NodeProcess:
        """Start the process without waiting for it (start many, then wait_started)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.prefix + meshlink_cmd() + self.args,
                                     stdout=subprocess.PIPE, stderr=self._log,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1"))
        return self

    def wait_started(self, timeout_s: float = 20.0) -> NodeProcess:
        """Wait for a launched node's "started" line (its node ID and address)."""
        started = self._read_started(timeout_s)
        self.node_id, self.listen = started["node_id"], started["listen"]
        self.started = started
        return self

    def _read_started(self, timeout_s: float) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        os.set_blocking(self.proc.stdout.fileno(), True)
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise TransportError(f"node exited early; see {self.log_path}")
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if obj.get("event") == "started":
                return obj
        raise TransportError("node did not start in time")

    def cli(self, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
        return subprocess.run(meshlink_cmd() + [args[0], "--data-dir", str(self.data_dir),
                                                *args[1:]],
                              capture_output=True, text=True, timeout=timeout_s)

    def status(self) -> dict[str, Any]:
        out = self.cli("status", "--json")
        if out.returncode != 0:
            raise TransportError(out.stderr.strip())
        return json.loads(out.stdout)

    def wait_peers(self, count: int, timeout_s: float = 20.0) -> dict[str, Any]:
        """Poll status until at least count peers are up."""
        deadline = time.monotonic() + timeout_s
        st: dict[str, Any] = {}
        while time.monotonic() < deadline:
            st = self.status()
            if len(st["peers"]) >= count:
                return st
            time.sleep(0.1)
        raise TransportError(f"{self.node_id} has {len(st.get('peers', []))} peers, "
                             f"wanted {count}")

    def wait_received(self, message_id: str, timeout_s: float = 15.0) -> dict[str, Any]:
        """Poll the inbox until message_id is there; return it (or raise TransportError)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for item in self.received():
                if item["message_id"] == message_id:
                    return item
            time.sleep(0.05)
        raise TransportError(f"message {message_id} did not reach {self.node_id}")

    def received(self) -> list[dict[str, Any]]:
        out = self.cli("recv", "--json", "--limit", "1000000")  # all, oldest first
        return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]

    def stop(self, timeout_s: float = 10.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
            self._log.close()

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill() if exc[0] else self.stop()

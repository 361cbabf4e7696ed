"""A throwaway mosquitto on a free loopback port, for tests and the bench.

Rule: loopback only, everything under one work directory, always stoppable.
Not used by the gateway at run time (it talks to whatever broker the
[mqtt] config names).
"""

from __future__ import annotations

import os
import pathlib
import pwd
import shutil
import signal
import socket
import subprocess
import time

from meshlink.errors import ConfigError, TransportError

_SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")


def find_mosquitto() -> str | None:
    """Path of the mosquitto broker binary, or None (it lives in sbin on Debian)."""
    path = os.environ.get("PATH", "") + ":" + ":".join(_SBIN)
    return shutil.which("mosquitto", path=path)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalMosquitto:
    """One mosquitto process, configured in workdir.

    Args:
        workdir: holds mosquitto.conf, the log and the persistence file.
        persistence: keep sessions and queued messages across restarts.
        password_file: a mosquitto_passwd file; anonymous clients are then refused.
        tls: {"certfile":..., "keyfile":...} to serve TLS instead of plain TCP.
    """

    def __init__(self, workdir: pathlib.Path, *, port: int | None = None,
                 persistence: bool = False, password_file: pathlib.Path | None = None,
                 tls: dict[str, str] | None = None) -> None:
        binary = find_mosquitto()
        if binary is None:
            raise ConfigError("mosquitto is not installed (apt-get install mosquitto)")
        self.binary = binary
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.persistence = persistence
        self.password_file = password_file
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def conf_path(self) -> pathlib.Path:
        return self.workdir / "mosquitto.conf"

    @property
    def log_path(self) -> pathlib.Path:
        return self.workdir / "mosquitto.log"

    @property
    def db_path(self) -> pathlib.Path:
        return self.workdir / "mosquitto.db"

    def _conf(self) -> str:
        lines = [
            f"listener {self.port} {self.host}",
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
            "log_dest stderr",  # start() sends stderr to log_path (unbuffered)
            "log_type error", "log_type warning", "log_type notice", "log_type information",
            "max_queued_messages 100000",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            "persistence_file mosquitto.db",
            "autosave_interval 3600",
        ]
        if self.password_file is not None:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        else:
            lines.append("allow_anonymous true")
        if self.tls is not None:
            lines += [f"certfile {self.tls['certfile']}", f"keyfile {self.tls['keyfile']}"]
        return "\n".join(lines) + "\n"

    def start(self, timeout_s: float = 10.0) -> LocalMosquitto:
        """Start and wait (bounded) until the port accepts connections.

        Raises:
            TransportError: mosquitto exited or never listened.
        """
        self.conf_path.write_text(self._conf())
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf_path)],
                                         stdout=subprocess.DEVNULL, stderr=log_file)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise TransportError(f"mosquitto exited with {self.proc.returncode}: "
                                     f"{self.log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.02)  # bounded readiness poll of an external process
        self.stop()
        raise TransportError(f"mosquitto did not listen on {self.port}: {self.log_tail()}")

    def send_signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
        """Stop the broker (SIGTERM saves persistence; SIGKILL loses what is unsaved)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if sig != signal.SIGKILL:  # a paused broker must wake to handle SIGTERM
                self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout_s)
        self.proc = None

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

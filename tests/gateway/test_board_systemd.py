"""packaging/meshlink-gateway.service: a valid unit (systemd-analyze verify
when available, else parsed), and the gateway starts from exactly its
ExecStart command line with the example config (paths rewritten to tmp),
then stops cleanly (exit 0) on SIGTERM."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import DEADLINE_S, ROOT, free_port

UNIT = ROOT / "packaging" / "meshlink-gateway.service"
EXAMPLE = ROOT / "packaging" / "gateway.toml.example"
VENV_MESHLINK = Path(sys.executable).parent / "meshlink"


def parse_unit(text: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
    cp.optionxform = str  # systemd keys are case-sensitive
    cp.read_string(text)
    return cp


def test_unit_reaches_serial_boards():
    """[[serial]] boards on /dev/ttyUSB* etc. can be opened under the service:
    no PrivateDevices (it hides them), the serial device classes allowed, and the
    group that owns them (Debian / Raspberry Pi OS: dialout)."""
    lines = [ln.strip() for ln in UNIT.read_text().splitlines() if not ln.startswith("#")]
    assert not any(ln.startswith("PrivateDevices=") for ln in lines)
    allowed = {ln.split("=", 1)[1] for ln in lines if ln.startswith("DeviceAllow=")}
    assert {"char-ttyUSB rw", "char-ttyACM rw", "char-ttyAMA rw"} <= allowed
    assert "DevicePolicy=closed" in lines and "SupplementaryGroups=dialout" in lines


def test_unit_is_valid():
    unit = parse_unit(UNIT.read_text())
    assert set(unit.sections()) == {"Unit", "Service", "Install"}
    svc = unit["Service"]
    assert svc["Type"] == "simple" and svc["Restart"] == "on-failure"
    assert svc["KillSignal"] == "SIGTERM" and svc["StateDirectory"] == "meshlink"
    argv = shlex.split(svc["ExecStart"])
    assert argv[1] == "gateway"
    assert argv[argv.index("--config") + 1] == "/etc/meshlink/gateway.toml"
    assert argv[argv.index("--data-dir") + 1] == "/var/lib/meshlink"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert "network-online.target" in unit["Unit"]["After"]
    if shutil.which("systemd-analyze") is None:
        return
    # verify checks that ExecStart's program exists: point it at this venv's
    text = UNIT.read_text().replace(argv[0], str(VENV_MESHLINK))
    copy = Path(os.environ.get("TMPDIR", "/tmp")) / f"meshlink-gateway-{os.getpid()}.service"
    copy.write_text(text)
    try:
        out = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True,
                             text=True, timeout=60)
    finally:
        copy.unlink()
    problems = [ln for ln in out.stderr.splitlines() if copy.name in ln]
    assert out.returncode == 0 and not problems, out.stderr


def test_gateway_starts_from_the_units_exec_start(tmp_path):
    unit = parse_unit(UNIT.read_text())
    argv = shlex.split(unit["Service"]["ExecStart"])
    config = tmp_path / "etc" / "gateway.toml"
    data = tmp_path / "var" / "meshlink"
    config.parent.mkdir(parents=True)
    udp, tcp, node = free_port(socket.SOCK_DGRAM), free_port(), free_port()
    text = EXAMPLE.read_text()
    text = re.sub(r'listen = ".*"', f'listen = "127.0.0.1:{node}"', text)
    text = re.sub(r'board_udp = ".*"', f'board_udp = "127.0.0.1:{udp}"', text)
    text = re.sub(r'board_tcp = ".*"', f'board_tcp = "127.0.0.1:{tcp}"', text)
    text = re.sub(r"discovery = true", "discovery = false", text)
    text = re.sub(r"beacon = true", "beacon = false", text)
    config.write_text(text)
    cmd = [str(VENV_MESHLINK) if a == argv[0] else
           str(config) if a == "/etc/meshlink/gateway.toml" else
           str(data) if a == "/var/lib/meshlink" else a for a in argv]
    assert cmd[1:] == argv[1:argv.index("--config") + 1] + [str(config), "--data-dir", str(data)]
    if not VENV_MESHLINK.exists():
        pytest.skip("meshlink entry point not installed in this venv")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONUNBUFFERED"] = unit["Service"]["Environment"].split("=", 1)[1]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        started = json.loads(proc.stdout.readline())
        assert started["event"] == "started"
        assert started["listen"] == f"127.0.0.1:{node}"
        assert started["board_udp"] == f"127.0.0.1:{udp}"
        assert started["board_tcp"] == f"127.0.0.1:{tcp}"
        st = subprocess.run([str(VENV_MESHLINK), "status", "--json", "--data-dir", str(data)],
                            capture_output=True, text=True, timeout=4 * DEADLINE_S)
        assert st.returncode == 0 and json.loads(st.stdout)["gateway"]["boards"] == 0
        assert oct(data.stat().st_mode & 0o777) == "0o700"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(DEADLINE_S) == 0, proc.stderr.read()
        assert not (data / "control.sock").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)

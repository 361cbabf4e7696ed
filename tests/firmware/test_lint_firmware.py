"""tools/lint_firmware.sh type-checks board code against the ESP32 stubs:
a call that does not exist on the board fails, a board call that exists
passes. Skipped where the stubs are not installed (run the script once)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MYPY = pathlib.Path(sys.executable).parent / "mypy"

GOOD = """import time
import socket
import network
import machine


def f():
    t = time.ticks_diff(time.ticks_ms(), 0)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    w = network.WLAN(network.WLAN.IF_STA)
    w.config(pm=network.WLAN.PM_NONE)
    machine.WDT(timeout=1000).feed()
    return t
"""
BAD = """import time
import socket


def f():
    s = socket.socket()
    return time.monotonic(), s.getsockname()
"""


@pytest.mark.skipif(not (ROOT / "typings" / "machine.pyi").exists() or not MYPY.exists(),
                    reason="stubs not installed: run tools/lint_firmware.sh once")
@pytest.mark.parametrize("source,ok", [(GOOD, True), (BAD, False)],
                         ids=["board-api", "cpython-only"])
def test_stub_check_catches_calls_missing_on_the_board(tmp_path, source, ok):
    probe = tmp_path / "probe.py"
    probe.write_text(source)
    proc = subprocess.run([str(MYPY), "--config-file", "tools/mypy_firmware.ini", str(probe)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    if ok:
        assert proc.returncode == 0, proc.stdout
    else:
        assert proc.returncode == 1, proc.stdout
        assert 'Module has no attribute "monotonic"' in proc.stdout
        assert 'has no attribute "getsockname"' in proc.stdout

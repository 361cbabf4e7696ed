"""firmware/app/ble_link.py on the MicroPython unix port, against a FAKE aioble
(tests/gateway/mpy_fakes): the fragment logic and the connection loop run on
the real MicroPython VM; the Bluetooth stack itself is never exercised."""

from __future__ import annotations

import pathlib
import subprocess

import pytest
from helpers import ROOT, mpy_cross, require_micropython

HERE = pathlib.Path(__file__).resolve().parent


def test_ble_firmware_link_on_micropython_with_fake_aioble():
    path = f".frozen:{HERE / 'mpy_fakes'}:{ROOT / 'shared'}:{ROOT / 'firmware'}"
    proc = subprocess.run([require_micropython(), "-X", "heapsize=112K",
                           str(HERE / "ble_board_mpy.py")],
                          env={"MICROPYPATH": path}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split() == ["OK", "2", "meshlink-test"]


@pytest.mark.parametrize("name", ["ble_link.py", "serial_link.py"])
def test_ble_and_serial_firmware_compile_with_mpy_cross(tmp_path, name):
    proc = subprocess.run([mpy_cross(), "-o", str(tmp_path / "out.mpy"),
                           str(ROOT / "firmware" / "app" / name)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr

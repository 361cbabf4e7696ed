"""`make demo` end to end: gateway A - node - gateway B, three simulated boards,
a reading behind A triggers the relay behind B; every process stops, exit 0.
Also with the boards on CPython (the aarch64 Pi path, no MicroPython)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import have_micropython

ROOT = Path(__file__).resolve().parents[2]  # examples/ is not installed: run it from here


@pytest.mark.parametrize("runtime", ["micropython", "cpython"])
def test_demo_runs_and_stops_everything(tmp_path, runtime):
    if runtime == "micropython" and not have_micropython():
        pytest.skip("no MicroPython unix port")
    args = [sys.executable, "-m", "examples.demo"] + (["--cpython"] if runtime == "cpython"
                                                     else [])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "greenhouse  READING temp" in text
    assert "3 hops (greenhouse -> gateway A -> node -> gateway B)" in text
    assert "pump        ACTION relay=1 (rule: temp from" in text
    assert "pump        ACTION led=1" in text and "All demo processes stopped." in text
    assert ("MicroPython unix port" in text) == (runtime == "micropython")
    # every gateway stopped cleanly: a clean stop removes its control socket
    assert sorted(p.name for p in (tmp_path / ".demo").iterdir() if p.is_dir()) == \
        ["gwA", "gwB", "node"]
    assert not list((tmp_path / ".demo").glob("*/control.sock"))

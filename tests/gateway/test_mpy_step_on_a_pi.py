"""`make test`'s MicroPython step on a machine without the unix port wheel (a
Raspberry Pi, aarch64): skipped with a clear message, exit 0; on x86_64 a
missing unix port is a setup error (exit 2), so CI cannot skip it silently."""

from __future__ import annotations

import sys

import pytest

from tools import run_mpy_tests


@pytest.mark.parametrize("machine, code", [("aarch64", 0), ("x86_64", 2)])
def test_missing_micropython(monkeypatch, capsys, machine, code):
    monkeypatch.setattr(run_mpy_tests, "find_micropython", lambda: None)
    monkeypatch.setattr(run_mpy_tests.platform, "machine", lambda: machine)
    monkeypatch.setattr(sys, "argv", ["run_mpy_tests.py"])
    assert run_mpy_tests.main() == code
    err = capsys.readouterr().err
    if code == 0:
        assert err.startswith("SKIPPED: no MicroPython unix port on aarch64")
        assert "ran under CPython" in err
    else:
        assert "micropython not found: run make setup" in err

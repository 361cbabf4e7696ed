"""A real wall-clock jump under a real gateway process (issue 15): the gateway
runs under libfaketime (LD_PRELOAD; the wall clock read from a file on every
call, CLOCK_MONOTONIC left real, as a real clock step leaves it), messages
are queued for an offline board, then the wall clock jumps two days
forward while the gateway runs. Queue ages use a clock that cannot jump
(runtime.steady_unix_ms), so after an expiry sweep under the jumped clock
nothing is dropped and the board, started afterwards, gets every message in
order. Counts and order only, never speed."""

from __future__ import annotations

import datetime
import subprocess
import sys
from pathlib import Path

import pytest
from boards_harness import FirmwareBoard, GatewayProcess, add_board
from helpers import have_micropython, poll_until

LIBFAKETIME = next((p for p in (Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"),
                                Path("/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"),
                                Path("/usr/lib/faketime/libfaketime.so.1")) if p.exists()), None)

pytestmark = [
    pytest.mark.skipif(not have_micropython(), reason="no MicroPython unix port"),
    pytest.mark.skipif(LIBFAKETIME is None,
                       reason="libfaketime is not installed (apt package faketime)"),
]


def _log_time(line: str) -> datetime.datetime:
    return datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")


def _send(gw: GatewayProcess, to: str, text: str) -> subprocess.Popen:
    """`meshlink send` from the gateway itself (it waits for the board's ack)."""
    return subprocess.Popen([sys.executable, "-m", "meshlink_gw.cli", "send", "--data-dir",
                             str(gw.data_dir), "--json", "--to", to, text],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_a_two_day_wall_clock_jump_under_a_running_gateway_expires_nothing(
        tmp_path, procs, monkeypatch):
    clock = tmp_path / "faketime"
    clock.write_text("+0\n")
    for k, v in (("LD_PRELOAD", str(LIBFAKETIME)), ("FAKETIME_TIMESTAMP_FILE", str(clock)),
                 ("FAKETIME_NO_CACHE", "1"), ("DONT_FAKE_MONOTONIC", "1")):
        monkeypatch.setenv(k, v)  # inherited by the gateway process only
    gw = GatewayProcess(tmp_path / "gw")
    procs.append(gw)
    gw.start()
    for k in ("LD_PRELOAD", "FAKETIME_TIMESTAMP_FILE", "FAKETIME_NO_CACHE",
              "DONT_FAKE_MONOTONIC"):
        monkeypatch.delenv(k)
    info = add_board(gw.data_dir, "j1", gateway=gw.board_udp)
    senders = []
    for i in range(3):  # the board is offline: each message is queued, in order
        senders.append(_send(gw, info["node_id"], f"queued {i}"))
        gw.wait_board("j1", lambda r, i=i: r["queued"] == i + 1)
    before = _log_time(gw.wait_log(r"for board j1, \d+ hop\(s\): queued", count=3)[-1].string)
    clock.write_text("+2d\n")  # the wall clock jumps two days forward, now
    senders.append(_send(gw, info["node_id"], "queued 3"))
    gw.wait_board("j1", lambda r: r["queued"] == 4)
    after = _log_time(gw.wait_log(r"for board j1, \d+ hop\(s\): queued", count=4)[-1].string)
    assert after - before >= datetime.timedelta(days=2)  # the gateway lives in the jump
    sweeps = gw.status()["gateway"]["stats"].get("expiry_sweeps", 0)
    poll_until(lambda: gw.status()["gateway"]["stats"].get("expiry_sweeps", 0) > sweeps
               or None, what="an expiry sweep after the jump")
    assert gw.boards()["j1"]["queued"] == 4
    board = FirmwareBoard(gw.data_dir, "j1")
    procs.append(board)
    lines = board.wait_for(r"TEXT from \S+: (queued \d)", count=4)
    assert [m.group(1) for m in lines] == [f"queued {i}" for i in range(4)]
    gw.wait_board("j1", lambda r: r["queued"] == 0)
    assert "older than" not in gw.log_text()
    assert gw.status()["gateway"]["stats"].get("expired", 0) == 0
    for p in senders:
        p.kill()
        p.wait(5)

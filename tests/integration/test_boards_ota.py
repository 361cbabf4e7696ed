"""Signed over-the-air updates with a real gateway process and the REAL
firmware on the MicroPython unix port (-X heapsize=112K), run by `meshlink
board run` (which boots the firmware again when it exits to reboot):
updates over UDP and TCP, and every bad update (wrong signature, a file
changed after signing, a bundle that fails to start, power lost mid-transfer)
leaves the board on the firmware it ran before."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from boards_harness import (
    FAST_BOARD,
    HEAP,
    FirmwareBoard,
    GatewayProcess,
    MosquittoSub,
    add_board,
)
from helpers import DEADLINE_S, ROOT, cli, have_micropython
from meshlink_gw.boards import ota

from examples.localbroker import LocalMosquitto, find_mosquitto
from examples.node_proc import meshlink_cmd

# HEAP lines every 300 ms: the tests check the heap stays within the budget
SETS = tuple(s for s in FAST_BOARD if not s.startswith("heap_report_ms")) + (
    "heap_report_ms=300",)

pytestmark = pytest.mark.skipif(not have_micropython(), reason="no MicroPython unix port")


def _start(procs, p):
    procs.append(p)
    return p.start() if isinstance(p, GatewayProcess) else p


def _ok(out, board=None):
    assert out.returncode == 0, out.stdout + out.stderr + (
        "\nboard:\n" + board.output()[-3000:] if board is not None else "")
    return out


def _release(gw, version, env_root: Path | None = None):
    args = ["board", "release", version, "--board", "unix", "--data-dir", str(gw.data_dir)]
    if env_root is None:
        return _ok(cli(*args))
    return _ok(cli(*args, env=dict(os.environ, MESHLINK_ROOT=str(env_root))))


def _update(gw, *names, release="2.0.0", extra=()):
    return cli("board", "update", *names, "--release", release, "--data-dir", str(gw.data_dir),
               "--timeout-s", str(4 * DEADLINE_S), *extra, timeout_s=6 * DEADLINE_S)


def _setup(tmp_path, procs, transport="udp", names=("o1",), extra_toml=""):
    gw = _start(procs, GatewayProcess(tmp_path / "gw", extra_toml=extra_toml))
    _ok(cli("board", "update-key", "--data-dir", str(gw.data_dir)))
    boards = []
    for name in names:
        add_board(gw.data_dir, name, transport=transport, sets=SETS,
                  gateway=gw.board_udp if transport == "udp" else gw.board_tcp)
        b = _start(procs, FirmwareBoard(gw.data_dir, name))
        b.wait_for(r"LINK up " + transport)
        boards.append(b)
    for name in names:  # a never-updated board reports no version (no app/ota loaded)
        gw.wait_board(name, lambda r: r["online"] and r["firmware"] is None)
    return gw, boards


def _heap_ok(board):
    """The app's HEAP lines and the update receiver's peak are within the budget."""
    out = board.output()
    assert "WARN heap use" not in out and "MemoryError" not in out
    # live heap after a collection: the app's HEAP alloc, the receiver's alloc_peak
    app = [int(m) for m in re.findall(r"HEAP alloc=(\d+) free=", out)]
    rx = [int(m) for m in re.findall(r"HEAP ota_mode alloc_peak=(\d+) budget=", out)]
    budget = int(re.findall(r"budget=(\d+)", out)[0])
    assert app and rx, out[-2000:]
    assert max(app) <= budget and max(rx) <= budget
    print(f"\nHEAP {board.name}: app alloc max={max(app)}, receiver alloc_peak={max(rx)} "
          f"(budget {budget})")  # for the report (-s)
    return max(app), max(rx)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_signed_update_installs_and_the_board_reports_the_new_version(tmp_path, procs,
                                                                       transport):
    gw, (board,) = _setup(tmp_path, procs, transport)
    _release(gw, "2.0.0")
    out = _ok(_update(gw, "o1", extra=("--json",)), board)
    assert "o1: updated 100%" in out.stdout and "1 of 1 board(s) updated" in out.stdout
    rows = json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("[")][-1])
    assert rows[0]["state"] == "updated" and rows[0]["version"] == "2.0.0"
    board.wait_for(r"OTA verified version=2\.0\.0")
    board.wait_for(r"REBOOT \(OTA update installed\)")
    board.wait_for(r"FIRMWARE version=2\.0\.0 trial=1")
    board.wait_for(r"OTA confirmed version 2\.0\.0")
    row = gw.wait_board("o1", lambda r: r["firmware"] == "2.0.0" and r["online"])
    assert row["ota"] == "updated"
    # the new slot's files are byte for byte the signed release's
    sim = gw.data_dir / "boards" / "o1" / "sim"
    state = json.loads((sim / "ota.json").read_text())
    assert state["ver"] == "2.0.0" and state["trial"] == 0 and state["prev"] == ""
    rel = gw.data_dir / "releases" / "unix" / "2.0.0"
    _board, _ver, files = ota.decode_manifest((rel / "manifest.txt").read_bytes())
    for f in files:
        assert (sim / state["slot"] / f["path"]).read_bytes() == \
            (rel / "files" / f["path"]).read_bytes()
    # the board keeps working on the new firmware: readings still arrive
    n = len(gw.readings(row["node_id"]))
    gw.wait_board("o1", lambda r: len(gw.readings(r["node_id"])) >= n + 3)
    # and takes the next update into the other slot
    _release(gw, "2.0.1")
    _ok(_update(gw, "o1", release="2.0.1"))
    row = gw.wait_board("o1", lambda r: r["firmware"] == "2.0.1" and r["online"])
    state = json.loads((sim / "ota.json").read_text())
    assert state["slot"] != "" and state["prev_ver"] == "2.0.0"
    _heap_ok(board)


def test_wrong_signature_and_changed_file_are_refused_by_the_gateway(tmp_path, procs):
    gw, (board,) = _setup(tmp_path, procs)
    # a release signed with another key
    other = tmp_path / "otherkey"
    _ok(cli("board", "update-key", "--out", str(other), "--data-dir", str(gw.data_dir)))
    _ok(cli("board", "release", "6.6.6", "--board", "unix", "--key",
            str(other / "update_key.json"), "--data-dir", str(gw.data_dir)))
    out = _update(gw, "o1", release="6.6.6")
    assert out.returncode == 1 and "signature does not verify" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    # a correctly signed release whose file was changed afterwards
    _release(gw, "2.0.0")
    rel = gw.data_dir / "releases" / "unix" / "2.0.0" / "files" / "app" / "app.mpy"
    data = bytearray(rel.read_bytes())
    data[len(data) // 2] ^= 1
    rel.write_bytes(bytes(data))
    out = _update(gw, "o1")
    assert out.returncode == 1 and "differs from the signed manifest" in out.stderr
    assert "OTA begin" not in board.output()  # not a byte went to the board
    assert gw.boards()["o1"]["firmware"] is None


def test_bundle_that_fails_to_start_rolls_back(tmp_path, procs):
    gw, (board,) = _setup(tmp_path, procs)
    # a firmware tree whose app crashes at start (signed by the operator: a bad build)
    broken = tmp_path / "broken"
    for part in ("firmware", "shared", "boards"):
        shutil.copytree(ROOT / part, broken / part)
    app = broken / "firmware" / "app" / "app.py"
    app.write_text(app.read_text().replace(
        "    async def main(self):\n",
        "    async def main(self):\n        raise RuntimeError('broken build')\n", 1))
    _release(gw, "3.0.0-bad", env_root=broken)
    out = _update(gw, "o1", release="3.0.0-bad")
    assert out.returncode == 1 and "rolled_back" in out.stdout, out.stdout
    board.wait_for(r"CRASH RuntimeError: broken build")
    board.wait_for(r"OTA rollback: version 3\.0\.0-bad did not confirm; back to factory")
    row = gw.wait_board("o1", lambda r: r["firmware"] == "factory" and r["online"])
    assert row["ota"] == "rolled_back"
    board.wait_for(r"FIRMWARE version=factory trial=0")  # the rolled-back state reports


def test_power_lost_mid_transfer_leaves_the_old_firmware_then_resumes(tmp_path, procs):
    gw, (board,) = _setup(tmp_path, procs)
    _release(gw, "2.0.0")
    gw_out = gw.data_dir / "update.out"
    upd = subprocess.Popen(meshlink_cmd() + [
        "board", "update", "o1", "--release", "2.0.0", "--data-dir", str(gw.data_dir),
        "--timeout-s", str(4 * DEADLINE_S)], stdout=gw_out.open("w"), stderr=subprocess.STDOUT)
    procs.append(upd)
    board.wait_for(r"OTA progress 25%")
    board.kill()  # SIGKILL `board run`: the firmware dies with it (power lost)
    sim = gw.data_dir / "boards" / "o1" / "sim"
    assert not (sim / "ota.json").exists()  # nothing switched
    board2 = _start(procs, FirmwareBoard(gw.data_dir, "o1"))
    board2.wait_for(r"LINK up udp")  # the old firmware boots
    # the gateway starts the transfer again on the new session and completes it
    board2.wait_for(r"OTA begin")
    assert upd.wait(6 * DEADLINE_S) == 0, gw_out.read_text()
    board2.wait_for(r"OTA confirmed version 2\.0\.0")
    assert gw.boards()["o1"]["firmware"] == "2.0.0"
    _heap_ok(board2)


@pytest.mark.skipif(find_mosquitto() is None, reason="no mosquitto")
def test_update_all_boards_and_the_versions_on_mqtt(tmp_path, procs):
    broker = LocalMosquitto(tmp_path / "broker").start()
    procs.append(broker)
    mqtt = (f'\n[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
            'reconnect_initial_ms = 100\nreconnect_max_ms = 500\n')
    gw, boards = _setup(tmp_path, procs, names=("a1", "a2"), extra_toml=mqtt)
    sub = MosquittoSub(broker, "meshlink/+/firmware")
    procs.append(sub)
    _release(gw, "2.0.0")
    out = _ok(_update(gw, extra=("--all",)))
    assert "2 of 2 board(s) updated" in out.stdout
    assert re.search(r"a1: updated 100%", out.stdout) and re.search(r"a2: updated", out.stdout)
    for b in boards:
        b.wait_for(r"OTA confirmed version 2\.0\.0")
    rows = gw.boards()
    assert rows["a1"]["firmware"] == rows["a2"]["firmware"] == "2.0.0"
    # the retained firmware state of each board: 2.0.0 "updated" (after "receiving")
    want = {rows[n]["node_id"]: n for n in ("a1", "a2")}
    seen: dict[str, list[tuple[str, str]]] = {}
    for _ in range(50):  # bounded: each board publishes a few states
        if all(("2.0.0", "updated") in seen.get(n, []) for n in want.values()):
            break
        topic, payload = sub.next()
        body = json.loads(payload)
        name = want[topic.split("/")[1]]
        assert body["board"] == name and topic.endswith("/firmware")
        seen.setdefault(name, []).append((body["version"], body["ota"]))
    for name in want.values():
        assert ("2.0.0", "updated") in seen[name], seen
    assert HEAP == "112K"

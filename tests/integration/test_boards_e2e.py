"""Real gateway processes and the REAL firmware bundle on the MicroPython unix
port (-X heapsize=112K), provisioned by `meshlink board add` and run by
`meshlink board run`: readings over UDP and TCP, board-to-board across two
gateways and a full node, a reboot, a gateway restart with queued messages."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys

import pytest
from boards_harness import FAST_BOARD, FirmwareBoard, GatewayProcess, add_board
from helpers import cli, free_port, have_micropython

pytestmark = pytest.mark.skipif(not have_micropython(), reason="no MicroPython unix port")


def _start(procs, p):
    procs.append(p)
    return p.start() if isinstance(p, GatewayProcess) else p


def test_readings_over_udp_and_tcp_and_a_message_to_a_board(tmp_path, procs):
    gw = _start(procs, GatewayProcess(tmp_path / "gw"))
    u = add_board(gw.data_dir, "u1", gateway=gw.board_udp, transport="udp")
    t = add_board(gw.data_dir, "t1", gateway=gw.board_tcp, transport="tcp")
    assert u["gateway_notified"] and t["gateway_notified"]
    bu = _start(procs, FirmwareBoard(gw.data_dir, "u1"))
    bt = _start(procs, FirmwareBoard(gw.data_dir, "t1"))
    bu.wait_for(r"LINK up udp .* boot_ctr=1")
    bt.wait_for(r"LINK up tcp .* boot_ctr=1")
    gw.wait_board("u1", lambda r: r["online"] and len(gw.readings(u["node_id"])) >= 3)
    gw.wait_board("t1", lambda r: r["online"] and len(gw.readings(t["node_id"])) >= 3)
    for info in (u, t):
        readings = gw.readings(info["node_id"])
        assert all(r["board"] == info["name"] and r["sensor"] == "temp" and r["unit"] == "C"
                   and type(r["value_milli"]) is int for r in readings)
        seqs = [r["seq"] for r in readings]
        assert seqs == sorted(seqs) and seqs[0] >= 1
    rows = gw.boards()
    assert rows["u1"]["transport"] == "udp" and rows["t1"]["transport"] == "tcp"
    assert rows["t1"]["session"]["via"].startswith("tcp:")
    # `meshlink send` to a board's node ID through the gateway's control socket
    out = gw.cli("send", "--json", "--to", t["node_id"], "hello board")
    res = json.loads(out.stdout)
    assert out.returncode == 0 and res["delivered"], out.stderr
    bt.wait_for(r"TEXT from .*: hello board")
    st = gw.status()
    assert st["gateway"]["online"] == 2 and st["gateway"]["refusals"] == {}


def test_board_to_board_across_two_gateways_and_a_node(tmp_path, procs):
    gw_a = _start(procs, GatewayProcess(tmp_path / "gwa"))
    node = _start(procs, GatewayProcess(tmp_path / "mid", peers=(gw_a.listen,)))
    gw_b = _start(procs, GatewayProcess(tmp_path / "gwb", peers=(node.listen,)))
    node.wait_peers(2)
    b1 = add_board(gw_b.data_dir, "b1", gateway=gw_b.board_udp, rules=(
        {"from": "*", "sensor": "temp", "op": ">", "value": 25, "action": "relay", "arg": 1},))
    a1 = add_board(gw_a.data_dir, "a1", gateway=gw_a.board_tcp, transport="tcp",
                   routes=(f"temp={b1['node_id']}",))
    board_b = _start(procs, FirmwareBoard(gw_b.data_dir, "b1"))
    board_b.wait_for("LINK up")
    board_a = _start(procs, FirmwareBoard(gw_a.data_dir, "a1"))
    rx = board_b.wait_for(rf"RX reading from {a1['node_id']} temp=(\d+)")[0]
    assert int(rx.group(1)) > 25000
    board_b.wait_for(r"ACTION relay=1 \(rule: temp from " + a1["node_id"])
    gw_b.wait_log(r"for board b1, (\d+) hop\(s\)")
    hops = [int(m) for m in re.findall(
        r"for board b1, (\d+) hop\(s\)", gw_b.log_text())]
    assert min(hops) == 3  # a1 -> gateway A -> node -> gateway B
    gw_a.wait_log(r"board a1: message .* acknowledged end to end")
    assert board_a.proc.poll() is None


def test_board_reboot_starts_a_fresh_session(tmp_path, procs):
    gw = _start(procs, GatewayProcess(tmp_path / "gw"))
    info = add_board(gw.data_dir, "r1", gateway=gw.board_udp)
    first = _start(procs, FirmwareBoard(gw.data_dir, "r1"))
    sid1 = first.wait_for(r"LINK up udp \S+ sid=([0-9a-f]{8}) boot_ctr=1")[0].group(1)
    row1 = gw.wait_board("r1", lambda r: r["online"] and r["session"]["sid"] == sid1)
    first.kill()  # power cut
    second = _start(procs, FirmwareBoard(gw.data_dir, "r1"))
    sid2 = second.wait_for(r"LINK up udp \S+ sid=([0-9a-f]{8}) boot_ctr=2")[0].group(1)
    assert sid2 != sid1
    row2 = gw.wait_board("r1", lambda r: r["session"] and r["session"]["sid"] == sid2)
    assert row2["session"]["boot_ctr"] == row1["session"]["boot_ctr"] + 1
    gw.wait_log(rf"board r1 session {sid1} ended: replaced by a new session")
    n = len(gw.readings(info["node_id"]))
    gw.wait_board("r1", lambda r: len(gw.readings(info["node_id"])) > n + 2)


def test_gateway_restart_loses_no_queued_message(tmp_path, procs):
    gw = _start(procs, GatewayProcess(tmp_path / "gw", udp="127.0.0.1:0"))
    node = _start(procs, GatewayProcess(tmp_path / "sender", peers=(gw.listen,)))
    node.wait_peers(1)
    info = add_board(gw.data_dir, "q1", gateway=gw.board_udp)
    gw.wait_board("q1", lambda r: not r["online"])
    senders = []
    for i in range(3):  # the board is offline: each message is queued, in order
        senders.append(subprocess.Popen(
            [sys.executable, "-m", "meshlink_gw.cli", "send", "--data-dir", str(node.data_dir),
             "--json", "--to", info["node_id"], f"queued message {i}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        gw.wait_board("q1", lambda r, i=i: r["queued"] == i + 1)
    udp = gw.board_udp
    gw.stop()
    gw2 = _start(procs, GatewayProcess(tmp_path / "gw", udp=udp))
    assert gw2.boards()["q1"]["queued"] == 3
    board = _start(procs, FirmwareBoard(gw2.data_dir, "q1"))
    lines = board.wait_for(r"TEXT from \S+: (queued message \d)", count=3)
    assert [m.group(1) for m in lines] == [f"queued message {i}" for i in range(3)]
    gw2.wait_board("q1", lambda r: r["queued"] == 0)
    for p in senders:
        p.kill()
        p.wait(5)
    assert cli("board", "list", "--data-dir", str(gw2.data_dir)).returncode == 0


def test_board_without_an_address_finds_the_gateway_by_its_beacon(tmp_path, procs):
    port = free_port(socket.SOCK_DGRAM)
    gw = _start(procs, GatewayProcess(tmp_path / "gw", beacon_to=f"127.0.0.1:{port}"))
    info = add_board(gw.data_dir, "d1", gateway=None, transport="tcp",
                     sets=(*FAST_BOARD, f"discovery_port={port}", "discovery_timeout_ms=3000"))
    assert info["gateway"] is None
    board = _start(procs, FirmwareBoard(gw.data_dir, "d1"))
    board.wait_for(rf"LINK up tcp {re.escape(gw.board_tcp)} ")
    gw.wait_board("d1", lambda r: r["online"] and len(gw.readings(info["node_id"])) >= 1)

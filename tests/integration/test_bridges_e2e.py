"""Bridges end to end: a real `meshlink gateway` process, the REAL firmware
bundle on the MicroPython unix port (`meshlink board run`, -X heapsize=112K),
a real mosquitto started on a free loopback port, and the real
mosquitto_sub / mosquitto_pub clients.

- MQTT: a board's reading reaches mosquitto_sub as the documented JSON on
  meshlink/<board node ID>/sensor/<sensor>; a mosquitto_pub command reaches
  the board, which prints its handler's ACTION line; an unlisted target and a
  flood are refused.
- Serial: the firmware on one end of a pty pair, the gateway's [[serial]]
  entry on the other (tests/integration/pty_bridge.py): readings flow, line
  noise and a partial frame are skipped without a reconnect, unplugging and
  replugging the ptys reconnects both sides.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from boards_harness import FirmwareBoard, GatewayProcess, MosquittoSub, add_board
from helpers import DEADLINE_S, have_micropython, poll_until
from meshlink.serialframe import encode
from pty_bridge import PtyBridge

from examples.localbroker import LocalMosquitto, find_mosquitto

pytestmark = pytest.mark.skipif(not have_micropython(), reason="no MicroPython unix port")


def mosquitto_pub(broker: LocalMosquitto, topic: str, *payloads: str) -> None:
    args = ["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-q", "1", "-t", topic]
    if len(payloads) == 1:
        out = subprocess.run([*args, "-m", payloads[0]], capture_output=True, timeout=DEADLINE_S)
    else:
        out = subprocess.run([*args, "-l"], input="".join(p + "\n" for p in payloads).encode(),
                             capture_output=True, timeout=DEADLINE_S)
    assert out.returncode == 0, out.stderr


def test_mqtt_reading_up_command_down_unlisted_and_flood_refused(tmp_path, procs):
    if find_mosquitto() is None or shutil.which("mosquitto_sub") is None:
        pytest.skip("mosquitto and mosquitto-clients are needed")
    broker = LocalMosquitto(tmp_path / "broker").start()
    procs.append(broker)
    mqtt = (f'\n[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
            'allow_targets = ["kitchen"]\nsource_burst = 3\nsource_rate_per_s = 0.01\n'
            'sources_bound_by_acl = true\n'
            'reconnect_initial_ms = 100\nreconnect_max_ms = 500\n')
    gw = GatewayProcess(tmp_path / "gw", extra_toml=mqtt)
    procs.append(gw)
    gw.start()
    kitchen = add_board(gw.data_dir, "kitchen", gateway=gw.board_udp)
    add_board(gw.data_dir, "garage", gateway=gw.board_udp)  # registered, not allowed
    sub = MosquittoSub(broker, f"meshlink/{kitchen['node_id']}/sensor/#")
    procs.append(sub)
    board = FirmwareBoard(gw.data_dir, "kitchen")
    procs.append(board)
    board.wait_for(r"LINK up udp")
    topic, payload = sub.next()
    assert topic == f"meshlink/{kitchen['node_id']}/sensor/temp"
    body = json.loads(payload)
    assert body["board"] == "kitchen" and body["node_id"] == kitchen["node_id"]
    assert body["sensor"] == "temp" and body["unit"] == "C" and body["seq"] >= 1
    assert body["value"] == body["value_milli"] / 1000 and 27 < body["value"] < 33
    gw.wait_log(r"event=mqtt_up")
    cmd = f"meshlink/{gw.node_id}/cmd"
    mosquitto_pub(broker, f"{cmd}/kitchen", '{"kind":"command","action":"relay","arg":1}')
    board.wait_for(rf"ACTION relay=1 \(command from {gw.node_id}\)")
    mosquitto_pub(broker, f"{cmd}/garage", '{"kind":"command","action":"relay","arg":1}')
    gw.wait_log(r"event=mqtt_command_refused topic=\S+/cmd/garage reason=target 'garage' "
                r"not allowed")
    flood = [f'{{"kind":"command","action":"log","arg":"flood {i}"}}' for i in range(10)]
    mosquitto_pub(broker, f"{cmd}/kitchen/flooder", *flood)
    board.wait_for(r"ACTION log=flood \d", count=3)
    stats = poll_until(lambda: (lambda st: st if st["refused_rate"] >= 7 else None)(
        gw.status()["gateway"]["mqtt"]["stats"]), what="7 commands refused by the rate limit")
    # logged once per reason per second, not once per refused command
    gw.wait_log(r"reason=rate limit for 'flooder'")
    assert stats["refused_acl"] == 1 and stats["refused_rate"] == 7 and stats["injected"] == 4
    # nothing more arrives: a later command, from another source, overtakes none of
    # them (the gateway delivers to the board in order), and the refused 7 never come
    mosquitto_pub(broker, f"{cmd}/kitchen", '{"kind":"command","action":"log","arg":"marker"}')
    board.wait_for(r"ACTION log=marker")
    assert len([ln for ln in board.output().splitlines() if "ACTION log=flood" in ln]) == 3
    assert gw.boards()["garage"]["queued"] == 0  # the refused command was never queued


def test_serial_firmware_over_pty_garbage_and_replug(tmp_path, procs):
    gw_link, board_link = tmp_path / "ttyGW", tmp_path / "ttyBOARD"
    bridge = PtyBridge(gw_link, board_link)
    procs.append(bridge)
    serial = (f'\n[[serial]]\nport = "{gw_link}"\nboard = "wired"\n'
              'reconnect_initial_ms = 50\nreconnect_max_ms = 300\n')
    gw = GatewayProcess(tmp_path / "gw", extra_toml=serial)
    procs.append(gw)
    gw.start()
    info = add_board(gw.data_dir, "wired", gateway=None, transport="serial",
                     extra_args=("--serial-port", str(board_link)))
    board = FirmwareBoard(gw.data_dir, "wired")
    procs.append(board)
    board.wait_for(rf"LINK up serial serial:{board_link} ")
    gw.wait_board("wired", lambda r: r["online"] and len(gw.readings(info["node_id"])) >= 3)
    assert gw.boards()["wired"]["session"]["via"] == f"serial:{gw_link}"
    # line noise and a partial frame, both ways: skipped, no reconnect
    noise = b"boot chatter\r\n\xff\xfe\x00garbage\x00" + encode(b"half a frame")[:-5]
    bridge.inject("gateway", noise)
    bridge.inject("board", noise)
    before = len(gw.readings(info["node_id"]))
    gw.wait_board("wired", lambda r: len(gw.readings(info["node_id"])) >= before + 3)
    link = gw.status()["gateway"]["links"][0]
    assert link["up"] and link["connections"] == 1 and link["garbage"] >= 1
    assert len(board.wait_for(r"LINK up")) == 1
    # unplug and replug: both sides reconnect, readings flow again
    bridge.replug()
    board.wait_for(r"LINK down")
    board.wait_for(rf"LINK up serial serial:{board_link} ", count=2)
    before = len(gw.readings(info["node_id"]))
    gw.wait_board("wired", lambda r: r["online"]
                  and len(gw.readings(info["node_id"])) >= before + 2)
    assert gw.status()["gateway"]["links"][0]["connections"] == 2

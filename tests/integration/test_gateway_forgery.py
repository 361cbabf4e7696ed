"""Issue 12 at the edge: a real `meshlink gateway` process with the REAL
firmware bundle as its board and a real mosquitto; an insider that completed
a real handshake with the gateway claims to be an honest node H. The board
runs no command and fires no rule "from H" that H did not send, and MQTT
publishes no message under H's ID that H did not send, while H's own
messages go through (docs/PROTOCOL.md §11)."""

from __future__ import annotations

import json
import queue
import shutil

import pytest
from boards_harness import FirmwareBoard, GatewayProcess, MosquittoSub, add_board
from helpers import DEADLINE_S, have_micropython, poll_until, run
from helpers.insider import Insider
from helpers.procs import Node

from examples.localbroker import LocalMosquitto, find_mosquitto

pytestmark = pytest.mark.skipif(not have_micropython(), reason="no MicroPython unix port")


def _send(node, dst: str, text: str) -> dict:
    out = node.cli("send", "--json", "--to", dst, text)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_forged_board_command_rule_and_mqtt_message_refused(tmp_path, procs):
    if find_mosquitto() is None or shutil.which("mosquitto_sub") is None:
        pytest.skip("mosquitto and mosquitto-clients are needed")
    broker = LocalMosquitto(tmp_path / "broker").start()
    procs.append(broker)
    gw = GatewayProcess(tmp_path / "gw", extra_toml=(
        f'\n[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
        'reconnect_initial_ms = 100\nreconnect_max_ms = 500\n'))
    procs.append(gw)
    gw.start()
    h = Node(tmp_path / "h", peers=(gw.listen,))
    procs.append(h)
    h.start()
    rule = {"from": h.node_id, "sensor": "hum", "op": ">", "value": 50, "action": "relay",
            "arg": 1}
    kitchen = add_board(gw.data_dir, "kitchen", gateway=gw.board_udp, rules=(rule,))
    board = FirmwareBoard(gw.data_dir, "kitchen")
    procs.append(board)
    board.wait_for(r"LINK up udp")
    gw.wait_log(r"event=mqtt_up")
    sub = MosquittoSub(broker, f"meshlink/{h.node_id}/message")
    procs.append(sub)
    h.wait_peers(1)
    board_id = kitchen["node_id"]
    forged_cmd = b'{"kind":"command","action":"log","arg":"forged"}'
    forged_reading = b'{"kind":"reading","sensor":"hum","value_milli":99000}'

    async def forge() -> None:
        host, port = gw.listen.rsplit(":", 1)
        ins = await Insider().connect(host, int(port))
        for data in (forged_cmd, forged_reading):  # to the board, "from H"
            ins.send(ins.mesh(h.node_id, board_id, data))
            ins.send(ins.mesh(h.node_id, board_id, data, signed_by_me=False))
        ins.send(ins.mesh(h.node_id, gw.node_id, b"forged for mqtt"))  # inbox -> MQTT
        ins.send(ins.mesh(h.node_id, None, b"forged broadcast"))
        await ins.close()

    run(forge())
    poll_until(lambda: gw.status()["stats"]["forged_messages"] >= 6, DEADLINE_S,
               what="six forgeries counted")
    # H's own command, reading and message: delivered, under H's ID
    _send(h, board_id, '{"kind":"command","action":"log","arg":"honest"}')
    board.wait_for(rf"ACTION log=honest \(command from {h.node_id}\)")
    _send(h, board_id, '{"kind":"reading","sensor":"hum","value_milli":77000}')
    board.wait_for(rf"ACTION relay=1 \(rule: hum from {h.node_id}")
    _send(h, gw.node_id, "honest for mqtt")
    seen = []
    while not any("honest for mqtt" in p for p in seen):
        try:
            seen.append(sub.next()[1])
        except queue.Empty:
            break
    assert any("honest for mqtt" in p for p in seen), seen
    assert not any("forged" in p for p in seen), seen
    out = board.output()
    assert "log=forged" not in out
    assert out.count(f"RX reading from {h.node_id}") == 1  # only H's own reading
    assert all(i["text"] != "forged for mqtt" for i in gw.received())

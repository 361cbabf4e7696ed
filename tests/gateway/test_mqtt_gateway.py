"""The MQTT bridge wired into a gateway (bridges/gateway_port.py), in-process,
against a real mosquitto observed with the real CLI clients: board readings
and status up, commands down to a board, mesh messages for the gateway up,
no echo of what came from MQTT. Stand-in boards (examples/sim_board.py);
tests/integration/test_bridges_e2e.py runs the same with real processes."""

from __future__ import annotations

import json

from helpers import DEADLINE_S, wait_until
from helpers.rigs import Rig
from meshlink_gw.bridges.gateway_port import start_bridge
from mqtt_helpers import Sub, bridge_config, mosquitto_pub


async def test_gateway_bridge_uplink_downlink_and_no_echo(tmp_path, mosquitto):
    rig = await Rig().start(tmp_path, boards=("b1", "b2"), offline_after_ms=600)
    cfg = bridge_config(mosquitto, allow_targets=("b1", "broadcast"))
    bridge = await start_bridge(cfg, rig.gw_node, rig.svc)
    gw = rig.gw_node.node_id
    sub = await Sub.start(mosquitto, ["meshlink/#"])
    try:
        await bridge.wait_for(lambda b: b.connected, DEADLINE_S)
        b1 = await rig.online("b1")
        b1.reading("temp", 21_500, 1)  # to the gateway
        b1.reading("temp", 21_600, 2, to=rig.peer.node_id)  # to another node: published too
        seen: dict[str, list[str]] = {}

        async def until(topic: str, n: int = 1) -> list[str]:
            while len(seen.get(topic, [])) < n:
                t, payload = await sub.message()
                seen.setdefault(t, []).append(payload)
            return seen[topic]

        readings = await until(f"meshlink/{b1.node_id}/sensor/temp", 2)
        body = json.loads(readings[0])
        assert body["board"] == "b1" and body["value_milli"] == 21_500 and body["value"] == 21.5
        assert body["node_id"] == b1.node_id and body["unit"] == "C" and body["seq"] == 1
        assert "online" in await until(f"meshlink/{b1.node_id}/status")
        # a command for b1 reaches the board, acked end to end
        await mosquitto_pub(mosquitto, f"meshlink/{gw}/cmd/b1/ha", [b'{"kind":"command"}'])
        got = await b1.recv_msg()
        assert got["data"] == b'{"kind":"command"}' and got["from"] == gw
        await wait_until(lambda: bridge.stats["injected"] == 1)
        # b2 is registered but not in allow_targets: refused, never queued
        await mosquitto_pub(mosquitto, f"meshlink/{gw}/cmd/b2", [b"x"])
        await wait_until(lambda: bridge.stats["refused_acl"] == 1)
        assert rig.reg.queued("b2") == []
        # a mesh message for the gateway is published as a message, origin "mesh"
        rig.peer.originate(gw, b"hello gateway")
        (msg,) = await until(f"meshlink/{rig.peer.node_id}/message")
        body = json.loads(msg)
        assert body["text"] == "hello gateway" and body["origin"] == "mesh"
        assert f"meshlink/{b1.node_id}/message" not in seen  # readings: not as messages
        # a broadcast command reaches the online board; nothing comes back as a message
        await mosquitto_pub(mosquitto, f"meshlink/{gw}/cmd/broadcast", [b"all boards"])
        assert (await b1.recv_msg())["data"] == b"all boards"
        assert bridge.stats["suppressed_echo"] == 0 and bridge.stats["published"] >= 3
        # the board goes silent: offline
        assert "offline" in await until(f"meshlink/{b1.node_id}/status", 2)
        st = rig.svc.status()["mqtt"]
        assert st["connected"] and st["stats"]["injected"] == 2
    finally:
        await sub.stop()
        await bridge.stop()
        await rig.stop()


def test_gateway_config_reads_mqtt_serial_and_ble(tmp_path):
    from meshlink_gw.config import load_config, parse_config

    toml = tmp_path / "gw.toml"
    toml.write_text('[mqtt]\nhost = "broker.lan"\nallow_targets = ["kitchen"]\n'
                    '[[serial]]\nport = "/dev/ttyUSB0"\nboard = "kitchen"\n'
                    '[[ble]]\naddress = "24:6F:28:AA:BB:01"\nboard = "garage"\n')
    cfg = load_config(toml).gateway
    assert cfg.mqtt is not None and cfg.mqtt.host == "broker.lan"
    assert cfg.mqtt.allow_targets == ("kitchen",)
    assert [(s.port, s.board, s.baudrate) for s in cfg.serial] == [("/dev/ttyUSB0", "kitchen",
                                                                    115200)]
    assert [(b.address, b.board) for b in cfg.ble] == [("24:6F:28:AA:BB:01", "garage")]
    off = parse_config({"mqtt": {"enabled": False}}).gateway
    assert off.mqtt is None


async def test_unknown_target_and_gateway_itself_are_not_known(tmp_path):
    from meshlink_gw.bridges.gateway_port import GatewayMeshPort

    rig = await Rig().start(tmp_path, boards=("b1",))
    try:
        port = GatewayMeshPort(rig.gw_node, rig.svc)
        b1 = rig.recs["b1"].node_id
        assert port.known_node("b1") == b1 and port.known_node(b1) == b1
        assert port.known_node("nope") is None
        assert port.known_node(rig.gw_node.node_id) is None
        rig.svc.revoke("b1")
        assert port.known_node("b1") is None
        mid = await port.send_to_mesh(None, b"to everyone", origin="mqtt")
        await wait_until(lambda: any(r.message_id == mid for r in rig.peer.inbox.since(0)))
        assert not list(rig.gw_node.inbox.since(0))  # not delivered back to the gateway
    finally:
        await rig.stop()


async def test_a_silent_board_goes_offline_on_mqtt(tmp_path, mosquitto):
    rig = await Rig().start(tmp_path, boards=("b1",), offline_after_ms=300)
    bridge = await start_bridge(bridge_config(mosquitto), rig.gw_node, rig.svc)
    node_id = rig.recs["b1"].node_id
    try:
        await bridge.wait_for(lambda b: b.connected, DEADLINE_S)
        sub = await Sub.start(mosquitto, [f"meshlink/{node_id}/status"])
        topic = f"meshlink/{node_id}/status"
        assert await sub.message() == (topic, "offline")  # retained: not seen yet
        await rig.online("b1")  # one handshake, then silence
        assert await sub.message() == (topic, "online")
        assert await sub.message() == (topic, "offline")  # after offline_after_ms
        assert "b1" not in rig.svc.events.online
        await sub.stop()
    finally:
        await bridge.stop()
        await rig.stop()

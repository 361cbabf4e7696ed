"""MQTT bridge against a real mosquitto, observed with the real CLI clients."""

from __future__ import annotations

import asyncio
import json
import pathlib
import sys
import uuid

from helpers import DEADLINE_S
from mqtt_helpers import FakeMesh, Sub, mosquitto_pub, started_bridge

KITCHEN = "5a4b1c7e-0000-4000-8000-00000000000a"
GARAGE = "5a4b1c7e-0000-4000-8000-00000000000b"


async def test_mqtt_reading_reaches_mosquitto_sub(mosquitto):
    mesh = FakeMesh({"kitchen": KITCHEN})
    sub = await Sub.start(mosquitto, ["meshlink/+/sensor/#"])
    bridge = await started_bridge(mosquitto, mesh)
    try:
        bridge.publish_reading(KITCHEN, "kitchen",
                               {"sensor": "temperature", "value": 21.5, "unit": "°C"})
        topic, payload = await sub.message()
        assert topic == f"meshlink/{KITCHEN}/sensor/temperature"
        body = json.loads(payload)
        assert body["value"] == 21.5 and body["unit"] == "°C"
        assert body["node_id"] == KITCHEN and body["board"] == "kitchen"
        assert isinstance(body["ts"], float)
        bridge.publish_reading(KITCHEN, "kitchen", {"sensor": "voltage", "value_milli": 3300,
                                                    "unit": "", "seq": 1})
        topic, payload = await sub.message()
        body = json.loads(payload)
        assert topic.endswith("/sensor/voltage") and body["value"] == 3.3
        assert body["value_milli"] == 3300 and "unit" not in body
        await bridge.wait_for(lambda b: b.stats["published"] == 2 and b.outbox_size() == 0,
                              DEADLINE_S)
    finally:
        await bridge.stop()
        await sub.stop()


async def test_mqtt_status_retained_and_offline_on_clean_stop(mosquitto):
    mesh = FakeMesh({"kitchen": KITCHEN})
    bridge = await started_bridge(mosquitto, mesh)
    try:
        bridge.set_node_online(KITCHEN, True)
        late = await Sub.start(mosquitto, ["meshlink/+/status"])  # after: sees retained
        got = dict(await late.messages(2))
        assert got == {f"meshlink/{KITCHEN}/status": "online",
                       f"meshlink/{mesh.gateway_node_id}/status": "online"}
        bridge.set_node_online(KITCHEN, False)
        assert await late.message() == (f"meshlink/{KITCHEN}/status", "offline")
        await late.stop()
    finally:
        await bridge.stop()
    after = await Sub.start(mosquitto, [f"meshlink/{mesh.gateway_node_id}/status"])
    assert await after.message() == (f"meshlink/{mesh.gateway_node_id}/status", "offline")
    await after.stop()


async def test_mqtt_last_will_marks_a_killed_gateway_offline(mosquitto):
    gw = str(uuid.uuid4())
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(pathlib.Path(__file__).with_name("mqtt_gateway_proc.py")),
        mosquitto.host, str(mosquitto.port), gw, KITCHEN, stdout=asyncio.subprocess.PIPE)
    try:
        assert await asyncio.wait_for(proc.stdout.readline(), DEADLINE_S) == b"UP\n"
        sub = await Sub.start(mosquitto, [f"meshlink/{gw}/status"])
        assert await sub.message() == (f"meshlink/{gw}/status", "online")
        proc.kill()  # no DISCONNECT: the broker publishes the will
        assert await sub.message() == (f"meshlink/{gw}/status", "offline")
        await sub.stop()
    finally:
        if proc.returncode is None:
            proc.kill()
        await asyncio.wait_for(proc.wait(), DEADLINE_S)
    late = await Sub.start(mosquitto, ["meshlink/+/status"])  # the will was retained
    assert dict(await late.messages(2)) == {f"meshlink/{gw}/status": "offline",
                                            f"meshlink/{KITCHEN}/status": "online"}
    await late.stop()


async def test_mqtt_command_reaches_mesh_and_is_not_echoed(mosquitto):
    mesh = FakeMesh({"kitchen": KITCHEN, "garage": GARAGE})
    bridge = await started_bridge(mosquitto, mesh, allow_targets=("kitchen",))
    sub = await Sub.start(mosquitto, ["meshlink/+/message"])
    gw = mesh.gateway_node_id
    try:
        await mosquitto_pub(mosquitto, f"meshlink/{gw}/cmd/kitchen/ha", [b"light on"])
        dst, data, origin, message_id = await asyncio.wait_for(mesh.sent.get(), DEADLINE_S)
        assert (dst, data, origin) == (KITCHEN, b"light on", "mqtt")
        # the mesh hands the injected message back to the bridge: not re-published
        bridge.publish_message(gw, KITCHEN, b"light on", message_id, "mqtt")
        bridge.publish_message(gw, KITCHEN, b"light on", message_id, "mesh")  # same id
        bridge.publish_message(KITCHEN, gw, b"light is on", "m-reply", "mesh")
        topic, payload = await sub.message()  # the first one to arrive is the reply
        assert topic == f"meshlink/{KITCHEN}/message"
        body = json.loads(payload)
        assert body["text"] == "light is on" and body["message_id"] == "m-reply"
        assert bridge.stats["suppressed_echo"] == 2
        assert bridge.stats["injected"] == 1
    finally:
        await bridge.stop()
        await sub.stop()


async def test_mqtt_unlisted_unknown_retained_and_flood_are_refused(mosquitto):
    mesh = FakeMesh({"kitchen": KITCHEN, "garage": GARAGE})
    gw = mesh.gateway_node_id
    # a retained command is replayed to every new subscription: never inject that
    await mosquitto_pub(mosquitto, f"meshlink/{gw}/cmd/kitchen/x", [b"r"], retain=True)
    bridge = await started_bridge(mosquitto, mesh, allow_targets=("kitchen", "*"),
                                  source_burst=3, source_rate_per_s=0.01,
                                  global_burst=5, global_rate_per_s=0.01,
                                  sources_bound_by_acl=True)
    try:
        await mosquitto_pub(mosquitto, f"meshlink/{gw}/cmd/nosuchboard", [b"x"])
        await mosquitto_pub(mosquitto, f"meshlink/{gw}/cmd/broadcast", [b"x"])  # not listed
        await bridge.wait_for(lambda b: b.stats["refused_unknown"] == 1
                              and b.stats["refused_acl"] == 1
                              and b.stats["refused_invalid"] == 1, DEADLINE_S)
        flood = [b"flood %d" % i for i in range(30)]
        await mosquitto_pub(mosquitto, f"meshlink/{gw}/cmd/kitchen/spammer", flood)
        await bridge.wait_for(lambda b: b.stats["injected"] + b.stats["refused_rate"] == 30,
                              DEADLINE_S)
        assert bridge.stats["injected"] == 3  # the source's burst
        await mosquitto_pub(mosquitto, f"meshlink/{gw}/cmd/garage/other", [b"a", b"b", b"c"])
        await bridge.wait_for(lambda b: b.stats["refused_rate"] == 28, DEADLINE_S)
        assert bridge.stats["injected"] == 5  # then the global bucket is empty too
        assert mesh.sent.qsize() == 5
    finally:
        await mosquitto_pub(mosquitto, f"meshlink/{gw}/cmd/kitchen/x", [b""], retain=True)
        await bridge.stop()


async def test_mqtt_renamed_source_levels_share_one_bucket(mosquitto):
    """Without an ACL binding <source> to the login, the level is the publisher's
    choice: 30 commands under 30 source names get one source's burst."""
    mesh = FakeMesh({"kitchen": KITCHEN})
    gw = mesh.gateway_node_id
    bridge = await started_bridge(mosquitto, mesh, allow_targets=("kitchen",),
                                  source_burst=3, source_rate_per_s=0.01,
                                  global_burst=20, global_rate_per_s=0.01)
    try:
        for i in range(30):
            await mosquitto_pub(mosquitto, f"meshlink/{gw}/cmd/kitchen/name{i}", [b"x"])
        await bridge.wait_for(lambda b: b.stats["injected"] + b.stats["refused_rate"] == 30,
                              DEADLINE_S)
        assert bridge.stats["injected"] == 3
    finally:
        await bridge.stop()


async def test_mqtt_ha_discovery_configs_are_valid_json(mosquitto):
    mesh = FakeMesh({"kitchen": KITCHEN})
    bridge = await started_bridge(mosquitto, mesh, ha_discovery=True)
    try:
        bridge.publish_reading(KITCHEN, "kitchen", {"sensor": "temperature", "value": 20.25})
        bridge.publish_reading(KITCHEN, "kitchen", {"sensor": "humidity", "value": 40})
        bridge.publish_reading(KITCHEN, "kitchen", {"sensor": "door", "value": "open"})
        # the board service's shape: integer milli-units
        bridge.publish_reading(KITCHEN, "kitchen", {"sensor": "voltage", "value_milli": 3312,
                                                    "unit": "V", "seq": 7})
        await bridge.wait_for(lambda b: b.stats["published"] == 4, DEADLINE_S)
        sub = await Sub.start(mosquitto, ["homeassistant/#"])  # retained configs
        configs = dict(await sub.messages(4))
        await sub.stop()
    finally:
        await bridge.stop()
    node = "meshlink_" + KITCHEN.replace("-", "")
    temp = json.loads(configs[f"homeassistant/sensor/{node}/temperature/config"])
    assert temp["state_topic"] == f"meshlink/{KITCHEN}/sensor/temperature"
    assert temp["device_class"] == "temperature" and temp["unit_of_measurement"] == "°C"
    assert temp["state_class"] == "measurement"
    assert temp["value_template"] == "{{ value_json.value }}"
    assert temp["device"]["name"] == "kitchen"
    assert {a["topic"] for a in temp["availability"]} == {
        f"meshlink/{KITCHEN}/status", f"meshlink/{mesh.gateway_node_id}/status"}
    door = json.loads(configs[f"homeassistant/sensor/{node}/door/config"])
    assert "state_class" not in door and "device_class" not in door
    volts = json.loads(configs[f"homeassistant/sensor/{node}/voltage/config"])
    assert volts["unit_of_measurement"] == "V" and volts["state_class"] == "measurement"
    assert len({json.loads(c)["unique_id"] for c in configs.values()}) == 4


def test_mqtt_bench_reports_median_readings_per_s(mosquitto):
    from bench import bridges as bench

    rows = bench.run()
    assert [unit for _, _, unit in rows] == ["readings/s", "readings/s"]
    assert rows[0][1] >= rows[1][1] > 0


async def test_mqtt_ha_online_floods_resend_discovery_once(mosquitto):
    """Anyone may publish 'online' on Home Assistant's status topic: 40 of them
    make the bridge resend its discovery configs once, not 40 times."""
    mesh = FakeMesh({"kitchen": KITCHEN})
    bridge = await started_bridge(mosquitto, mesh, ha_discovery=True)
    try:
        bridge.publish_reading(KITCHEN, "kitchen", {"sensor": "temperature", "value": 20})
        await bridge.wait_for(lambda b: b.stats["published"] == 1, DEADLINE_S)
        await mosquitto_pub(mosquitto, "homeassistant/status", [b"online"] * 40)
        await bridge.wait_for(lambda b: b.stats["rediscover_throttled"] == 39, DEADLINE_S)
    finally:
        await bridge.stop()

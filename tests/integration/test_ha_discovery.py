"""Home Assistant discovery end to end, checked against Home Assistant's
published MQTT discovery schema: a real `meshlink gateway` with [mqtt]
ha_discovery, the REAL firmware bundle (a temperature sensor in "C" and a
humidity sensor in "%RH", as boards write them), a real mosquitto and
mosquitto_sub/pub. Every retained config must pass the rules below; the
relay switch turns the board's relay on through the bridge's ACL; revoking
the board empties (removes) its configs.

The rules, from Home Assistant's documentation (what this test relies on):
- https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery :
  topic <discovery_prefix>/<component>/[<node_id>/]<object_id>/config, node_id
  and object_id of [a-zA-Z0-9_-]; the payload a JSON object, an empty retained
  payload deletes the entity; `device` needs `identifiers` or `connections`
  and only works with a `unique_id`; `via_device` is the identifier of
  another device; `availability` a list of {topic, ...};
  availability_mode all | any | latest; `origin` needs `name`.
- https://www.home-assistant.io/integrations/sensor.mqtt/ : state_topic required;
  https://www.home-assistant.io/integrations/sensor/#device-class : the units
  each device class accepts (temperature °C °F K, humidity %, ...);
  state_class measurement | total | total_increasing.
- https://www.home-assistant.io/integrations/switch.mqtt/ : command_topic
  required; payload_on/payload_off strings; optimistic, retain booleans; qos 0-2.
- https://www.home-assistant.io/integrations/binary_sensor.mqtt/ : state_topic
  required; device_class e.g. connectivity; entity_category config | diagnostic.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
from boards_harness import FirmwareBoard, GatewayProcess, add_board
from helpers import cli, have_micropython, poll_until
from test_bridges_e2e import MosquittoSub, mosquitto_pub

from examples.localbroker import LocalMosquitto, find_mosquitto

pytestmark = pytest.mark.skipif(not have_micropython(), reason="no MicroPython unix port")

LEVEL = r"[a-zA-Z0-9_-]+"
TOPIC = re.compile(rf"^homeassistant/(sensor|switch|binary_sensor)/({LEVEL}/)?{LEVEL}/config$")
COMMON = {"name", "unique_id", "availability", "availability_mode", "device", "origin",
          "entity_category", "device_class", "qos", "icon", "object_id"}
OPTIONS = {  # documented options per component that MeshLink may use
    "sensor": COMMON | {"state_topic", "value_template", "unit_of_measurement", "state_class"},
    "switch": COMMON | {"command_topic", "payload_on", "payload_off", "optimistic", "retain",
                        "state_topic"},
    "binary_sensor": COMMON | {"state_topic", "payload_on", "payload_off"},
}
REQUIRED = {"sensor": {"state_topic"}, "switch": {"command_topic"},
            "binary_sensor": {"state_topic"}}
SENSOR_UNITS = {"temperature": {"°C", "°F", "K"}, "humidity": {"%"}, "battery": {"%"},
                "voltage": {"V", "mV", "µV", "kV", "MV"}, "illuminance": {"lx"},
                "carbon_dioxide": {"ppm"}, "signal_strength": {"dB", "dBm"},
                "pressure": {"Pa", "hPa", "kPa", "bar", "cbar", "mbar", "mmHg", "inHg", "psi"}}
BINARY_CLASSES = {"connectivity", "problem", "power", "running", "plug"}
DEVICE_KEYS = {"identifiers", "connections", "name", "manufacturer", "model", "via_device",
               "sw_version", "hw_version", "suggested_area", "configuration_url"}


def check_config(topic: str, cfg: object) -> str:
    """Raise AssertionError unless (topic, cfg) passes the rules; returns the component."""
    m = TOPIC.match(topic)
    assert m, f"discovery topic {topic!r}"
    component = m.group(1)
    assert isinstance(cfg, dict), topic
    assert set(cfg) <= OPTIONS[component], f"{topic}: undocumented {set(cfg) - OPTIONS[component]}"
    assert REQUIRED[component] <= set(cfg), topic
    assert isinstance(cfg["unique_id"], str) and cfg["unique_id"], topic
    dev = cfg["device"]
    assert set(dev) <= DEVICE_KEYS and (dev.get("identifiers") or dev.get("connections")), topic
    assert all(isinstance(a, dict) and isinstance(a["topic"], str)
               for a in cfg.get("availability", [])), topic
    assert cfg.get("availability_mode", "latest") in {"all", "any", "latest"}, topic
    assert isinstance(cfg["origin"]["name"], str), topic
    assert cfg.get("entity_category") in (None, "config", "diagnostic"), topic
    assert cfg.get("qos", 0) in (0, 1, 2), topic
    if component == "sensor":
        dc = cfg.get("device_class")
        if dc is not None:
            assert dc in SENSOR_UNITS, f"{topic}: device_class {dc}"
            assert cfg.get("unit_of_measurement") in SENSOR_UNITS[dc], \
                f"{topic}: {cfg.get('unit_of_measurement')!r} is not a {dc} unit"
        assert cfg.get("state_class") in (None, "measurement", "total", "total_increasing")
    if component == "switch":
        assert isinstance(cfg["payload_on"], str) and isinstance(cfg["payload_off"], str)
        assert isinstance(cfg.get("optimistic", False), bool)
        assert isinstance(cfg.get("retain", False), bool)
    if component == "binary_sensor":
        assert cfg.get("device_class") in (None, *BINARY_CLASSES), topic
    return component


def test_discovery_configs_pass_the_schema_switch_works_revoke_removes(tmp_path, procs):
    if find_mosquitto() is None or shutil.which("mosquitto_sub") is None:
        pytest.skip("mosquitto and mosquitto-clients are needed")
    broker = LocalMosquitto(tmp_path / "broker").start()
    procs.append(broker)
    mqtt = (f'\n[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
            'allow_targets = ["greenhouse"]\nha_discovery = true\n'
            'reconnect_initial_ms = 100\nreconnect_max_ms = 500\n')
    gw = GatewayProcess(tmp_path / "gw", extra_toml=mqtt, extra=("--name", "shed-gateway"))
    procs.append(gw)
    gw.start()
    humidity = {"name": "humidity", "type": "sim", "interval_ms": 300, "unit": "%RH",
                "base": 55, "amplitude": 5, "period_ms": 4000, "noise": 0.1, "seed": 4}
    info = add_board(gw.data_dir, "greenhouse", gateway=gw.board_udp,
                     extra_args=("--sensor", json.dumps(humidity)))
    node = "meshlink_" + info["node_id"].replace("-", "")
    gw_dev = "meshlink_" + gw.node_id.replace("-", "")
    sub = MosquittoSub(broker, "homeassistant/#")
    procs.append(sub)
    board = FirmwareBoard(gw.data_dir, "greenhouse")
    procs.append(board)
    wanted = {f"homeassistant/sensor/{node}/temp/config",
              f"homeassistant/sensor/{node}/humidity/config",
              f"homeassistant/switch/{node}/relay/config",
              f"homeassistant/switch/{node}/led/config",
              f"homeassistant/binary_sensor/{gw_dev}/status/config"}
    configs: dict[str, dict] = {}

    def collect(until) -> None:
        def more():
            topic, payload = sub.next()
            configs[topic] = json.loads(payload) if payload not in ("", "(null)") else None
            return until()
        poll_until(more, what="discovery configs", interval_s=0)

    collect(lambda: wanted <= {t for t, c in configs.items() if c})
    components = {t: check_config(t, c) for t, c in configs.items() if c}
    assert sorted(components.values()).count("switch") == 2
    gateway_devices = {c["device"]["identifiers"][0] for t, c in configs.items()
                       if c and components[t] == "binary_sensor"}
    assert gateway_devices == {gw_dev}
    for t, c in configs.items():  # every via_device names an announced device
        if c and "via_device" in c["device"]:
            assert c["device"]["via_device"] in gateway_devices, t
    temp = configs[f"homeassistant/sensor/{node}/temp/config"]
    assert (temp["device_class"], temp["unit_of_measurement"]) == ("temperature", "°C")
    hum = configs[f"homeassistant/sensor/{node}/humidity/config"]
    assert (hum["device_class"], hum["unit_of_measurement"]) == ("humidity", "%")
    assert configs[f"homeassistant/binary_sensor/{gw_dev}/status/config"]["device"]["name"] \
        == "shed-gateway"

    relay = configs[f"homeassistant/switch/{node}/relay/config"]
    board.wait_for(r"LINK up udp")
    gw.wait_log(r"event=mqtt_up")
    mosquitto_pub(broker, relay["command_topic"], relay["payload_on"])
    board.wait_for(rf"ACTION relay=1 \(command from {gw.node_id}\)")
    mosquitto_pub(broker, relay["command_topic"], relay["payload_off"])
    board.wait_for(r"ACTION relay=0 ")

    out = cli("board", "revoke", "greenhouse", "--data-dir", str(gw.data_dir))
    assert out.returncode == 0, out.stderr
    board_topics = {t for t in wanted if node in t}
    collect(lambda: all(configs.get(t, 1) is None for t in board_topics))
    assert configs[f"homeassistant/binary_sensor/{gw_dev}/status/config"] is not None

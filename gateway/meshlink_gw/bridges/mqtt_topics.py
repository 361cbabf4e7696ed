"""The MQTT topic tree and Home Assistant discovery payloads.

Rule: pure functions of the config and the node ids; no I/O. The tree is
documented in docs/BRIDGES.md ("MQTT and Home Assistant").

    <prefix><gateway_id>/status              "online" / "offline"  retained, last will
    <prefix><node_id>/status                 "online" / "offline" / "asleep"  retained
    <prefix><node_id>/sensor/<sensor>        JSON reading          QoS 1
    <prefix><src_node_id>/message            JSON mesh message     QoS 1
    <prefix><gateway_id>/cmd/<target>[/<source>]   downlink command (payload = data)
    <ha_prefix>/sensor/meshlink_<node>/<sensor>/config   HA discovery, retained
    <ha_prefix>/switch/meshlink_<node>/<relay|led>/config   HA discovery, retained
    <ha_prefix>/binary_sensor/meshlink_<gateway>/status/config   the gateway device
A board's discovery configs are published empty (retained) when it is revoked:
Home Assistant removes those entities.
"""

from __future__ import annotations

import json
import re
from typing import Any

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
_HA_SAFE = re.compile(r"[^A-Za-z0-9_-]")  # HA discovery node_id / object_id characters
BROADCAST_TARGET = "broadcast"
OUTPUTS = ("relay", "led")  # board outputs a command switches (firmware/app/rules.py)

# The units Home Assistant accepts for each sensor device class we announce
# (homeassistant.components.sensor DEVICE_CLASS_UNITS; docs:
# https://www.home-assistant.io/integrations/sensor/#device-class). A reading
# whose unit is not among them is announced without a device class.
HA_UNITS = {
    "temperature": ("°C", "°F", "K"), "humidity": ("%",),
    "pressure": ("Pa", "hPa", "kPa", "bar", "cbar", "mbar", "mmHg", "inHg", "psi"),
    "battery": ("%",), "voltage": ("V", "mV", "µV", "kV", "MV"), "illuminance": ("lx",),
    "carbon_dioxide": ("ppm",), "signal_strength": ("dB", "dBm"),
}
# what boards write (board.json "unit") -> Home Assistant's spelling
_UNIT_ALIASES = {"C": "°C", "degC": "°C", "F": "°F", "degF": "°F", "%RH": "%", "RH": "%",
                 "uV": "µV", "lux": "lx"}

# name -> (device_class, default unit) for HA discovery when a reading gives none
_HA_CLASSES = {
    "temperature": ("temperature", "°C"), "temp": ("temperature", "°C"),
    "humidity": ("humidity", "%"), "pressure": ("pressure", "hPa"),
    "battery": ("battery", "%"), "voltage": ("voltage", "V"),
    "illuminance": ("illuminance", "lx"), "light": ("illuminance", "lx"),
    "co2": ("carbon_dioxide", "ppm"), "rssi": ("signal_strength", "dBm"),
}


def safe_level(name: str) -> str:
    """One topic level / HA object id: letters, digits, _ . - only (others -> _)."""
    return _SAFE.sub("_", name)[:64] or "_"


class Topics:
    def __init__(self, prefix: str, gateway_id: str, ha_prefix: str = "homeassistant") -> None:
        self.prefix = prefix
        self.gateway_id = gateway_id
        self.ha_prefix = ha_prefix.strip("/")
        self._cmd_root = f"{prefix}{gateway_id}/cmd/"

    def status(self, node_id: str) -> str:
        return f"{self.prefix}{node_id}/status"

    def sensor(self, node_id: str, sensor: str) -> str:
        return f"{self.prefix}{node_id}/sensor/{safe_level(sensor)}"

    def message(self, src_node_id: str) -> str:
        return f"{self.prefix}{src_node_id}/message"

    def command(self, target: str, source: str) -> str:
        """The downlink topic for a command to target (a node ID or board name)."""
        return f"{self._cmd_root}{target}/{source}"

    def command_filters(self) -> list[str]:
        return [f"{self._cmd_root}+", f"{self._cmd_root}+/+"]

    def ha_status(self) -> str:
        return f"{self.ha_prefix}/status"

    def parse_command(self, topic: str) -> tuple[str, str] | None:
        """(target, source) from a command topic, or None if it is not one."""
        if not topic.startswith(self._cmd_root):
            return None
        parts = topic[len(self._cmd_root):].split("/")
        if len(parts) > 2 or not all(parts):
            return None
        return parts[0], parts[1] if len(parts) == 2 else "anonymous"

    def ha_config_topic(self, node_id: str, sensor: str, component: str = "sensor") -> str:
        return f"{self.ha_prefix}/{component}/{ha_device_id(node_id)}/{ha_level(sensor)}/config"


def ha_level(name: str) -> str:
    """A Home Assistant discovery node_id / object_id: [A-Za-z0-9_-] only."""
    return _HA_SAFE.sub("_", name)[:64] or "_"


def ha_device_id(node_id: str) -> str:
    return "meshlink_" + node_id.replace("-", "")


def ha_unit(device_class: str | None, unit: str | None) -> tuple[str | None, str | None]:
    """(device_class, unit) as Home Assistant accepts them: the unit in HA's
    spelling, and no device class where the unit is not one HA allows for it."""
    unit = _UNIT_ALIASES.get(unit, unit) if unit else None
    if device_class in HA_UNITS and unit not in HA_UNITS[device_class]:
        if unit is not None:
            return None, unit
        unit = HA_UNITS[device_class][0]
    return device_class, unit


def _ha_device(topics: Topics, node_id: str, board_name: str) -> dict[str, Any]:
    return {"identifiers": [ha_device_id(node_id)], "name": board_name,
            "manufacturer": "MeshLink", "model": "MeshLink board",
            "via_device": ha_device_id(topics.gateway_id)}


def _availability(topics: Topics, node_id: str) -> list[dict[str, str]]:
    return [{"topic": topics.status(topics.gateway_id)}, {"topic": topics.status(node_id)}]


def ha_switch_config(topics: Topics, node_id: str, board_name: str, output: str,
                     command_topic: str) -> bytes:
    """Discovery config of a switch for a board's relay or LED: ON/OFF publish a
    MeshLink command to the bridge's downlink topic (its ACL decides)."""
    uid = ha_device_id(node_id)
    config = {
        "name": output, "unique_id": f"{uid}_{output}", "command_topic": command_topic,
        "payload_on": _command(output, 1), "payload_off": _command(output, 0),
        "optimistic": True, "retain": False, "qos": 1,
        "availability": _availability(topics, node_id), "availability_mode": "all",
        "device": _ha_device(topics, node_id, board_name), "origin": {"name": "MeshLink"},
    }
    return json.dumps(config, sort_keys=True, ensure_ascii=False).encode()


def _command(output: str, arg: int) -> str:
    return json.dumps({"action": output, "arg": arg, "kind": "command"},
                      sort_keys=True, separators=(",", ":"))


def ha_gateway_config(topics: Topics, name: str) -> bytes:
    """Discovery config that announces the gateway as a device (the boards'
    via_device): a connectivity binary sensor on its retained status."""
    uid = ha_device_id(topics.gateway_id)
    config = {
        "name": "connectivity", "unique_id": f"{uid}_status", "device_class": "connectivity",
        "state_topic": topics.status(topics.gateway_id),
        "payload_on": "online", "payload_off": "offline", "entity_category": "diagnostic",
        "device": {"identifiers": [uid], "name": name, "manufacturer": "MeshLink",
                   "model": "MeshLink gateway"},
        "origin": {"name": "MeshLink"},
    }
    return json.dumps(config, sort_keys=True, ensure_ascii=False).encode()


def ha_sensor_config(topics: Topics, node_id: str, board_name: str, sensor: str,
                     reading: dict[str, Any]) -> bytes:
    """Home Assistant MQTT discovery config for one board sensor (JSON bytes)."""
    device_class, unit = _HA_CLASSES.get(sensor.lower(), (None, None))
    device_class, unit = ha_unit(reading.get("device_class", device_class),
                                 reading.get("unit", unit))
    uid = ha_device_id(node_id)
    config: dict[str, Any] = {
        "name": sensor,
        "unique_id": f"{uid}_{ha_level(sensor)}",
        "state_topic": topics.sensor(node_id, sensor),
        "value_template": "{{ value_json.value }}",
        "availability": _availability(topics, node_id),
        "availability_mode": "all",
        "device": _ha_device(topics, node_id, board_name),
        "origin": {"name": "MeshLink"},
    }
    if device_class:
        config["device_class"] = device_class
    if unit:
        config["unit_of_measurement"] = unit
    value = reading.get("value")
    if isinstance(value, int | float) and not isinstance(value, bool):
        config["state_class"] = "measurement"
    return json.dumps(config, sort_keys=True, ensure_ascii=False).encode()

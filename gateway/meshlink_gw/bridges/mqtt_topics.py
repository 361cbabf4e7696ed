"""The MQTT topic tree and Home Assistant discovery payloads.

Rule: pure functions of the config and the node ids; no I/O. The tree is
documented in docs/BRIDGES.md ("MQTT and Home Assistant").

    <prefix><gateway_id>/status              "online" / "offline"  retained, last will
    <prefix><node_id>/status                 "online" / "offline"  retained
    <prefix><node_id>/sensor/<sensor>        JSON reading          QoS 1
    <prefix><src_node_id>/message            JSON mesh message     QoS 1
    <prefix><gateway_id>/cmd/<target>[/<source>]   downlink command (payload = data)
    <ha_prefix>/sensor/meshlink_<node>/<sensor>/config   HA discovery, retained
"""

from __future__ import annotations

import json
import re
from typing import Any

_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
BROADCAST_TARGET = "broadcast"

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

    def ha_config_topic(self, node_id: str, sensor: str) -> str:
        node = "meshlink_" + node_id.replace("-", "")
        return f"{self.ha_prefix}/sensor/{node}/{safe_level(sensor)}/config"


def ha_sensor_config(topics: Topics, node_id: str, board_name: str, sensor: str,
                     reading: dict[str, Any]) -> bytes:
    """Home Assistant MQTT discovery config for one board sensor (JSON bytes)."""
    device_class, unit = _HA_CLASSES.get(sensor.lower(), (None, None))
    device_class = reading.get("device_class", device_class)
    unit = reading.get("unit", unit)
    uid = "meshlink_" + node_id.replace("-", "")
    config: dict[str, Any] = {
        "name": sensor,
        "unique_id": f"{uid}_{safe_level(sensor)}",
        "state_topic": topics.sensor(node_id, sensor),
        "value_template": "{{ value_json.value }}",
        "availability": [{"topic": topics.status(topics.gateway_id)},
                         {"topic": topics.status(node_id)}],
        "availability_mode": "all",
        "device": {"identifiers": [uid], "name": board_name, "manufacturer": "MeshLink",
                   "model": "MeshLink board",
                   "via_device": "meshlink_" + topics.gateway_id.replace("-", "")},
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

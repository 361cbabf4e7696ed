"""The one config loader: a TOML file read once, every table validated.

Rule: load_config() is how the CLI gets its configuration; each table goes
through config/schema.py into its frozen dataclass, and whichever command
reads the file, the whole file is validated (an unknown table is an error,
like an unknown key).
"""

from __future__ import annotations

import dataclasses
import pathlib
import tomllib
from typing import Any

from meshlink.errors import ConfigError

from meshlink_gw.config.gateway import GatewayConfig
from meshlink_gw.config.links import BleLinkConfig, SerialLinkConfig, check_links
from meshlink_gw.config.mqtt import MqttConfig
from meshlink_gw.config.node import NodeConfig
from meshlink_gw.config.schema import make, parse_table, read_table

TABLES = ("node", "gateway", "boards", "serial", "ble", "mqtt")


@dataclasses.dataclass(frozen=True)
class Config:
    """Every table of one config file: [node] in node; [gateway], [boards],
    [[serial]], [[ble]] and [mqtt] in gateway."""

    node: NodeConfig = dataclasses.field(default_factory=NodeConfig)
    gateway: GatewayConfig = dataclasses.field(default_factory=GatewayConfig)


def load_config(path: pathlib.Path | str | None) -> Config:
    """Read and validate a TOML config file; None: every default.

    Raises:
        ConfigError: unreadable file, bad TOML, or a bad table or key (the
            message names it).
    """
    if path is None:
        return Config()
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror}")
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config {path}: bad TOML: {e}")
    return parse_config(doc)


def loads_config(toml_text: str) -> Config:
    """load_config() for TOML text (tests, tools). Raises ConfigError."""
    try:
        doc = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"bad TOML: {e}")
    return parse_config(doc)


def parse_config(doc: dict[str, Any]) -> Config:
    """Validate a parsed TOML document (a dict from tomllib). Raises ConfigError."""
    for name, value in doc.items():
        if name not in TABLES:
            hint = " (settings go in a table such as [node])" if not isinstance(value, dict) \
                else ""
            raise ConfigError(f"unknown table [{name}]{hint}; known: "
                              "[node], [gateway], [boards], [[serial]], [[ble]], [mqtt]")
    node = parse_table(NodeConfig, doc.get("node", {}))
    gw_values = {**read_table(GatewayConfig, doc.get("gateway", {}), "gateway"),
                 **read_table(GatewayConfig, doc.get("boards", {}), "boards")}
    serial = _entries(SerialLinkConfig, doc)
    ble = _entries(BleLinkConfig, doc)
    check_links(serial, ble)
    mqtt = parse_table(MqttConfig, doc["mqtt"]) if "mqtt" in doc else None
    gw_values.update(serial=serial, ble=ble, mqtt=mqtt if mqtt and mqtt.enabled else None)
    return Config(node=node, gateway=make(GatewayConfig, gw_values, "gateway"))


def _entries(cls: Any, doc: dict[str, Any]) -> tuple[Any, ...]:
    kind = cls.TABLE
    entries = doc.get(kind, [])
    if not isinstance(entries, list):
        raise ConfigError(f"[{kind}]: use [[{kind}]] (an array of tables)")
    out = []
    for i, table in enumerate(entries):
        if not isinstance(table, dict):
            raise ConfigError(f"{kind}[{i}]: expected a table ([[{kind}]] entry)")
        out.append(parse_table(cls, table, f"{kind}[{i}]"))
    return tuple(out)

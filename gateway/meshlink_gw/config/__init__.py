"""Configuration: one TOML file, one loader, one validator, frozen objects.

    schema.py   the engine: declarative settings (kind, bounds, default, doc),
                parse_table(), override()
    node.py     [node]: NodeConfig
    gateway.py  [gateway] and [boards]: GatewayConfig
    links.py    [[serial]] and [[ble]]: SerialLinkConfig, BleLinkConfig
    mqtt.py     [mqtt]: MqttConfig
    loader.py   load_config(): the file read once, every table validated into Config

Rule: a bad value raises meshlink.errors.ConfigError naming the table and key
(or the flag) and what was expected; the CLI exits 2 with that message.
"""

from meshlink_gw.config.gateway import (
    DEFAULT_BOARD_TCP_PORT,
    DEFAULT_BOARD_UDP_PORT,
    GatewayConfig,
)
from meshlink_gw.config.links import BleLinkConfig, SerialLinkConfig
from meshlink_gw.config.loader import Config, load_config, loads_config, parse_config
from meshlink_gw.config.mqtt import MqttConfig
from meshlink_gw.config.node import (
    DEFAULT_DISCOVERY_PORT,
    DEFAULT_PORT,
    MIN_FRAME_BYTES,
    NodeConfig,
    default_data_dir,
)
from meshlink_gw.config.schema import override, parse_hostport, parse_table

__all__ = [
    "DEFAULT_BOARD_TCP_PORT", "DEFAULT_BOARD_UDP_PORT", "DEFAULT_DISCOVERY_PORT", "DEFAULT_PORT",
    "MIN_FRAME_BYTES", "BleLinkConfig", "Config", "GatewayConfig", "MqttConfig", "NodeConfig",
    "SerialLinkConfig", "default_data_dir", "load_config", "loads_config", "override",
    "parse_config", "parse_hostport", "parse_table",
]

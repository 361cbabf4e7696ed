"""The board service's configuration: [gateway], [boards], [[serial]], [[ble]]
and [mqtt] in the gateway's TOML file.

Rule: validated once into one GatewayConfig with documented defaults; a bad
key raises ConfigError naming it (docs/BOARDS.md, "Configuration").
"""

from __future__ import annotations

import dataclasses
from typing import Any

from meshlink import boardlink
from meshlink.errors import ConfigError

from meshlink_gw.boards.links_config import BleLinkConfig, SerialLinkConfig, parse_links
from meshlink_gw.bridges.mqtt_config import MqttConfig, mqtt_config_from_table
from meshlink_gw.config import parse_hostport

DEFAULT_BOARD_UDP_PORT = 7410
DEFAULT_BOARD_TCP_PORT = 7411
DEFAULT_BEACON_PORT = 7399


@dataclasses.dataclass
class GatewayConfig:
    """The board service's settings ([gateway] and [boards] in the TOML file).

    Times are milliseconds, sizes bytes. A listen address of None disables it.
    """

    # [gateway]: where boards reach us
    board_udp: tuple[str, int] | None = ("0.0.0.0", DEFAULT_BOARD_UDP_PORT)
    board_tcp: tuple[str, int] | None = ("0.0.0.0", DEFAULT_BOARD_TCP_PORT)
    beacon: bool = True  # broadcast a GatewayBeacon for boards without an address
    beacon_port: int = DEFAULT_BEACON_PORT
    beacon_broadcast: str = "255.255.255.255"
    beacon_interval_ms: int = 2000
    # [boards]: per-board policy
    max_half_open: int = 64  # handshakes waiting for CONFIRM, all boards together
    handshake_timeout_ms: int = 10_000  # a half-open handshake is dropped after this
    offline_after_ms: int = 60_000  # no record for this long: the board is offline
    session_idle_drop_ms: int = 3_600_000  # forget an idle session after this long
    retry_ms: int = 1000  # resend the unacknowledged head message after this
    rate_records_per_s: int = 20  # token bucket refill, per board
    rate_burst: int = 40  # token bucket size, per board
    queue_max_age_ms: int = 86_400_000  # queued messages older than this are dropped
    queue_max_messages: int = 1000  # per board; when full new messages are refused
    queue_max_bytes: int = 1 << 20  # per board
    announce_interval_ms: int = 600_000  # re-announce every board this often
    forward_broadcasts: bool = True  # pass mesh broadcasts to online boards
    max_record_bytes: int = 768  # largest record plaintext boards accept (docs/FIRMWARE.md)
    strict_boot_counter: bool = False  # refuse a HELLO whose boot counter went back
    max_tcp_connections: int = 1024
    refusal_log_interval_ms: int = 1000  # per board and reason, at most one log line
    registry_poll_ms: int = 5000  # pick up boards added or revoked by the CLI
    # [[serial]], [[ble]]: boards wired to the gateway (links_config.py)
    serial: tuple[SerialLinkConfig, ...] = ()
    ble: tuple[BleLinkConfig, ...] = ()
    # [mqtt]: the MQTT bridge (bridges/mqtt_config.py); None: no bridge
    mqtt: MqttConfig | None = None

    def addresses(self) -> dict[str, str | None]:
        def fmt(a):
            return None if a is None else f"{a[0]}:{a[1]}"
        return {"board_udp": fmt(self.board_udp), "board_tcp": fmt(self.board_tcp)}


_GW_TABLE = ("board_udp", "board_tcp", "beacon", "beacon_port", "beacon_broadcast",
             "beacon_interval_ms")
_BOOL_KEYS = ("beacon", "forward_broadcasts", "strict_boot_counter")
_OWN_TABLES = ("serial", "ble", "mqtt")  # fields set from their own TOML tables


def _set_gateway(cfg: GatewayConfig, key: str, value: Any, where: str) -> None:
    if key in ("board_udp", "board_tcp"):
        if value is None or value is False or value == "" or value == "off":
            setattr(cfg, key, None)
        else:
            setattr(cfg, key, parse_hostport(value, what=where + key))
    elif key in _BOOL_KEYS:
        if type(value) is not bool:
            raise ConfigError(f"{where}{key}: expected true or false, got {value!r}")
        setattr(cfg, key, value)
    elif key == "beacon_broadcast":
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}{key}: expected a non-empty string")
        cfg.beacon_broadcast = value
    elif key in {f.name for f in dataclasses.fields(GatewayConfig)} and key not in _OWN_TABLES:
        if type(value) is not int or value < 0:
            raise ConfigError(f"{where}{key}: expected a non-negative integer, got {value!r}")
        setattr(cfg, key, value)
    else:
        raise ConfigError(f"{where}{key}: unknown setting")


def build_gateway_config(file_values: dict[str, Any], overrides: dict[str, Any]
                         ) -> GatewayConfig:
    """Validate [gateway], [boards], [[serial]], [[ble]] and [mqtt], then apply
    CLI overrides. An [mqtt] table with enabled = false gives mqtt None.

    Raises:
        ConfigError: unknown key, wrong type or out-of-range value.
    """
    cfg = GatewayConfig()
    for table in ("gateway", "boards"):
        values = file_values.get(table, {})
        if not isinstance(values, dict):
            raise ConfigError(f"[{table}] must be a table")
        for key, value in values.items():
            in_gw = key in _GW_TABLE
            if (table == "gateway") != in_gw:
                other = "gateway" if in_gw else "boards"
                raise ConfigError(f"{table}.{key}: belongs in the [{other}] table")
            _set_gateway(cfg, key, value, table + ".")
    for key, value in overrides.items():
        if value is not None:
            _set_gateway(cfg, key, value, "--")
    cfg.serial, cfg.ble = parse_links(file_values)
    if "mqtt" in file_values:
        mqtt = mqtt_config_from_table(file_values["mqtt"])
        cfg.mqtt = mqtt if mqtt.enabled else None
    if cfg.rate_records_per_s < 1 or cfg.rate_burst < 1:
        raise ConfigError("rate_records_per_s and rate_burst must be at least 1")
    if cfg.max_half_open < 1 or cfg.retry_ms < 10 or cfg.beacon_interval_ms < 100:
        raise ConfigError("max_half_open >= 1, retry_ms >= 10, beacon_interval_ms >= 100")
    if cfg.queue_max_messages < 1 or cfg.queue_max_bytes < 1024:
        raise ConfigError("queue_max_messages >= 1 and queue_max_bytes >= 1024")
    if cfg.max_record_bytes < 256 or cfg.max_record_bytes > boardlink.MAX_PLAINTEXT_BYTES:
        raise ConfigError("max_record_bytes must be in 256..%d" % boardlink.MAX_PLAINTEXT_BYTES)
    if cfg.offline_after_ms < 100 or cfg.handshake_timeout_ms < 100:
        raise ConfigError("offline_after_ms and handshake_timeout_ms must be >= 100")
    return cfg

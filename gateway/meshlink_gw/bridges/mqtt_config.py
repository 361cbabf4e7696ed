"""[mqtt] configuration for the MQTT bridge, validated once.

Rule: every field has a documented default; a bad value raises ConfigError
naming the key. Times are milliseconds or seconds as the name says.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from typing import Any

from meshlink.errors import ConfigError

_TOPIC_BAD = ("+", "#", "\x00")


@dataclasses.dataclass(frozen=True)
class MqttConfig:
    """Everything the MQTT bridge reads. See docs/BRIDGES.md for each key."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 0  # 0: 1883, or 8883 with tls
    client_id: str = ""  # "": meshlink-gw-<first 8 chars of the gateway node id>
    username: str | None = None
    password: str | None = None
    password_file: str | None = None  # read once at load; wins over password
    tls: bool = False
    ca_file: str | None = None  # None: the system CA store
    cert_file: str | None = None  # client certificate (mutual TLS)
    key_file: str | None = None
    tls_insecure: bool = False  # skip host name check (testing only)
    keepalive_s: int = 30
    connect_timeout_s: float = 10.0
    topic_prefix: str = "meshlink/"
    qos: int = 1  # uplink readings and messages
    outbox_max: int = 1000  # queued uplink messages kept while the broker is away
    max_inflight: int = 32  # uplink QoS-1 publishes awaiting PUBACK at once
    reconnect_initial_ms: int = 500
    reconnect_max_ms: int = 30_000
    downlink: bool = True  # accept commands on <prefix><gateway>/cmd/...
    allow_targets: tuple[str, ...] = ()  # board names / node ids; "*" all known; "broadcast"
    max_command_bytes: int = 1024
    source_rate_per_s: float = 0.5  # per command source (token bucket refill)
    source_burst: int = 5
    global_rate_per_s: float = 5.0  # all sources together
    global_burst: int = 20
    max_sources: int = 256  # distinct sources tracked by the rate limiter
    ha_discovery: bool = False
    ha_discovery_prefix: str = "homeassistant"

    @property
    def effective_port(self) -> int:
        return self.port or (8883 if self.tls else 1883)


_FIELDS = {f.name: f for f in dataclasses.fields(MqttConfig)}


def _type_ok(name: str, value: Any) -> bool:
    default = _FIELDS[name].default
    if name in ("username", "password", "password_file", "ca_file", "cert_file", "key_file"):
        return value is None or isinstance(value, str)
    if name == "allow_targets":
        return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, type(default))


def _check_ranges(c: MqttConfig) -> None:
    rules = [
        (0 <= c.port <= 65535, "port must be 0..65535"),
        (c.qos in (0, 1), "qos must be 0 or 1"),
        (5 <= c.keepalive_s <= 3600, "keepalive_s must be 5..3600"),
        (0 < c.connect_timeout_s <= 120, "connect_timeout_s must be in (0, 120]"),
        (1 <= c.outbox_max <= 1_000_000, "outbox_max must be 1..1000000"),
        (1 <= c.max_inflight <= 1000, "max_inflight must be 1..1000"),
        (0 < c.reconnect_initial_ms <= c.reconnect_max_ms,
         "need 0 < reconnect_initial_ms <= reconnect_max_ms"),
        (1 <= c.max_command_bytes <= 65536, "max_command_bytes must be 1..65536"),
        (c.source_rate_per_s > 0 and c.global_rate_per_s > 0, "rates must be > 0"),
        (c.source_burst >= 1 and c.global_burst >= 1, "bursts must be >= 1"),
        (c.max_sources >= 1, "max_sources must be >= 1"),
        (bool(c.host), "host must not be empty"),
    ]
    for ok, why in rules:
        if not ok:
            raise ConfigError(f"[mqtt] {why}")


def _check_topics(c: MqttConfig) -> None:
    p = c.topic_prefix
    if not p.endswith("/") or p.startswith("/") or any(ch in p for ch in _TOPIC_BAD):
        raise ConfigError(f"[mqtt] topic_prefix must end with '/', not start with '/', "
                          f"and hold no wildcard: {p!r}")
    hp = c.ha_discovery_prefix
    if not hp or "/" in hp.strip("/") or any(ch in hp for ch in _TOPIC_BAD):
        raise ConfigError(f"[mqtt] ha_discovery_prefix must be one topic level: {hp!r}")


def _check_files(c: MqttConfig) -> None:
    for key in ("ca_file", "cert_file", "key_file", "password_file"):
        path = getattr(c, key)
        if path is not None and not os.path.isfile(path):
            raise ConfigError(f"[mqtt] {key}: no such file {path!r}")
    if (c.ca_file or c.cert_file or c.key_file or c.tls_insecure) and not c.tls:
        raise ConfigError("[mqtt] ca_file/cert_file/key_file/tls_insecure need tls = true")
    if c.key_file and not c.cert_file:
        raise ConfigError("[mqtt] key_file needs cert_file")
    if (c.password is not None or c.password_file) and not c.username:
        raise ConfigError("[mqtt] a password needs a username")


def mqtt_config_from_table(table: dict[str, Any]) -> MqttConfig:
    """Build an MqttConfig from the parsed [mqtt] TOML table.

    Raises:
        ConfigError: unknown key, wrong type, value out of range, missing file.
    """
    if not isinstance(table, dict):
        raise ConfigError("[mqtt] must be a table")
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _FIELDS:
            raise ConfigError(f"[mqtt] unknown key {key!r} (known: {', '.join(sorted(_FIELDS))})")
        if not _type_ok(key, value):
            raise ConfigError(f"[mqtt] {key}: wrong type {type(value).__name__}")
        values[key] = tuple(value) if key == "allow_targets" else value
    cfg = MqttConfig(**values)
    _check_ranges(cfg)
    _check_topics(cfg)
    _check_files(cfg)
    if cfg.password_file:
        with open(cfg.password_file, encoding="utf-8") as f:
            cfg = dataclasses.replace(cfg, password=f.read().strip())
    return cfg


def load_mqtt_config(toml_text: str) -> MqttConfig | None:
    """The [mqtt] table of a TOML document, or None when there is none.

    Raises:
        ConfigError: bad TOML or a bad [mqtt] table.
    """
    try:
        doc = tomllib.loads(toml_text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"bad TOML: {e}")
    if "mqtt" not in doc:
        return None
    return mqtt_config_from_table(doc["mqtt"])

"""[mqtt]: the MQTT bridge's settings (docs/BRIDGES.md and README, "Configuration ([mqtt])").

Rule: every key is declared once below (config/schema.py); the cross-key
rules (topics, TLS files, credentials) are in MqttConfig.finish. Times are
milliseconds or seconds as the name says.
"""

from __future__ import annotations

import dataclasses
import os
from typing import ClassVar

from meshlink.errors import ConfigError

from meshlink_gw.config.schema import (
    OPTIONAL_STR,
    STR,
    STR_LIST,
    flag,
    integer,
    number,
    setting,
    text,
)

_TOPIC_BAD = ("+", "#", "\x00")


def _opt(doc: str) -> str | None:
    return setting(None, doc, kind=OPTIONAL_STR)


@dataclasses.dataclass(frozen=True)
class MqttConfig:
    """Everything the MQTT bridge reads. See docs/BRIDGES.md for each key."""

    TABLE: ClassVar[str] = "mqtt"

    enabled: bool = flag(True, "false keeps the table but runs no bridge")
    host: str = text("127.0.0.1", "broker host")
    port: int = integer(0, "0: 1883, or 8883 with tls", le=65535)
    client_id: str = text("", "\"\": meshlink-gw-<first 8 chars of the gateway node id>",
                          kind=STR)
    username: str | None = _opt("broker user name")
    password: str | None = _opt("broker password (prefer password_file)")
    password_file: str | None = _opt("read once at load; wins over password")
    tls: bool = flag(False, "TLS to the broker; the host name is verified")
    ca_file: str | None = _opt("CA bundle; unset: the system CA store")
    cert_file: str | None = _opt("client certificate (mutual TLS)")
    key_file: str | None = _opt("client key (mutual TLS)")
    tls_insecure: bool = flag(False, "skip the host name check (testing only)")
    keepalive_s: int = integer(30, "MQTT keepalive", ge=5, le=3600)
    connect_timeout_s: float = number(10.0, "per connection attempt", le=120)
    topic_prefix: str = text("meshlink/", "ends with '/', no wildcard", kind=STR)
    qos: int = integer(1, "uplink readings and messages", choices=(0, 1))
    outbox_max: int = integer(1000, "queued uplink messages kept while the broker is away",
                              ge=1, le=1_000_000)
    outbox_max_bytes: int = integer(4_194_304, "payload bytes the outbox keeps (on disk "
                                    "at the gateway); the oldest go first", ge=1024)
    max_inflight: int = integer(32, "uplink QoS-1 publishes awaiting PUBACK at once",
                                ge=1, le=1000)
    reconnect_initial_ms: int = integer(500, "first reconnect delay", ge=1)
    reconnect_max_ms: int = integer(30_000, "longest reconnect delay", ge=1)
    downlink: bool = flag(True, "accept commands on <prefix><gateway>/cmd/...")
    allow_targets: tuple[str, ...] = setting(
        (), "board names / node ids; \"*\" all known; \"broadcast\"", kind=STR_LIST)
    max_command_bytes: int = integer(1024, "largest command payload", ge=1, le=65536)
    source_rate_per_s: float = number(0.5, "per command source (token bucket refill)")
    source_burst: int = integer(5, "per command source (token bucket size)", ge=1)
    global_rate_per_s: float = number(5.0, "all sources together")
    global_burst: int = integer(20, "all sources together", ge=1)
    max_sources: int = integer(256, "distinct sources tracked by the rate limiter", ge=1)
    sources_bound_by_acl: bool = flag(
        False, "the broker's ACL binds the <source> level to the login (pattern write "
        "<prefix>+/cmd/+/%u): only then is each source limited apart; otherwise every "
        "command shares one source bucket, so renaming the level gains nothing")
    ha_discovery: bool = flag(False, "publish Home Assistant discovery configs")
    ha_rediscover_min_s: int = integer(
        60, "resend discovery configs on 'online' from Home Assistant at most this often",
        ge=0, le=86_400)
    ha_discovery_prefix: str = text("homeassistant", "one topic level", kind=STR)

    @property
    def effective_port(self) -> int:
        return self.port or (8883 if self.tls else 1883)

    def finish(self, where: str) -> MqttConfig:
        """Cross-key checks, then password_file read (called by the loader).

        Raises:
            ConfigError: a bad topic, a missing file, TLS options without
                tls, a password without a user name.
        """
        if self.reconnect_initial_ms > self.reconnect_max_ms:
            raise ConfigError(f"[{where}] need 0 < reconnect_initial_ms <= reconnect_max_ms")
        p = self.topic_prefix
        if not p.endswith("/") or p.startswith("/") or any(ch in p for ch in _TOPIC_BAD):
            raise ConfigError(f"[{where}] topic_prefix must end with '/', not start with '/', "
                              f"and hold no wildcard: {p!r}")
        hp = self.ha_discovery_prefix
        if not hp or "/" in hp.strip("/") or any(ch in hp for ch in _TOPIC_BAD):
            raise ConfigError(f"[{where}] ha_discovery_prefix must be one topic level: {hp!r}")
        for key in ("ca_file", "cert_file", "key_file", "password_file"):
            path = getattr(self, key)
            if path is not None and not os.path.isfile(path):
                raise ConfigError(f"[{where}] {key}: no such file {path!r}")
        if (self.ca_file or self.cert_file or self.key_file or self.tls_insecure) and not self.tls:
            raise ConfigError(f"[{where}] ca_file/cert_file/key_file/tls_insecure "
                              "need tls = true")
        if self.key_file and not self.cert_file:
            raise ConfigError(f"[{where}] key_file needs cert_file")
        if (self.password is not None or self.password_file) and not self.username:
            raise ConfigError(f"[{where}] a password needs a username")
        if self.password_file:
            try:
                with open(self.password_file, encoding="utf-8") as f:
                    password = f.read().strip()
            except OSError as e:
                raise ConfigError(f"[{where}] password_file: cannot read {self.password_file!r}: "
                                  f"{e.strerror}")
            return dataclasses.replace(self, password=password)
        return self

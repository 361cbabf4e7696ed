"""Node configuration: TOML file plus command-line overrides, validated once.

Rule: everything the runtime reads comes from one NodeConfig built here; a bad
value raises meshlink.errors.ConfigError naming the key and what was wrong.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import tomllib
from typing import Any

from meshlink.errors import ConfigError

DEFAULT_PORT = 7400
DEFAULT_DISCOVERY_PORT = 7399


def default_data_dir() -> pathlib.Path:
    """$XDG_DATA_HOME/meshlink, or ~/.local/share/meshlink."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return pathlib.Path(base) / "meshlink"


def parse_hostport(text: str, *, what: str) -> tuple[str, int]:
    """'HOST:PORT' -> (host, port). Raises ConfigError."""
    host, sep, port_text = str(text).rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"{what}: expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port_text)


@dataclasses.dataclass
class NodeConfig:
    """Everything a node needs. Times are milliseconds, sizes bytes."""

    data_dir: pathlib.Path = dataclasses.field(default_factory=default_data_dir)
    listen: tuple[str, int] = ("127.0.0.1", DEFAULT_PORT)
    peers: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    network_key: bytes | None = None  # optional 32-byte network PSK (admission)
    router: str = "meshlink"  # routing strategy by name: meshlink, seed, flood
    event_loop: str = "asyncio"  # or "uvloop" (faster I/O, optional dependency)
    default_ttl: int = 8  # the whitepaper's TTL; seed uses it as is, meshlink as a floor
    routing_log: pathlib.Path | None = None  # JSONL of every forwarding decision
    # discovery
    discovery: bool = False
    discovery_port: int = DEFAULT_DISCOVERY_PORT
    discovery_broadcast: str = "255.255.255.255"
    beacon_interval_ms: int = 2000
    # liveness
    ping_interval_ms: int = 5000
    ping_timeout_ms: int = 3000
    max_missed_pings: int = 3
    handshake_timeout_ms: int = 10_000
    idle_timeout_ms: int = 30_000  # no frame at all for this long: close
    # reconnect backoff (exponential with jitter)
    reconnect_min_ms: int = 250
    reconnect_max_ms: int = 30_000
    # delivery
    retry_interval_ms: int = 2000
    delivery_timeout_ms: int = 30_000
    # limits
    max_frame_bytes: int = 65536
    max_peers: int = 64
    max_half_open: int = 64  # connections still in handshake
    write_buffer_high_bytes: int = 1 << 20  # backpressure: stop reading above this
    slow_peer_timeout_ms: int = 5000  # a peer that reads nothing this long is cut off
    inbox_max_messages: int = 100_000
    max_pending_sends: int = 10_000  # directed sends awaiting an ack; more are refused

    def control_socket(self) -> pathlib.Path:
        return self.data_dir / "control.sock"


_INT_KEYS = {f.name for f in dataclasses.fields(NodeConfig) if f.type in ("int", int)}
_BOOL_KEYS = {"discovery"}


def _set(cfg: NodeConfig, key: str, value: Any, where: str) -> None:
    if key in _INT_KEYS:
        if type(value) is not int or value < 0:
            raise ConfigError(f"{where}{key}: expected a non-negative integer, got {value!r}")
        setattr(cfg, key, value)
    elif key in _BOOL_KEYS:
        if type(value) is not bool:
            raise ConfigError(f"{where}{key}: expected true or false, got {value!r}")
        setattr(cfg, key, value)
    elif key == "listen":
        cfg.listen = parse_hostport(value, what=f"{where}listen")
    elif key == "peers":
        if not isinstance(value, list):
            raise ConfigError(f"{where}peers: expected a list of 'HOST:PORT' strings")
        cfg.peers = [parse_hostport(p, what=f"{where}peers") for p in value]
    elif key == "network_key":
        cfg.network_key = _parse_network_key(value, where)
    elif key == "event_loop":
        if value not in ("asyncio", "uvloop"):
            raise ConfigError(f"{where}event_loop: expected 'asyncio' or 'uvloop', got {value!r}")
        cfg.event_loop = value
    elif key in ("router", "discovery_broadcast"):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}{key}: expected a non-empty string")
        setattr(cfg, key, value)
    elif key in ("data_dir", "routing_log"):
        setattr(cfg, key, pathlib.Path(str(value)).expanduser())
    else:
        raise ConfigError(f"{where}{key}: unknown setting")


def _parse_network_key(value: Any, where: str) -> bytes:
    try:
        raw = bytes.fromhex(str(value))
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ConfigError(f"{where}network_key: expected 64 hex characters (32 bytes)")
    return raw


def load_toml(path: pathlib.Path) -> dict[str, Any]:
    """Read a TOML file. Raises ConfigError with the parser's message."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror}")
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config {path} is not valid TOML: {e}")


def build_config(file_values: dict[str, Any], overrides: dict[str, Any]) -> NodeConfig:
    """Validate the [node] table of a config file, then apply CLI overrides.

    Raises:
        ConfigError: unknown key, wrong type or out-of-range value.
    """
    cfg = NodeConfig()
    node_table = file_values.get("node", {})
    if not isinstance(node_table, dict):
        raise ConfigError("[node] must be a table")
    for key, value in node_table.items():
        _set(cfg, key, value, "node.")
    for key, value in overrides.items():
        if value is not None:
            _set(cfg, key, value, "--")
    _check_ranges(cfg)
    return cfg


MIN_FRAME_BYTES = 16384


def _check_ranges(cfg: NodeConfig) -> None:
    from meshlink.router import STRATEGIES

    if cfg.router not in STRATEGIES:
        raise ConfigError(f"router: unknown strategy {cfg.router!r}; known: {sorted(STRATEGIES)}")
    if not 1 <= cfg.default_ttl <= 255:
        raise ConfigError("default_ttl: must be in 1..255")
    if cfg.max_frame_bytes < MIN_FRAME_BYTES:
        # the largest message a node sends: a full `routes` announcement
        # (256 entries, ~14.4 KB of JSON); a handshake is ~2.6 KB
        raise ConfigError(f"max_frame_bytes: must be at least {MIN_FRAME_BYTES}")
    if cfg.ping_interval_ms < 10 or cfg.handshake_timeout_ms < 10:
        raise ConfigError("ping_interval_ms and handshake_timeout_ms must be at least 10")
    if cfg.reconnect_min_ms < 1 or cfg.reconnect_max_ms < cfg.reconnect_min_ms:
        raise ConfigError("reconnect_min_ms must be >= 1 and <= reconnect_max_ms")

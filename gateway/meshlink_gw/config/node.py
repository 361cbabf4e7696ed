"""[node]: a mesh node's settings (`meshlink node`, and the mesh side of a gateway).

Rule: every key is declared once below (config/schema.py); times are
milliseconds, sizes bytes.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import ClassVar

from meshlink.errors import ConfigError
from meshlink.nodeid import NAME_MAX, is_name

from meshlink_gw.config.schema import (
    HOSTPORT,
    HOSTPORT_OR_OFF,
    OPTIONAL_STR,
    PATH,
    PEER_LIST,
    Kind,
    flag,
    integer,
    setting,
    text,
)

DEFAULT_PORT = 7400
# The UDP port of both LAN beacons: nodes' Beacon ([node] discovery_port) and
# the gateway's GatewayBeacon for boards ([gateway] beacon_port); boards listen
# on it too (firmware/app/config.py, discovery_port).
DEFAULT_DISCOVERY_PORT = 7399
# The largest message a node sends is a full `routes` announcement (256
# entries, ~14.4 KB of JSON); a handshake is ~2.6 KB.
MIN_FRAME_BYTES = 16384


def default_data_dir() -> pathlib.Path:
    """$XDG_DATA_HOME/meshlink, or ~/.local/share/meshlink."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return pathlib.Path(base) / "meshlink"


def _network_key(value: object, loc: str) -> bytes:
    try:
        raw = bytes.fromhex(str(value))
    except ValueError:
        raw = b""
    if not isinstance(value, str) or len(raw) != 32:  # the value is a secret: not echoed
        raise ConfigError(f"{loc}: expected 64 hex characters (32 bytes)")
    return raw


def read_network_key_file(path: pathlib.Path, loc: str) -> bytes:
    """The network key from a file (64 hex characters, surrounding whitespace
    ignored) that only its owner can read. Raises ConfigError."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{loc}: cannot read {path}: {getattr(e, 'strerror', None) or e}")
    if mode & 0o077:
        raise ConfigError(f"{loc}: {path} is readable by others (mode {mode & 0o777:o}); "
                          f"run chmod 600 {path}")
    return _network_key(text, loc)


NETWORK_KEY = Kind("64 hex characters (32 bytes)", _network_key)


def _node_name(value: object, loc: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{loc}: expected a string, got {value!r}")
    if value and not is_name(value):
        raise ConfigError(f"{loc}: expected 1-{NAME_MAX} letters, digits, '.', '_' or '-' "
                          f"starting with a letter or digit, got {value!r}")
    return value


NODE_NAME = Kind(f"a name of 1-{NAME_MAX} letters, digits, '.', '_', '-'", _node_name)


def _strategies() -> list[str]:
    from meshlink.router import STRATEGIES

    return sorted(STRATEGIES)


@dataclasses.dataclass(frozen=True)
class NodeConfig:
    """Everything a node needs ([node] in the TOML file). Times are milliseconds,
    sizes bytes. Frozen: derive a copy with schema.override() or dataclasses.replace()."""

    TABLE: ClassVar[str] = "node"

    data_dir: pathlib.Path = setting(
        kind=PATH, factory=default_data_dir,
        doc="identity key, inbox, control socket (default $XDG_DATA_HOME/meshlink)")
    listen: tuple[str, int] = setting(
        ("127.0.0.1", DEFAULT_PORT), "TCP address to listen on (port 0 picks a free one)",
        kind=HOSTPORT)
    peers: tuple[tuple[str, int], ...] = setting(
        (), "static peers to keep a link to, as HOST:PORT or NODE_ID@HOST:PORT (pinned "
        "to that node ID; a HOST:PORT peer is pinned to the first ID met there)",
        kind=PEER_LIST)
    network_key: bytes | None = setting(
        None, "optional 32-byte network PSK (admission), as hex; prefer network_key_file",
        kind=NETWORK_KEY)
    network_key_file: pathlib.Path | None = setting(
        None, "file holding the network key as 64 hex characters (mode 0600: not readable "
        "by group or others); read once at start", kind=PATH)
    name: str = setting("", "this node's name, announced to the mesh (empty: none)",
                        kind=NODE_NAME)
    name_interval_ms: int = integer(60_000, "re-announce our name this often (and on a new link)",
                                    ge=100)
    dashboard: tuple[str, int] | None = setting(
        None, "HOST:PORT of the dashboard and /metrics, or off (the default)",
        kind=HOSTPORT_OR_OFF)
    dashboard_token: str | None = setting(
        None, "token the dashboard requires (default: a fresh random one, printed at start)",
        kind=OPTIONAL_STR)
    router: str = text("meshlink", "routing strategy by name: meshlink, seed, flood",
                       choices=_strategies)
    event_loop: str = text("asyncio", "or uvloop (faster I/O, optional dependency)",
                           choices=("asyncio", "uvloop"))
    default_ttl: int = integer(8, "the whitepaper's TTL; seed uses it as is, meshlink as a floor",
                               ge=1, le=255)
    routing_log: pathlib.Path | None = setting(
        None, "JSONL file of every forwarding decision", kind=PATH)
    # discovery: UDP broadcast beacons between nodes (the boards' GatewayBeacon
    # is [gateway] beacon_*: another message, often another network)
    discovery: bool = flag(False, "find peers on the LAN by UDP broadcast beacons")
    discovery_port: int = integer(DEFAULT_DISCOVERY_PORT, "UDP port of the beacons", le=65535)
    discovery_broadcast: str = text("255.255.255.255", "broadcast address of the beacons")
    beacon_interval_ms: int = integer(2000, "send our beacon this often")
    # liveness
    # liveness (PROTOCOL.md §4, meshlink.liveness): an adaptive heartbeat
    idle_ping_ms: int = integer(5000, "Ping an idle link this often", ge=10)
    probe_interval_ms: int = integer(
        500, "a link that owes us an answer (a Ping or directed message sent, nothing "
        "received since) is probed this often", ge=10)
    probe_misses: int = integer(
        3, "probes unanswered when the next is due: the neighbour is down", ge=1, le=100)
    tcp_user_timeout_ms: int = integer(
        2000, "TCP_USER_TIMEOUT on Linux: data unacknowledged by the peer's kernel this "
        "long fails the socket (0: the kernel's default)", le=600_000)
    handshake_timeout_ms: int = integer(
        10_000, "a mesh handshake (hybrid X25519 + ML-KEM over TCP) must finish in this", ge=10)
    idle_timeout_ms: int = integer(30_000, "no frame at all for this long: close")
    # session lifetime (PROTOCOL.md §5.4): may only be shortened
    session_rekey_after_ms: int = integer(
        120_000, "start a rekey once a session is this old", ge=100, le=120_000)
    session_reject_after_ms: int = integer(
        180_000, "hard stop: no record sealed or opened under an older key "
        "(> session_rekey_after_ms)", ge=200, le=180_000)
    # reconnect backoff (exponential with jitter)
    reconnect_min_ms: int = integer(250, "first redial delay", ge=1)
    reconnect_max_ms: int = integer(30_000, "longest redial delay (>= reconnect_min_ms)")
    # delivery
    retry_interval_ms: int = integer(2000, "first resend of an unacknowledged directed message")
    delivery_timeout_ms: int = integer(30_000, "give up on a directed message after this")
    # limits
    max_frame_bytes: int = integer(65536, "largest frame accepted", ge=MIN_FRAME_BYTES)
    max_peers: int = integer(64, "established links")
    max_half_open: int = integer(64, "mesh connections still in handshake")
    max_half_open_per_host: int = integer(
        8, "of those, from one host (a /24 or /64 prefix: 4x this)", ge=1)
    handshake_attempts_per_s: int = integer(
        20, "inbound handshakes per second from one host (a prefix: 4x)", ge=1)
    handshake_attempt_burst: int = integer(10, "burst of those", ge=1)
    cookie_load_half_open: int = integer(
        16, "under load from this many handshakes in progress (this one included; 0 or 1: "
        "always): an M1 must then carry a cookie (PROTOCOL.md 5.3.1)", ge=0)
    cookie_load_attempts_per_s: int = integer(
        50, "under load above this many M1s per second from all sources: an M1 must then "
        "carry a cookie", ge=1)
    max_discovery_dials: int = integer(
        16, "addresses suggested by beacons dialed at once (each dropped after 3 "
        "failed dials in a row)", ge=0)
    write_buffer_high_bytes: int = integer(1 << 20, "backpressure: stop reading above this")
    slow_peer_timeout_ms: int = integer(5000, "a peer that reads nothing this long is cut off")
    inbox_max_messages: int = integer(100_000, "received messages kept")
    inbox_broadcast_max_bytes: int = integer(
        16 << 20, "broadcast payload bytes kept in the inbox, all sources (oldest dropped)",
        ge=65536)
    inbox_broadcast_max_bytes_per_source: int = integer(
        1 << 20, "broadcast payload bytes kept from one source (its oldest dropped)",
        ge=65536)
    refusal_log_interval_ms: int = integer(
        1000, "refused input (forged messages, bad records, failed handshakes) is logged at "
        "most once per interval per kind, with a count of the lines held back (0: all)")
    max_pending_sends: int = integer(10_000, "directed sends awaiting an ack; more are refused")

    def finish(self, where: str) -> NodeConfig:
        """Cross-key checks (called by the loader and override())."""
        if self.reconnect_max_ms < self.reconnect_min_ms:
            raise ConfigError(f"{where}.reconnect_max_ms must be >= reconnect_min_ms "
                              f"({self.reconnect_min_ms}), got {self.reconnect_max_ms}")
        if self.network_key_file is not None:
            if self.network_key is not None:
                raise ConfigError(f"{where}: give network_key or network_key_file, not both")
            key = read_network_key_file(self.network_key_file, f"{where}.network_key_file")
            return dataclasses.replace(self, network_key=key, network_key_file=None).finish(
                where)
        if self.session_reject_after_ms <= self.session_rekey_after_ms:
            raise ConfigError(f"{where}.session_reject_after_ms must be > "
                              f"session_rekey_after_ms ({self.session_rekey_after_ms}), "
                              f"got {self.session_reject_after_ms}")
        return self

    def control_socket(self) -> pathlib.Path:
        return self.data_dir / "control.sock"

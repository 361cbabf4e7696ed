"""[gateway] and [boards]: the board service's settings, plus the wired boards
([[serial]], [[ble]]: config/links.py) and the MQTT bridge ([mqtt]: config/mqtt.py).

Rule: every key is declared once below (config/schema.py), with the table it
belongs in; a key in the other table is an error naming the right one
(docs/BOARDS.md, "Configuration").

Three names repeat [node] keys on purpose, for another protocol with its own
cost, so each is tuned on its own:
- handshake_timeout_ms, max_half_open: board-link HELLO/CONFIRM from boards
  (a cheap HMAC exchange with a slow or sleepy board, over spoofable UDP),
  not the mesh's hybrid post-quantum handshake over TCP;
- beacon_*: the GatewayBeacon that boards listen for (on the boards' WiFi),
  not the nodes' discovery Beacon. Both use DEFAULT_DISCOVERY_PORT.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from meshlink import boardlink

from meshlink_gw.config.links import BleLinkConfig, SerialLinkConfig
from meshlink_gw.config.mqtt import MqttConfig
from meshlink_gw.config.node import DEFAULT_DISCOVERY_PORT
from meshlink_gw.config.schema import HOSTPORT_OR_OFF, flag, integer, setting, text

DEFAULT_BOARD_UDP_PORT = 7410
DEFAULT_BOARD_TCP_PORT = 7411


GW: dict[str, Any] = {"table": "gateway"}
BOARDS: dict[str, Any] = {"table": "boards"}


@dataclasses.dataclass(frozen=True)
class GatewayConfig:
    """The board service's settings. Times are milliseconds, sizes bytes.
    A listen address of None disables it. Frozen: see config/schema.py."""

    TABLE: ClassVar[str] = "gateway"

    # [gateway]: where boards reach us
    board_udp: tuple[str, int] | None = setting(
        ("0.0.0.0", DEFAULT_BOARD_UDP_PORT), "UDP listen address for boards (\"off\" disables)",
        kind=HOSTPORT_OR_OFF, **GW)
    board_tcp: tuple[str, int] | None = setting(
        ("0.0.0.0", DEFAULT_BOARD_TCP_PORT), "TCP listen address for boards (\"off\" disables)",
        kind=HOSTPORT_OR_OFF, **GW)
    beacon: bool = flag(
        True, "broadcast a GatewayBeacon for boards without an address", **GW)
    beacon_port: int = integer(
        DEFAULT_DISCOVERY_PORT, "UDP port of the GatewayBeacon", le=65535, **GW)
    beacon_broadcast: str = text(
        "255.255.255.255", "broadcast address of the GatewayBeacon", **GW)
    beacon_interval_ms: int = integer(
        2000, "send the GatewayBeacon this often", ge=100, **GW)
    # [boards]: per-board policy
    max_half_open: int = integer(
        64, "board handshakes waiting for CONFIRM, all boards together", ge=1, **BOARDS)
    handshake_timeout_ms: int = integer(
        10_000, "a half-open board handshake is dropped after this", ge=100, **BOARDS)
    offline_after_ms: int = integer(
        60_000, "no record for this long: the board is offline", ge=100, **BOARDS)
    session_idle_drop_ms: int = integer(
        3_600_000, "forget an idle session after this long", **BOARDS)
    retry_ms: int = integer(
        1000, "resend the unacknowledged head message after this", ge=10, **BOARDS)
    rate_records_per_s: int = integer(
        20, "token bucket refill, per board", ge=1, **BOARDS)
    rate_burst: int = integer(
        40, "token bucket size, per board", ge=1, **BOARDS)
    queue_max_age_ms: int = integer(
        86_400_000, "queued messages older than this are dropped", **BOARDS)
    queue_max_messages: int = integer(
        1000, "per board; when full new messages are refused", ge=1, **BOARDS)
    queue_max_bytes: int = integer(
        1 << 20, "per board", ge=1024, **BOARDS)
    queue_max_per_source: int = integer(
        100, "messages one mesh sender may have queued for one board", ge=1, **BOARDS)
    announce_interval_ms: int = integer(
        600_000, "re-announce every board this often", **BOARDS)
    forward_broadcasts: bool = flag(
        True, "pass mesh broadcasts to online boards", **BOARDS)
    max_record_bytes: int = integer(
        768, "largest record plaintext boards accept (docs/FIRMWARE.md)",
        ge=256, le=boardlink.MAX_PLAINTEXT_BYTES, **BOARDS)
    strict_boot_counter: bool = flag(
        False, "refuse a HELLO whose boot counter went back", **BOARDS)
    max_tcp_connections: int = integer(
        1024, "board TCP connections at once", **BOARDS)
    refusal_log_interval_ms: int = integer(
        1000, "per board and reason, at most one log line", **BOARDS)
    registry_poll_ms: int = integer(
        5000, "pick up boards added or revoked by the CLI", **BOARDS)
    sleep_grace_ms: int = integer(
        10_000, "a sleeping board is offline this long after its wake deadline", **BOARDS)
    max_sleep_ms: int = integer(
        86_400_000, "longest sleep a board may announce", ge=100, **BOARDS)
    # their own tables (not keys of [gateway] or [boards])
    serial: tuple[SerialLinkConfig, ...] = ()  # [[serial]]
    ble: tuple[BleLinkConfig, ...] = ()  # [[ble]]
    mqtt: MqttConfig | None = None  # [mqtt]; None: no bridge (no table, or enabled = false)

    def addresses(self) -> dict[str, str | None]:
        def fmt(a):
            return None if a is None else f"{a[0]}:{a[1]}"
        return {"board_udp": fmt(self.board_udp), "board_tcp": fmt(self.board_tcp)}

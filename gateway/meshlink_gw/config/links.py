"""[[serial]] and [[ble]]: boards wired to the gateway by USB/UART or Bluetooth LE.

Rule: each array-of-tables entry is validated by config/schema.py into a
frozen dataclass with documented defaults; a bad entry raises ConfigError
naming "serial[i].key" (docs/BRIDGES.md, "Gateway configuration").
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from meshlink.errors import ConfigError

from meshlink_gw.config.schema import Kind, bad_value, integer, number, text


def valid_board_name(name: str) -> bool:
    """Board names are short and safe as a directory name: [A-Za-z0-9._-], 1..32."""
    return (isinstance(name, str) and 1 <= len(name) <= 32 and name[0] not in ".-"
            and all(c.isascii() and (c.isalnum() or c in "._-") for c in name))


def _board(value: Any, loc: str) -> str:
    if not isinstance(value, str) or not valid_board_name(value):
        raise bad_value(loc, value, "a valid board name ([A-Za-z0-9._-], 1..32)")
    return value


BOARD = Kind("a board name", _board)
BOARD_DOC = "the registered board expected on this link; others are refused"


def _check_backoff(entry: Any, where: str) -> None:
    if entry.reconnect_initial_ms > entry.reconnect_max_ms:
        raise ConfigError(f"{where}: reconnect_initial_ms ({entry.reconnect_initial_ms}) > "
                          f"reconnect_max_ms ({entry.reconnect_max_ms})")


@dataclasses.dataclass(frozen=True)
class SerialLinkConfig:
    """One [[serial]] entry: a board on a serial port."""

    TABLE: ClassVar[str] = "serial"

    port: str = text(doc="device path: /dev/ttyUSB0, /dev/serial/by-id/..., a pty")
    board: str = text(doc=BOARD_DOC, kind=BOARD)
    baudrate: int = integer(115_200, "ignored by USB CDC and ptys", ge=1)
    reconnect_initial_ms: int = integer(500, "reopen backoff after the port vanished", ge=1)
    reconnect_max_ms: int = integer(10_000, "longest reopen backoff", ge=1)

    def finish(self, where: str) -> SerialLinkConfig:
        _check_backoff(self, where)
        return self


@dataclasses.dataclass(frozen=True)
class BleLinkConfig:
    """One [[ble]] entry: a board advertising the MeshLink GATT service."""

    TABLE: ClassVar[str] = "ble"

    board: str = text(doc=BOARD_DOC, kind=BOARD)
    address: str | None = text(None, "Bluetooth address (or CoreBluetooth UUID) ...")
    name: str | None = text(None, "... or the advertised local name")
    scan_timeout_s: float = number(10.0, "per attempt")
    connect_timeout_s: float = number(20.0, "per attempt")
    reconnect_initial_ms: int = integer(1000, "rescan backoff", ge=1)
    reconnect_max_ms: int = integer(30_000, "longest rescan backoff", ge=1)

    def finish(self, where: str) -> BleLinkConfig:
        if not (self.address or self.name):
            raise ConfigError(f"{where}: needs address or name")
        _check_backoff(self, where)
        return self


def check_links(serial: tuple[SerialLinkConfig, ...], ble: tuple[BleLinkConfig, ...]) -> None:
    """A port, a BLE board or a board may appear on one link only. Raises ConfigError."""
    groups: dict[str, list[str]] = {
        "serial port": [e.port for e in serial],
        "BLE board": [e.address or e.name or "" for e in ble],
        "board": [e.board for e in serial] + [e.board for e in ble],
    }
    for what, values in groups.items():
        dup = {v for v in values if values.count(v) > 1}
        if dup:
            raise ConfigError(f"{what} {sorted(dup)[0]!r} is listed on more than one link")

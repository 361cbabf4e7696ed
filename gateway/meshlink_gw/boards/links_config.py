"""[[serial]] and [[ble]]: boards wired to the gateway by USB/UART or Bluetooth LE.

Rule: each array-of-tables entry is validated once into a frozen dataclass
with documented defaults; a bad entry raises ConfigError naming
"serial[i].key" (docs/BRIDGES.md, "Gateway configuration").
"""

from __future__ import annotations

import dataclasses
from typing import Any

from meshlink.errors import ConfigError

from meshlink_gw.boards.registry import valid_board_name


@dataclasses.dataclass(frozen=True)
class SerialLinkConfig:
    """One [[serial]] entry: a board on a serial port."""

    port: str  # device path: /dev/ttyUSB0, /dev/serial/by-id/..., a pty
    board: str  # the registered board expected on it (others are refused)
    baudrate: int = 115_200  # ignored by USB CDC and ptys
    reconnect_initial_ms: int = 500  # reopen backoff after the port vanished
    reconnect_max_ms: int = 10_000


@dataclasses.dataclass(frozen=True)
class BleLinkConfig:
    """One [[ble]] entry: a board advertising the MeshLink GATT service."""

    board: str  # the registered board expected on it (others are refused)
    address: str | None = None  # Bluetooth address (or CoreBluetooth UUID) ...
    name: str | None = None  # ... or the advertised local name
    scan_timeout_s: float = 10.0
    connect_timeout_s: float = 20.0
    reconnect_initial_ms: int = 1000
    reconnect_max_ms: int = 30_000


def _check_type(cls: type, where: str, key: str, value: Any) -> None:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if key not in fields:
        raise ConfigError(f"{where}.{key}: unknown setting (known: {', '.join(fields)})")
    kind = fields[key].type
    if kind == "int":
        ok = type(value) is int and value > 0
    elif kind == "float":
        ok = type(value) in (int, float) and value > 0
    else:  # "str" or "str | None"
        ok = isinstance(value, str) and bool(value)
    if not ok:
        raise ConfigError(f"{where}.{key}: expected a positive {kind.split(' ')[0]}, "
                          f"got {value!r}")


def _entry(cls: type, where: str, table: Any) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table ([[...]] entry)")
    for key, value in table.items():
        _check_type(cls, where, key, value)
    if "board" not in table:
        raise ConfigError(f"{where}.board: missing (the registered board on this link)")
    if not valid_board_name(table["board"]):
        raise ConfigError(f"{where}.board: not a valid board name")
    try:
        entry = cls(**table)
    except TypeError as e:
        raise ConfigError(f"{where}: {e}")
    if entry.reconnect_initial_ms > entry.reconnect_max_ms:
        raise ConfigError(f"{where}: reconnect_initial_ms > reconnect_max_ms")
    return entry


def parse_links(file_values: dict[str, Any]
                ) -> tuple[tuple[SerialLinkConfig, ...], tuple[BleLinkConfig, ...]]:
    """The [[serial]] and [[ble]] entries of a gateway TOML document.

    Raises:
        ConfigError: a bad entry, a port or BLE board listed twice, or a board
            on two links.
    """
    out: dict[str, list[Any]] = {"serial": [], "ble": []}
    for kind, cls in (("serial", SerialLinkConfig), ("ble", BleLinkConfig)):
        entries = file_values.get(kind, [])
        if not isinstance(entries, list):
            raise ConfigError(f"{kind}: use [[{kind}]] (an array of tables)")
        for i, table in enumerate(entries):
            entry = _entry(cls, f"{kind}[{i}]", table)
            if kind == "ble" and not (entry.address or entry.name):
                raise ConfigError(f"ble[{i}]: needs address or name")
            out[kind].append(entry)
    ports = [e.port for e in out["serial"]]
    radios = [e.address or e.name for e in out["ble"]]
    boards = [e.board for e in out["serial"] + out["ble"]]
    for what, values in (("serial port", ports), ("BLE board", radios), ("board", boards)):
        dup = {v for v in values if values.count(v) > 1}
        if dup:
            raise ConfigError(f"{what} {sorted(dup)[0]!r} is listed on more than one link")
    return tuple(out["serial"]), tuple(out["ble"])

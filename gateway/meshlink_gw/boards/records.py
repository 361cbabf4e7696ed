"""Record plaintexts between boards and the gateway, and the mesh data made of them.

Rule: pure functions, no I/O and no state. The record contract is in
docs/BOARDS.md ("Records") and docs/FIRMWARE.md: canonical JSON
(meshlink.cjson), integers only. A record that breaks it raises DecodeError,
which the service counts as a `bad_payload` refusal.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from meshlink import cjson
from meshlink._compat import b64decode, b64encode
from meshlink.errors import DecodeError
from meshlink.nodeid import is_id

BROADCAST = "broadcast"


def decode_record(plaintext: bytes) -> dict[str, Any]:
    """A record plaintext -> its JSON object (which has a string "t").

    Raises:
        DecodeError: not canonical JSON, or not an object with a "t".
    """
    obj = cjson.loads(plaintext)
    if type(obj) is not dict or type(obj.get("t")) is not str:
        raise DecodeError("record plaintext is not an object with a 't'")
    return obj


def target(to: Any) -> str | None:
    """A record's "to" -> None (the gateway itself), "broadcast" or a node ID.

    Raises:
        DecodeError: anything else.
    """
    if to is None or to == "gateway":
        return None
    if to == BROADCAST or is_id(to):
        return to
    raise DecodeError("'to' must be null, \"gateway\", \"broadcast\" or a node ID")


def send_target(to: Any) -> str | None:
    """A "send" record's "to": there null means broadcast (docs/FIRMWARE.md)."""
    return BROADCAST if to is None else target(to)


def send_data(obj: dict[str, Any]) -> bytes:
    """The raw data of a "send" record. Raises DecodeError, KeyError."""
    return b64decode(obj["data"])


def reading_fields(obj: dict[str, Any]) -> tuple[str, int, str, int]:
    """(sensor, value_milli, unit, seq) of a "reading" record.

    Raises:
        DecodeError: a field of the wrong type. KeyError: a missing field.
    """
    sensor, value = obj["sensor"], obj["value_milli"]
    unit, seq = obj.get("unit", ""), obj.get("seq", 0)
    if type(sensor) is not str or type(value) is not int or type(unit) is not str \
            or type(seq) is not int:
        raise DecodeError("reading needs sensor (str), value_milli (int), unit (str), "
                          "seq (int)")
    return sensor, value, unit, seq


def reading_data(board: str, node_id: str, sensor: str, value_milli: int, unit: str,
                 seq: int) -> bytes:
    """The mesh data of a board's reading (docs/BOARDS.md, "Records")."""
    return cjson.dumps({"kind": "reading", "board": board, "node_id": node_id,
                        "sensor": sensor, "value_milli": value_milli, "unit": unit,
                        "seq": seq})


def ping_seq(obj: dict[str, Any]) -> int:
    """The seq of a "ping" record. Raises DecodeError."""
    seq = obj.get("seq")
    if type(seq) is not int:
        raise DecodeError("ping needs an integer seq")
    return seq


def sleep_ms(obj: dict[str, Any], max_sleep_ms: int) -> int:
    """The ms of a "sleep" record (PROTOCOL.md §8). Raises DecodeError."""
    ms = obj.get("ms")
    if type(ms) is not int or ms < 1 or ms > max_sleep_ms:
        raise DecodeError("sleep needs an integer ms in 1..%d" % max_sleep_ms)
    return ms


def msg_record(origin_id: str, src: str, dst: str | None, data: bytes,
               hops: int) -> dict[str, Any]:
    """The "msg" record that carries a mesh message to a board."""
    return {"t": "msg", "id": origin_id, "from": src, "to": dst, "data": b64encode(data),
            "hops": hops}


def fits(record: dict[str, Any], max_record_bytes: int) -> bool:
    """True if a record's plaintext is within what boards accept."""
    return len(cjson.dumps(record)) <= max_record_bytes


class RecentReadings:
    """The last readings a gateway confirmed, per board: a reading sent again
    (its "got" was lost, or the board reconnected) is confirmed again but not
    put into the mesh twice. In memory: a gateway restart forgets it, so only
    a reading taken in the instant before a crash can arrive twice."""

    def __init__(self, per_board: int = 64) -> None:
        self.per_board = per_board
        self._seen: dict[str, deque[tuple[Any, int, Any]]] = {}

    def seen(self, board: str, key: tuple[Any, int, Any]) -> bool:
        """True if board's reading key (boot_ctr, seq, to) was confirmed lately."""
        return key in self._seen.get(board, ())

    def remember(self, board: str, key: tuple[Any, int, Any]) -> None:
        self._seen.setdefault(board, deque(maxlen=self.per_board)).append(key)

    def forget(self, board: str) -> None:
        self._seen.pop(board, None)

"""The MQTT outbox on disk: uplink messages not yet acknowledged by the
broker survive a gateway restart (<data_dir>/mqtt_outbox.db, SQLite).

Rule: only the outbox (mqtt_outbox.Outbox) calls this, once per change; a
write that fails (a full disk) is logged at most once per interval and the
message stays in memory: the outbox keeps working, only not durably.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from meshlink_gw.runtime import now_ms
from meshlink_gw.storecheck import open_store

log = logging.getLogger("meshlink.mqtt")

FILENAME = "mqtt_outbox.db"
FAILURE_LOG_INTERVAL_MS = 10_000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL
);
"""


class OutboxStore:
    """Rows of the outbox by seq. Raises ConfigError at open if the file is
    corrupt or not writable (storecheck)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_store(path)
        self._db.executescript(_SCHEMA)
        self._failed_logged_ms = -FAILURE_LOG_INTERVAL_MS

    def load(self) -> list[tuple[int, str, bytes, int, bool]]:
        rows = self._db.execute("SELECT seq, topic, payload, qos, retain FROM outbox "
                                "ORDER BY seq").fetchall()
        return [(r[0], r[1], bytes(r[2]), r[3], bool(r[4])) for r in rows]

    def add(self, seq: int, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        self._write("INSERT OR REPLACE INTO outbox VALUES (?, ?, ?, ?, ?)",
                    (seq, topic, payload, qos, int(retain)))

    def remove(self, seq: int) -> None:
        self._write("DELETE FROM outbox WHERE seq = ?", (seq,))

    def _write(self, sql: str, args: tuple) -> None:
        try:
            self._db.execute(sql, args)
        except sqlite3.Error as e:
            now = now_ms()
            if now - self._failed_logged_ms >= FAILURE_LOG_INTERVAL_MS:
                self._failed_logged_ms = now
                log.error("event=mqtt_outbox_store_failed path=%s error=%s (kept in memory "
                          "only)", self.path, e)

    def close(self) -> None:
        self._db.close()

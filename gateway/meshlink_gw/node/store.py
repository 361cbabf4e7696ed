"""Durable inbox of received mesh messages (SQLite in the data directory).

Rule: the only place that touches meshlink.db for received messages. A
message is identified by (src, origin_id), so an end-to-end retry that gets
through twice is stored, and shown, once.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshlink.errors import ConfigError

from meshlink_gw.storecheck import open_store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    src TEXT NOT NULL,
    dst TEXT,
    message_id TEXT NOT NULL,
    origin_id TEXT NOT NULL,
    data BLOB NOT NULL,
    hops INTEGER NOT NULL,
    received_unix_ms INTEGER NOT NULL,
    UNIQUE (src, origin_id)
);
"""


@dataclass
class Received:
    """One message delivered to this node's application."""

    seq: int
    src: str
    dst: str | None
    message_id: str
    origin_id: str
    data: bytes
    hops: int
    received_unix_ms: int

    def to_json(self) -> dict:
        out = {"seq": self.seq, "from": self.src, "to": self.dst,
               "message_id": self.origin_id, "hops": self.hops,
               "received_unix_ms": self.received_unix_ms}
        try:
            out["text"] = self.data.decode("utf-8")
        except UnicodeDecodeError:
            out["data"] = self.data.hex()
        return out


class Inbox:
    """Received messages, deduplicated and kept across restarts."""

    def __init__(self, path: Path, max_messages: int = 100_000, *,
                 broadcast_max_bytes: int = 16 << 20,
                 broadcast_max_bytes_per_source: int = 1 << 20,
                 readonly: bool = False) -> None:
        """Open (and check) the inbox; readonly: read a copy, e.g. on a read-only disk.

        Raises:
            ConfigError: the store is corrupt, unreadable or (unless readonly)
                not writable (storecheck.open_store).
        """
        self.path = path
        self.max_messages = max_messages
        self.broadcast_max_bytes = broadcast_max_bytes
        self.broadcast_max_bytes_per_source = broadcast_max_bytes_per_source
        self._db = open_store(path, readonly=readonly)
        if not readonly:
            try:
                self._db.executescript(_SCHEMA)
            except sqlite3.Error as e:
                self._db.close()
                raise ConfigError(f"store {path}: cannot create the inbox table: {e}") from None

    def add(self, src: str, dst: str | None, message_id: str, origin_id: str,
            data: bytes, hops: int) -> Received | None:
        """Store a message; return it, or None if (src, origin_id) was already stored."""
        now = int(time.time() * 1000)
        cur = self._db.execute(
            "INSERT OR IGNORE INTO inbox (src, dst, message_id, origin_id, data, hops,"
            " received_unix_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (src, dst, message_id, origin_id, data, hops, now))
        if cur.rowcount == 0:
            return None
        seq = cur.lastrowid
        if seq is not None and seq % 1000 == 0:
            self._trim()
        if dst is None:
            self._trim_broadcasts(src)
        return Received(int(seq or 0), src, dst, message_id, origin_id, data, hops, now)

    def _trim(self) -> None:
        self._db.execute("DELETE FROM inbox WHERE seq <= (SELECT MAX(seq) FROM inbox) - ?",
                         (self.max_messages,))

    def _trim_broadcasts(self, src: str) -> None:
        """Broadcasts are bounded by bytes, per source first, then in total: anyone
        may broadcast to every inbox, so one source must not fill them. The
        oldest go first (a source's own oldest for its quota)."""
        self._trim_bytes("src = ? AND dst IS NULL", (src,), self.broadcast_max_bytes_per_source)
        self._trim_bytes("dst IS NULL", (), self.broadcast_max_bytes)

    def _trim_bytes(self, where: str, args: tuple, max_bytes: int) -> None:
        total = self._db.execute(f"SELECT COALESCE(SUM(LENGTH(data)), 0) FROM inbox "
                                 f"WHERE {where}", args).fetchone()[0]
        if total <= max_bytes:
            return
        # newest first: keep rows while the running total fits, delete the rest
        rows = self._db.execute(f"SELECT seq, LENGTH(data) FROM inbox WHERE {where} "
                                f"ORDER BY seq DESC", args).fetchall()
        kept = 0
        for seq, size in rows:
            kept += size
            if kept > max_bytes:
                self._db.execute(f"DELETE FROM inbox WHERE {where} AND seq <= ?",
                                 args + (seq,))
                return

    def since(self, after_seq: int = 0, limit: int = 10_000) -> list[Received]:
        rows = self._db.execute(
            "SELECT seq, src, dst, message_id, origin_id, data, hops, received_unix_ms"
            " FROM inbox WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)).fetchall()
        return [Received(r[0], r[1], r[2], r[3], r[4], bytes(r[5]), r[6], r[7]) for r in rows]

    def newest(self, limit: int, *, since_unix_ms: int | None = None,
               src: str | None = None) -> tuple[list[Received], int]:
        """The newest limit messages received at or after since_unix_ms from src
        (each filter optional), oldest first, and how many matched in all."""
        where: list[str] = []
        params: list[Any] = []
        if since_unix_ms is not None:
            where.append("received_unix_ms >= ?")
            params.append(since_unix_ms)
        if src is not None:
            where.append("src = ?")
            params.append(src)
        cond = (" WHERE " + " AND ".join(where)) if where else ""
        total = self._db.execute("SELECT count(*) FROM inbox" + cond, params).fetchone()[0]
        rows = self._db.execute(
            "SELECT seq, src, dst, message_id, origin_id, data, hops, received_unix_ms"
            " FROM inbox" + cond + " ORDER BY seq DESC LIMIT ?", (*params, limit)).fetchall()
        out = [Received(r[0], r[1], r[2], r[3], r[4], bytes(r[5]), r[6], r[7]) for r in rows]
        out.reverse()
        return out, int(total)

    def last_seq(self) -> int:
        """The seq of the newest stored message (0: none)."""
        return int(self._db.execute("SELECT coalesce(max(seq), 0) FROM inbox").fetchone()[0])

    def close(self) -> None:
        self._db.close()

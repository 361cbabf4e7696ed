"""The gateway's board registry and per-board message queue (SQLite).

Rule: the only place that touches boards.db. Both the running gateway and the
`meshlink board ...` commands open it (WAL mode, so one writer and readers
can share it). The file holds every board's PSK and the private key of the
mesh identity the gateway holds for it, so it is created mode 0600 in the
0700 data directory.

Schema (docs/BOARDS.md, "Registry"):

- boards: one row per provisioned board. name and board_id are unique; psk is
  32 random bytes; identity_pem is the Ed25519 key whose public key gives
  node_id (meshlink.nodeid), so the board's node ID is as unforgeable as any
  node's; revoked_unix_ms is NULL until `board revoke`.
- queue: messages from the mesh for a board, in arrival order (seq), until
  the board acknowledges them. (board, src, origin_id) is unique, so an
  end-to-end retry of a queued message is stored once; ack_id is the newest
  attempt's message ID, the one the mesh Ack names.
- delivered: (board, src, origin_id) of messages the board already
  acknowledged, so a late retry is acked again instead of delivered twice.
  Rows older than the queue's age limit are trimmed.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshlink.errors import ConfigError

from meshlink_gw.config.links import valid_board_name
from meshlink_gw.runtime import steady_unix_ms
from meshlink_gw.storecheck import open_store

DB_FILENAME = "boards.db"
BOARD_TYPES = ("esp32-devkitc", "esp32-s3", "esp32-c3", "unix")
TRANSPORTS = ("udp", "tcp", "serial", "ble")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS boards (
    name TEXT PRIMARY KEY,
    board_id TEXT NOT NULL UNIQUE,          -- 16 hex characters (8 bytes)
    psk BLOB NOT NULL,                      -- 32 bytes
    identity_pem BLOB NOT NULL,             -- Ed25519 PKCS#8 PEM (the board's mesh identity)
    node_id TEXT NOT NULL UNIQUE,           -- derived from the identity's public key
    board_type TEXT NOT NULL,
    transport TEXT NOT NULL,
    created_unix_ms INTEGER NOT NULL,
    last_seen_unix_ms INTEGER,
    last_boot_ctr INTEGER,
    revoked_unix_ms INTEGER
);
CREATE TABLE IF NOT EXISTS queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    board TEXT NOT NULL,
    src TEXT NOT NULL,
    dst TEXT,
    origin_id TEXT NOT NULL,
    ack_id TEXT,                            -- NULL: no mesh Ack owed (local origin)
    data BLOB NOT NULL,
    hops INTEGER NOT NULL,
    queued_unix_ms INTEGER NOT NULL,
    UNIQUE (board, src, origin_id)
);
CREATE INDEX IF NOT EXISTS queue_board ON queue (board, seq);
CREATE TABLE IF NOT EXISTS delivered (
    board TEXT NOT NULL,
    src TEXT NOT NULL,
    origin_id TEXT NOT NULL,
    delivered_unix_ms INTEGER NOT NULL,
    PRIMARY KEY (board, src, origin_id)
);
CREATE TABLE IF NOT EXISTS board_sources (  -- the host of each board's last session
    name TEXT PRIMARY KEY,
    host TEXT NOT NULL
);
"""


def unix_ms() -> int:
    """Timestamps and queue ages: a clock that cannot jump (runtime.steady_unix_ms)."""
    return steady_unix_ms()


@dataclass
class BoardRecord:
    """One provisioned board as stored (psk and identity are secrets)."""

    name: str
    board_id: bytes
    psk: bytes
    identity_pem: bytes
    node_id: str
    board_type: str
    transport: str
    created_unix_ms: int
    last_seen_unix_ms: int | None
    last_boot_ctr: int | None
    revoked_unix_ms: int | None

    @property
    def revoked(self) -> bool:
        return self.revoked_unix_ms is not None

    def public(self) -> dict:
        """The non-secret fields, for listings."""
        return {"name": self.name, "board_id": self.board_id.hex(), "node_id": self.node_id,
                "board": self.board_type, "transport": self.transport,
                "created_unix_ms": self.created_unix_ms,
                "last_seen_unix_ms": self.last_seen_unix_ms, "revoked": self.revoked}

    def __repr__(self) -> str:  # never the PSK or the key
        return f"BoardRecord(name={self.name!r}, node_id={self.node_id})"


@dataclass
class Queued:
    """One message waiting for a board."""

    seq: int
    board: str
    src: str
    dst: str | None
    origin_id: str
    ack_id: str | None
    data: bytes
    hops: int
    queued_unix_ms: int


_BOARD_COLS = ("name, board_id, psk, identity_pem, node_id, board_type, transport, "
               "created_unix_ms, last_seen_unix_ms, last_boot_ctr, revoked_unix_ms")
_QUEUE_COLS = "seq, board, src, dst, origin_id, ack_id, data, hops, queued_unix_ms"


def _board(row) -> BoardRecord:
    return BoardRecord(row[0], bytes.fromhex(row[1]), bytes(row[2]), bytes(row[3]), row[4],
                       row[5], row[6], row[7], row[8], row[9], row[10])


def _queued(row) -> Queued:
    return Queued(row[0], row[1], row[2], row[3], row[4], row[5], bytes(row[6]), row[7], row[8])


class BoardRegistry:
    """Boards and their message queues in <data_dir>/boards.db."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / DB_FILENAME
        try:
            Path(data_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
            if not self.path.exists():
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        except OSError as e:
            raise ConfigError(f"cannot create board registry {self.path}: {e}") from None
        self._db = open_store(self.path)  # checked: ConfigError if corrupt or read-only
        try:
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as e:
            self._db.close()
            raise ConfigError(f"cannot open board registry {self.path}: {e}") from None
        for suffix in ("-wal", "-shm"):  # the WAL holds PSKs too
            with contextlib.suppress(OSError):
                os.chmod(str(self.path) + suffix, 0o600)

    def close(self) -> None:
        self._db.close()

    def data_version(self) -> int:
        """Changes whenever another connection (a `meshlink board` command) commits."""
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    # -- boards ----------------------------------------------------------------
    def add(self, name: str, board_type: str, transport: str, *, psk: bytes | None = None,
            board_id: bytes | None = None, identity=None) -> BoardRecord:
        """Register a new board with a fresh random PSK, board ID and mesh identity.

        Raises:
            ConfigError: bad name, board type or transport, or the name exists.
        """
        from meshlink_gw.crypto.identity import Identity

        if not valid_board_name(name):
            raise ConfigError(f"board name {name!r}: use 1-32 of A-Z a-z 0-9 . _ -")
        if board_type not in BOARD_TYPES:
            raise ConfigError(f"--board: expected one of {', '.join(BOARD_TYPES)}")
        if transport not in TRANSPORTS:
            raise ConfigError("--transport: expected " + ", ".join(TRANSPORTS))
        if self.get(name) is not None:
            raise ConfigError(f"a board named {name!r} already exists")
        ident = identity or Identity.generate()
        psk = psk or os.urandom(32)
        for _ in range(8):
            bid = board_id or os.urandom(8)
            try:
                self._db.execute(
                    f"INSERT INTO boards ({_BOARD_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (name, bid.hex(), psk, ident.private_pem(), ident.node_id, board_type,
                     transport, unix_ms(), None, None, None))
                break
            except sqlite3.IntegrityError as e:
                if board_id is not None or "board_id" not in str(e):
                    raise ConfigError(f"cannot add board {name!r}: {e}")
        rec = self.get(name)
        if rec is None:
            raise ConfigError(f"cannot add board {name!r}")
        return rec

    def add_many(self, rows: Sequence[tuple[str, bytes, bytes, Any]], board_type: str = "unix",
                 transport: str = "udp") -> None:
        """Provision many boards in one transaction: (name, board_id, psk, identity)
        rows, checked as add() checks a name. Raises ConfigError: a bad or
        duplicate name (nothing is added then)."""
        bad = [n for n, _b, _p, _i in rows if not valid_board_name(n)]
        if bad:
            raise ConfigError(f"invalid board name {bad[0]!r}")
        now = unix_ms()
        try:
            with self._tx():
                self._db.executemany(
                    f"INSERT INTO boards ({_BOARD_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    [(n, b.hex(), p, i.private_pem(), i.node_id, board_type, transport, now,
                      None, None, None) for n, b, p, i in rows])
        except sqlite3.IntegrityError as e:
            raise ConfigError(f"cannot add boards: {e}") from None

    def get(self, name: str) -> BoardRecord | None:
        row = self._db.execute(f"SELECT {_BOARD_COLS} FROM boards WHERE name = ?",
                               (name,)).fetchone()
        return _board(row) if row else None

    def by_board_id(self, board_id: bytes) -> BoardRecord | None:
        row = self._db.execute(f"SELECT {_BOARD_COLS} FROM boards WHERE board_id = ?",
                               (board_id.hex(),)).fetchone()
        return _board(row) if row else None

    def all(self) -> list[BoardRecord]:
        rows = self._db.execute(f"SELECT {_BOARD_COLS} FROM boards ORDER BY name").fetchall()
        return [_board(r) for r in rows]

    def revoke(self, name: str) -> BoardRecord:
        """Mark a board revoked (idempotent). Raises ConfigError if unknown."""
        self._db.execute("UPDATE boards SET revoked_unix_ms = ? WHERE name = ? AND "
                         "revoked_unix_ms IS NULL", (unix_ms(), name))
        rec = self.get(name)
        if rec is None:
            raise ConfigError(f"no board named {name!r}")
        return rec

    def remove(self, name: str) -> None:
        """Delete a board and its queue (undoing a failed `board add`)."""
        with self._tx():
            self._db.execute("DELETE FROM boards WHERE name = ?", (name,))
            self._db.execute("DELETE FROM queue WHERE board = ?", (name,))
            self._db.execute("DELETE FROM board_sources WHERE name = ?", (name,))

    def sources(self) -> dict[str, str]:
        """{board name: the host its last authenticated session came from}."""
        return dict(self._db.execute("SELECT name, host FROM board_sources").fetchall())

    def set_source(self, name: str, host: str) -> None:
        """Remember the host board name's session was authenticated from (its
        HELLOs from there are never crowded out: sessions.py _make_room)."""
        with self._tx():
            self._db.execute("INSERT OR REPLACE INTO board_sources (name, host) VALUES (?, ?)",
                             (name, host))

    def touch(self, seen: dict[str, tuple[int, int | None]]) -> None:
        """Store last-seen times and boot counters: {name: (unix_ms, boot_ctr)}."""
        if not seen:
            return
        with self._tx():
            self._db.executemany(
                "UPDATE boards SET last_seen_unix_ms = ?, "
                "last_boot_ctr = COALESCE(?, last_boot_ctr) WHERE name = ?",
                [(t, ctr, name) for name, (t, ctr) in seen.items()])

    @contextlib.contextmanager
    def _tx(self):
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- queue -----------------------------------------------------------------
    def enqueue(self, board: str, src: str, dst: str | None, origin_id: str,
                ack_id: str | None, data: bytes, hops: int, *, max_messages: int,
                max_bytes: int, max_per_source: int | None = None) -> str:
        """Queue a message for a board.

        Returns "queued", "duplicate" (already queued: ack_id updated to the
        newest attempt), "delivered" (the board already has it), "full", or
        "source_full" (src already holds max_per_source of the board's queue).
        """
        with self._tx():
            if self._db.execute("SELECT 1 FROM delivered WHERE board=? AND src=? AND "
                                "origin_id=?", (board, src, origin_id)).fetchone():
                return "delivered"
            cur = self._db.execute("UPDATE queue SET ack_id = COALESCE(?, ack_id) WHERE "
                                   "board=? AND src=? AND origin_id=?",
                                   (ack_id, board, src, origin_id))
            if cur.rowcount:
                return "duplicate"
            count, size = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM queue WHERE board=?",
                (board,)).fetchone()
            if count >= max_messages or size + len(data) > max_bytes:
                return "full"
            if max_per_source is not None and self._db.execute(
                    "SELECT COUNT(*) FROM queue WHERE board=? AND src=?",
                    (board, src)).fetchone()[0] >= max_per_source:
                return "source_full"
            self._db.execute(
                f"INSERT INTO queue ({_QUEUE_COLS}) VALUES (NULL,?,?,?,?,?,?,?,?)",
                (board, src, dst, origin_id, ack_id, data, hops, unix_ms()))
            return "queued"

    def head(self, board: str) -> Queued | None:
        """The oldest queued message for board, or None."""
        row = self._db.execute(f"SELECT {_QUEUE_COLS} FROM queue WHERE board=? "
                               "ORDER BY seq LIMIT 1", (board,)).fetchone()
        return _queued(row) if row else None

    def queued(self, board: str | None = None) -> list[Queued]:
        if board is None:
            rows = self._db.execute(f"SELECT {_QUEUE_COLS} FROM queue ORDER BY seq").fetchall()
        else:
            rows = self._db.execute(f"SELECT {_QUEUE_COLS} FROM queue WHERE board=? "
                                    "ORDER BY seq", (board,)).fetchall()
        return [_queued(r) for r in rows]

    def queue_counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT board, COUNT(*) FROM queue GROUP BY board"))

    def boards_with_queue(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT board FROM queue")]

    def mark_delivered(self, item: Queued) -> None:
        """The board acknowledged item: remove it and remember it was delivered."""
        with self._tx():
            self._db.execute("DELETE FROM queue WHERE seq = ?", (item.seq,))
            self._db.execute("INSERT OR REPLACE INTO delivered VALUES (?,?,?,?)",
                             (item.board, item.src, item.origin_id, unix_ms()))

    def expire(self, max_age_ms: int) -> list[Queued]:
        """Drop queued messages older than max_age_ms (returned) and old delivered rows."""
        cutoff = unix_ms() - max_age_ms
        with self._tx():
            rows = self._db.execute(f"SELECT {_QUEUE_COLS} FROM queue WHERE queued_unix_ms < ?",
                                    (cutoff,)).fetchall()
            self._db.execute("DELETE FROM queue WHERE queued_unix_ms < ?", (cutoff,))
            self._db.execute("DELETE FROM delivered WHERE delivered_unix_ms < ?", (cutoff,))
        return [_queued(r) for r in rows]

    def drop_queue(self, board: str) -> int:
        """Forget every queued message of board (a revoked board); returns the count."""
        return self._db.execute("DELETE FROM queue WHERE board = ?", (board,)).rowcount

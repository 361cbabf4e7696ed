"""Open a SQLite store and prove it sound before a process relies on it.

Rule: every SQLite store (meshlink.db, boards.db) opens through open_store. A
corrupt, truncated, unreadable or unwritable store is a ConfigError (the CLI
prints one line and exits 2) that names the file and what to do: never a
traceback, never a silent empty inbox. `PRAGMA quick_check` runs within a time
budget; a store too large to check in time is logged and trusted.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from meshlink.errors import ConfigError

log = logging.getLogger("meshlink.store")

QUICK_CHECK_BUDGET_MS = 5000
_PROGRESS_STEPS = 10_000  # SQLite VM instructions between two budget checks


def open_store(path: Path, *, readonly: bool = False,
               budget_ms: int = QUICK_CHECK_BUDGET_MS) -> sqlite3.Connection:
    """Open path (created if missing, unless readonly), check it, return the connection.

    Writable stores get WAL and synchronous=NORMAL and must take a write lock.
    Raises:
        ConfigError: corrupt, truncated, not a database, unreadable, or (unless
            readonly) not writable.
    """
    try:
        db = _connect(path, readonly)
    except sqlite3.Error as e:
        raise _unusable(path, e) from None
    try:
        _quick_check(db, path, budget_ms)
        if not readonly:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("BEGIN IMMEDIATE")  # proves we may write, before anyone relies on it
            db.execute("ROLLBACK")
    except sqlite3.Error as e:
        db.close()
        raise _unusable(path, e) from None
    return db


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    if not readonly:
        return sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                               timeout=10.0)
    uri = path.resolve().as_uri()
    try:
        db = sqlite3.connect(uri + "?mode=ro", uri=True, isolation_level=None,
                             check_same_thread=False)
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.OperationalError:
        # a WAL store in a read-only directory (a copy, a backup): nothing can
        # change it under us, so read it as immutable
        return sqlite3.connect(uri + "?immutable=1", uri=True, isolation_level=None,
                               check_same_thread=False)


def _quick_check(db: sqlite3.Connection, path: Path, budget_ms: int) -> None:
    deadline = time.monotonic() + budget_ms / 1000
    db.set_progress_handler(lambda: int(time.monotonic() > deadline), _PROGRESS_STEPS)
    try:
        rows = db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.OperationalError as e:
        if "interrupt" not in str(e):
            raise
        log.warning("store %s: quick_check took over %d ms; not checked", path, budget_ms)
        return
    finally:
        db.set_progress_handler(None, 0)
    if rows != [("ok",)]:
        problems = "; ".join(str(r[0]) for r in rows[:3])
        raise sqlite3.DatabaseError(f"quick_check: {problems}")


def _unusable(path: Path, e: sqlite3.Error) -> ConfigError:
    text = str(e)
    if "readonly" in text or "read-only" in text:
        return ConfigError(f"store {path} is not writable ({text}): give this process write "
                           f"access to {path.parent}, or read a copy with `meshlink recv`")
    return ConfigError(f"store {path} is unusable ({text}): restore it from a backup, or move "
                       f"it aside (mv {path} {path}.broken) to start with an empty one")

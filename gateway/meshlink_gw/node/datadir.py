"""The data directory's protection: owner-only modes and a single user.

Rule: the data directory holds the identity key, the inbox plaintext, board
PSKs, pins and the control socket; it is made 0700 and every file in it
0600 whatever existed before (a directory created by an older version, or by
hand, keeps no looser mode), and one process uses it at a time: a second one
exits with "data directory in use by PID N" instead of taking over the
control socket and fighting the first with handshakes.
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
from pathlib import Path

from meshlink.errors import ConfigError, MeshLinkError

log = logging.getLogger("meshlink.datadir")

DIR_MODE = 0o700
FILE_MODE = 0o600
LOCK_FILE = "lock"


def secure_data_dir(data_dir: Path) -> None:
    """Create data_dir if needed; make it and every directory below 0700 and every
    file 0600 (symlinks are left alone). Raises ConfigError if that fails."""
    data_dir = Path(data_dir)
    if data_dir.exists() and not data_dir.is_dir():  # the message the identity step gave
        raise ConfigError(f"cannot create identity in {data_dir}: Not a directory")
    try:
        data_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        _tighten(data_dir, DIR_MODE)
        for root, dirs, files in os.walk(data_dir):
            for name in dirs:
                _tighten(Path(root) / name, DIR_MODE)
            for name in files:
                _tighten(Path(root) / name, FILE_MODE)
    except OSError as e:
        raise ConfigError(f"cannot secure data directory {data_dir}: {e.strerror or e}")


def _tighten(path: Path, mode: int) -> None:
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or stat.S_IMODE(st.st_mode) == mode:
        return
    os.chmod(path, mode)
    log.info("%s: mode %o -> %o", path, stat.S_IMODE(st.st_mode), mode)


class DataDirLock:
    """An exclusive lock on data_dir/lock (flock), held while the process runs.

    The kernel releases it when the process dies, so a crash never leaves a
    stale lock; the file names the holder's PID for the refusal message.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Raises MeshLinkError("data directory in use by PID N") if another
        process holds it, ConfigError if the lock file cannot be opened."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as e:
            raise ConfigError(f"cannot open {self.path}: {e.strerror}")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise MeshLinkError(f"data directory {self.path.parent} in use by PID {holder}")
        os.ftruncate(fd, 0)
        os.write(fd, b"%d\n" % os.getpid())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

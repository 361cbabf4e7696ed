"""Two pty pairs bridged by a thread: a serial line between two processes,
with the test in the middle (os.openpty, like socat, but controllable).

The gateway opens one slave (through gw_link), the board the other (through
board_link); bytes each writes are copied to the other. inject() adds line
noise on the way to one side; replug() closes both ptys and makes new ones
behind the same links, the way udev recreates /dev/serial/by-id/... after an
unplug. The test keeps each slave open too, so a master never reads EIO
while the process on that side is reconnecting. Loops are bounded: the
thread polls with a 50 ms timeout and stops on close().
"""

from __future__ import annotations

import os
import select
import threading
import tty
from pathlib import Path

_POLL_S = 0.05
_WRITE_TRIES = 200  # x 5 ms: a side that reads nothing for 1 s loses the bytes


class PtyBridge:
    def __init__(self, gw_link: Path, board_link: Path) -> None:
        self.links = (Path(gw_link), Path(board_link))
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.pairs: list[tuple[int, int]] = []
        self.copied = [0, 0]  # bytes gateway->board, board->gateway
        self._open()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _open(self) -> None:
        pairs = []
        for link in self.links:
            master, slave = os.openpty()
            tty.setraw(slave)
            os.set_blocking(master, False)
            link.unlink(missing_ok=True)
            link.symlink_to(os.ttyname(slave))
            pairs.append((master, slave))
        self.pairs = pairs

    def _close_fds(self) -> None:
        for master, slave in self.pairs:
            os.close(master)
            os.close(slave)
        self.pairs = []

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                masters = [m for m, _ in self.pairs]
            if not masters:
                self._stop.wait(_POLL_S)
                continue
            try:
                ready, _, _ = select.select(masters, [], [], _POLL_S)
            except (OSError, ValueError):  # closed under us by replug()
                continue
            with self._lock:
                if [m for m, _ in self.pairs] != masters:
                    continue
                for m in ready:
                    side = masters.index(m)
                    try:
                        data = os.read(m, 4096)
                    except OSError:
                        continue
                    self._write(masters[1 - side], data)
                    self.copied[side] += len(data)

    def _write(self, master: int, data: bytes) -> None:
        view = memoryview(data)
        for _ in range(_WRITE_TRIES):
            if not view:
                return
            try:
                view = view[os.write(master, view):]
            except BlockingIOError:
                self._stop.wait(0.005)
            except OSError:
                return

    def inject(self, to: str, data: bytes) -> None:
        """Write raw bytes to one side ("gateway" or "board") as line noise."""
        with self._lock:
            self._write(self.pairs[0 if to == "gateway" else 1][0], data)

    def replug(self) -> None:
        """Unplug both ends (EOF/EIO on both sides), then plug new ptys in."""
        with self._lock:
            self._close_fds()
            for link in self.links:
                link.unlink(missing_ok=True)
            self._open()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        with self._lock:
            self._close_fds()

"""Run the board firmware on CPython where no MicroPython exists (aarch64 Pi).

    cd <board sim dir> && python -m meshlink_gw.mpy_shim main.py

Rule: only adds the few MicroPython APIs the firmware uses (time.ticks_*,
time.sleep_ms, select.poll().ipoll, asyncio.sleep_ms / wait_for_ms,
gc.mem_alloc / mem_free / threshold, sys.print_exception, the micropython
module); it changes nothing else, so
the firmware's own files run unchanged from the current directory (which
comes first on sys.path, like a board's flash root). The MicroPython unix
port stays the reference: heap limits are not enforced here.
"""

from __future__ import annotations

import asyncio
import gc
import os
import runpy
import select
import sys
import time
import traceback
import types

_T0 = time.monotonic_ns()
_TICKS_PERIOD = 1 << 30  # as on ESP32: ticks wrap, ticks_diff handles it


def _ticks_ms() -> int:
    return ((time.monotonic_ns() - _T0) // 1_000_000) % _TICKS_PERIOD


def _ticks_us() -> int:
    return ((time.monotonic_ns() - _T0) // 1_000) % _TICKS_PERIOD


def _ticks_diff(a: int, b: int) -> int:
    half = _TICKS_PERIOD // 2
    return ((a - b + half) % _TICKS_PERIOD) - half


def _ticks_add(a: int, delta: int) -> int:
    return (a + delta) % _TICKS_PERIOD


async def _sleep_ms(ms: int) -> None:
    await asyncio.sleep(ms / 1000)


async def _wait_for_ms(aw, timeout_ms: int):
    return await asyncio.wait_for(aw, timeout_ms / 1000)


def _print_exception(exc: BaseException, file=None) -> None:
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=file or sys.stdout)


class _Poll:
    """select.poll with MicroPython's extras: ipoll(), and registered objects
    (not file descriptors) in the results."""

    def __init__(self) -> None:
        self._poll = _select_poll()
        self._objs: dict[int, object] = {}

    def register(self, obj, mask: int = select.POLLIN | select.POLLOUT) -> None:
        fd = obj if isinstance(obj, int) else obj.fileno()
        self._objs[fd] = obj
        self._poll.register(fd, mask)

    def modify(self, obj, mask: int) -> None:
        self._poll.modify(obj if isinstance(obj, int) else obj.fileno(), mask)

    def unregister(self, obj) -> None:
        fd = obj if isinstance(obj, int) else obj.fileno()
        self._objs.pop(fd, None)
        self._poll.unregister(fd)

    def poll(self, timeout_ms: int = -1) -> list[tuple]:
        return [(self._objs.get(fd, fd), ev) for fd, ev in
                self._poll.poll(None if timeout_ms is None or timeout_ms < 0 else timeout_ms)]

    def ipoll(self, timeout_ms: int = -1, flags: int = 0):
        return iter(self.poll(timeout_ms))


_select_poll = select.poll


def install() -> None:
    """Add the MicroPython APIs the firmware uses to this CPython process."""
    time.ticks_ms = _ticks_ms  # type: ignore[attr-defined]
    time.ticks_us = _ticks_us  # type: ignore[attr-defined]
    time.ticks_diff = _ticks_diff  # type: ignore[attr-defined]
    time.ticks_add = _ticks_add  # type: ignore[attr-defined]
    time.sleep_ms = lambda ms: time.sleep(ms / 1000)  # type: ignore[attr-defined]
    time.sleep_us = lambda us: time.sleep(us / 1_000_000)  # type: ignore[attr-defined]
    asyncio.sleep_ms = _sleep_ms  # type: ignore[attr-defined]
    asyncio.wait_for_ms = _wait_for_ms  # type: ignore[attr-defined]
    gc.mem_alloc = lambda: 0  # type: ignore[attr-defined]
    gc.mem_free = lambda: 1 << 20  # type: ignore[attr-defined]
    if not hasattr(gc, "threshold"):
        gc.threshold = lambda *amount: -1  # type: ignore[attr-defined]
    sys.print_exception = _print_exception  # type: ignore[attr-defined]
    select.poll = _Poll  # type: ignore[assignment,misc]
    micropython = types.ModuleType("micropython")
    micropython.const = lambda v: v  # type: ignore[attr-defined]
    sys.modules.setdefault("micropython", micropython)


def main(argv: list[str]) -> int:
    script = argv[0] if argv else "main.py"
    install()
    here = os.path.dirname(os.path.abspath(script))
    sys.path.insert(0, here)  # the board's flash root first, as on a board
    for name in [m for m in sys.modules if m == "meshlink" or m.startswith("meshlink.")]:
        del sys.modules[name]  # use the bundle's copy of the core
    sys.argv = [script, *argv[1:]]
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 0
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.exit(main(sys.argv[1:]))

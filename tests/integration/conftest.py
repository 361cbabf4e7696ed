"""Fixtures for tests that run real processes on loopback (ports, waits and the
rest: tests/helpers)."""

from __future__ import annotations

import pytest
from helpers.procs import Node


@pytest.fixture
def spawn(tmp_path):
    """Start `meshlink node` processes that are always stopped at the end of the test."""
    started: list[Node] = []

    def _spawn(name: str, **kw) -> Node:
        node = Node(tmp_path / name, **kw).start()
        started.append(node)
        return node

    yield _spawn
    for node in started:
        node.kill()


@pytest.fixture
def procs():
    """A list to append what a test started (processes, brokers, proxies, pty
    bridges); each is killed (or closed, or stopped) at the end, newest first."""
    started: list = []
    yield started
    for p in reversed(started):
        (getattr(p, "kill", None) or getattr(p, "close", None) or p.stop)()

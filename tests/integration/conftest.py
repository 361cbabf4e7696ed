"""Fixtures for tests that run real node processes on loopback."""

from __future__ import annotations

import socket

import pytest

from examples.node_proc import NodeProcess


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def spawn(tmp_path):
    """Start NodeProcess objects that are always stopped at the end of the test."""
    started: list[NodeProcess] = []

    def _spawn(name: str, **kw) -> NodeProcess:
        node = NodeProcess(tmp_path / name, **kw).start()
        started.append(node)
        return node

    yield _spawn
    for node in started:
        node.kill()


@pytest.fixture
def procs():
    """A list to append started processes to; each is killed at the end."""
    started: list = []
    yield started
    for p in reversed(started):
        p.kill()

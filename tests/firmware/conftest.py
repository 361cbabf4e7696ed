"""Fixtures for the firmware tests: the unix-board bundle (built once from
boards/unix/board.json, compiled with mpy-cross), boards and fake gateways
that are always stopped at the end of a test."""

from __future__ import annotations

import pytest
from firmware_harness import Board, FakeGateway, build_bundle
from helpers import require_micropython


@pytest.fixture(scope="session")
def bundle(tmp_path_factory):
    require_micropython()  # skips where there is none
    return build_bundle(tmp_path_factory.mktemp("bundle"))


@pytest.fixture
def boards(bundle, tmp_path):
    """start(config, name="board") -> Board, running the bundle's main.py."""
    started: list[Board] = []

    def start(config, name: str = "board", **kw) -> Board:
        board = Board(bundle, tmp_path / name, config, **kw)
        started.append(board)
        return board

    yield start
    for board in started:
        board.stop()


@pytest.fixture
def gateway():
    """factory(**kw) -> FakeGateway, closed after the test."""
    made: list[FakeGateway] = []

    def make(**kw) -> FakeGateway:
        gw = FakeGateway(**kw)
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.close()

"""Gateway test fixtures: a real mosquitto on a free loopback port, async
test functions, and the off-by-default `hardware` marker."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from helpers import TEST_TIMEOUT_S

from examples.localbroker import LocalMosquitto, find_mosquitto


def pytest_collection_modifyitems(config, items):
    """Skip `hardware` tests unless the -m expression asks for them."""
    if "hardware" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="needs a real board or BLE adapter: run with -m hardware")
    for item in items:
        if "hardware" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run `async def test_*` in a fresh event loop, bounded by a (generous) timeout."""
    fn = pyfuncitem.obj
    if not inspect.iscoroutinefunction(fn):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    asyncio.run(asyncio.wait_for(fn(**kwargs), TEST_TIMEOUT_S))
    return True


def _need_mosquitto() -> None:
    if find_mosquitto() is None:
        pytest.skip("mosquitto binary not found: apt-get install mosquitto mosquitto-clients")


@pytest.fixture
def mosquitto(tmp_path):
    """A started mosquitto (anonymous, persistence on) stopped after the test."""
    _need_mosquitto()
    broker = LocalMosquitto(tmp_path / "broker", persistence=True).start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def make_broker(tmp_path):
    """Factory for brokers with options (auth, TLS); all stopped after the test."""
    _need_mosquitto()
    started: list[LocalMosquitto] = []

    def _make(name: str = "broker", **kw) -> LocalMosquitto:
        broker = LocalMosquitto(tmp_path / name, **kw)
        started.append(broker)
        return broker

    yield _make
    for broker in started:
        broker.stop()

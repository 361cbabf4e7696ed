"""MQTT bridge outbox across broker failures, against a real mosquitto.

The subscriber is mosquitto_sub with a persistent session (-c -i) on a broker
with persistence, so what the broker accepted while the subscriber was away
is kept for it; the bridge's job is that nothing it was given is lost before
the broker accepted it (PUBACK).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

from helpers import DEADLINE_S
from meshlink_gw.bridges.mqtt import MqttBridge
from mqtt_helpers import FakeMesh, Sub, bridge_config, started_bridge

NODE = "5a4b1c7e-0000-4000-8000-0000000000c1"


class Collector:
    """Reads a Sub in the background; values of readings seen, deduplicated."""

    def __init__(self, sub: Sub) -> None:
        self.sub = sub
        self.values: list[int] = []
        self.seen: set[int] = set()
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                _, payload = await self.sub.message(timeout_s=3600)
            except EOFError:
                return
            value = json.loads(payload)["value"]
            self.values.append(value)
            self.seen.add(value)
            self._changed.set()

    async def wait_count(self, n: int, timeout_s: float) -> None:
        async def _until() -> None:
            while len(self.seen) < n:
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(_until(), timeout_s)

    async def stop(self) -> None:
        self._task.cancel()
        await self.sub.stop()


def publish(bridge: MqttBridge, values: range) -> None:
    for v in values:
        bridge.publish_reading(NODE, "board", {"sensor": "seq", "value": v})


async def wait_saved(broker, since_s: float) -> None:
    """Bounded wait for mosquitto to rewrite its persistence file after SIGUSR1."""
    async def _until() -> None:
        while not (broker.db_path.exists() and os.path.getmtime(broker.db_path) >= since_s):
            await asyncio.sleep(0.02)  # the file is written by another process: poll it
    await asyncio.wait_for(_until(), DEADLINE_S)


async def test_mqtt_broker_killed_mid_stream_loses_no_qos1_reading(make_broker):
    broker = make_broker(persistence=True).start()
    col = Collector(await Sub.start(broker, ["meshlink/+/sensor/#"], client_id="restart-sub",
                                    persistent=True))
    bridge = await started_bridge(broker, FakeMesh(), outbox_max=5000, max_inflight=32)
    try:
        publish(bridge, range(0, 200))
        await col.wait_count(200, DEADLINE_S)
        t0 = time.time() - 1
        broker.send_signal(signal.SIGUSR1)  # persist the subscriber's session now
        await wait_saved(broker, t0)
        broker.send_signal(signal.SIGSTOP)  # broker stops reading: publishes stay in flight
        publish(bridge, range(200, 300))
        assert bridge.outbox_inflight() == 32 and bridge.outbox_size() == 100
        broker.stop(signal.SIGKILL)  # dies without ever acknowledging them
        await bridge.wait_for(lambda b: not b.connected, DEADLINE_S)
        publish(bridge, range(300, 400))  # produced while the broker is down
        assert bridge.outbox_size() == 200 and bridge.outbox_inflight() == 0
        broker.start()
        await bridge.wait_for(lambda b: b.outbox_size() == 0, DEADLINE_S)
        await col.wait_count(400, DEADLINE_S)
        assert col.seen == set(range(400))
        assert bridge.stats["reconnects"] >= 1 and bridge.stats["dropped_outbox"] == 0
    finally:
        await bridge.stop()
        await col.stop()


async def test_mqtt_outbox_keeps_newest_when_full_and_counts_drops(make_broker):
    broker = make_broker(persistence=True).start()
    sub = await Sub.start(broker, ["meshlink/+/sensor/#"], client_id="outbox-sub",
                          persistent=True)
    await sub.stop()  # the session (and its subscription) stays on the broker
    broker.stop()  # SIGTERM: saved to disk
    bridge = MqttBridge(bridge_config(broker, outbox_max=50), FakeMesh())
    await bridge.start()
    try:
        publish(bridge, range(80))
        assert bridge.stats["dropped_outbox"] == 30 and bridge.outbox_size() == 50
        broker.start()
        await bridge.wait_for(lambda b: b.connected and b.outbox_size() == 0, DEADLINE_S)
        col = Collector(await Sub.start(broker, ["meshlink/+/sensor/#"], client_id="outbox-sub",
                                        persistent=True))
        await col.wait_count(50, DEADLINE_S)
        publish(bridge, range(1000, 1001))  # a marker: nothing else is on its way
        await col.wait_count(51, DEADLINE_S)
        assert col.values == [*range(30, 80), 1000]
        assert bridge.stats["published"] == 51
        await col.stop()
    finally:
        await bridge.stop()


async def test_mqtt_outbox_survives_a_gateway_restart_while_the_broker_is_down(
        make_broker, tmp_path):
    broker = make_broker(persistence=True).start()
    sub = await Sub.start(broker, ["meshlink/+/sensor/#"], client_id="durable-sub",
                          persistent=True)
    await sub.stop()  # the session (and its subscription) stays on the broker
    broker.stop()  # SIGTERM: saved to disk; the broker is down from here on
    path = tmp_path / "mqtt_outbox.db"
    first = MqttBridge(bridge_config(broker, outbox_max=1000), FakeMesh(), outbox_path=path)
    await first.start()
    publish(first, range(50))
    assert first.outbox_size() == 50 and not first.connected
    await first.stop()  # the gateway stops with 50 readings unacknowledged
    second = MqttBridge(bridge_config(broker, outbox_max=1000), FakeMesh(), outbox_path=path)
    assert second.outbox_size() == 50  # loaded from disk
    await second.start()
    try:
        broker.start()
        await second.wait_for(lambda b: b.connected and b.outbox_size() == 0, DEADLINE_S)
        col = Collector(await Sub.start(broker, ["meshlink/+/sensor/#"],
                                        client_id="durable-sub", persistent=True))
        await col.wait_count(50, DEADLINE_S)
        publish(second, range(1000, 1001))  # a marker: nothing else is on its way
        await col.wait_count(51, DEADLINE_S)
        assert col.values == [*range(50), 1000]  # each once, in order
        await col.stop()
    finally:
        await second.stop()
    third = MqttBridge(bridge_config(broker, outbox_max=1000), FakeMesh(), outbox_path=path)
    assert third.outbox_size() == 0  # acknowledged entries left the disk too


def test_mqtt_outbox_is_bounded_by_bytes_oldest_first(tmp_path):
    from meshlink_gw.bridges.mqtt_outbox import Outbox
    from meshlink_gw.bridges.mqtt_store import OutboxStore

    box = Outbox(1000, max_bytes=1000, store=OutboxStore(tmp_path / "o.db"))
    dropped = sum(box.append("t", bytes([i]) * 100, 1) for i in range(15))
    assert dropped == 5 and len(box) == 10 and box.bytes == 1000
    box.store.close()
    again = Outbox(1000, max_bytes=1000, store=OutboxStore(tmp_path / "o.db"))
    assert [again.next_unsent().payload[0] for _ in range(10)] == list(range(5, 15))

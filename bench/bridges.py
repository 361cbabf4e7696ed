"""MQTT bridge uplink throughput: readings/s from 100 simulated boards.

Each run starts from an empty outbox: a producer calls publish_reading() for
100 node ids in rounds (yielding to the loop between rounds, as board traffic
would), the bridge publishes them at QoS 1 to a real mosquitto started here on
a free loopback port, and a mosquitto_sub subscriber (QoS 1) counts them; the
run ends when the subscriber has received every reading (mosquitto_sub -C).
Figure: median of 3 runs. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import pathlib
import shutil
import statistics
import sys
import tempfile
import time
import uuid

from meshlink_gw.bridges.mqtt import MqttBridge
from meshlink_gw.config import MqttConfig

from examples.localbroker import LocalMosquitto, find_mosquitto

BOARDS = 100
READINGS_PER_BOARD = 100
RUNS = 3
RUN_TIMEOUT_S = 60.0


class _BenchMesh:
    def __init__(self) -> None:
        self.gateway_node_id = str(uuid.uuid4())

    async def send_to_mesh(self, dst_node_id: str | None, data: bytes, *, origin: str) -> str:
        return "unused"

    def known_node(self, name_or_id: str) -> str | None:
        return None


async def _subscriber(broker: LocalMosquitto, count: int) -> asyncio.subprocess.Process:
    args = ["mosquitto_sub", "-d", "-q", "1", "-h", broker.host, "-p", str(broker.port),
            "-C", str(count), "-t", "meshlink/+/sensor/#"]
    if shutil.which("stdbuf"):
        args = ["stdbuf", "-oL", *args]
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.DEVNULL)
    assert proc.stdout is not None
    while True:  # bounded by the caller's timeout
        line = await proc.stdout.readline()
        if not line:
            raise RuntimeError("mosquitto_sub exited before subscribing")
        if line.startswith(b"Subscribed"):
            return proc


async def _drain(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None
    while await proc.stdout.read(1 << 16):
        pass


async def _produce(bridge: MqttBridge, nodes: list[str]) -> None:
    for i in range(READINGS_PER_BOARD):
        for n, node in enumerate(nodes):
            bridge.publish_reading(node, f"board-{n}", {"sensor": "temperature",
                                                        "value_milli": 20_000 + i, "seq": i})
        await asyncio.sleep(0)  # one round from every board, then let I/O run


async def _one_run(broker: LocalMosquitto) -> float:
    total = BOARDS * READINGS_PER_BOARD
    nodes = [str(uuid.uuid4()) for _ in range(BOARDS)]
    cfg = MqttConfig(host=broker.host, port=broker.port, outbox_max=total, downlink=False)
    sub = await _subscriber(broker, total)
    drain = asyncio.create_task(_drain(sub))
    bridge = MqttBridge(cfg, _BenchMesh())
    await bridge.start()
    try:
        await bridge.wait_for(lambda b: b.connected, 10)
        t0 = time.perf_counter()
        await _produce(bridge, nodes)
        await sub.wait()
        elapsed = time.perf_counter() - t0
        await drain
    finally:
        if sub.returncode is None:
            sub.kill()
            await sub.wait()
        await bridge.stop()
    return total / elapsed


def run() -> list[tuple[str, float, str]]:
    """Median MQTT uplink readings/s over RUNS runs; [] if mosquitto is missing."""
    if find_mosquitto() is None or shutil.which("mosquitto_sub") is None:
        print("   skipped: mosquitto / mosquitto_sub not installed", file=sys.stderr)
        return []
    rates = []
    with tempfile.TemporaryDirectory(prefix="meshlink-mqtt-bench-") as tmp:
        broker = LocalMosquitto(pathlib.Path(tmp)).start()
        try:
            for i in range(RUNS):
                rate = asyncio.run(asyncio.wait_for(_one_run(broker), RUN_TIMEOUT_S))
                rates.append(rate)
                print(f"   run {i + 1}/{RUNS}: {rate:,.0f} readings/s", file=sys.stderr,
                      flush=True)
        finally:
            broker.stop()
    return [
        (f"MQTT uplink, {BOARDS} boards x {READINGS_PER_BOARD} readings, QoS 1 (median)",
         statistics.median(rates), "readings/s"),
        ("MQTT uplink, slowest run", min(rates), "readings/s"),
    ]


if __name__ == "__main__":
    for name, value, unit in run():
        print(f"{name:<60} {value:>12,.0f} {unit}")

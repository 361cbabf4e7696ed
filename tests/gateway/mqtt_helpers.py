"""Helpers for the MQTT bridge tests: a fake MeshPort and the real mosquitto
command-line clients run as subprocesses."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import uuid
from typing import Any

from helpers import DEADLINE_S
from meshlink_gw.bridges.mqtt import MqttBridge
from meshlink_gw.config import MqttConfig

from examples.localbroker import LocalMosquitto


class FakeMesh:
    """MeshPort stand-in: records what the bridge injects."""

    def __init__(self, boards: dict[str, str] | None = None) -> None:
        self.gateway_node_id = str(uuid.uuid4())
        self.boards = boards or {}
        self.sent: asyncio.Queue[tuple[str | None, bytes, str, str]] = asyncio.Queue()
        self._n = 0

    async def send_to_mesh(self, dst_node_id: str | None, data: bytes, *, origin: str) -> str:
        self._n += 1
        message_id = f"m-{self._n}"
        self.sent.put_nowait((dst_node_id, data, origin, message_id))
        return message_id

    def known_node(self, name_or_id: str) -> str | None:
        if name_or_id in self.boards:
            return self.boards[name_or_id]
        return name_or_id if name_or_id in self.boards.values() else None


def bridge_config(broker: LocalMosquitto, **kw: Any) -> MqttConfig:
    base = dict(host=broker.host, port=broker.port, reconnect_initial_ms=50,
                reconnect_max_ms=200, keepalive_s=10, connect_timeout_s=5.0)
    base.update(kw)
    return MqttConfig(**base)  # type: ignore[arg-type]


async def started_bridge(broker: LocalMosquitto, mesh: FakeMesh, **kw: Any) -> MqttBridge:
    bridge = MqttBridge(bridge_config(broker, **kw), mesh)
    await bridge.start()
    await bridge.wait_for(lambda b: b.connected, DEADLINE_S)
    return bridge


def _line_buffered() -> list[str]:
    return ["stdbuf", "-oL"] if shutil.which("stdbuf") else []


def _auth_args(broker: LocalMosquitto, auth: tuple[str, str] | None,
               cafile: str | None) -> list[str]:
    args = ["-h", "localhost" if cafile else broker.host, "-p", str(broker.port)]
    if auth:
        args += ["-u", auth[0], "-P", auth[1]]
    if cafile:
        args += ["--cafile", cafile]
    return args


@dataclasses.dataclass
class Sub:
    """mosquitto_sub -v with debug output, parsed into (topic, payload) pairs."""

    proc: asyncio.subprocess.Process
    prefixes: tuple[str, ...]
    early: list[str] = dataclasses.field(default_factory=list)  # before "Subscribed"

    @classmethod
    async def start(cls, broker: LocalMosquitto, topics: list[str], *, client_id: str = "",
                    persistent: bool = False, auth: tuple[str, str] | None = None,
                    cafile: str | None = None, qos: int = 1) -> Sub:
        # stdbuf: stdout is a pipe, and the "Subscribed" debug line must not sit in a buffer
        args = [*_line_buffered(), "mosquitto_sub", "-d", "-v", "-q", str(qos)]
        args += _auth_args(broker, auth, cafile)
        if client_id:
            args += ["-i", client_id]
        if persistent:
            args += ["-c"]
        for t in topics:
            args += ["-t", t]
        proc = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        prefixes = tuple(t.split("/")[0] + "/" for t in topics)
        sub = cls(proc, prefixes)

        def subscribed(line: str) -> bool:
            if line.startswith(prefixes):  # a queued message can precede the SUBACK
                sub.early.append(line)
            return line.startswith("Subscribed")

        await sub._until_line(subscribed, DEADLINE_S)
        return sub

    async def _line(self, timeout_s: float) -> str:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout_s)
        if not raw:
            raise EOFError("mosquitto_sub exited")
        return raw.decode(errors="replace").rstrip("\n")

    async def _until_line(self, pred: Any, timeout_s: float) -> str:
        async def _loop() -> str:
            while True:
                line = await self._line(timeout_s)
                if pred(line):
                    return line
        return await asyncio.wait_for(_loop(), timeout_s)

    async def message(self, timeout_s: float = DEADLINE_S) -> tuple[str, str]:
        if self.early:
            line = self.early.pop(0)
        else:
            line = await self._until_line(lambda s: s.startswith(self.prefixes), timeout_s)
        topic, _, payload = line.partition(" ")
        return topic, payload

    async def messages(self, n: int, timeout_s: float = DEADLINE_S) -> list[tuple[str, str]]:
        async def _n() -> list[tuple[str, str]]:
            return [await self.message(timeout_s) for _ in range(n)]
        return await asyncio.wait_for(_n(), timeout_s)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
        await asyncio.wait_for(self.proc.wait(), DEADLINE_S)


async def mosquitto_pub(broker: LocalMosquitto, topic: str, payloads: list[bytes], *,
                        retain: bool = False, auth: tuple[str, str] | None = None) -> None:
    """Publish payloads (one connection, QoS 1) with the real CLI client."""
    args = ["mosquitto_pub", *_auth_args(broker, auth, None), "-q", "1", "-t", topic]
    if retain:
        args.append("-r")
    if len(payloads) == 1:
        args += ["-m", payloads[0].decode()]
        stdin = None
    else:
        args.append("-l")  # one message per stdin line
        stdin = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(*args, stdin=stdin,
                                                stderr=asyncio.subprocess.PIPE)
    data = b"".join(p + b"\n" for p in payloads) if stdin else None
    _, err = await asyncio.wait_for(proc.communicate(data), DEADLINE_S)
    assert proc.returncode == 0, err.decode()

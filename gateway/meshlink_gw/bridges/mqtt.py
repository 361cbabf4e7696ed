"""MQTT bridge: board readings and mesh messages up to a broker, commands down.

Rule: runs inside the gateway's asyncio loop (see mqtt_session.py for how
paho is driven). Uplink calls never block: they queue into a bounded outbox
that is flushed while connected, and an entry leaves the outbox only on
PUBACK. Downlink commands pass an access list and per-source plus global
token buckets before they reach the mesh, and what came from MQTT is never
published back as if it came from the mesh. Topic tree: mqtt_topics.py and
docs/BRIDGES.md.
"""

from __future__ import annotations

import asyncio
import binascii
import collections
import json
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from meshlink.errors import MeshLinkError

from meshlink_gw.config import MqttConfig
from meshlink_gw.runtime import LogLimiter, now_ms

from ..transports.base import supervise
from .mqtt_outbox import Outbox, RateLimiter
from .mqtt_session import InboundMessage, MqttSession
from .mqtt_store import OutboxStore
from .mqtt_topics import (
    BROADCAST_TARGET,
    OUTPUTS,
    Topics,
    ha_device_id,
    ha_gateway_config,
    ha_sensor_config,
    ha_switch_config,
)

log = logging.getLogger("meshlink.mqtt")
REFUSAL_LOG_INTERVAL_MS = 1000  # refused commands: one line a second per reason

ONLINE = b"online"
ASLEEP = b"asleep"  # a sleeping board (HA ignores it: the entities stay available)
OFFLINE = b"offline"
MAX_REMEMBERED_IDS = 4096  # message ids we injected, to refuse echoes
STOP_PUBACK_WAIT_S = 2.0
UNBOUND_SOURCE = "unbound"  # the one rate-limit source of commands whose <source> is not ACL-bound
DROP_LOG_INTERVAL_MS = 10_000  # a full outbox is logged at most this often


class MeshPort(Protocol):
    """What the gateway gives the bridge."""

    gateway_node_id: str

    async def send_to_mesh(self, dst_node_id: str | None, data: bytes, *, origin: str) -> str:
        """Inject data towards dst (None: broadcast); returns the message id."""
        ...

    def known_node(self, name_or_id: str) -> str | None:
        """Resolve a board name or node id to a node id, or None."""
        ...


def _stats() -> dict[str, int]:
    keys = ("published", "dropped_outbox", "refused_acl", "refused_rate", "refused_unknown",
            "refused_invalid", "injected", "inject_failed", "suppressed_echo", "connects",
            "reconnects", "rediscover_throttled")
    return dict.fromkeys(keys, 0)


class MqttBridge:
    """Bridge between one gateway's mesh view and one MQTT broker.

    Args:
        config: validated MqttConfig.
        mesh: the gateway's MeshPort.
        loop: event loop (default: the running one at start()).
        clock: wall clock for reading timestamps (seconds).
        session_factory: builds one MqttSession per connection (tests).
        outbox_path: keep the outbox in this SQLite file across restarts
            (None: in memory only). Raises ConfigError if it is corrupt.
    """

    def __init__(self, config: MqttConfig, mesh: MeshPort,
                 loop: asyncio.AbstractEventLoop | None = None, *,
                 clock: Callable[[], float] = time.time,
                 session_factory: Callable[..., MqttSession] = MqttSession,
                 outbox_path: Path | None = None) -> None:
        self.config = config
        self.mesh = mesh
        self.stats = _stats()
        # refused commands: one line per second per reason (a flood must not fill the log)
        self._refusal_log = LogLimiter(log, REFUSAL_LOG_INTERVAL_MS)
        self.topics = Topics(config.topic_prefix, mesh.gateway_node_id,
                             config.ha_discovery_prefix)
        self._loop = loop
        self._clock = clock
        self._session_factory = session_factory
        self._outbox = Outbox(config.outbox_max, config.outbox_max_bytes,
                              OutboxStore(outbox_path) if outbox_path else None)
        if len(self._outbox):
            log.info("event=mqtt_outbox_loaded entries=%d", len(self._outbox))
        self._dropped_logged_ms = -DROP_LOG_INTERVAL_MS
        self._dropped_since_log = 0
        self._retained: dict[str, bytes] = {}  # republished on every connect
        self._discovered: set[tuple[str, str]] = set()
        self._injected: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._session: MqttSession | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._mid_waiters: dict[int, asyncio.Future[None]] = {}
        self._rediscovered_ms: int | None = None
        self._limiter = RateLimiter(config.source_rate_per_s, config.source_burst,
                                    config.global_rate_per_s, config.global_burst,
                                    config.max_sources, now_ms() / 1000)

    # --- lifecycle ---

    async def start(self) -> None:
        """Start connecting in the background (returns at once)."""
        if self._task is not None:
            return
        self._loop = self._loop or asyncio.get_running_loop()
        self._stop.clear()
        self._task = self._loop.create_task(supervise(
            self._new_session, self._on_inbound,
            initial_backoff_ms=self.config.reconnect_initial_ms,
            max_backoff_ms=self.config.reconnect_max_ms, stop_event=self._stop,
            on_up=self._on_up, on_down=self._on_down))

    async def stop(self) -> None:
        """Publish the gateway offline (bounded wait for PUBACK), then disconnect."""
        if self._task is None:
            return
        session = self._session
        if session is not None:
            mid = session.publish(self.topics.status(self.mesh.gateway_node_id), OFFLINE,
                                  1, True)
            if mid is not None:
                await self._wait_mid(mid, STOP_PUBACK_WAIT_S)
        self._stop.set()
        task, self._task = self._task, None
        await task
        if self._outbox.store is not None:
            self._outbox.store.close()

    @property
    def connected(self) -> bool:
        return self._session is not None

    def outbox_size(self) -> int:
        return len(self._outbox)

    def outbox_inflight(self) -> int:
        return self._outbox.inflight_count()

    async def wait_for(self, predicate: Callable[[MqttBridge], bool], timeout_s: float) -> None:
        """Wait until predicate(self) holds; it is re-checked on every state change.

        Raises:
            TimeoutError: not true within timeout_s.
        """
        async def _until() -> None:
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(_until(), timeout_s)

    def _touch(self) -> None:
        self._changed.set()

    # --- uplink ---

    def publish_reading(self, node_id: str, board_name: str, reading: dict[str, Any]) -> None:
        """Queue one sensor reading for meshlink/<node_id>/sensor/<name>. Never blocks.

        reading: {"sensor" (or "name"): str, "value": ... (or the board
        service's integer "value_milli", published as value = value_milli/1000
        too), optional "unit", "device_class", "ts" (unix seconds; default
        now), any other JSON fields}.
        """
        sensor = reading.get("sensor", reading.get("name"))
        if not isinstance(sensor, str) or not sensor:
            self._count("refused_invalid")
            log.warning("event=mqtt_bad_reading node=%s reason=no sensor name", node_id)
            return
        body = dict(reading)
        milli = body.get("value_milli")
        if "value" not in body and isinstance(milli, int) and not isinstance(milli, bool):
            body["value"] = milli / 1000
        if not body.get("unit"):
            body.pop("unit", None)
        body.update(node_id=node_id, board=board_name, sensor=sensor)
        body.setdefault("ts", round(self._clock(), 3))
        self._enqueue(self.topics.sensor(node_id, sensor), _json(body))
        if self.config.ha_discovery and (node_id, sensor) not in self._discovered:
            self._discovered.add((node_id, sensor))
            config = ha_sensor_config(self.topics, node_id, board_name, sensor, body)
            self._set_retained(self.topics.ha_config_topic(node_id, sensor), config)

    def announce_gateway(self, name: str) -> None:
        """Announce the gateway itself as a Home Assistant device (the device
        every board's via_device names)."""
        if self.config.ha_discovery:
            gw = self.mesh.gateway_node_id
            self._set_retained(self.topics.ha_config_topic(gw, "status", "binary_sensor"),
                               ha_gateway_config(self.topics, name))

    def announce_outputs(self, node_id: str, board_name: str, outputs: list[str]) -> None:
        """Home Assistant switches for a board's outputs (relay, led): ON/OFF are
        commands on our downlink topic, so allow_targets decides as for any."""
        if not self.config.ha_discovery:
            return
        for output in outputs:
            if output in OUTPUTS:  # by name: allow_targets usually lists board names
                command = self.topics.command(board_name, "homeassistant")
                self._set_retained(self.topics.ha_config_topic(node_id, output, "switch"),
                                   ha_switch_config(self.topics, node_id, board_name, output,
                                                    command))

    def forget_node(self, node_id: str, entities: Iterable[str] = ()) -> None:
        """A board was revoked: publish its discovery configs empty (retained),
        which makes Home Assistant remove its entities: those published by this
        run, and its known sensors and outputs (entities) from earlier runs."""
        if not self.config.ha_discovery:
            return
        marker = f"/{ha_device_id(node_id)}/"
        topics = {t for t in self._retained if marker in t and t.endswith("/config")}
        for name in entities:
            component = "switch" if name in OUTPUTS else "sensor"
            topics.add(self.topics.ha_config_topic(node_id, name, component))
        for topic in sorted(topics):
            self._set_retained(topic, b"")
        self._discovered = {d for d in self._discovered if d[0] != node_id}

    def publish_message(self, src_node_id: str, dst_node_id: str | None, data: bytes,
                        message_id: str, origin: str) -> None:
        """Queue one mesh message for meshlink/<src>/message. Never blocks.

        A message that came from MQTT (origin "mqtt", or an id this bridge
        injected) is not published again.
        """
        if origin == "mqtt" or message_id in self._injected:
            self._count("suppressed_echo")
            return
        body: dict[str, Any] = {"from": src_node_id, "to": dst_node_id,
                                "message_id": message_id, "origin": origin,
                                "data_b64": binascii.b2a_base64(data, newline=False).decode(),
                                "ts": round(self._clock(), 3)}
        try:
            body["text"] = data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        self._enqueue(self.topics.message(src_node_id), _json(body))

    def set_node_online(self, node_id: str, online: bool) -> None:
        """Retained meshlink/<node_id>/status: "online" or "offline"."""
        self._set_retained(self.topics.status(node_id), ONLINE if online else OFFLINE)

    def set_node_asleep(self, node_id: str) -> None:
        """Retained meshlink/<node_id>/status: "asleep" (a board that will wake)."""
        self._set_retained(self.topics.status(node_id), ASLEEP)

    def _enqueue(self, topic: str, payload: bytes) -> None:
        dropped = self._outbox.append(topic, payload, self.config.qos)
        if dropped:
            self.stats["dropped_outbox"] += dropped
            self._log_dropped(dropped)
        self._pump()
        self._touch()

    def _log_dropped(self, n: int) -> None:
        """The outbox was full: the oldest went. One line per interval, with the count."""
        self._dropped_since_log += n
        now = now_ms()
        if now - self._dropped_logged_ms >= DROP_LOG_INTERVAL_MS:
            log.warning("event=mqtt_outbox_full dropped_oldest=%d total_dropped=%d",
                        self._dropped_since_log, self.stats["dropped_outbox"])
            self._dropped_logged_ms = now
            self._dropped_since_log = 0

    def _set_retained(self, topic: str, payload: bytes) -> None:
        if self._retained.get(topic) == payload:
            return
        self._retained[topic] = payload
        if self._session is not None:
            self._session.publish(topic, payload, 1, True)

    def _pump(self) -> None:
        """Hand unsent outbox entries to paho, up to max_inflight at once."""
        session = self._session
        while session is not None and self._outbox.inflight_count() < self.config.max_inflight:
            entry = self._outbox.next_unsent()
            if entry is None:
                return
            mid = session.publish(entry.topic, entry.payload, entry.qos, entry.retain)
            if mid is None:
                self._outbox.unsend(entry)
                return
            self._outbox.mark_inflight(entry, mid)

    def _on_publish(self, mid: int) -> None:
        if self._outbox.ack(mid) is not None:
            self.stats["published"] += 1
        waiter = self._mid_waiters.pop(mid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._pump()
        self._touch()

    async def _wait_mid(self, mid: int, timeout_s: float) -> None:
        fut = self._mid_waiters.setdefault(mid, asyncio.get_running_loop().create_future())
        try:
            await asyncio.wait_for(fut, timeout_s)
        except TimeoutError:
            log.info("event=mqtt_puback_timeout mid=%d", mid)

    # --- connection events ---

    def _new_session(self) -> MqttSession:
        client_id = self.config.client_id or f"meshlink-gw-{self.mesh.gateway_node_id[:8]}"
        will = (self.topics.status(self.mesh.gateway_node_id), OFFLINE)
        return self._session_factory(self.config, client_id, will, self._on_publish)

    def _on_up(self, session: MqttSession) -> None:
        self.stats["connects"] += 1
        if self.stats["connects"] > 1:
            self.stats["reconnects"] += 1
        self._session = session
        session.publish(self.topics.status(self.mesh.gateway_node_id), ONLINE, 1, True)
        filters = [self.topics.ha_status()] if self.config.ha_discovery else []
        if self.config.downlink:
            filters += self.topics.command_filters()
        if filters:
            session.subscribe(filters)
        for topic, payload in self._retained.items():
            session.publish(topic, payload, 1, True)
        log.info("event=mqtt_up broker=%s outbox=%d", session.name, len(self._outbox))
        self._pump()
        self._touch()

    def _on_down(self, session: MqttSession, reason: str) -> None:
        self._session = None
        requeued = self._outbox.requeue_inflight()
        for fut in self._mid_waiters.values():
            if not fut.done():
                fut.cancel()
        self._mid_waiters.clear()
        level = logging.INFO if reason == "stopped" else logging.WARNING
        log.log(level, "event=mqtt_down broker=%s reason=%s requeued=%d outbox=%d",
                session.name, reason, requeued, len(self._outbox))
        self._touch()

    # --- downlink ---

    async def _on_inbound(self, msg: InboundMessage) -> None:
        if msg.topic == self.topics.ha_status():
            if msg.payload == ONLINE and self._session is not None:
                self._rediscover()
            return
        await self._handle_command(msg)
        self._touch()

    def _rediscover(self) -> None:
        """HA restarted: resend the retained configs, at most once per
        ha_rediscover_min_s (anyone may publish 'online' on its status topic)."""
        now = now_ms()
        if self._rediscovered_ms is not None and \
                now - self._rediscovered_ms < self.config.ha_rediscover_min_s * 1000:
            self.stats["rediscover_throttled"] += 1
            return
        self._rediscovered_ms = now
        assert self._session is not None
        for topic, payload in self._retained.items():
            self._session.publish(topic, payload, 1, True)

    def _count(self, key: str) -> None:
        self.stats[key] += 1
        self._touch()

    def _refuse(self, key: str, topic: str, why: str) -> None:
        self.stats[key] += 1
        self._refusal_log.warning(key, "event=mqtt_command_refused topic=%s reason=%s",
                                  topic, why)

    async def _handle_command(self, msg: InboundMessage) -> None:
        parsed = self.topics.parse_command(msg.topic)
        if parsed is None or msg.retain or len(msg.payload) > self.config.max_command_bytes:
            why = "retained" if msg.retain else "bad topic or payload too large"
            return self._refuse("refused_invalid", msg.topic, why)
        target, source = parsed
        node = None if target == BROADCAST_TARGET else self.mesh.known_node(target)
        if not self._allowed(target, node):
            return self._refuse("refused_acl", msg.topic, f"target {target!r} not allowed")
        if node is None and target != BROADCAST_TARGET:
            return self._refuse("refused_unknown", msg.topic, f"unknown target {target!r}")
        # the <source> level is the publisher's choice unless the broker binds it
        key = source if self.config.sources_bound_by_acl else UNBOUND_SOURCE
        if not self._limiter.allow(key, now_ms() / 1000):
            return self._refuse("refused_rate", msg.topic, f"rate limit for {source!r}")
        try:
            message_id = await self.mesh.send_to_mesh(node, msg.payload, origin="mqtt")
        except MeshLinkError as e:
            return self._refuse("inject_failed", msg.topic, f"{type(e).__name__}: {e}")
        self._remember(message_id)
        self.stats["injected"] += 1

    def _allowed(self, target: str, node: str | None) -> bool:
        allow = self.config.allow_targets
        if target == BROADCAST_TARGET:
            return BROADCAST_TARGET in allow
        return target in allow or "*" in allow or (node is not None and node in allow)

    def _remember(self, message_id: str) -> None:
        self._injected[message_id] = None
        if len(self._injected) > MAX_REMEMBERED_IDS:
            self._injected.popitem(last=False)


def _json(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode()
